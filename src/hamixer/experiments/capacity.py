"""Storage capacity of dense associative memories against theory (``hamixer memory capacity``).

Store P patterns, corrupt each probe, run the dynamics to a fixed point, and count a probe as
retrieved when the overlap of the fixed point with its own pattern is ≥ :data:`CRITERION`.
The sweeps:

* ``classical``: the Hopfield network (F = x²/2) on random ±1 patterns, P/N from 0.08 to 0.20,
  beside Amit, Gutfreund & Sompolinsky's overlap m(α) and α_c = 0.138;
* ``polynomial``: F = xⁿ/n for n = 2, 3, 4 at three N each (one memory fewer per point than
  ``repeats``), the capacity P_c (half the probes
  retrieved) and its fitted exponent in N, beside Krotov & Hopfield's N^{n−1} and the
  one-step signal-to-noise estimate at the same N;
* ``exponential``: log-sum-exp (Demircigil et al.) against the polynomials at P ≫ N, and the
  growth rate of its capacity in N beside the rate I(1 − 2ρ)/2 of the theorem;
* ``images``: binarized image patterns (digits, Fashion-MNIST) against random ones of the
  same N: how much earlier correlated memories collapse;
* ``beta``: the continuous softmax memory (Ramsauer et al.) on images: as β falls, retrieval
  gives way to metastable mixtures.

Every sweep is vectorised: all probes of one memory are updated at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..ham import (
    DenseAssociativeMemory,
    IdentityLagrangian,
    Lagrangian,
    PolynomialLagrangian,
    SoftmaxLagrangian,
    association,
    retrieve,
)

#: A probe is retrieved when its fixed point's overlap with its pattern reaches this.
CRITERION = 0.99
CRITERION_TEXT = (f"retrieved: overlap of the fixed point with the stored pattern ≥ {CRITERION} "
                  "(σ·ξ/N for ±1 patterns, cosine for images)")
SWEEPS = ("classical", "polynomial", "exponential", "images", "beta")
RANDOM_SWEEPS = ("classical", "polynomial", "exponential")
AGS_ALPHA_C = 0.138
DTYPE = torch.float64


@dataclass
class CapacityConfig:
    """Settings of one ``hamixer memory capacity`` run (``small``: the test-sized sweeps)."""

    sweeps: tuple[str, ...] = RANDOM_SWEEPS
    flip: float = 0.1
    probes: int = 100
    repeats: int = 3
    max_steps: int = 50
    seed: int = 0
    dataset: str = "digits"
    betas: tuple[float, ...] = (2.0, 8.0, 32.0, 128.0, 512.0)
    small: bool = False
    sizes: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        unknown = [s for s in self.sweeps if s not in SWEEPS]
        if unknown or not self.sweeps:
            raise ConfigError(f"unknown sweep {unknown[0] if unknown else '(none)'}; choose from "
                              f"{', '.join(SWEEPS)}")
        if not 0 <= self.flip < 0.5:
            raise ConfigError(f"--flip must be in [0, 0.5), got {self.flip}")
        for name, value in (("--probes", self.probes), ("--repeats", self.repeats),
                            ("--max-steps", self.max_steps)):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not self.betas or min(self.betas) <= 0:
            raise ConfigError(f"--betas must be positive, got {self.betas}")


# ------------------------------------------------------------------ theory
def ags_overlap(alpha: float) -> float | None:
    """The retrieval overlap m(α) of the zero-temperature Hopfield network (Amit, Gutfreund &
    Sompolinsky 1985), or None above α_c where the retrieval state does not exist.

    With y = m/√(2αr): y√(2α) = erf(y) − (2/√π)·y·e^{−y²}; the largest root gives m = erf(y).
    """
    from scipy.optimize import brentq
    from scipy.special import erf

    def gap(y: float) -> float:
        return y * math.sqrt(2 * alpha) - erf(y) + 2 * y * math.exp(-y * y) / math.sqrt(math.pi)

    ys = np.linspace(6.0, 0.05, 1200)
    values = [gap(y) for y in ys]
    for hi, lo, v_hi, v_lo in zip(ys[:-1], ys[1:], values[:-1], values[1:], strict=True):
        if v_hi > 0 >= v_lo:
            return float(erf(brentq(gap, lo, hi)))
    return None


def ags_alpha_at(overlap: float) -> float:
    """The load at which the AGS retrieval overlap falls to ``overlap``."""
    lo, hi = 0.01, AGS_ALPHA_C
    for _ in range(50):
        mid = (lo + hi) / 2
        m = ags_overlap(mid)
        lo, hi = (mid, hi) if m is not None and m >= overlap else (lo, mid)
    return lo


def double_factorial(k: int) -> int:
    return math.prod(range(k, 0, -2)) if k > 0 else 1


def one_step_retrieval(n: int, units: int, count: float) -> float:
    """Krotov & Hopfield's signal-to-noise estimate: a stored pattern keeps each unit with
    error ε = ½ erfc(√(N^{n−1} / (2 (2n−3)!! P))); it passes the criterion when at most
    ⌊(1 − c)N/2⌋ of its N units err (the errors taken independent)."""
    from scipy.special import erfc
    from scipy.stats import binom

    eps = 0.5 * erfc(math.sqrt(units ** (n - 1) / (2 * double_factorial(2 * n - 3) * count)))
    return float(binom.cdf(math.floor((1 - CRITERION) * units / 2 + 1e-9), units, eps))


def one_step_capacity(n: int, units: int) -> float:
    """P at which :func:`one_step_retrieval` is ½ (bisection in log P)."""
    lo, hi = 0.0, math.log(units ** (n - 1) * 10.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if one_step_retrieval(n, units, math.exp(mid)) >= 0.5 else (lo, mid)
    return math.exp(lo)


def exponential_rate(flip: float) -> float:
    """Demircigil et al.'s capacity rate: exp(αN) patterns for α < I(1 − 2ρ)/2,
    I(x) = ½[(1 + x) ln(1 + x) + (1 − x) ln(1 − x)]."""
    x = 1 - 2 * flip
    entropy = (1 + x) * math.log(1 + x) + ((1 - x) * math.log(1 - x) if x < 1 else 0.0)
    return entropy / 4


# ------------------------------------------------------------------ measurement
def crossing(counts: list[float], fractions: list[float], level: float = 0.5) -> float | None:
    """Where ``fractions`` (falling with ``counts``) first crosses ``level``, interpolated in
    log ``counts``; None when it never does inside the grid."""
    for (p0, f0), (p1, f1) in zip(zip(counts, fractions, strict=True),
                                  zip(counts[1:], fractions[1:], strict=True), strict=False):
        if f0 >= level > f1:
            t = (f0 - level) / (f0 - f1)
            return float(math.exp(math.log(p0) + t * (math.log(p1) - math.log(p0))))
    return None


def fit_power(xs: list[float], ys: list[float]) -> float:
    """Slope of log y against log x (least squares)."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def random_patterns(count: int, units: int, gen: torch.Generator) -> Tensor:
    return torch.randint(0, 2, (count, units), generator=gen).to(DTYPE) * 2 - 1


