"""The GPU check: what a CPU cannot show, in one run sized for at most 15 minutes on one H200.

    bash benchmarks/gpu_check.sh --out benchmarks/results/gpu         # on a CUDA machine
    bash benchmarks/gpu_check.sh --dry-run --out /tmp/gpu-check       # any CPU, tiny sizes

Sections, each independent and time-boxed: a failing or overrunning section records its
error in the JSON and the run goes on with the next.

env       versions, device, TF32 settings, and the two peaks that MFU divides by: the
          datasheet's dense bf16 figure for the device (else --peak-tflops, else the measured
          one) and the fastest bf16 ``torch.mm`` measured here over large square products
tests     ``pytest -m cuda tests/test_cuda.py`` in a subprocess
bench224  training-step and inference img/s of timm's ``MlpMixer`` and our families at
          Mixer-S/16, 224 px, batch 128, interleaved in one process (``hamixer.bench``), for
          fp32, bf16 autocast and bf16 autocast + ``torch.compile``: ratio to timm (same
          variant), MFU = model FLOP/s / bf16 dense peak, fraction of the measured matmul limit
bench28   the same at 28 px (``*_t4_28``), batch 512, and every eager row again at twice the
          batch: the share of a step that does not grow with the batch (launch-bound when most
          of it does not)
scale224  the bf16 training step at the paper's sizes, S/16, B/16 and L/16 at 224 px, batches
          128 and 256, eager and compiled: timm's ``MlpMixer`` and our families, and the
          Transformer family (``*former_*``, when registered) beside timm's ViT of the size
graphs28  the 28 px training step (``*_m4_28``, the Fashion-MNIST recipe's batch) eager, as one
          CUDA graph (the whole step recorded and replayed), compiled, and compiled with
          ``mode="reduce-overhead"`` (CUDA graphs of the compiled forward and backward); each
          row's gain over its own eager step
train     one epoch of ``hamixer train`` on CUDA and on the CPU with the same seed
          (subprocesses of the real CLI), on --data-dir (Fashion-MNIST) or on MNIST-format IDX
          files generated from the built-in digits
torchrun  the CUDA run again under ``torchrun --nproc_per_node=1``: a process group of one, so
          DistributedDataParallel runs over NCCL

``--dry-run`` runs every section on the CPU at tiny sizes (the 8 px models, batches of 4 and 8,
2 rounds, ``torch.compile`` with Dynamo's ``eager`` backend, torchrun over gloo): every code path
except the CUDA-only calls, so the script cannot rot (``tests/test_gpu_check.py`` runs it).

Every bench row has img/s, the ratio to the reference (timm's model) in the same process,
MFU against both peaks, and the top 10 kernels of one profiled step (``torch.profiler``, by
CUDA time; by CPU time in the dry run).

Writes OUT/gpu_check.json (rewritten after every section: a killed run keeps what it
measured), OUT/gpu_check.md (the tables) and OUT/logs/ (every subprocess's output).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

try:
    import hamixer  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hamixer.experiments import bench
from hamixer.io import write_json, write_text
from hamixer.provenance import versions

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

SECTIONS = ("env", "tests", "bench224", "bench28", "scale224", "graphs28", "train", "torchrun")
#: dtype, then how the step runs: eager; ``+compile`` (torch.compile, default mode);
#: ``+reduce-overhead`` (torch.compile's CUDA-graph mode); ``+cudagraph`` (the whole eager
#: step recorded once as a CUDA graph and replayed).
STEP_KINDS = {"": {}, "compile": {"compile": True},
              "reduce-overhead": {"compile": True, "compile_mode": "reduce-overhead"},
              "cudagraph": {"cuda_graph": True}}
VARIANTS = tuple(f"{d}+{k}" if k else d for k in STEP_KINDS for d in ("fp32", "bf16"))
DEFAULT_VARIANTS = ("fp32", "bf16", "bf16+compile")
#: timm's MlpMixer first: every row's ratio is to it.
DEFAULT_MODELS = ("timm", "vanillamixer", "paramixer", "symmixer", "asymmixer")
#: The paper's sizes and the small models: timm's reference and the parallel families (the
#: ones the targets are for), so that L/16 compiled fits its time box.
SCALE_MODELS = ("timm", "paramixer", "symmixer")
#: Where the Transformer family is looked for, and timm's ViT of each size it is compared with
#: (ViT-S/B/L at 224 px; the presets of models/timm_models.py elsewhere, ``vit_{size}``).
FORMER_PATTERN = "*former*"
VIT_REFERENCE = {"s16_224": "vit_small_patch16_224", "b16_224": "vit_base_patch16_224",
                 "l16_224": "vit_large_patch16_224"}
#: Dense bf16 tensor-core peak by device name, FLOP/s. Source: NVIDIA's H200 Tensor Core GPU
#: datasheet (and the H100 SXM one) gives BF16 Tensor Core 1,979 TFLOP/s "with sparsity";
#: dense is half of it, 989.5 TFLOP/s.
BF16_DENSE_PEAK = {"H200": 989.5e12, "H100 80GB HBM3": 989.5e12}
#: Kernels kept per row in the breakdown.
PROFILE_TOP = 10
#: Above this share of a step that does not grow with the batch, the step is launch-bound.
LAUNCH_BOUND_SHARE = 0.5


def log(msg: str) -> None:
    print(f"[gpu_check] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Plan:
    """Sizes and limits of one run: the real one on CUDA, or the dry run on the CPU."""

    dry_run: bool
    device: str
    models: tuple[str, ...]
    variants: tuple[str, ...]
    bench_shapes: dict[str, tuple[str, int]]  # section → (hamixer.bench shape, batch)
    rounds: int
    warmup: int
    compile_backend: str
    compile_reserve_s: float  # no compilation starts later than this before the box ends
    threads: int | None
    peak_matmul_side: int  # side of the square bf16 and fp32 products timed in env
    boxes: dict[str, float]  # section → seconds
    train_model: str
    train_batch: int
    train_limit: int | None
    train_extra: tuple[str, ...] = ()
    # the bf16 torch.mm peak: the fastest of these square products
    mm_peak_sides: tuple[int, ...] = (4096, 8192, 16384)
    # scale224: sizes × batches × variants of the training step
    scale_sizes: tuple[str, ...] = ("s16_224", "b16_224", "l16_224")
    scale_batches: tuple[int, ...] = (128, 256)
    scale_variants: tuple[str, ...] = ("bf16", "bf16+compile")
    scale_models: tuple[str, ...] = SCALE_MODELS
    # graphs28: one size and batch (the Fashion-MNIST recipe's), eager first
    graph_size: str = "m4_28"
    graph_batch: int = 128
    graph_variants: tuple[str, ...] = ("bf16", "bf16+cudagraph", "bf16+compile",
                                       "bf16+reduce-overhead")
    graph_models: tuple[str, ...] = DEFAULT_MODELS


# Boxes sum to 890 s: with start-up, the whole run stays under 15 minutes even if every
# section overruns; typical sections end well inside theirs. The sections of the paper's
# sizes and of the CUDA graphs alone (--sections env,scale224,graphs28) box to 450 s.
REAL = Plan(dry_run=False, device="cuda", models=DEFAULT_MODELS, variants=DEFAULT_VARIANTS,
            bench_shapes={"bench224": ("224", 128), "bench28": ("28", 512)}, rounds=10,
            warmup=3, compile_backend="inductor", compile_reserve_s=30.0, threads=None,
            peak_matmul_side=8192,
            boxes=dict(env=30, tests=100, bench224=130, bench28=90, scale224=300,
                       graphs28=120, train=70, torchrun=50),
            train_model="paramixer_t4_28", train_batch=128, train_limit=10000)
# Two candidates and two variants take every code path that the real run's take: eager,
# autocast and compile (timm sets the ratios).
DRY = Plan(dry_run=True, device="cpu", models=("timm", "paramixer"),
           variants=("fp32", "bf16+compile"),
           bench_shapes={"bench224": ("8", 4), "bench28": ("8", 8)}, rounds=2, warmup=1,
           compile_backend="eager", compile_reserve_s=0.0, threads=1, peak_matmul_side=128,
           boxes=dict(env=30, tests=60, bench224=60, bench28=60, scale224=60, graphs28=60,
                      train=90, torchrun=60),
           train_model="paramixer_t4_28", train_batch=32, train_limit=64,
           train_extra=("--model-kwargs", "num_blocks=1", "embed_dim=16", "--limit-test",
                        "64", "--threads", "1"),
           # two batches of the 8 px size stand in for S/B/L (tests/test_gpu_check.py also
           # runs two sizes, with a Transformer), the ViT preset of that size for ViT-S/B/L
           mm_peak_sides=(64, 128), scale_sizes=("n2_8",), scale_batches=(2, 4),
           scale_models=("timm", "paramixer"), graph_size="n2_8", graph_batch=8,
           graph_models=("timm", "paramixer"))


@dataclass
class Context:
    """What the sections share: the plan, where to write, and what earlier sections found."""

    plan: Plan
    out: Path
    work: Path  # scratch: generated data and training runs (removed at the end)
    data_dir: Path | None
    dataset: str
    peak: float | None = None  # the datasheet's (else --peak-tflops, else measured)
    peak_source: str = ""
    mm_peak: float | None = None  # the fastest bf16 torch.mm measured here
    mm_peak_source: str = ""
    generated: Path | None = None
    device_run: dict[str, Any] | None = None  # the train section's single-process CUDA run

    @property
    def device(self) -> torch.device:
        return torch.device(self.plan.device)


# ---------------------------------------------------------------------------- time boxes
class SectionTimeout(Exception):
    """A section ran past its time box."""


@contextlib.contextmanager
def time_box(seconds: float) -> Iterator[None]:
    """Raise :class:`SectionTimeout` in the main thread after ``seconds`` (SIGALRM)."""

    def expire(signum: int, frame: Any) -> None:
        raise SectionTimeout(f"ran past its time box of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _stop_group(proc: subprocess.Popen) -> None:
    """End the child's whole process group (torchrun's workers too): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def child_env(ctx: Context) -> dict[str, str]:
    """The environment of subprocesses: this checkout's src/ first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    if ctx.plan.threads:
        env["OMP_NUM_THREADS"] = str(ctx.plan.threads)
    return env


def run_command(ctx: Context, name: str, cmd: list[str], deadline: float,
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` from the repository root until ``deadline``, output to OUT/logs/NAME.log."""
    logfile = ctx.out / "logs" / f"{name}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    log(f"  $ {shlex.join(cmd)}")
    t0 = time.monotonic()
    with open(logfile, "w") as handle:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env or child_env(ctx), stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise SectionTimeout(f"{name} ran past the time box; see {logfile}") from None
        except BaseException:  # the section's own time box, or Ctrl-C
            _stop_group(proc)
            raise
    return dict(command=shlex.join(cmd), returncode=code, seconds=time.monotonic() - t0,
                log=str(logfile.relative_to(ctx.out)))


