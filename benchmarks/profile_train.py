"""Where `hamixer train` spends its wall time: forward, backward, optimizer step, and the rest.

The rest is everything outside the model's compute: data loading and augmentation, the
loss, gradient clipping, the scheduler, progress bar and logging, checkpoints. Forward
time is that of the outermost module call (training and evaluation), backward that of
``Tensor.backward``, step that of ``Optimizer.step``; nothing inside the engine is changed.

    python benchmarks/profile_train.py --dataset fashion-mnist --model paramixer \\
        --epochs 1 --limit-train 10000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict

import torch
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from hamixer.cli.flags import resolve_model_name
from hamixer.train.config import TrainConfig, find_config_file, load_yaml, merge
from hamixer.train.run import run_training

totals: dict[str, float] = defaultdict(float)
_depth = 0
_t_forward = 0.0
_t_step = 0.0


def _pre_forward(module, args):
    global _depth, _t_forward
    if _depth == 0:
        _t_forward = time.perf_counter()
    _depth += 1


def _post_forward(module, args, output):
    global _depth
    _depth -= 1
    if _depth == 0:
        totals["forward"] += time.perf_counter() - _t_forward


def _pre_step(optimizer, args, kwargs):
    global _t_step
    _t_step = time.perf_counter()


def _post_step(optimizer, args, kwargs):
    totals["step"] += time.perf_counter() - _t_step


_backward = torch.Tensor.backward


def _timed_backward(self, *args, **kwargs):
    t = time.perf_counter()
    try:
        return _backward(self, *args, **kwargs)
    finally:
        totals["backward"] += time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--model", default="paramixer")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit-train", type=int, default=10000)
    p.add_argument("--limit-test", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args()

    cfg = TrainConfig()
    cfg = merge(cfg, load_yaml(find_config_file(args.dataset)), "config")
    with tempfile.TemporaryDirectory() as out:
        cfg = merge(cfg, dict(model=resolve_model_name(args.model, args.dataset),
                              dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
                              limit_train=args.limit_train, limit_test=args.limit_test,
                              threads=args.threads, out=out, quiet=True), "flags")
        handles = [register_module_forward_pre_hook(_pre_forward),
                   register_module_forward_hook(_post_forward),
                   register_optimizer_step_pre_hook(_pre_step),
                   register_optimizer_step_post_hook(_post_step)]
        torch.Tensor.backward = _timed_backward
        start = time.perf_counter()
        try:
            summary = run_training(cfg, log=lambda s: None)
        finally:
            wall = time.perf_counter() - start
            torch.Tensor.backward = _backward
            for h in handles:
                h.remove()
    compute = totals["forward"] + totals["backward"] + totals["step"]
    result = {
        "model": cfg.model, "dataset": cfg.dataset, "epochs": cfg.epochs,
        "train_images": args.limit_train, "threads": args.threads, "wall_s": wall,
        **{f"{k}_s": v for k, v in totals.items()},
        "outside_s": wall - compute, "outside_fraction": (wall - compute) / wall,
        "best_test_acc": summary["best_test_acc"],
    }
    print(f"{cfg.model} on {cfg.dataset}, {cfg.epochs} epoch(s), {args.limit_train} images, "
          f"{args.threads} thread(s): wall {wall:.1f} s")
    for k in ("forward", "backward", "step"):
        print(f"  {k:<9} {totals[k]:8.2f} s  {100 * totals[k] / wall:5.1f} %")
    print(f"  {'outside':<9} {wall - compute:8.2f} s  {100 * (wall - compute) / wall:5.1f} %"
          "  (data, augmentation, loss, clipping, logging, checkpoints, start-up)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
