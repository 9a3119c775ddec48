"""Which way of mixing tokens is fastest on a device: the op alone, then in whole models.

A token-mixing linear map multiplies ``[B, S, C]`` from the left along S. Three ways:

bmm        ``hamixer.ops.apply_linear``: one batched GEMM with the weight broadcast over the
           batch (stride 0), the bias and the residual added by the GEMM (``baddbmm``)
transpose  timm's way: transpose to ``[B, C, S]``, ``F.linear``, transpose back (the result
           is a strided view; the next op reads it through its strides or copies it)
matmul     ``torch.matmul(weight, x)``, which folds the batch into one GEMM through copies

Part one times the token MLP (fc1, GELU, fc2 + residual) forward and backward, each way, at
Mixer-S/16 (batch 128, 196 tokens, 512 channels, 256 hidden); part two times whole training
steps of timm's ``MlpMixer`` and our models with ``hamixer.models.mlp`` using each way,
interleaved (``hamixer.experiments.bench.measure_group``: timm sets the ratios).

    PYTHONPATH=src python benchmarks/token_mixing.py --out /tmp/token_mixing.json
    PYTHONPATH=src python benchmarks/token_mixing.py --device cpu --tiny    # any CPU, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import hamixer  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch
import torch.nn.functional as F
from torch import Tensor

from hamixer import ops
from hamixer.experiments import bench
from hamixer.models import mlp

Linear = Callable[..., Tensor]


def transpose_linear(x: Tensor, weight: Tensor, bias: Tensor | None, axis: int,
                     residual: Tensor | None = None) -> Tensor:
    if axis == -1 or x.dim() != 3:
        return ops.apply_linear(x, weight, bias, axis, residual)
    y = F.linear(x.transpose(1, 2), weight, bias).transpose(1, 2)
    return y if residual is None else residual + y


def matmul_linear(x: Tensor, weight: Tensor, bias: Tensor | None, axis: int,
                  residual: Tensor | None = None) -> Tensor:
    if axis == -1 or x.dim() != 3:
        return ops.apply_linear(x, weight, bias, axis, residual)
    y = torch.matmul(weight, x)
    y = y if bias is None else y + bias.unsqueeze(-1)
    return y if residual is None else residual + y


WAYS: dict[str, Linear] = {"bmm": ops.apply_linear, "transpose": transpose_linear,
                           "matmul": matmul_linear}


def time_op(way: Linear, shape: tuple[int, int, int, int], dtype: str, device: torch.device,
            repeats: int) -> float:
    """Median seconds of the token MLP forward + backward, on three rotating input sets."""
    b, s, c, h = shape
    gen = torch.Generator(device="cpu").manual_seed(0)
    w1 = (torch.randn(h, s, generator=gen) / s**0.5).to(device).requires_grad_()
    w2 = (torch.randn(s, h, generator=gen) / h**0.5).to(device).requires_grad_()
    b1 = torch.zeros(h, device=device, requires_grad=True)
    b2 = torch.zeros(s, device=device, requires_grad=True)
    xs = [torch.randn(b, s, c, device=device, requires_grad=True) for _ in range(3)]

    def step(x: Tensor) -> None:
        with bench._autocast(device, dtype):
            y = way(F.gelu(way(x, w1, b1, -2)), w2, b2, -2, residual=x)
        y.float().square().mean().backward()

    for x in xs:
        step(x)
    times = []
    for i in range(repeats):
        bench._sync(device)
        t0 = time.perf_counter()
        step(xs[i % 3])
        bench._sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextlib.contextmanager
def models_use(way: Linear) -> Iterator[None]:
    """``hamixer.models.mlp`` (every Mixer MLP) applies its weights through ``way``."""
    before = mlp.apply_linear
    mlp.apply_linear = way
    try:
        yield
    finally:
        mlp.apply_linear = before


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="8 px models, batch 8, 2 rounds")
    p.add_argument("--models", default="timm,paramixer,symmixer,vanillamixer")
    p.add_argument("--dtypes", default="bf16,fp32")
    p.add_argument("--out", default=None, help="JSON of every measurement")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    shape, batch, rounds = ("8", 8, 2) if args.tiny else ("224", 128, 10)
    geo = bench.mixer_geometry(shape)
    op_shape = (batch, geo["S"], geo["C"], geo["H_tok"])
    models = args.models.split(",")
    results: dict = {"op_shape": op_shape, "ops": [], "models": []}
    for dtype in args.dtypes.split(","):
        for name, way in WAYS.items():
            s = time_op(way, op_shape, dtype, device, 5 if args.tiny else 30)
            results["ops"].append(dict(dtype=dtype, way=name, seconds=s))
            print(f"op  {dtype:>4} {name:>9}: {1e3 * s:8.3f} ms", flush=True)
    limit = bench.matmul_limit(bench.gemm_shapes(geo, batch), device, "bf16")
    for way_name in ("bmm", "transpose"):
        with models_use(WAYS[way_name]):
            rows, _ = bench.measure_group(models, shape, batch, "bf16", "train", device, limit,
                                          rounds, 3)
        for r in rows:
            results["models"].append(dict(way=way_name, model=r["model"],
                                          img_per_s=r["img_per_s"],
                                          ratio_vs_timm=r["ratio_vs_timm"]))
            print(f"model bf16 train {way_name:>9} {r['model']:>13}: {r['img_per_s']:9.1f} "
                  f"img/s  ×timm {r['ratio_vs_timm']:.3f}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