def last_line(path: Path) -> str:
    lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    return lines[-1][-300:] if lines else "(no output)"


# --------------------------------------------------------------------------------- env
def datasheet_peak(name: str) -> float | None:
    return next((v for k, v in BF16_DENSE_PEAK.items() if k in name), None)


def section_env(ctx: Context, result: dict[str, Any], deadline: float,
                peak_tflops: float | None = None) -> None:
    dev = ctx.device
    cuda = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if cuda else platform.processor() or "cpu"
    result.update(versions=versions(), python=sys.executable, device=str(dev), device_name=name,
                  capability=list(torch.cuda.get_device_capability(dev)) if cuda else None,
                  memory_gb=(torch.cuda.get_device_properties(dev).total_memory / 1e9
                             if cuda else None),
                  cuda=torch.version.cuda, cpu_count=os.cpu_count(),
                  tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                  tf32_cudnn=torch.backends.cudnn.allow_tf32,
                  float32_matmul_precision=torch.get_float32_matmul_precision())
    n = ctx.plan.peak_matmul_side
    rates = {dtype: bench.matmul_limit([(n, n, n)], dev, dtype, repeats=10)["flops_per_s"]
             for dtype in ("bf16", "fp32")}
    result.update(matmul_side=n, matmul_flops_per_s=rates)
    sheet = datasheet_peak(name) if cuda else None
    if peak_tflops:
        ctx.peak, ctx.peak_source = peak_tflops * 1e12, "--peak-tflops"
    elif sheet:
        ctx.peak, ctx.peak_source = sheet, "NVIDIA datasheet, dense bf16"
    else:  # no figure for this device: the faster of the two dtypes' products (CPUs without
        # bf16 units emulate it, so fp32 is their real ceiling)
        dtype = max(rates, key=rates.get)
        ctx.peak, ctx.peak_source = rates[dtype], f"measured here: {dtype} torch.mm {n}³"
    result.update(peak_flops_per_s=ctx.peak, peak_source=ctx.peak_source)
    log(f"  {name}: MFU against {ctx.peak / 1e12:.3g} TFLOP/s ({ctx.peak_source}); "
        f"{n}³ matmul: bf16 {rates['bf16'] / 1e12:.3g}, fp32 {rates['fp32'] / 1e12:.3g} "
        "TFLOP/s")
    result["mm_peak"] = measure_mm_peak(ctx)
    result.update(mm_peak_flops_per_s=ctx.mm_peak, mm_peak_source=ctx.mm_peak_source)


