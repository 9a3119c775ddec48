"""Where a training step's time goes: the same step with the GELUs and/or the block norms
replaced by identities, interleaved, in process CPU time. The differences are what the
activations and the norms cost in context (not a model anyone should train).

    PYTHONPATH=src python benchmarks/breakdown.py --model mlpmixer_t4_28 --batch 128
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

try:
    import hamixer  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch
import torch.nn.functional as F
from torch import nn

from hamixer.models import create_model

VARIANTS = ("full", "no_gelu", "no_norm", "no_gelu_no_norm")


def build(name: str, variant: str) -> nn.Module:
    model = create_model(name)
    for blk in model.blocks:
        if "gelu" in variant:
            blk.token_mlp.act = nn.Identity()
            blk.channel_mlp.act = nn.Identity()
        if "norm" in variant:
            for attr in ("norm", "norm1", "norm2"):
                if hasattr(blk, attr):
                    setattr(blk, attr, nn.Identity())
    return model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlpmixer_t4_28")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {v: build(args.model, v) for v in VARIANTS}
    opts = {v: torch.optim.AdamW(m.parameters(), lr=1e-3) for v, m in models.items()}
    c, h, w = models["full"].pretrained_cfg["input_size"]
    x = torch.randn(args.batch, c, h, w)
    y = torch.randint(0, models["full"].num_classes, (args.batch,))

    def step(v: str) -> None:
        opts[v].zero_grad(set_to_none=True)
        F.cross_entropy(models[v](x), y).backward()
        opts[v].step()

    for v in VARIANTS:
        step(v)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for v in VARIANTS:
            t0 = time.process_time()
            step(v)
            times[v].append(time.process_time() - t0)
    full = statistics.median(times["full"])
    print(f"{args.model}, batch {args.batch}, {args.threads} thread(s), "
          f"median of {args.rounds} (process CPU time)")
    for v in VARIANTS:
        t = statistics.median(times[v])
        print(f"  {v:16s} {1e3 * t:8.1f} ms/step   {100 * (full - t) / full:5.1f}% of full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
