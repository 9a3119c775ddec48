"""The Energy MetaFormer of THEORY §4 as a denoising associative memory.

A HAM with a LayerNorm visible layer (one unit per pixel: 784 for 28×28 images, 64 for
the 8×8 digits) and two ReLU hidden layers, each joined to the visible layer by a dense
synapse ``−g_hᵀ W g_v`` (the two hidden layers play the parts of the token and channel
mixers of a MetaFormer block). Recall is ``steps`` of discrete descent
``x_A ← x_A − α ∂E/∂g_A`` on all layers, the visible layer starting at the noisy image and
the hidden ones at zero.

Pixel scaling: the visible activation of a LayerNorm layer (gain 1, no shift) has zero
mean and unit variance over the image, so it can never equal an image in [0, 1]. The
clean target is therefore the image *standardized per sample*, ``LN(clean)`` (the visible
activation that the clean image itself would produce); the loss is the mean squared error
between ``g_v`` after recall and ``LN(clean)``. Noise (σ = 0.3) is added in pixel space
([0, 1]) before recall.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ham.core import HAM, DenseSynapse, Neurons, States
from ..ham.dynamics import Trajectory, descend
from ..ham.lagrangians import LayerNormLagrangian, ReLULagrangian
from ..runs import MEMORY_CONFIG, MEMORY_WEIGHTS


@dataclass
class MemoryConfig:
    visible: int = 784
    hidden: tuple[int, int] = (900, 900)
    eps: float = 1e-5
    steps: int = 10
    step_size: float = 0.1
    noise_std: float = 0.3
    init_scale: float = 0.1  # synapse weights ~ N(0, (init_scale / √visible)²)
    image_shape: tuple[int, int] = (28, 28)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MemoryConfig:
        d = dict(d)
        d["hidden"] = tuple(d["hidden"])
        d["image_shape"] = tuple(d["image_shape"])
        return cls(**d)


class EnergyMemory(nn.Module):
    """LayerNorm visible layer + two ReLU hidden layers with dense synapses (a HAM)."""

    def __init__(self, cfg: MemoryConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if math.prod(cfg.image_shape) != cfg.visible:
            raise ValueError(f"image shape {cfg.image_shape} does not have {cfg.visible} pixels")
        std = cfg.init_scale / math.sqrt(cfg.visible)
        neurons = {"visible": Neurons((cfg.visible,), LayerNormLagrangian(-1, 1.0, None, cfg.eps))}
        synapses = {}
        for i, n in enumerate(cfg.hidden, start=1):
            neurons[f"hidden{i}"] = Neurons((n,), ReLULagrangian())
            synapses[f"visible_hidden{i}"] = DenseSynapse(
                "visible", f"hidden{i}", torch.randn(n, cfg.visible) * std)
        self.ham = HAM(neurons, synapses)

    def target(self, images: Tensor) -> Tensor:
        """The clean image as a visible activation: standardized per sample (``LN(image)``)."""
        return F.layer_norm(images, (self.cfg.visible,), eps=self.cfg.eps)

    def initial_states(self, visible: Tensor) -> States:
        return self.ham.init_states(visible.shape[0], visible=visible)

    def recall(self, visible: Tensor, steps: int | None = None, step_size: float | None = None,
               create_graph: bool = False, record: bool = False
               ) -> tuple[Tensor, Trajectory | None]:
        """Descend from ``visible`` (hidden layers at zero); return ``g_v`` and the trajectory."""
        states, traj = descend(self.ham, self.initial_states(visible),
                               self.cfg.steps if steps is None else steps,
                               self.cfg.step_size if step_size is None else step_size,
                               create_graph=create_graph, record=record)
        return self.ham.neurons["visible"].activation(states["visible"]), traj

    def receptive_fields(self, layer: int = 1) -> Tensor:
        """Rows of ``W`` of hidden layer ``layer`` as images ``[N_h, H, W]``."""
        w = self.ham.synapses[f"visible_hidden{layer}"].weight
        return w.detach().reshape(-1, *self.cfg.image_shape)

    def denoising_loss(self, clean: Tensor, generator: torch.Generator | None = None,
                       create_graph: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """(loss of recall, loss of the noisy input itself, recalled activation)."""
        noise = torch.randn(clean.shape, generator=generator, device=clean.device,
                            dtype=clean.dtype)
        noisy = clean + self.cfg.noise_std * noise
        target = self.target(clean)
        recalled, _ = self.recall(noisy, create_graph=create_graph)
        baseline = F.mse_loss(self.target(noisy), target)
        return F.mse_loss(recalled, target), baseline, recalled


@dataclass
class TrainResult:
    history: list[dict]
    test_mse: float
    test_noisy_mse: float
    seconds: float


def images_to_unit(images) -> Tensor:
    """uint8 images ``[N, H, W]`` → float ``[N, H·W]`` in [0, 1]."""
    x = torch.as_tensor(images)
    return x.reshape(x.shape[0], -1).to(torch.float32) / 255.0


@torch.no_grad()
def evaluate(model: EnergyMemory, images: Tensor, batch_size: int = 512, seed: int = 1
             ) -> tuple[float, float]:
    """Mean recall MSE and noisy-input MSE (both against ``LN(clean)``) with fixed noise."""
    gen = torch.Generator(device=images.device).manual_seed(seed)
    total = base = 0.0
    for i in range(0, len(images), batch_size):
        clean = images[i:i + batch_size]
        loss, baseline, _ = model.denoising_loss(clean, gen, create_graph=False)
        total += loss.item() * len(clean)
        base += baseline.item() * len(clean)
    return total / len(images), base / len(images)


def train_memory(model: EnergyMemory, train: Tensor, test: Tensor, epochs: int,
                 batch_size: int = 512, lr: float = 1e-4, seed: int = 0,
                 progress: bool = True) -> TrainResult:
    """Adam on the denoising loss through ``steps`` of descent (THEORY §4)."""
    import time

    from tqdm import tqdm

    gen = torch.Generator(device=train.device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = math.ceil(len(train) / batch_size)
    history = []
    start = time.perf_counter()
    bar = tqdm(total=epochs * batches, desc="memory train", unit="batch", disable=not progress,
               dynamic_ncols=True)
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=gen, device=train.device)
        running = 0.0
        for b in range(batches):
            clean = train[order[b * batch_size:(b + 1) * batch_size]]
            loss, _, _ = model.denoising_loss(clean, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item() * len(clean)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4f}")
        test_mse, noisy_mse = evaluate(model, test, batch_size)
        history.append(dict(epoch=epoch + 1, train_mse=running / len(train), test_mse=test_mse,
                            test_noisy_mse=noisy_mse))
    bar.close()
    seconds = time.perf_counter() - start
    last = history[-1] if history else dict(zip(("test_mse", "test_noisy_mse"),
                                                evaluate(model, test, batch_size), strict=True))
    return TrainResult(history, last["test_mse"], last["test_noisy_mse"], seconds)


def save_memory(model: EnergyMemory, out_dir, meta: dict) -> None:
    """``model.safetensors`` + ``config.json`` (config and ``meta``), each written atomically."""
    from pathlib import Path

    from safetensors.torch import save_file

    from ..io import atomic_path, write_json

    out = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / MEMORY_WEIGHTS) as tmp:
        save_file(state, str(tmp))
    write_json(out / MEMORY_CONFIG, dict(kind="energy_memory", config=model.cfg.to_dict(), **meta))


def load_memory(out_dir) -> EnergyMemory:
    """Read back what :func:`save_memory` wrote (no pickle)."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    from ..errors import HamixerError

    out = Path(out_dir)
    try:
        meta = json.loads((out / MEMORY_CONFIG).read_text())
        model = EnergyMemory(MemoryConfig.from_dict(meta["config"]))
        model.load_state_dict(load_file(str(out / MEMORY_WEIGHTS)))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as err:
        raise HamixerError(f"cannot load an energy memory from {out}: {err}") from None
    return model