def measure_mm_peak(ctx: Context) -> dict[str, Any]:
    """The fastest bf16 ``torch.mm`` of the plan's square sides: the peak that the achieved
    rate of a real kernel mix can be held to (``mfu_mm``), beside the datasheet's."""
    sides = ctx.plan.mm_peak_sides
    limit = bench.matmul_limit([(n, n, n) for n in sides], ctx.device, "bf16", repeats=10)
    ctx.mm_peak = limit["flops_per_s"]
    ctx.mm_peak_source = f"bf16 torch.mm {limit['shape'][0]}³, fastest of {sides}"
    log(f"  bf16 torch.mm peak {ctx.mm_peak / 1e12:.4g} TFLOP/s ({ctx.mm_peak_source})")
    return dict(flops_per_s=ctx.mm_peak, side=limit["shape"][0], per_side=limit["per_shape"])


def ensure_peaks(ctx: Context) -> None:
    """Both MFU peaks, for a run whose sections leave out ``env``."""
    if ctx.mm_peak is None:
        measure_mm_peak(ctx)
    if ctx.peak is None:
        sheet = (datasheet_peak(torch.cuda.get_device_name(ctx.device))
                 if ctx.device.type == "cuda" else None)
        ctx.peak, ctx.peak_source = ((sheet, "NVIDIA datasheet, dense bf16") if sheet else
                                     (ctx.mm_peak, ctx.mm_peak_source))


# ------------------------------------------------------------------------------- tests
def junit_counts(path: Path) -> dict[str, Any]:
    """Passed, failed, errors and skipped of a pytest JUnit XML report, and the failures."""
    counts = dict(passed=0, failed=0, errors=0, skipped=0, failures=[])
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        name = f"{case.get('classname')}::{case.get('name')}"
        if "failure" in kinds or "error" in kinds:
            counts["failed" if "failure" in kinds else "errors"] += 1
            counts["failures"].append(name)
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def section_tests(ctx: Context, result: dict[str, Any], deadline: float) -> None:
    report = ctx.out / "logs" / "cuda_tests.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
           str(ROOT / "tests" / "test_cuda.py"), f"--junitxml={report}"]
    result["run"] = run_command(ctx, "tests", cmd, deadline)
    if not report.is_file():
        raise RuntimeError(f"pytest wrote no report: {last_line(ctx.out / result['run']['log'])}")
    result.update(junit_counts(report))
    total = sum(result[k] for k in ("passed", "failed", "errors", "skipped"))
    if result["failed"] or result["errors"]:
        result["error"] = (f"{result['failed']} failed, {result['errors']} errors: "
                           + ", ".join(result["failures"][:5]))
    elif ctx.device.type == "cuda" and result["skipped"]:
        result["error"] = f"{result['skipped']} of {total} CUDA tests skipped on a CUDA device"
    elif total == 0:
        result["error"] = "no CUDA tests were collected"
    log(f"  {result['passed']} passed, {result['failed']} failed, {result['errors']} errors, "
        f"{result['skipped']} skipped")


# ------------------------------------------------------------------------------- bench
def _variant(variant: str, plan: Plan) -> tuple[str, str | None]:
    """(dtype, compile backend or None) of a variant name such as ``bf16+compile``."""
    dtype, _, extra = variant.partition("+")
    return dtype, (plan.compile_backend if STEP_KINDS[extra].get("compile") else None)


def _step_kwargs(variant: str, plan: Plan) -> dict[str, Any]:
    """``measure_group``'s keywords of how a variant's step runs (compiled, graphed)."""
    kind = STEP_KINDS[variant.partition("+")[2]]
    return dict(compile_backend=plan.compile_backend if kind.get("compile") else None,
                compile_mode=kind.get("compile_mode"), cuda_graph=kind.get("cuda_graph", False))


