"""``hamixer dynamics``: continuous dynamics of a Mixer block, symmetric vs symmetry-broken."""

from __future__ import annotations

import argparse

NAME = "dynamics"
HELP = "integrate dx/dt = Tok(LN x) + Ch(LN x) - x for a small SymMixer and AsymMixer block"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokens", type=int, default=3, help="S of the trajectory runs")
    p.add_argument("--channels", type=int, default=4, help="C of the trajectory runs")
    p.add_argument("--starts", type=int, default=4, help="random initial states")
    p.add_argument("--method", default="dopri5",
                   help="ODE solver: dopri5, bosh3, adaptive_heun (adaptive) or euler, "
                        "midpoint, rk4 (fixed step, see --step-size)")
    p.add_argument("--step-size", type=float, default=0.02, help="step of fixed-step solvers")
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--atol", type=float, default=1e-8)
    p.add_argument("--t-max", type=float, default=20.0, help="integrate over [0, t-max]")
    p.add_argument("--points", type=int, default=401, help="times reported in [0, t-max]")
    p.add_argument("--weight-scale", type=float, default=1.5,
                   help="tied weights: Xavier-uniform times this")
    p.add_argument("--asym-scale", type=float, default=1.5,
                   help="breaking matrices W~: Xavier-uniform times this")
    p.add_argument("--eps", type=float, default=1e-6, help="LayerNorm ε of the S×C runs")
    p.add_argument("--landscape-eps", type=float, default=0.5,
                   help="LayerNorm ε of the S·C = 2 landscape (a LayerNorm over two units is "
                        "a step function of x1 − x2 unless ε is sizeable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from ..errors import ConfigError
    from ..experiments.dynamics import DynamicsConfig, run_dynamics
    from ..ham.dynamics import METHODS
    from ..runs import refuse_existing_run

    for name in ("tokens", "channels", "starts", "points"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.points < 2:
        raise ConfigError("--points must be >= 2")
    for name in ("step_size", "rtol", "atol", "t_max", "eps", "landscape_eps"):
        if not getattr(args, name) > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.weight_scale < 0 or args.asym_scale < 0:
        raise ConfigError("--weight-scale and --asym-scale must be >= 0")
    if args.method not in METHODS:
        raise ConfigError(f"unknown --method {args.method!r}; choose one of {', '.join(METHODS)}")
    refuse_existing_run(args.out)
    cfg = DynamicsConfig(**{f.name: getattr(args, f.name) for f in fields(DynamicsConfig)})
    summary = run_dynamics(cfg)
    from ..provenance import record_command

    record_command(args.out)
    for label, r in summary.items():
        print(f"{label}: energy {r['energy_start']:.4f} -> {r['energy_end']:.4f}, "
              f"largest increase between reported times {r['max_increase']:.2e} "
              f"({'monotone' if r['monotone'] else 'NOT monotone'})")
    print(f"wrote {args.out}")
    return 0