def flip_units(patterns: Tensor, flip: float, gen: torch.Generator) -> Tensor:
    """Each probe with exactly ⌊flip·N⌋ of its units flipped (at random places)."""
    count = int(flip * patterns.shape[1])
    order = torch.rand(patterns.shape, generator=gen).argsort(-1)[:, :count]
    signs = torch.ones_like(patterns).scatter_(1, order, -1.0)
    return patterns * signs


def binary_point(patterns: Tensor, lagrangian: Lagrangian, cfg: CapacityConfig,
                 gen: torch.Generator) -> dict[str, float]:
    """Probe up to ``cfg.probes`` stored patterns of one memory; their final overlaps."""
    memory = DenseAssociativeMemory(patterns, lagrangian)
    chosen = torch.randperm(len(patterns), generator=gen)[: cfg.probes]
    own = patterns[chosen]
    result = memory.update_steps(flip_units(own, cfg.flip, gen), max_steps=cfg.max_steps)
    overlap = (result.state * own).mean(-1)
    return dict(retrieved=float((overlap >= CRITERION - 1e-12).double().mean()),
                overlap=float(overlap.mean()), probes=len(chosen), steps=result.steps,
                cycling=float(result.cycling.double().mean()))


def repeated(make: Callable[[torch.Generator], Tensor], lagrangian: Lagrangian,
             cfg: CapacityConfig, gen: torch.Generator, repeats: int) -> dict[str, float]:
    """Mean of :func:`binary_point` over ``repeats`` independent memories (weighted by probes)."""
    points = [binary_point(make(gen), lagrangian, cfg, gen) for _ in range(repeats)]
    total = sum(p["probes"] for p in points)
    out = {k: sum(p[k] * p["probes"] for p in points) / total
           for k in ("retrieved", "overlap", "cycling")}
    out.update(probes=total, steps=max(p["steps"] for p in points))
    return out