def _compiles(variant: str) -> bool:
    return bool(STEP_KINDS[variant.partition("+")[2]].get("compile"))


def add_mfu(ctx: Context, row: dict[str, Any], variant: str) -> dict[str, Any]:
    """The row's variant and its MFU against both peaks: ``mfu`` against the datasheet's
    (or its stand-in, named in env), ``mfu_mm`` against the measured bf16 ``torch.mm``."""
    achieved = row["achieved_gflops"] * 1e9
    row.update(variant=variant, mfu=achieved / ctx.peak if ctx.peak else None,
               mfu_mm=achieved / ctx.mm_peak if ctx.mm_peak else None)
    return row


def _limit(ctx: Context, result: dict[str, Any], shape: str, batch: int,
           dtype: str) -> dict[str, Any]:
    """The matmul limit at the model's GEMM shapes, measured once per section and dtype."""
    if dtype not in result["limits"]:
        geo = bench.mixer_geometry(shape)
        result["limits"][dtype] = bench.matmul_limit(bench.gemm_shapes(geo, batch), ctx.device,
                                                     dtype)
    return result["limits"][dtype]


def measure_variant(ctx: Context, result: dict[str, Any], variant: str,
                    deadline: float | None) -> None:
    """Every mode of one variant; rows (with MFU) and skipped candidates go into ``result``."""
    shape, batch = result["shape"], result["batch"]
    dtype, _ = _variant(variant, ctx.plan)
    limit = _limit(ctx, result, shape, batch, dtype)
    for mode in bench.MODES:
        log(f"  {variant} {mode}: {', '.join(ctx.plan.models)} at {shape} px, batch {batch}")
        rows, skipped = bench.measure_group(ctx.plan.models, shape, batch, dtype, mode,
                                            ctx.device, limit, ctx.plan.rounds,
                                            ctx.plan.warmup, deadline=deadline,
                                            profile_top=PROFILE_TOP,
                                            **_step_kwargs(variant, ctx.plan))
        for row in rows:
            add_mfu(ctx, row, variant)
            log(f"    {row['model']:>13}: {row['img_per_s']:9.1f} img/s  "
                f"×timm {row['ratio_vs_timm']:.2f}  MFU {_pct(row['mfu'])}")
        result["rows"] += rows
        result["skipped"] += [dict(variant=variant, mode=mode, model=m) for m in skipped]
        if skipped:
            log(f"    skipped (compile time box): {', '.join(skipped)}")


def launch_probe(ctx: Context, result: dict[str, Any], variants: list[str]) -> None:
    """Each eager row again at twice the batch. With step time t(B) = a + b·B, the share of a
    step that does not grow with the batch is a / t(B) = (2·t(B) − t(2B)) / t(B): kernel
    launches, Python and optimizer overheads. Most of the step there means launch-bound."""
    shape, batch = result["shape"], result["batch"]
    base = {(r["variant"], r["mode"], r["model"]): r for r in result["rows"]}
    probe = []
    for variant in variants:
        dtype, _ = _variant(variant, ctx.plan)
        limit = _limit(ctx, result, shape, batch, dtype)
        for mode in bench.MODES:
            log(f"  launch probe: {variant} {mode} at batch {2 * batch}")
            rows, _ = bench.measure_group(ctx.plan.models, shape, 2 * batch, dtype, mode,
                                          ctx.device, limit, ctx.plan.rounds, ctx.plan.warmup)
            for row in rows:
                t1, t2 = base[(variant, mode, row["model"])]["step_s"], row["step_s"]
                probe.append(dict(variant=variant, mode=mode, model=row["model"], step_s=t1,
                                  step_s_2x=t2, fixed_share=min(1.0, max(0.0, 2 - t2 / t1))))
    result["launch_probe"] = probe
    if probe:
        share = statistics.median(p["fixed_share"] for p in probe)
        bound = share > LAUNCH_BOUND_SHARE
        result.update(fixed_share_median=share, launch_bound=bound)
        result["launch_note"] = (
            f"median {100 * share:.0f}% of a step does not grow with the batch "
            f"({'launch-bound' if bound else 'not launch-bound'}: the threshold is "
            f"{100 * LAUNCH_BOUND_SHARE:.0f}%)")
        log(f"  {result['launch_note']}")


def section_bench(ctx: Context, result: dict[str, Any], deadline: float, section: str) -> None:
    shape, batch = ctx.plan.bench_shapes[section]
    result.update(shape=shape, size=bench.SHAPES[shape]["size"], batch=batch,
                  models=list(ctx.plan.models), compile_backend=ctx.plan.compile_backend,
                  meta=bench.bench_meta(ctx.device, ctx.plan.threads or torch.get_num_threads(),
                                        ctx.plan.rounds, ctx.plan.warmup),
                  rows=[], skipped=[], limits={})
    ensure_peaks(ctx)
    eager = [v for v in ctx.plan.variants if not _compiles(v)]
    compiled = [v for v in ctx.plan.variants if v not in eager]
    try:
        with bench.pinned_threads(ctx.plan.threads or torch.get_num_threads()):
            for variant in eager:
                measure_variant(ctx, result, variant, None)
            if section == "bench28":  # small models: measure whether they are launch-bound
                launch_probe(ctx, result, [v for v in eager if v in bench.DTYPES])
            for variant in compiled:  # compilation is what may not fit: last, with a deadline
                measure_variant(ctx, result, variant, deadline - ctx.plan.compile_reserve_s)
    finally:
        if ctx.device.type == "cuda":  # leave the memory to the training subprocesses
            torch.cuda.empty_cache()


