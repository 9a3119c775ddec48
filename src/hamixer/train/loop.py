"""The pieces of a training loop that hold no run state: one optimiser update, an
evaluation, the progress bar, the stop request of a signal and the divergence error (the
loops themselves are :class:`~hamixer.train.trainer.Trainer`'s methods)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import torch
from torch import nn

from ..data.pipeline import ImageBatches
from ..device import autocast
from ..errors import HamixerError


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


def backward_and_step(model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
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
