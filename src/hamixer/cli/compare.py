"""``hamixer compare``: train several models on one dataset under the same budget; tabulate."""

from __future__ import annotations

import argparse

NAME = "compare"
HELP = ("train models with the same seed, data order and budget; write results.md, "
        "results.json and curves.png")
DEFAULT_MODELS = "vanillamixer,paramixer,symmixer,asymmixer"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._launcher import add_launcher_arguments
    from .flags import add_config_arguments, add_jobs_argument

    p.add_argument("--models", default=DEFAULT_MODELS,
                   help="comma-separated names or families (sized for the dataset) "
                        f"(default {DEFAULT_MODELS})")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (mean ± std)")
    p.add_argument("--n-iters", default=None, metavar="N,...",
                   help="the n_iter study: train every model with each block applied n times "
                        "(shared weights), for each n, e.g. 1,2,3; the table adds, for the "
                        "models with an energy, how many applications lowered it")
    p.add_argument("--out", "--output", default=None,
                   help="output directory (default runs/compare-DATASET; timm: --output)")
    add_jobs_argument(p)
    add_config_arguments(p, compare=True)
    add_launcher_arguments(p, plan=True)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..experiments.compare import run_compare
    from ..provenance import command_line
    from ..runs import COMPARISON, COMPARISON_TABLE, CURVES_PLOT
    from ._launcher import plan_launcher
    from .flags import (
        check_jobs,
        config_from_args,
        finish,
        parse_seeds,
        positive_ints,
        resolve_model_name,
    )

    seeds = parse_seeds(args.seeds)
    jobs = check_jobs(args.jobs)
    n_iters = positive_ints(args.n_iters, "--n-iters") if args.n_iters is not None else None
    base = config_from_args(args)
    if n_iters and "n_iter" in base.model_kwargs:
        raise ConfigError("give n_iter either in --model-kwargs or as --n-iters, not both")
    models = [resolve_model_name(m.strip(), base.dataset) for m in args.models.split(",")
              if m.strip()]
    if not models or len(set(models)) != len(models):
        raise ConfigError(f"--models must be distinct names, got {args.models!r}")
    from ..models.registry import model_args

    for m in models:  # fail on a bad name or argument before training anything
        for n in n_iters or [None]:
            model_args(m, **base.model_kwargs, **({} if n is None else {"n_iter": n}))
    out = Path(args.out or f"runs/compare-{base.dataset}")
    print(f"compare {', '.join(models)} on {base.dataset}: {base.epochs} epochs, batch "
          f"{base.batch_size}, seeds {', '.join(map(str, seeds))}"
          + (f", n_iter {', '.join(map(str, n_iters))}" if n_iters else "") + f" -> {out}")
    if base.model_kwargs.get("init") == "symmetric":
        from ..models.registry import has_free_mlps

        tied = [m for m in models if not has_free_mlps(m)]
        if tied:
            print(f"--init symmetric applies to free MLPs only; {', '.join(tied)} start as "
                  "usual")
    launcher = plan_launcher(args, out, "compare")
    res = run_compare(base, models, seeds, out, symmetry=not args.no_symmetry,
                      command=command_line(), jobs=jobs, n_iters=n_iters,
                      launcher=launcher)
    if res is None:  # submitted, not waited for
        return 0
    finish(out, res["table"], (COMPARISON_TABLE, COMPARISON, CURVES_PLOT))
    return 0