# ------------------------------------------------------- the paper's sizes, CUDA graphs
def transformer_group(size: str) -> tuple[list[str], str | None]:
    """timm's ViT of ``size`` and the registered Transformer family at that size (the ViT
    first: it sets the ratios), or no candidates and the reason why."""
    import hamixer
    from hamixer.models.timm_models import PRESETS

    family = hamixer.list_models(FORMER_PATTERN)
    if not family:
        return [], (f"no Transformer family is registered (hamixer.list_models("
                    f"{FORMER_PATTERN!r}) is empty)")
    at_size = [n for n in family if n.endswith(f"_{size}")]
    if not at_size:
        return [], f"no {FORMER_PATTERN} model at size {size} (registered: {', '.join(family)})"
    vit = VIT_REFERENCE.get(size) or (f"vit_{size}" if f"vit_{size}" in PRESETS else None)
    if vit is None:
        return [], f"no timm ViT reference for size {size}"
    return [vit, *at_size], None


def measure_training_rows(ctx: Context, result: dict[str, Any], candidates: list[str],
                          size: str, batch: int, variant: str, deadline: float | None,
                          limit: dict[str, Any] | None) -> None:
    """One interleaved group of training steps; its rows (MFU, kernels) and the candidates
    the deadline left out go into ``result``."""
    dtype, _ = _variant(variant, ctx.plan)
    log(f"  {variant} train: {', '.join(candidates)} at {size}, batch {batch}")
    rows, skipped = bench.measure_group(candidates, size, batch, dtype, "train", ctx.device,
                                        limit, ctx.plan.rounds, ctx.plan.warmup,
                                        deadline=deadline, profile_top=PROFILE_TOP,
                                        **_step_kwargs(variant, ctx.plan))
    for row in rows:
        add_mfu(ctx, row, variant)
        top = row["kernels"]["top"][0] if row["kernels"]["top"] else {"name": "-", "share": 0}
        log(f"    {row['model']:>22}: {row['img_per_s']:9.1f} img/s  ×{row['reference']} "
            f"{row['ratio_vs_timm']:.2f}  MFU {_pct(row['mfu_mm'])} of mm, "
            f"{_pct(row['mfu'])} of peak; top kernel {top['share']:.0%} {top['name'][:60]}")
    result["rows"] += rows
    result["skipped"] += [dict(variant=variant, size=size, batch=batch, model=m)
                          for m in skipped]
    if skipped:
        log(f"    skipped (compile time box): {', '.join(skipped)}")
    if ctx.device.type == "cuda":  # the next group's sizes differ: give the cache back
        torch.cuda.empty_cache()


def _groups(ctx: Context, result: dict[str, Any], size: str, batch: int, variant: str,
            mixers: tuple[str, ...], deadline: float | None) -> None:
    """The Mixer group (timm's MlpMixer first) and the Transformer group (timm's ViT first)
    of one size, batch and variant; the Transformers' absence is noted once per size."""
    dtype, _ = _variant(variant, ctx.plan)
    geo = bench.mixer_geometry(size)
    key = f"{size}/b{batch}/{dtype}"
    if key not in result["limits"]:
        result["limits"][key] = bench.matmul_limit(bench.gemm_shapes(geo, batch), ctx.device,
                                                   dtype)
    measure_training_rows(ctx, result, list(mixers), size, batch, variant, deadline,
                          result["limits"][key])
    formers, reason = transformer_group(size)
    if reason:
        if size not in result["transformers_skipped"]:
            result["transformers_skipped"][size] = reason
            log(f"  Transformer rows at {size} skipped: {reason}")
        return
    measure_training_rows(ctx, result, formers, size, batch, variant, deadline, None)


def section_scale(ctx: Context, result: dict[str, Any], deadline: float) -> None:
    """The bf16 training step at the paper's sizes: every size and batch eager first, then
    compiled (what may not fit: last, with the deadline)."""
    plan = ctx.plan
    result.update(sizes=list(plan.scale_sizes), batches=list(plan.scale_batches),
                  variants=list(plan.scale_variants), models=list(plan.scale_models),
                  compile_backend=plan.compile_backend, rows=[], skipped=[], limits={},
                  transformers_skipped={},
                  meta=bench.bench_meta(ctx.device, plan.threads or torch.get_num_threads(),
                                        plan.rounds, plan.warmup))
    ensure_peaks(ctx)
    eager = [v for v in plan.scale_variants if not _compiles(v)]
    compiled = [v for v in plan.scale_variants if _compiles(v)]
    with bench.pinned_threads(plan.threads or torch.get_num_threads()):
        for variants, until in ((eager, None), (compiled, deadline - plan.compile_reserve_s)):
            for variant in variants:
                for size in plan.scale_sizes:
                    for batch in plan.scale_batches:
                        _groups(ctx, result, size, batch, variant, plan.scale_models, until)


def section_graphs(ctx: Context, result: dict[str, Any], deadline: float) -> None:
    """The small models' training step eager, as one CUDA graph, compiled and compiled with
    CUDA graphs; ``vs_eager`` is each row's img/s over its own eager row's."""
    plan = ctx.plan
    size, batch = plan.graph_size, plan.graph_batch
    result.update(size=size, batch=batch, variants=list(plan.graph_variants),
                  models=list(plan.graph_models), compile_backend=plan.compile_backend,
                  rows=[], skipped=[], limits={}, transformers_skipped={},
                  meta=bench.bench_meta(ctx.device, plan.threads or torch.get_num_threads(),
                                        plan.rounds, plan.warmup))
    ensure_peaks(ctx)
    first = [v for v in plan.graph_variants if not _compiles(v)]
    later = [v for v in plan.graph_variants if _compiles(v)]
    with bench.pinned_threads(plan.threads or torch.get_num_threads()):
        for variant in first:
            _groups(ctx, result, size, batch, variant, plan.graph_models, None)
        for variant in later:
            _groups(ctx, result, size, batch, variant, plan.graph_models,
                    deadline - plan.compile_reserve_s)
    eager = {(r["dtype"], r["model"]): r["img_per_s"] for r in result["rows"]
             if r["variant"] in bench.DTYPES}
    for row in result["rows"]:
        base = eager.get((row["dtype"], row["model"]))
        row["vs_eager"] = row["img_per_s"] / base if base else None


