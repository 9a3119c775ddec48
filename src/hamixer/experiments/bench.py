"""Speed benchmark of the Mixer family against timm's ``MlpMixer`` and against the machine.

One process times every candidate at one shape interleaved (A B C … B C A … C A B …),
after a warm-up, and reports the median of the rounds, so a machine whose load drifts slows every
candidate alike and the ratios stay meaningful. For each candidate it reports

* training steps (forward + cross-entropy + backward + AdamW) and inference forwards per
  second, by wall clock and by process CPU time (the second is robust to other processes
  sharing the cores);
* the ratio to timm's ``MlpMixer`` at the same shape;
* the peak memory of one step above what was held before it (activations, gradients and
  temporaries);
* analytic FLOPs per image (:func:`mixer_flops`), the achieved FLOP/s, and that divided by
  the best ``torch.mm`` FLOP/s measured in the same process at the model's own GEMM shapes:
  the fraction of the attainable limit.

FLOPs are counted analytically, 2 per multiply-accumulate of every matrix product:

    per image, forward = 2 · [ S·(k·p²)·C                  patch embedding
                               + L·(2·S·C·H_tok              token MLP: fc1 and fc2
                                    + 2·S·C·H_ch)            channel MLP: fc1 and fc2
                               + C·classes ]                 head

with S tokens, C channels, L blocks, k input channels, p patch side and the hidden sizes
H_tok = 0.5·C and H_ch = 4·C. Training counts 3× the forward (the backward multiplies by
each weight twice: once for the input gradient and once for the weight gradient). Norms,
GELU, biases and the optimizer are left out: they are memory-bound and their share of the
FLOPs is below 1 %. Tied MLPs (symmixer) do the same products as free ones.

Any other model (timm's ViT, a registered Transformer) is counted instead: its forward on one
image under ``FlopCounterMode``, with attention as plain matrix products (QKᵀ and the weighted
sum of V), again 3× for training.

A step may also run compiled (``torch.compile`` with a backend and a mode such as
``reduce-overhead``) or be recorded once as a CUDA graph and replayed (``cuda_graph``: the
whole training step, forward, backward and AdamW, in one launch); :func:`kernel_breakdown`
profiles one step and names the kernels that take its time.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..device import select_device
from ..errors import ConfigError

#: Benchmark shapes: our size suffix and batch size.
SHAPES: dict[str, dict[str, Any]] = {
    "224": dict(size="s16_224", batch=8),
    "28": dict(size="t4_28", batch=128),
    "8": dict(size="n2_8", batch=64),  # a smoke test: seconds for every path on a CPU
}
#: What ``--shape all`` measures.
MAIN_SHAPES = ("224", "28")
#: Candidates; "timm" is timm's own MlpMixer, the others are our registered families.
CANDIDATES = ("timm", "mlpmixer", "vanillamixer", "paramixer", "symmixer", "asymmixer")
DTYPES = ("fp32", "bf16")
MODES = ("train", "infer")


# ----------------------------------------------------------------------------- models
def size_of(shape: str) -> str:
    """The registry size suffix of ``shape``: a key of :data:`SHAPES` or a size itself
    (``b16_224``, ``m4_28``: any size of ``hamixer.models.registry.SIZES``)."""
    from ..models.registry import SIZES

    if shape in SHAPES:
        return SHAPES[shape]["size"]
    if shape in SIZES:
        return shape
    raise ConfigError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)} or a size of "
                      f"{', '.join(SIZES)}")


def build_candidate(candidate: str, shape: str) -> nn.Module:
    """The model ``candidate`` at ``shape``; timm's MlpMixer gets our size's arguments. A
    candidate outside :data:`CANDIDATES` is a full model name (``vit_base_patch16_224``, a
    registered Transformer), built as named."""
    from ..models import create_model
    from ..models.registry import MODEL_CONFIGS

    if candidate not in CANDIDATES:
        return create_model(candidate)
    name = f"{'mlpmixer' if candidate == 'timm' else candidate}_{size_of(shape)}"
    if candidate != "timm":
        return create_model(name)
    from timm.models.mlp_mixer import MlpMixer

    cfg = MODEL_CONFIGS[name]
    keys = ("img_size", "in_chans", "patch_size", "num_blocks", "embed_dim", "num_classes",
            "mlp_ratio")
    model = MlpMixer(**{k: cfg[k] for k in keys if k in cfg})
    model.pretrained_cfg = dict(input_size=(cfg.get("in_chans", 3), cfg["img_size"],
                                            cfg["img_size"]),
                                num_classes=cfg.get("num_classes", 1000))
    return model


def mixer_geometry(shape: str) -> dict[str, int]:
    """S, C, L, k, p, H_tok, H_ch and classes of the models at ``shape``."""
    from ..models.blocks import hidden_sizes
    from ..models.registry import MODEL_CONFIGS

    cfg = MODEL_CONFIGS[f"mlpmixer_{size_of(shape)}"]
    h_tok, h_ch = hidden_sizes(cfg["embed_dim"], cfg.get("mlp_ratio", (0.5, 4.0)))
    return dict(S=(cfg["img_size"] // cfg["patch_size"]) ** 2, C=cfg["embed_dim"],
                L=cfg["num_blocks"], k=cfg.get("in_chans", 3), p=cfg["patch_size"],
                H_tok=h_tok, H_ch=h_ch, classes=cfg.get("num_classes", 1000))


def mixer_flops(g: dict[str, int]) -> int:
    """Forward FLOPs per image of the matrix products (see the module docstring)."""
    macs = (g["S"] * g["k"] * g["p"] ** 2 * g["C"]
            + g["L"] * (2 * g["S"] * g["C"] * g["H_tok"] + 2 * g["S"] * g["C"] * g["H_ch"])
            + g["C"] * g["classes"])
    return 2 * macs


def counted_flops(model: nn.Module) -> int:
    """Forward FLOPs of one image of any model, counted by ``FlopCounterMode`` (matrix
    products and convolutions). Attention runs as the math kernel while counting: the fused
    kernels of some devices (a CPU's flash attention) are not counted, their matrix products
    are."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from ..models.summary import count_macs

    with sdpa_kernel([SDPBackend.MATH]):
        return 2 * count_macs(model, tuple(model.pretrained_cfg["input_size"]))


def forward_flops(candidate: str, shape: str, model: nn.Module) -> int:
    """Forward FLOPs per image: analytic for the Mixers, counted for any other model."""
    if candidate in CANDIDATES:
        return mixer_flops(mixer_geometry(shape))
    return counted_flops(model)


def gemm_shapes(g: dict[str, int], batch: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every distinct matrix product of a training step, batch folded in."""
    bs, bc = batch * g["S"], batch * g["C"]
    fwd = [(bs, g["k"] * g["p"] ** 2, g["C"]),  # patch embedding
           (bc, g["S"], g["H_tok"]), (bc, g["H_tok"], g["S"]),  # token MLP
           (bs, g["C"], g["H_ch"]), (bs, g["H_ch"], g["C"])]  # channel MLP
    shapes = []
    for m, k, n in fwd:  # forward, input gradient, weight gradient
        shapes += [(m, k, n), (m, n, k), (k, m, n)]
    return sorted(set(shapes))


# ----------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def matmul_limit(shapes: list[tuple[int, int, int]], device: torch.device, dtype: str,
                 repeats: int = 5) -> dict[str, Any]:
    """Best ``torch.mm`` FLOP/s over ``shapes`` (median of ``repeats`` per shape)."""
    tdtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    best, best_cpu, best_shape, per_shape = 0.0, 0.0, None, {}
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=tdtype)
        b = torch.randn(k, n, device=device, dtype=tdtype)
        torch.mm(a, b)
        wall, cpu = [], []
        for _ in range(repeats):
            _sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        flops = 2 * m * k * n / statistics.median(wall)
        per_shape[f"{m}x{k}x{n}"] = flops
        if flops > best:
            best, best_shape = flops, (m, k, n)
        if device.type == "cpu":
            best_cpu = max(best_cpu, 2 * m * k * n / max(statistics.median(cpu), 1e-9))
    return dict(flops_per_s=best, cpu_flops_per_s=best_cpu or None, shape=best_shape,
                per_shape=per_shape, dtype=dtype)


@dataclass
class Runner:
    """One candidate's model, optimizer, data and step function at one shape."""

    name: str
    model: nn.Module
    step: Callable[[], None]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def make_runner(candidate: str, shape: str, mode: str, dtype: str,
                device: torch.device, seed: int = 0, batch: int | None = None,
                compile_backend: str | None = None, compile_mode: str | None = None,
                cuda_graph: bool = False) -> Runner:
    """A runner at ``batch`` images (default: the shape's).

    With ``compile_backend`` the steps call ``torch.compile(model, mode=compile_mode)``,
    which compiles on the first step (do it in the warm-up). With ``cuda_graph`` the whole
    step (training: zero_grad, forward, loss, backward and a capturable AdamW) is recorded
    once as a CUDA graph after three warm-up steps, and each step replays it on the same
    input tensors; on a CPU, which has no graphs, the step runs as recorded (the dry run's
    code path).
    """
    torch.manual_seed(seed)
    model = build_candidate(candidate, shape).to(device)
    batch = batch or SHAPES.get(shape, {}).get("batch") or 1
    # the optimizer and the counts hold the plain module; only the calls go through the wrapper
    forward = (torch.compile(model, backend=compile_backend, mode=compile_mode)
               if compile_backend else model)
    c, h, w = model.pretrained_cfg["input_size"]
    x = torch.randn(batch, c, h, w, device=device)
    # the head's width (a timm model keeps its pretrained config's 1000 classes there)
    classes = getattr(model, "num_classes", None) or model.pretrained_cfg["num_classes"]
    y = torch.randint(0, classes, (batch,), device=device)
    graphed = cuda_graph and device.type == "cuda"
    # a graph replays the casts it recorded; autocast's cache of casts lives outside it
    cast = (torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
            if graphed and dtype == "bf16" else None)
    if mode == "infer":
        model.eval()

        @torch.no_grad()
        def step() -> None:
            with cast or _autocast(device, dtype):
                forward(x)
    else:
        model.train()
        # a captured step keeps AdamW's step count on the device (capturable)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, capturable=graphed)
        aux = getattr(model, "aux_loss", None)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with cast or _autocast(device, dtype):
                loss = F.cross_entropy(forward(x), y)
                if aux is not None:
                    loss = loss + aux()
            loss.backward()
            opt.step()
    return Runner(candidate, model, captured(step, device) if cuda_graph else step)


def captured(step: Callable[[], None], device: torch.device,
             warmup: int = 3) -> Callable[[], None]:
    """``step`` recorded as one CUDA graph; the returned function replays it. The warm-up
    runs on a side stream, as capture requires (lazy initialisations, cuBLAS workspaces,
    the optimizer's state), and the graph's memory is its own pool, held between replays.
    Off CUDA there is nothing to record: ``step`` itself."""
    if device.type != "cuda":
        return step
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def peak_step_memory(runner: Runner, device: torch.device) -> int:
    """Peak bytes allocated during one step above those held when it started."""
    if device.type == "cuda":
        _sync(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        runner.step()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - start
    # CPU: replay the profiler's allocation records (each op's own allocations and frees,
    # in the order the ops started) and keep the running maximum.
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        runner.step()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def interleave(runners: list[Runner], rounds: int, warmup: int, device: torch.device) -> None:
    """Time ``rounds`` steps of every runner, interleaved, after ``warmup`` steps each.

    Round ``r`` starts at runner ``r mod n``, so no candidate always follows the same one
    (whose cache footprint it would inherit).
    """
    for runner in runners:
        for _ in range(warmup):
            runner.step()
    n = len(runners)
    for r in range(rounds):
        for runner in runners[r % n:] + runners[:r % n]:
            _sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            runner.step()
            _sync(device)
            runner.wall.append(time.perf_counter() - t0)
            runner.cpu.append(time.process_time() - c0)


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_group(candidates: Sequence[str], shape: str, batch: int, dtype: str, mode: str,
                  device: torch.device, limit: dict[str, Any] | None, rounds: int = 5,
                  warmup: int = 2, compile_backend: str | None = None,
                  deadline: float | None = None, compile_mode: str | None = None,
                  cuda_graph: bool = False, profile_top: int = 0,
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """Time ``candidates`` at one (shape, batch, dtype, mode), interleaved: (rows, skipped).

    Each candidate is built and warmed up in turn (the warm-up is where ``torch.compile``
    compiles); one whose turn comes after ``deadline`` (a ``time.monotonic()`` value) is
    skipped and named in ``skipped``. ``limit`` is :func:`matmul_limit` at these GEMM shapes
    (None for models whose GEMMs are not the Mixer's: no fraction of it then). Ratios are to
    ``timm`` if it is a candidate, else to the first. ``profile_top`` > 0 adds each row's
    :func:`kernel_breakdown` with that many kernels.
    """
    if compile_backend:
        # Dynamo keeps compiled code per function and stops compiling (silently running eager)
        # after a few entries; the models of one group share HamMixer.forward, so start clean.
        torch._dynamo.reset()
    runners, skipped, flops = [], [], {}
    for candidate in candidates:
        if deadline is not None and time.monotonic() > deadline:
            skipped.append(candidate)
            continue
        runner = make_runner(candidate, shape, mode, dtype, device, batch=batch,
                             compile_backend=compile_backend, compile_mode=compile_mode,
                             cuda_graph=cuda_graph)
        flops[candidate] = (forward_flops(candidate, shape, runner.model)
                            * (3 if mode == "train" else 1))
        for _ in range(warmup):
            runner.step()
        runners.append(runner)
    if not runners:
        return [], skipped
    interleave(runners, rounds, 0, device)
    base = next((r for r in runners if r.name == "timm"), runners[0])
    rows = []
    for r in runners:
        wall, cpu = statistics.median(r.wall), statistics.median(r.cpu)
        achieved = flops[r.name] * batch / wall
        row = dict(
            shape=shape, batch=batch, dtype=dtype, mode=mode, model=r.name, reference=base.name,
            compile=compile_backend, compile_mode=compile_mode, cuda_graph=cuda_graph,
            params=sum(p.numel() for p in r.model.parameters()),
            img_per_s=batch / wall, cpu_img_per_s=batch / cpu,
            ratio_vs_timm=statistics.median(base.wall) / wall,
            cpu_ratio_vs_timm=statistics.median(base.cpu) / cpu,
            step_s=wall, step_s_all=r.wall, cpu_s_all=r.cpu,
            peak_mem_mb=peak_step_memory(r, device) / 2**20,
            gflops_per_img=flops[r.name] / 1e9, achieved_gflops=achieved / 1e9,
            frac_of_mm_limit=achieved / limit["flops_per_s"] if limit else None,
            cpu_frac_of_mm_limit=(flops[r.name] * batch / cpu / limit["cpu_flops_per_s"]
                                  if limit and limit["cpu_flops_per_s"] else None))
        if profile_top:
            row["kernels"] = kernel_breakdown(r.step, device, profile_top)
        rows.append(row)
    return rows, skipped


def kernel_breakdown(step: Callable[[], None], device: torch.device,
                     top: int = 10) -> dict[str, Any]:
    """Where one step's time goes: ``torch.profiler`` over one call of ``step``, the ``top``
    entries by their own time. On CUDA these are the device's kernels (GEMMs, elementwise,
    reductions, copies) by GPU time; on a CPU, the operators by CPU time. Each entry: name,
    microseconds, calls and share of the total of all entries."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    _sync(device)
    with profile(activities=activities) as prof:
        step()
        _sync(device)
    if cuda:  # the kernels themselves: an operator's device time is that of its kernels
        events = [(e, e.self_device_time_total) for e in prof.key_averages()
                  if e.device_type == DeviceType.CUDA]
    else:
        events = [(e, e.self_cpu_time_total) for e in prof.key_averages()]
    events = sorted(((e, t) for e, t in events if t > 0), key=lambda et: -et[1])
    total = sum(t for _, t in events)
    return dict(by="cuda time" if cuda else "cpu time", total_us=total, kernels=len(events),
                top=[dict(name=e.key[:200], us=t, calls=e.count, share=t / total)
                     for e, t in events[:top]])


def bench_meta(device: torch.device, threads: int, rounds: int, warmup: int) -> dict[str, Any]:
    """What a reader needs to judge the numbers: versions, device, threads, load."""
    return dict(torch=torch.__version__, device=str(device), threads=threads, rounds=rounds,
                warmup=warmup, cpu=platform.processor() or platform.machine(),
                cuda=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                load_avg=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)


# ------------------------------------------------------------------------------- main

def run_benchmark(shapes: Sequence[str], dtypes: Sequence[str],
                  modes: Sequence[str] = MODES, candidates: Sequence[str] = CANDIDATES,
                  rounds: int = 5, warmup: int = 2,
                  threads: int | None = None, device: str = "auto",
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every (shape, dtype, mode) and return a JSON-ready dict of the results."""
    for s in shapes:
        if s not in SHAPES:
            raise ConfigError(f"unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    for d in dtypes:
        if d not in DTYPES:
            raise ConfigError(f"unknown dtype {d!r}; choose from {', '.join(DTYPES)}")
    for c in candidates:
        if c not in CANDIDATES:
            raise ConfigError(f"unknown candidate {c!r}; choose from {', '.join(CANDIDATES)}")
    if rounds < 1 or warmup < 0:
        raise ConfigError(f"need rounds >= 1 and warmup >= 0, got {rounds} and {warmup}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    threads = threads or os.cpu_count() or 1
    dev = select_device(device)
    log = log or (lambda _msg: None)
    results: dict[str, Any] = dict(meta=bench_meta(dev, threads, rounds, warmup), limits={},
                                   rows=[])
    with pinned_threads(threads):
        for shape in shapes:
            batch = SHAPES[shape]["batch"]
            for dtype in dtypes:
                limit = matmul_limit(gemm_shapes(mixer_geometry(shape), batch), dev, dtype)
                results["limits"][f"{shape}/{dtype}"] = limit
                for mode in modes:
                    log(f"[bench] shape {shape} batch {batch} {dtype} {mode} ...")
                    rows, _ = measure_group(candidates, shape, batch, dtype, mode, dev, limit,
                                            rounds, warmup)
                    results["rows"] += rows
    return results


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table of the rows, one line per candidate."""
    lines = [
        "| shape | dtype | mode | model | img/s | ×timm | CPU img/s | ×timm (CPU) "
        "| peak MB | GFLOP/img | GFLOP/s | of mm limit | of mm limit (CPU) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['shape']}/b{r['batch']} | {r['dtype']} | {r['mode']} | {r['model']} "
            f"| {r['img_per_s']:.1f} | {r['ratio_vs_timm']:.2f} | {r['cpu_img_per_s']:.1f} "
            f"| {r['cpu_ratio_vs_timm']:.2f} | {r['peak_mem_mb']:.0f} | {r['gflops_per_img']:.3f} "
            f"| {r['achieved_gflops']:.1f} | {100 * r['frac_of_mm_limit']:.0f}% "
            f"| {_percent(r['cpu_frac_of_mm_limit'])} |")
    for key, lim in results["limits"].items():
        m, k, n = lim["shape"]
        cpu = (f", {lim['cpu_flops_per_s'] / 1e9:.1f} GFLOP/s of CPU time"
               if lim["cpu_flops_per_s"] else "")
        lines.append(f"\nmatmul limit {key}: {lim['flops_per_s'] / 1e9:.1f} GFLOP/s wall{cpu} "
                     f"(best torch.mm, at {m}×{k} @ {k}×{n})")
    meta = results["meta"]
    lines.append(f"\ntorch {meta['torch']}, device {meta['device']}, threads {meta['threads']}, "
                 f"rounds {meta['rounds']} (median), load average {meta['load_avg']}")
    return "\n".join(lines)


def _percent(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def to_json(results: dict[str, Any]) -> str:
    return json.dumps(results, indent=2)


__all__ = ["SHAPES", "MAIN_SHAPES", "CANDIDATES", "mixer_flops", "mixer_geometry",
           "gemm_shapes", "matmul_limit", "measure_group", "bench_meta", "run_benchmark",
           "format_table", "to_json"]
