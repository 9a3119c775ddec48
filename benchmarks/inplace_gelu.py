"""Inference step with the MLPs' GELU in place (``InplaceGELU``) against ``nn.GELU``.

Both variants run in the same process, interleaved, and the best of several repeats is
kept; the result is the ratio (how much faster the in-place activation makes a step).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/inplace_gelu.py
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from hamixer.models import create_model
from hamixer.models.mlp import InplaceGELU, MixingMLP

CASES = (("paramixer_m4_28", (256, 1, 28, 28)), ("paramixer_s16_224", (8, 3, 224, 224)))


def _use(model: nn.Module, act: type[nn.Module]) -> None:
    for mlp in model.modules():
        if isinstance(mlp, MixingMLP):
            mlp.act = act()


def _step_seconds(model: nn.Module, x: torch.Tensor, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        model(x)
    return (time.perf_counter() - t0) / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--calls", type=int, default=2)
    args = p.parse_args()
    for name, shape in CASES:
        model, x = create_model(name).eval(), torch.randn(*shape)
        best = {"nn.GELU": float("inf"), "InplaceGELU": float("inf")}
        with torch.no_grad():
            for _ in range(args.repeats):
                for label, act in (("nn.GELU", nn.GELU), ("InplaceGELU", InplaceGELU)):
                    _use(model, act)
                    model(x)  # warm-up of this variant
                    best[label] = min(best[label], _step_seconds(model, x, args.calls))
        gain = best["nn.GELU"] / best["InplaceGELU"] - 1
        print(f"{name} batch {shape[0]}: nn.GELU {best['nn.GELU'] * 1e3:.1f} ms, "
              f"InplaceGELU {best['InplaceGELU'] * 1e3:.1f} ms per inference step "
              f"({100 * gain:+.1f} %)")


if __name__ == "__main__":
    main()
