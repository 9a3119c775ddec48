"""``hamixer sweep``: AsymMixer across the symmetry-breaking penalty λ, between SymMixer and
ParaMixer, under one budget; writes sweep.json, sweep.md and sweep.png."""

from __future__ import annotations

import argparse

NAME = "sweep"
HELP = ("train AsymMixer at each λ plus SymMixer and ParaMixer (same seed, data order and "
        "budget); write sweep.json, sweep.md and sweep.png")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..train.cli_args import add_config_arguments
    from ..train.sweep import DEFAULT_LAMBDAS

    grid = ",".join(f"{x:g}" for x in DEFAULT_LAMBDAS)
    p.add_argument("--lambdas", default=grid, help=f"comma-separated λ >= 0 (default {grid})")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (error bars over seeds)")
    p.add_argument("--no-references", action="store_true",
                   help="skip the SymMixer and ParaMixer reference runs")
    p.add_argument("--out", default=None, help="output directory (default runs/sweep-DATASET)")
    add_config_arguments(p, compare=True)


def _lambdas(text: str) -> list[float]:
    from ..errors import ConfigError

    try:
        lams = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--lambdas must be comma-separated numbers, got {text!r}") from None
    if not lams or len(set(lams)) != len(lams) or any(not (x >= 0) for x in lams):
        raise ConfigError(f"--lambdas must be distinct numbers >= 0, got {text!r}")
    return lams


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..provenance import command_line, record_command
    from ..train.cli_args import config_from_args
    from ..train.sweep import run_sweep
    from .compare import _seeds

    lambdas = _lambdas(args.lambdas)
    seeds = _seeds(args.seeds)
    base = config_from_args(args)
    if "init" in base.model_kwargs:
        raise ConfigError("--init does not apply to a sweep (AsymMixer and SymMixer are tied)")
    out = Path(args.out or f"runs/sweep-{base.dataset}")
    print(f"sweep λ = {', '.join(f'{x:g}' for x in lambdas)} on {base.dataset}: {base.epochs} "
          f"epochs, batch {base.batch_size}, seeds {', '.join(map(str, seeds))} -> {out}")
    res = run_sweep(base, lambdas, seeds, out, references=not args.no_references,
                    symmetry=not args.no_symmetry, command=command_line())
    record_command(out)
    print()
    print(res["table"])
    print(f"\nwrote {out / 'sweep.json'}, {out / 'sweep.md'}, {out / 'sweep.png'}")
    return 0