def lagrangian_of(name: str) -> Lagrangian:
    if name == "lse":
        return SoftmaxLagrangian(1.0)
    n = int(name.removeprefix("n"))
    return IdentityLagrangian() if n == 2 else PolynomialLagrangian(n)


LAGRANGIAN_LABELS = {"n2": "F = x²/2 (classical)", "n3": "F = x³/3", "n4": "F = x⁴/4",
                     "lse": "log-sum-exp, β = 1"}


# ------------------------------------------------------------------ sweeps
def sweep_classical(cfg: CapacityConfig, gen: torch.Generator, tick: Callable) -> dict:
    sizes = cfg.sizes.get("classical", (100, 200) if cfg.small else (500, 1000))
    alphas = [round(0.08 + 0.01 * k, 2) for k in range(13)]
    rows, summary = [], {}
    for units in sizes:
        fractions = []
        for alpha in alphas:
            count = max(1, round(alpha * units))
            probe_cfg = CapacityConfig(**{**asdict(cfg), "probes": count})  # every pattern
            point = repeated(lambda g, c=count, u=units: random_patterns(c, u, g),
                             IdentityLagrangian(), probe_cfg, gen, cfg.repeats)
            theory = ags_overlap(alpha)
            rows.append(dict(N=units, P=count, alpha=count / units, **point,
                             theory_overlap=theory))
            fractions.append(point["retrieved"])
            tick()
        loads = [r["alpha"] for r in rows if r["N"] == units]
        at = {a: r["retrieved"] for a, r in zip(alphas, [r for r in rows if r["N"] == units],
                                                strict=True)}
        summary[str(units)] = dict(alpha_half=crossing(loads, fractions),
                                   retrieved_at_0_12=at[0.12], retrieved_at_0_16=at[0.16])
    curve = [(a, ags_overlap(a)) for a in np.linspace(0.05, 0.1379, 40).tolist()]
    return dict(rows=rows, summary=summary,
                theory=dict(alpha_c=AGS_ALPHA_C, overlap_curve=curve,
                            overlap_at_alpha_c=ags_overlap(0.1379),
                            alpha_at_criterion=ags_alpha_at(CRITERION)))


def polynomial_sizes(cfg: CapacityConfig) -> dict[int, tuple[int, ...]]:
    if "polynomial" in cfg.sizes:
        return cfg.sizes["polynomial"]
    if cfg.small:
        return {2: (100, 200), 3: (40, 60), 4: (20, 30)}
    return {2: (250, 500, 1000), 3: (100, 150, 225), 4: (40, 60, 90)}