# ------------------------------------------------------------------------------- train
def write_idx(path: Path, array: np.ndarray) -> None:
    """One gzip-compressed IDX file as MNIST ships it: two zero bytes, type 0x08 (uint8), the
    number of dimensions, one big-endian uint32 per dimension, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes(), mtime=0))


def generate_digits28(root: Path) -> Path:
    """scikit-learn's 8×8 digits (built in: nothing to download) enlarged to 28×28 and written
    as MNIST's four IDX files: a small, learnable stand-in for Fashion-MNIST."""
    from hamixer.data import load_digits_arrays

    root.mkdir(parents=True, exist_ok=True)
    for prefix, train in (("train", True), ("t10k", False)):
        split = load_digits_arrays(train)
        images = torch.from_numpy(split.images).float()[:, None]
        images = F.interpolate(images, size=(24, 24), mode="bilinear", align_corners=False)
        images = F.pad(images, (2, 2, 2, 2))  # MNIST's digits sit in a 20-px box, centred
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz",
                  images[:, 0].round().clamp(0, 255).to(torch.uint8).numpy())
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", split.labels)
    return root


def training_data(ctx: Context) -> tuple[str, Path]:
    """(dataset name, folder): --data-dir, else the generated digits (made once)."""
    if ctx.data_dir is not None:
        return ctx.dataset, ctx.data_dir
    if ctx.generated is None:
        ctx.generated = generate_digits28(ctx.work / "digits28")
    return "mnist", ctx.generated


def train_run(ctx: Context, name: str, device: str, deadline: float,
              torchrun: bool = False) -> dict[str, Any]:
    """One epoch of ``hamixer train`` in a subprocess; its summary and log facts."""
    dataset, data = training_data(ctx)
    out = ctx.work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    plan = ctx.plan
    args = ["train", "--model", plan.train_model, "--dataset", dataset, "--data-dir", str(data),
            "--epochs", "1", "--warmup-epochs", "0.2", "--seed", "0", "--batch-size",
            str(plan.train_batch), "--no-symmetry", "--device", device, "--out", str(out),
            *(["--limit-train", str(plan.train_limit)] if plan.train_limit else []),
            *plan.train_extra]
    head = [sys.executable, "-m", "hamixer"]
    env = child_env(ctx)
    if torchrun:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=1", "-m", "hamixer"]
        env["NCCL_DEBUG"] = "VERSION"  # NCCL prints its version when a communicator starts
    run = run_command(ctx, name, [*head, *args], deadline, env)
    logfile = ctx.out / run["log"]
    if run["returncode"] != 0:
        raise RuntimeError(f"{name}: exit status {run['returncode']}: {last_line(logfile)}")
    summary = json.loads((out / "summary.json").read_text())
    text = logfile.read_text(errors="replace")
    facts = dict(run=run, dataset=dataset, model=summary["model"], device=summary["device"],
                 processes=summary["processes"], train_images=summary["train_images"],
                 test_acc=summary["final_test_acc"], train_acc=summary["final_train_acc"],
                 train_images_per_s=summary["train_images_per_s"],
                 seconds=summary["total_seconds"], peak_memory_mb=summary["peak_memory_mb"],
                 # the start line names the processes only when a process group was joined
                 process_group=re.search(r", \d+ processes\b", text) is not None,
                 nccl_version=next((x.strip() for x in text.splitlines() if "NCCL version" in x),
                                   None))
    log(f"  {name}: {facts['device']}, test acc {facts['test_acc']:.2f} %, "
        f"{facts['train_images_per_s']:.0f} img/s, {run['seconds']:.1f} s")
    return facts


def section_train(ctx: Context, result: dict[str, Any], deadline: float) -> None:
    ctx.device_run = train_run(ctx, "train_device", ctx.plan.device, deadline)
    result["runs"] = {"device": ctx.device_run}
    if ctx.device.type == "cpu":  # the dry run: the CPU run would repeat the same command
        result["runs"]["cpu"] = {**ctx.device_run, "same_run_as": "device"}
    else:
        result["runs"]["cpu"] = train_run(ctx, "train_cpu", "cpu", deadline)
    a, b = ctx.device_run["test_acc"], result["runs"]["cpu"]["test_acc"]
    result.update(dataset=ctx.device_run["dataset"], test_acc_diff=a - b)
    log(f"  test accuracy {ctx.plan.device} {a:.2f} % vs cpu {b:.2f} % (same seed)")


def section_torchrun(ctx: Context, result: dict[str, Any], deadline: float) -> None:
    run = train_run(ctx, "torchrun", ctx.plan.device, deadline, torchrun=True)
    backend = "nccl" if ctx.device.type == "cuda" else "gloo"
    result.update(run=run, backend=backend, nccl_version=run["nccl_version"])
    if not run["process_group"]:
        result["error"] = "the run did not join a process group (no 'processes' in its log)"
    elif backend == "nccl" and not run["nccl_version"]:
        result["error"] = "the run joined a process group but NCCL never reported its version"
    if ctx.device_run is not None:
        result["test_acc_diff_vs_single_process"] = run["test_acc"] - ctx.device_run["test_acc"]


