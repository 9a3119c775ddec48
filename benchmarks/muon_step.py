"""Training-step cost of timm's Muon against AdamW, with Newton–Schulz in float32 or bfloat16.

    PYTHONPATH=src python benchmarks/muon_step.py --model vanillamixer_m4_28 --threads 1

One step = zero_grad + forward + cross-entropy + backward + optimiser step on a random batch
of 28×28 images. Three candidates, each its own copy of the model (same seed) and its own
optimiser built as `hamixer train` builds it: ``adamw``, ``muon`` (float32 Newton–Schulz,
what hamixer does on CPU) and ``muon-bf16`` (timm's own bfloat16 iteration). They are timed
interleaved in one process (round r starts at candidate r mod 3), so machine load hits all
alike; medians of wall-clock and process CPU seconds per step, and each candidate's ratio to
AdamW (> 1: slower). Also the seconds of the optimiser step alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

try:
    import hamixer
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import hamixer

from hamixer.train.config import TrainConfig
from hamixer.train.setup import make_optimizer_and_scheduler


def build(model_name: str, opt: str, bf16_newton_schulz: bool, seed: int):
    torch.manual_seed(seed)
    model = hamixer.create_model(model_name).train()
    optimizer, _ = make_optimizer_and_scheduler(TrainConfig(model=model_name, opt=opt), model, 1)
    if bf16_newton_schulz:  # drop hamixer's float32 hooks: timm's own iteration
        optimizer._optimizer_step_pre_hooks.clear()
        optimizer._optimizer_step_post_hooks.clear()
    return model, optimizer


def one_step(model, optimizer, x, y) -> tuple[float, float, float]:
    """(wall s, CPU s, wall s of the optimiser step)."""
    w0, c0 = time.perf_counter(), time.process_time()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    w1 = time.perf_counter()
    optimizer.step()
    w2 = time.perf_counter()
    return w2 - w0, time.process_time() - c0, w2 - w1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vanillamixer_m4_28")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    candidates = {"adamw": build(args.model, "adamw", False, args.seed),
                  "muon": build(args.model, "muon", False, args.seed),
                  "muon-bf16": build(args.model, "muon", True, args.seed)}
    model0 = candidates["adamw"][0]
    x = torch.randn(args.batch, *model0.pretrained_cfg["input_size"])
    y = torch.randint(0, model0.num_classes, (args.batch,))
    for m, o in candidates.values():
        for _ in range(args.warmup):
            one_step(m, o, x, y)
    names = list(candidates)
    times: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for i in range(len(names)):
            n = names[(r + i) % len(names)]
            times[n].append(one_step(*candidates[n], x, y))
    med = {n: [statistics.median(t[k] for t in ts) for k in range(3)] for n, ts in times.items()}
    out = dict(torch=torch.__version__, model=args.model, batch=args.batch,
               threads=args.threads, rounds=args.rounds, results={})
    for n, (wall, cpu, opt_s) in med.items():
        out["results"][n] = dict(
            wall_s_per_step=round(wall, 4), cpu_s_per_step=round(cpu, 4),
            optimizer_step_s=round(opt_s, 4),
            wall_vs_adamw=round(wall / med["adamw"][0], 3),
            cpu_vs_adamw=round(cpu / med["adamw"][1], 3))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
