"""One epoch of training and one evaluation: the inner loops of a run, with no files.

Reproducibility: the batches of epoch *e* are drawn from :func:`epoch_seed` ``(seed, e)``,
so an epoch does not depend on how the run got there.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data.pipeline import ImageBatches
from ..errors import HamixerError
from .config import TrainConfig
from .distributed import DistContext
from .setup import autocast, epoch_seed


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch of images in channels-last memory order if asked (timm's --channels-last)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def evaluate(model: nn.Module, batches: ImageBatches, device: torch.device,
             amp_dtype: torch.dtype | None = None,
             channels_last: bool = False) -> dict[str, float]:
    """Mean cross-entropy and top-1/top-5 accuracy (percent) over ``batches``."""
    model.eval()
    loss_sum, top1, top5, n = 0.0, 0, 0, 0
    for x, y, _ in batches.batches():
        x = memory_format(x, channels_last)
        with autocast(device, amp_dtype):
            logits = model(x)
        logits = logits.float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        k = min(5, logits.shape[1])
        topk = logits.topk(k, dim=1).indices
        top1 += (topk[:, 0] == y).sum().item()
        top5 += (topk == y[:, None]).any(dim=1).sum().item()
        n += len(y)
    return {"loss": loss_sum / n, "top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "n": n}


def progress_bar(total: int, initial: int, disable: bool, desc: str):
    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=disable, desc=desc, unit="batch",
                dynamic_ncols=True, leave=False, mininterval=0.2 if tty else 30.0,
                file=sys.stderr)


class Diverged(HamixerError):
    """The training loss became NaN or infinite; nothing of that step was applied."""

    def __init__(self, value: float, epoch: int, step: int, global_step: int) -> None:
        super().__init__(f"loss became {value} at epoch {epoch + 1} step {step + 1} "
                         f"(global step {global_step + 1})")
        self.value, self.epoch, self.step, self.global_step = value, epoch, step, global_step


#: Called after every optimiser step with (steps done this epoch, running sums); may save a
#: mid-epoch checkpoint or stop the run.
StepHook = Callable[[int, "dict[str, float]"], None]


def train_one_epoch(model: nn.Module, batches: ImageBatches, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                    cfg: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None,
                    epoch: int, bar: Any, start_step: int = 0,
                    partial: dict[str, float] | None = None,
                    after_step: StepHook | None = None,
                    ctx: DistContext | None = None, ema: Any = None,
                    core: nn.Module | None = None) -> dict[str, float]:
    """One epoch of training from batch ``start_step`` on, continuing the sums in ``partial``.

    ``ema`` (a timm ModelEmaV3) is updated after every optimiser step. ``core`` is the plain
    model when ``model`` wraps it (DistributedDataParallel, ``torch.compile``): its auxiliary
    loss is added and the EMA follows it.

    The loss is checked before the update: a non-finite loss raises :class:`Diverged` with
    the weights and optimiser still as they were after the last good step.
    """
    ctx = ctx or DistContext()
    core = model if core is None else core
    model.train()
    steps = len(batches)
    updates = epoch * steps + start_step
    partial = partial or {}
    loss_sum, correct, n = (float(partial.get("loss_sum", 0.0)), int(partial.get("correct", 0)),
                            int(partial.get("n", 0)))
    done_seconds = float(partial.get("seconds", 0.0))
    start = time.perf_counter()
    # a model's own penalty (AsymMixer's λ‖W̃‖²); models without one (timm's) add nothing
    aux_loss = getattr(core, "aux_loss", None)
    for step, (x, y, target) in enumerate(
            batches.batches(epoch_seed(cfg.seed, epoch), start=start_step), start=start_step):
        x = memory_format(x, cfg.channels_last)
        with autocast(device, amp_dtype):
            logits = model(x)
            loss = criterion(logits.float(), target)
            if aux_loss is not None:
                loss = loss + aux_loss()
        if ctx.any(not bool(torch.isfinite(loss)), device):  # every rank stops together
            raise Diverged(loss.item(), epoch, step, updates)
        _backward_and_step(model, loss, optimizer, scaler, cfg.clip_grad)
        updates += 1
        if ema is not None:
            ema.update(core, step=updates)
        if scheduler is not None:
            scheduler.step_update(num_updates=updates)
        b = len(y)
        loss_sum += loss.item() * b
        correct += int((logits.argmax(dim=1) == y).sum().item())
        n += b
        elapsed = done_seconds + time.perf_counter() - start
        bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss_sum / n:.3f}",
                        acc=f"{100.0 * correct / n:.1f}", ips=f"{n / elapsed:.0f}",
                        refresh=False)
        bar.update(1)
        if after_step is not None:
            after_step(step + 1, {"loss_sum": loss_sum, "correct": correct, "n": n,
                                  "seconds": elapsed})
    seconds = done_seconds + time.perf_counter() - start
    if ctx.enabled:
        loss_sum, correct, n = ctx.sum([loss_sum, correct, n], device)
        correct, n = int(correct), int(n)
    if n == 0:
        raise HamixerError(f"epoch {epoch + 1}: no training batches")
    return {"loss": loss_sum / n, "acc": 100.0 * correct / n, "seconds": seconds,
            "images_per_s": n / seconds, "n": n}


def _backward_and_step(model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                       scaler: Any, clip_grad: float | None) -> None:
    """Backward, gradient clipping (on unscaled gradients under a GradScaler), one update."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip_grad:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
        return
    loss.backward()
    if clip_grad:
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    optimizer.step()


class StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks the loop to stop after the current step
    (and a checkpoint); a second one stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