def sweep_polynomial(cfg: CapacityConfig, gen: torch.Generator, tick: Callable) -> dict:
    rows, summary = [], {}
    for n, sizes in polynomial_sizes(cfg).items():
        capacities, theories = [], []
        for units in sizes:
            guess = one_step_capacity(n, units)
            counts = sorted({max(2, round(guess * 2 ** (k / 3))) for k in range(-6, 3)})
            fractions = []
            for count in counts:
                if fractions and fractions[-1] == 0:
                    break
                point = repeated(lambda g, c=count, u=units: random_patterns(c, u, g),
                                 lagrangian_of(f"n{n}"), cfg, gen, max(1, cfg.repeats - 1))
                rows.append(dict(n=n, N=units, P=count, load=count / units ** (n - 1), **point,
                                 theory_retrieved=one_step_retrieval(n, units, count)))
                fractions.append(point["retrieved"])
                tick()
            capacities.append(crossing(counts[: len(fractions)], fractions))
            theories.append(guess)
        fitted = fit_power(list(sizes), capacities) if None not in capacities else None
        summary[str(n)] = dict(N=list(sizes), capacity=capacities, one_step_capacity=theories,
                               exponent=fitted, theory_exponent=n - 1,
                               one_step_exponent=fit_power(list(sizes), theories))
    return dict(rows=rows, summary=summary)


def sweep_exponential(cfg: CapacityConfig, gen: torch.Generator, tick: Callable) -> dict:
    units = cfg.sizes.get("exponential", 32 if cfg.small else 64)
    multiples = (1, 4, 16) if cfg.small else (1, 4, 16, 64)
    rows = []
    for name in ("n2", "n3", "n4", "lse"):
        for k in multiples:
            point = repeated(lambda g, c=k * units: random_patterns(c, units, g),
                             lagrangian_of(name), cfg, gen, 1)
            rows.append(dict(lagrangian=name, N=units, P=k * units, P_over_N=k, **point))
            tick()
    # N a multiple of 10, so that ⌊flip·N⌋ is the same fraction of every N at flip 0.1.
    growth_sizes = cfg.sizes.get("exponential_growth", (10, 20) if cfg.small else (10, 20, 30))
    growth = []
    for size in growth_sizes:
        counts = [round(size * 2 ** (k / 2)) for k in range(0, 29)]
        fractions = []
        for count in counts:
            point = repeated(lambda g, c=count, u=size: random_patterns(c, u, g),
                             lagrangian_of("lse"), cfg, gen, 1)
            fractions.append(point["retrieved"])
            tick()
            if point["retrieved"] < 0.5:  # the crossing is found
                break
        growth.append(dict(N=size, P=counts[: len(fractions)], retrieved=fractions,
                           capacity=crossing(counts[: len(fractions)], fractions)))
    caps = [g["capacity"] for g in growth]
    rate = float(np.polyfit(growth_sizes, np.log(caps), 1)[0]) if None not in caps else None
    return dict(rows=rows, growth=growth,
                summary=dict(rate=rate, theory_rate=exponential_rate(cfg.flip), flip=cfg.flip))


def image_patterns(images: np.ndarray) -> Tensor:
    """±1 patterns: each pixel against its image's mean grey level."""
    x = torch.as_tensor(images.reshape(len(images), -1), dtype=DTYPE)
    return torch.where(x > x.mean(-1, keepdim=True), 1.0, -1.0).to(DTYPE)