# ---------------------------------------------------------------------------- outputs
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _bench_md(name: str, sec: dict[str, Any]) -> list[str]:
    if not sec.get("rows"):
        return []
    lines = [f"\n## {name}: `*_{sec['size']}`, batch {sec['batch']}\n",
             "| variant | mode | model | img/s | ×timm | MFU (datasheet) | MFU (mm) "
             "| of mm limit | peak MB | top kernel |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in sec["rows"]:
        lines.append(f"| {r['variant']} | {r['mode']} | {r['model']} | {r['img_per_s']:.1f} "
                     f"| {r['ratio_vs_timm']:.2f} | {_pct(r['mfu'])} | {_pct(r.get('mfu_mm'))} "
                     f"| {_pct(r['frac_of_mm_limit'])} | {r['peak_mem_mb']:.0f} "
                     f"| {_kernel(r)} |")
    if sec.get("skipped"):
        lines.append("\nSkipped (compile time box): " + ", ".join(
            f"{s['variant']} {s['mode']} {s['model']}" for s in sec["skipped"]))
    if sec.get("launch_note"):
        lines.append(f"\nLaunch probe (each eager row at batch {2 * sec['batch']}): "
                     f"{sec['launch_note']}.")
    return lines


def _kernel(row: dict[str, Any]) -> str:
    top = (row.get("kernels") or {}).get("top") or []
    if not top:
        return "–"
    name = top[0]["name"].replace("|", "/")
    return f"{100 * top[0]['share']:.0f}% `{name[:48]}{'…' if len(name) > 48 else ''}`"


def _rows_md(name: str, sec: dict[str, Any]) -> list[str]:
    """The table of a section of training rows (scale224, graphs28)."""
    if not sec.get("rows"):
        return []
    where = (f"{', '.join(sec['sizes'])}; batches {', '.join(map(str, sec['batches']))}"
             if "sizes" in sec else f"`*_{sec['size']}`, batch {sec['batch']}")
    graphs = name == "graphs28"
    lines = [f"\n## {name}: training step, {where}\n",
             "| size | batch | variant | model | img/s | × ref (ref) |"
             + (" × own eager |" if graphs else "")
             + " MFU (mm) | MFU (datasheet) | top kernel (share) |",
             "|---|---:|---|---|---:|---:|" + ("---:|" if graphs else "") + "---:|---:|---|"]
    for r in sec["rows"]:
        own = (f" {r['vs_eager']:.2f} |" if r.get("vs_eager") else " – |") if graphs else ""
        lines.append(f"| {bench.size_of(r['shape'])} | {r['batch']} | {r['variant']} "
                     f"| {r['model']} | {r['img_per_s']:.1f} "
                     f"| {r['ratio_vs_timm']:.2f} ({r['reference']}) |{own} "
                     f"{_pct(r.get('mfu_mm'))} | {_pct(r.get('mfu'))} | {_kernel(r)} |")
    if sec.get("skipped"):
        lines.append("\nSkipped (compile time box): " + ", ".join(
            f"{s['variant']} {s['size']} b{s['batch']} {s['model']}" for s in sec["skipped"]))
    for size, reason in sec.get("transformers_skipped", {}).items():
        lines.append(f"\nTransformer rows at {size} skipped: {reason}.")
    lines.append("\nThe top 10 kernels of every row: `kernels` in gpu_check.json.")
    return lines


def _train_md(report: dict[str, Any]) -> list[str]:
    train, tr = report["sections"].get("train", {}), report["sections"].get("torchrun", {})
    runs = [(k, v) for k, v in train.get("runs", {}).items()]
    if tr.get("run"):
        runs.append(("torchrun", tr["run"]))
    if not runs:
        return []
    lines = ["\n## Training: 1 epoch, same seed\n",
             "| run | dataset | device | processes | test acc % | train img/s | epoch s "
             "| command s |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, r in runs:
        lines.append(f"| {name} | {r['dataset']} | {r['device']} | {r['processes']} "
                     f"| {r['test_acc']:.2f} | {r['train_images_per_s']:.0f} "
                     f"| {r['seconds']:.1f} | {r['run']['seconds']:.1f} |")
    if "test_acc_diff" in train:
        lines.append(f"\nTest accuracy, device run − CPU run: {train['test_acc_diff']:+.2f} "
                     "points" + (" (the same run: the device is the CPU)"
                                 if "same_run_as" in train["runs"]["cpu"] else "") + ".")
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    meta, env = report["meta"], report["sections"].get("env", {})
    lines = ["# GPU check" + (" (dry run on the CPU, tiny sizes)" if meta["dry_run"] else ""),
             "", f"Device: {env.get('device_name', '?')}; torch "
             f"{env.get('versions', {}).get('torch', '?')}; MFU against "
             f"{(env.get('peak_flops_per_s') or 0) / 1e12:.3g} TFLOP/s "
             f"({env.get('peak_source', '?')}) and "
             f"{(env.get('mm_peak_flops_per_s') or 0) / 1e12:.4g} TFLOP/s "
             f"({env.get('mm_peak_source', '?')}); total {meta.get('seconds', 0):.0f} s.", "",
             "| section | status | seconds | error |", "|---|---|---:|---|"]
    for name, sec in report["sections"].items():
        lines.append(f"| {name} | {sec['status']} | {sec.get('seconds', 0):.1f} "
                     f"| {(sec.get('error') or '').replace('|', '/')} |")
    tests = report["sections"].get("tests", {})
    if "passed" in tests:
        lines.append(f"\nCUDA tests: {tests['passed']} passed, {tests['failed']} failed, "
                     f"{tests['errors']} errors, {tests['skipped']} skipped.")
    for name in ("bench224", "bench28"):
        lines += _bench_md(name, report["sections"].get(name, {}))
    for name in ("scale224", "graphs28"):
        lines += _rows_md(name, report["sections"].get(name, {}))
    return "\n".join(lines + _train_md(report)) + "\n"


def write_outputs(report: dict[str, Any], out: Path) -> None:
    write_json(out / "gpu_check.json", report)
    write_text(out / "gpu_check.md", to_markdown(report))


# ------------------------------------------------------------------------------- main
def run_section(name: str, fn: Callable[..., None], ctx: Context, report: dict[str, Any],
                slack: float, **kwargs: Any) -> None:
    """Run one section inside its time box, extended by ``slack`` (what earlier sections left
    of theirs); its outcome and error go into ``report``."""
    box = ctx.plan.boxes[name] + slack
    result: dict[str, Any] = {"status": "running", "error": None, "time_box_s": box}
    report["sections"][name] = result
    log(f"{name}: start (time box {box:.0f} s, {slack:.0f} s of it left by earlier sections)")
    t0 = time.monotonic()
    try:
        with time_box(box):
            fn(ctx, result, t0 + box, **kwargs)
        result["status"] = "failed" if result["error"] else "ok"
    except SectionTimeout as err:
        result.update(status="timeout", error=str(err))
    except Exception as err:  # the next section still runs
        result.update(status="error", error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc()[-3000:])
    result["seconds"] = time.monotonic() - t0
    write_outputs(report, ctx.out)
    tail = f": {result['error']}" if result["error"] else ""
    log(f"{name}: {result['status']} in {result['seconds']:.1f} s{tail}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2
        self.exit(2, f"gpu_check: error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="output folder (default: benchmarks/results/gpu, "
                   "or benchmarks/results/gpu_dry_run with --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="every section on the CPU at tiny sizes (what CI runs)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    p.add_argument("--models", default=None, help="comma-separated Mixer candidates of "
                   f"every bench section (default: {','.join(DEFAULT_MODELS)}, and "
                   f"{','.join(SCALE_MODELS)} at the paper's sizes; timm first sets the "
                   "ratios)")
    p.add_argument("--variants", default=None, help="comma-separated subset of "
                   f"{','.join(VARIANTS)} for bench224 and bench28 "
                   f"(default: {','.join(DEFAULT_VARIANTS)})")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX files for the training "
                   "sections (default: MNIST-format files generated from the built-in digits)")
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist",
                   help="what --data-dir holds (default: fashion-mnist)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="bf16 dense peak for MFU (default: the datasheet figure of the device)")
    p.add_argument("--box", nargs="+", default=[], metavar="SECTION=SECONDS",
                   help="change sections' time boxes, e.g. bench224=200")
    args = p.parse_args(argv)
    try:
        args.sections = _choose(args.sections, SECTIONS, "section")
        args.models = _choose(args.models, bench.CANDIDATES, "model") if args.models else None
        args.variants = _choose(args.variants, VARIANTS, "variant") if args.variants else None
        args.box = _boxes(args.box)
    except ValueError as err:
        p.error(str(err))
    if args.data_dir and not Path(args.data_dir).is_dir():
        p.error(f"--data-dir {args.data_dir} is not a folder")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        p.error(f"--peak-tflops must be > 0, got {args.peak_tflops}")
    if not args.dry_run and not torch.cuda.is_available():
        p.error("no CUDA device is available; on a CPU run --dry-run")
    return args


def _choose(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise ValueError(f"unknown {what} {', '.join(bad) or '(none given)'}; "
                         f"choose from {', '.join(allowed)}")
    return items


def _boxes(items: list[str]) -> dict[str, float]:
    boxes = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if name not in SECTIONS or seconds <= 0:
            raise ValueError(f"--box expects SECTION=SECONDS with a section of "
                             f"{', '.join(SECTIONS)} and seconds > 0, got {item!r}")
        boxes[name] = seconds
    return boxes


def make_plan(args: argparse.Namespace) -> Plan:
    base = DRY if args.dry_run else REAL
    changes: dict[str, Any] = {"boxes": {**base.boxes, **args.box}}
    if args.models:  # the Mixer candidates of every bench section
        changes.update(models=args.models, scale_models=args.models, graph_models=args.models)
    if args.variants:
        changes["variants"] = args.variants
    return Plan(**{**asdict(base), **changes})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    out = Path(args.out or ROOT / "benchmarks" / "results" /
               ("gpu_dry_run" if plan.dry_run else "gpu"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    ctx = Context(plan, out, work, Path(args.data_dir) if args.data_dir else None, args.dataset)
    report: dict[str, Any] = dict(meta=dict(dry_run=plan.dry_run, argv=sys.argv[1:] if argv is
                                            None else argv, plan=asdict(plan),
                                            sections=list(args.sections)), sections={})
    sections: dict[str, tuple[Callable[..., None], dict[str, Any]]] = {
        "env": (section_env, {"peak_tflops": args.peak_tflops}),
        "tests": (section_tests, {}),
        "bench224": (section_bench, {"section": "bench224"}),
        "bench28": (section_bench, {"section": "bench28"}),
        "scale224": (section_scale, {}),
        "graphs28": (section_graphs, {}),
        "train": (section_train, {}),
        "torchrun": (section_torchrun, {}),
    }
    t0, planned = time.monotonic(), 0.0
    try:
        for name in SECTIONS:
            if name in args.sections:
                # time a section leaves unused goes to the next, so the sum of the boxes
                # stays the bound on the whole run
                slack = max(0.0, planned - (time.monotonic() - t0))
                fn, kwargs = sections[name]
                run_section(name, fn, ctx, report, slack, **kwargs)
                planned += plan.boxes[name]
    finally:
        report["meta"]["seconds"] = time.monotonic() - t0
        write_outputs(report, out)
        shutil.rmtree(work, ignore_errors=True)
    bad = [k for k, v in report["sections"].items() if v["status"] != "ok"]
    log(f"done in {report['meta']['seconds']:.0f} s: {out / 'gpu_check.json'}, "
        f"{out / 'gpu_check.md'}" + (f"; not ok: {', '.join(bad)}" if bad else ""))
    print(to_markdown(report))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
