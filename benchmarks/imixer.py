"""iMixer vs MLP-Mixer: training-step throughput and fixed-point residuals (CPU).

    PYTHONPATH=src python benchmarks/imixer.py --threads 2 --batch 128 --repeats 5

Throughput: forward + backward of a cross-entropy loss on random 28×28 inputs, the two
models timed alternately (interleaved, so machine load hits both alike), median of
``--repeats`` rounds of ``--steps`` steps each after one warm-up round.

Residuals: ``‖y_k − u − F(y_k)‖ / ‖u‖`` for k = 0 … ``--iters`` in every block of a freshly
initialised (untrained) ``imixer_t4_28``, on the block inputs of a random batch, together
with the certified rate ``Lip(F) ≤ σ_a·σ_b·max|GELU'|²``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import hamixer


def time_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per forward + backward step."""
    start = time.perf_counter()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    return (time.perf_counter() - start) / steps


def throughput(names: list[str], batch: int, steps: int, repeats: int) -> dict[str, dict]:
    models = {n: hamixer.create_model(n).train() for n in names}
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    for m in models.values():  # warm-up
        time_steps(m, x, y, 1)
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(repeats):
        for n, m in models.items():
            times[n].append(time_steps(m, x, y, steps))
    out = {}
    for n, ts in times.items():
        med = statistics.median(ts)
        out[n] = dict(median_s_per_step=med, images_per_s=batch / med,
                      params=sum(p.numel() for p in models[n].parameters()))
    return out


@torch.no_grad()
def residuals(name: str, batch: int, iters: int) -> list[dict]:
    model = hamixer.create_model(name).eval()
    h = model.stem(torch.randn(batch, 1, 28, 28))
    rows = []
    for i, blk in enumerate(model.blocks):
        mlp = blk.token_mlp
        u = mlp.hidden(blk.norm1(h))
        res = mlp.fixed_point_residuals(u, n_iter=iters)
        rows.append(dict(block=i, lipschitz_bound=mlp.f.lipschitz_bound(),
                         relative_residuals=(res / u.norm()).tolist()))
        h = blk(h)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--iters", type=int, default=8, help="fixed-point iterations to trace")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    result = dict(
        torch=torch.__version__, threads=args.threads, batch=args.batch,
        throughput=throughput(["imixer_t4_28", "mlpmixer_t4_28"], args.batch, args.steps,
                              args.repeats),
        residuals=residuals("imixer_t4_28", args.batch, args.iters),
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