def sweep_images(cfg: CapacityConfig, gen: torch.Generator, tick: Callable,
                 images: np.ndarray) -> dict:
    pool = image_patterns(images)
    units = pool.shape[1]
    top = min(len(pool), 256 if cfg.small else 4096)
    counts = [c for c in (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if c <= top]
    rows, summary = [], {}
    for name in ("n2", "n3", "lse"):
        curves = {}
        for source in ("images", "random"):
            fractions = []
            for count in counts:
                if source == "images":
                    def make(g, c=count):
                        return pool[torch.randperm(len(pool), generator=g)[:c]]
                else:
                    def make(g, c=count):
                        return random_patterns(c, units, g)
                point = repeated(make, lagrangian_of(name), cfg, gen, cfg.repeats)
                rows.append(dict(lagrangian=name, source=source, N=units, P=count, **point))
                fractions.append(point["retrieved"])
                tick()
                if point["retrieved"] == 0:
                    break
            curves[source] = crossing(counts[: len(fractions)], fractions)
            curves[f"{source}_last"] = [counts[len(fractions) - 1], fractions[-1]]
        ratio = (curves["random"] / curves["images"]
                 if curves["images"] and curves["random"] else None)
        summary[name] = dict(images_capacity=curves["images"],
                             random_capacity=curves["random"], random_over_images=ratio,
                             images_largest=curves["images_last"],
                             random_largest=curves["random_last"])
    return dict(rows=rows, summary=summary, N=units, counts=counts)


def continuous_patterns(images: np.ndarray) -> Tensor:
    """Images minus the mean image of the set, each scaled to unit norm."""
    x = torch.as_tensor(images.reshape(len(images), -1), dtype=DTYPE)
    x = x - x.mean(0, keepdim=True)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def sweep_beta(cfg: CapacityConfig, gen: torch.Generator, tick: Callable,
               images: np.ndarray, shape: tuple[int, int]) -> dict:
    """The softmax memory on images, probes with their lower half masked: retrieved, another
    single pattern (attention ≥ ½ on it), or a metastable mixture (no weight ≥ ½)."""
    pool = continuous_patterns(images)
    counts = [c for c in ((16, 64, 256) if cfg.small else (16, 64, 256, 1024, 4096))
              if c <= len(pool)]
    mask = torch.ones(shape, dtype=DTYPE)
    mask[shape[0] // 2:] = 0
    rows = []
    for count in counts:
        stored = pool[torch.randperm(len(pool), generator=gen)[:count]]
        chosen = torch.randperm(count, generator=gen)[: cfg.probes]
        probes = stored[chosen] * mask.flatten()
        for beta in cfg.betas:
            lagrangian = SoftmaxLagrangian(beta)
            final, steps = retrieve(probes, stored, lagrangian, max_steps=100, eps=1e-6)
            weights = association(final, stored, lagrangian)
            cosine = torch.nn.functional.cosine_similarity(final, stored[chosen], dim=-1)
            top_weight, top = weights.max(-1)
            retrieved = cosine >= CRITERION
            single = (top_weight >= 0.5) & ~retrieved
            rows.append(dict(P=count, beta=beta, probes=len(chosen), steps=steps,
                             retrieved=float(retrieved.double().mean()),
                             other_pattern=float((single & (top != chosen)).double().mean()),
                             mixture=float((top_weight < 0.5).double().mean()),
                             top_weight=float(top_weight.mean())))
            tick()
    return dict(rows=rows, N=pool.shape[1], mask="lower half of the image set to 0")


def run_capacity(cfg: CapacityConfig, images: np.ndarray | None = None,
                 progress: Callable[[str], Callable[[], None]] | None = None) -> dict:
    """Run the sweeps of ``cfg``; ``images`` ``[M, H, W]`` for the ``images``/``beta`` ones."""
    cfg.check()
    gen = torch.Generator().manual_seed(cfg.seed)
    out: dict[str, Any] = dict(config=asdict(cfg), criterion=CRITERION_TEXT, sweeps={})
    start = time.perf_counter()
    for name in cfg.sweeps:
        tick = progress(name) if progress else (lambda: None)
        t0 = time.perf_counter()
        if name == "classical":
            result = sweep_classical(cfg, gen, tick)
        elif name == "polynomial":
            result = sweep_polynomial(cfg, gen, tick)
        elif name == "exponential":
            result = sweep_exponential(cfg, gen, tick)
        elif images is None:
            raise ConfigError(f"the {name} sweep needs image patterns")
        elif name == "images":
            result = sweep_images(cfg, gen, tick, images)
        else:
            result = sweep_beta(cfg, gen, tick, images, tuple(images.shape[1:3]))
        result["seconds"] = round(time.perf_counter() - t0, 2)
        out["sweeps"][name] = result
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


# ------------------------------------------------------------------ report
def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def capacity_table(result: dict) -> str:
    """The measured numbers beside theory, as Markdown."""
    lines = [f"criterion: {result['criterion']}", ""]
    sweeps = result["sweeps"]
    if "classical" in sweeps:
        c = sweeps["classical"]
        th = c["theory"]
        lines += ["classical Hopfield network (F = x²/2), random ±1 patterns:", "",
                  "| N | α_c estimate (half the probes retrieved) | retrieved at P = 0.12 N | "
                  "at 0.16 N |", "|---:|---:|---:|---:|"]
        for units, s in c["summary"].items():
            lines.append(f"| {units} | {_fmt(s['alpha_half'])} | {s['retrieved_at_0_12']:.2f} | "
                         f"{s['retrieved_at_0_16']:.2f} |")
        lines += ["", f"theory (AGS 1985): α_c = {th['alpha_c']} (the retrieval state vanishes, "
                  f"its overlap there {th['overlap_at_alpha_c']:.3f}); the overlap m(α) falls to "
                  f"{CRITERION} at α = {th['alpha_at_criterion']:.3f}", ""]
    if "polynomial" in sweeps:
        lines += ["Krotov–Hopfield polynomial memories, F = xⁿ/n: capacity P_c (half retrieved)",
                  "", "| n | N | P_c measured | P_c one-step theory | fitted exponent | "
                  "theory n − 1 | one-step exponent at these N |",
                  "|---:|---|---|---|---:|---:|---:|"]
        for n, s in sweeps["polynomial"]["summary"].items():
            lines.append(f"| {n} | {', '.join(map(str, s['N']))} | "
                         f"{', '.join(_fmt(x, 4) for x in s['capacity'])} | "
                         f"{', '.join(_fmt(x, 4) for x in s['one_step_capacity'])} | "
                         f"{_fmt(s['exponent'])} | {s['theory_exponent']} | "
                         f"{_fmt(s['one_step_exponent'])} |")
        lines.append("")
    if "exponential" in sweeps:
        e = sweeps["exponential"]
        multiples = sorted({r["P_over_N"] for r in e["rows"]})
        units = e["rows"][0]["N"]
        lines += [f"retrieved fraction at N = {units}, P ≫ N:", "",
                  "| Lagrangian | " + " | ".join(f"P = {k} N" for k in multiples) + " |",
                  "|---|" + "---:|" * len(multiples)]
        for name in LAGRANGIAN_LABELS:
            row = [r for r in e["rows"] if r["lagrangian"] == name]
            if row:
                lines.append(f"| {LAGRANGIAN_LABELS[name]} | "
                             + " | ".join(f"{r['retrieved']:.2f}" for r in row) + " |")
        s = e["summary"]
        caps = ", ".join(f"N = {g['N']}: {_fmt(g['capacity'], 4)}" for g in e["growth"])
        lines += ["", f"log-sum-exp capacity {caps}; ln P_c grows by {_fmt(s['rate'])} per unit "
                  f"(the theorem guarantees {s['theory_rate']:.3f} at flip {s['flip']})", ""]
    if "images" in sweeps:
        i = sweeps["images"]
        lines += [f"binarized {result['config']['dataset']} images (N = {i['N']}) against random "
                  "±1 patterns: capacity P_c", "", "| Lagrangian | images | random | random / "
                  "images |", "|---|---:|---:|---:|"]
        def cap(s: dict, source: str) -> str:
            value, (count, fraction) = s[f"{source}_capacity"], s[f"{source}_largest"]
            return _fmt(value) if value is not None else f"> {count} ({fraction:.2f} at {count})"

        for name, s in i["summary"].items():
            lines.append(f"| {LAGRANGIAN_LABELS[name]} | {cap(s, 'images')} | "
                         f"{cap(s, 'random')} | {_fmt(s['random_over_images'])} |")
        lines.append("")
    if "beta" in sweeps:
        b = sweeps["beta"]
        lines += [f"continuous softmax memory on {result['config']['dataset']} images "
                  f"(N = {b['N']}, probes with the {b['mask']}): retrieved / another pattern / "
                  "metastable mixture", "", "| P | " + " | ".join(
                      f"β = {beta:g}" for beta in result["config"]["betas"]) + " |",
                  "|---:|" + "---|" * len(result["config"]["betas"])]
        for count in sorted({r["P"] for r in b["rows"]}):
            cells = [f"{r['retrieved']:.2f} / {r['other_pattern']:.2f} / {r['mixture']:.2f}"
                     for r in b["rows"] if r["P"] == count]
            lines.append(f"| {count} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"{result['seconds']:.1f} s")
    return "\n".join(lines)
