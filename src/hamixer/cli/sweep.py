"""``hamixer sweep``: AsymMixer across the symmetry-breaking penalty λ, between SymMixer and
ParaMixer, under one budget; writes sweep.json, sweep.md and sweep.png."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .flags import add_jobs_argument, check_jobs, comma_list, finish, parse_seeds

NAME = "sweep"
HELP = ("train AsymMixer (or AsymFormer) at each λ plus its tied and free references (same "
        "seed, data order and budget); write sweep.json, sweep.md and sweep.png")
#: ``hamixer.models.mixer.BREAKING_INITS`` for the help, which must not import torch (a test
#: checks the two agree; ``run`` checks values against the models' own).
HELP_BREAKING_INITS = ("xavier", "zero", "free")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..experiments.sweep import DEFAULT_LAMBDAS, SWEEP_FAMILIES
    from ._launcher import add_launcher_arguments
    from .flags import add_config_arguments

    grid = ",".join(f"{x:g}" for x in DEFAULT_LAMBDAS)
    refs = "; ".join(f"{name}: {','.join(f.default_references)} of {','.join(f.references)}"
                     for name, f in SWEEP_FAMILIES.items())
    p.add_argument("--family", default="mixer", choices=tuple(SWEEP_FAMILIES),
                   help="what is swept: AsymMixer between SymMixer and ParaMixer (mixer, the "
                        "default) or AsymFormer between SymFormer and ParaFormer (former)")
    p.add_argument("--lambdas", default=grid, help=f"comma-separated λ >= 0 (default {grid})")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (error bars over seeds)")
    p.add_argument("--mid-seeds", default=None, metavar="SEEDS",
                   help="seeds for 0 < λ < 1 only (default: --seeds); the ends (λ >= 1, "
                        "λ = 0) and the references get --seeds")
    p.add_argument("--breaking-inits", default="xavier", metavar="INITS",
                   help="where W̃ starts, comma-separated from "
                        f"{', '.join(HELP_BREAKING_INITS)}; each is swept over every λ "
                        "(default xavier)")
    p.add_argument("--mid-breaking-inits", default=None, metavar="INITS",
                   help="W̃ starts for 0 < λ < 1 only (default: --breaking-inits); the ends "
                        "(λ >= 1, λ = 0) get --breaking-inits")
    p.add_argument("--references", default=None, metavar="KINDS",
                   help=f"reference runs, comma-separated (default and choices, by family: "
                        f"{refs})")
    p.add_argument("--no-references", action="store_true", help="no reference runs")
    p.add_argument("--size", default=None,
                   help="model size for every run, e.g. m4_28 (default: the dataset's)")
    add_jobs_argument(p)
    p.add_argument("--out", "--output", default=None,
                   help="output directory (default runs/sweep-DATASET; timm: --output)")
    add_config_arguments(p, compare=True)
    add_launcher_arguments(p, plan=True)


def _choices(text: str, valid: Sequence[str], flag: str) -> list[str]:
    from ..errors import ConfigError, closest

    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ConfigError(f"{flag} names nothing (valid: {', '.join(valid)})")
    for x in items:
        if x not in valid:
            raise ConfigError(f"{flag}: unknown {x!r}{closest(x, valid)} "
                              f"(valid: {', '.join(valid)})")
    if len(set(items)) != len(items):
        raise ConfigError(f"{flag} must be distinct, got {text!r}")
    return items


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..experiments.sweep import SWEEP_FAMILIES, SweepPlan, run_sweep
    from ..models.mixer import BREAKING_INITS
    from ..provenance import command_line
    from ..runs import SWEEP
    from ._launcher import plan_launcher
    from .flags import config_from_args

    family = SWEEP_FAMILIES[args.family]
    # x >= 0 is False for NaN: λ is a number >= 0
    lambdas = comma_list(args.lambdas, "--lambdas", float, "numbers >= 0", lambda x: x >= 0)
    seeds = parse_seeds(args.seeds)
    plan = SweepPlan(
        lambdas=lambdas, seeds=seeds,
        mid_seeds=(None if args.mid_seeds is None
                   else parse_seeds(args.mid_seeds, "--mid-seeds")),
        breaking_inits=_choices(args.breaking_inits, BREAKING_INITS, "--breaking-inits"),
        mid_breaking_inits=(None if args.mid_breaking_inits is None else _choices(
            args.mid_breaking_inits, BREAKING_INITS, "--mid-breaking-inits")),
        references=() if args.no_references else _choices(
            args.references or ",".join(family.default_references), list(family.references),
            "--references"))
    base = config_from_args(args)
    if "init" in base.model_kwargs:
        raise ConfigError(f"--init does not apply to a sweep ({family.asym[1]} and its tied "
                          "reference are tied)")
    if "breaking_init" in base.model_kwargs:
        raise ConfigError("set where W̃ starts with --breaking-inits, not --model-kwargs")
    jobs = check_jobs(args.jobs)
    out = Path(args.out or f"runs/sweep-{base.dataset}")
    print(f"sweep λ = {', '.join(f'{x:g}' for x in lambdas)} on {base.dataset}: {base.epochs} "
          f"epochs, batch {base.batch_size}, seeds {', '.join(map(str, seeds))} -> {out}")
    if args.size is not None:
        from ..models.registry import SIZES

        if args.size not in SIZES:
            from ..errors import closest

            raise ConfigError(f"unknown --size {args.size!r}{closest(args.size, SIZES)} "
                              f"(valid: {', '.join(SIZES)})")
    launcher = plan_launcher(args, out, "sweep")
    res = run_sweep(base, plan, out, size=args.size, symmetry=not args.no_symmetry,
                    command=command_line(), jobs=jobs, launcher=launcher,
                    family=args.family)
    if res is None:  # submitted, not waited for
        return 0
    ends = f"\n\n{res['ends']}" if res["ends"] else ""
    finish(out, res["table"] + ends, (SWEEP, "sweep.md", "sweep.png", "sweep-epochs.png"))
    return 0
