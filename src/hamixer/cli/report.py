"""``hamixer report``: one Markdown report from compare, sweep, training and dynamics runs."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = ("one Markdown report (tables, PNGs, the commands that made them, versions) from run "
        "directories of compare, sweep, train and dynamics")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="report.md",
                   help="the Markdown file; figures go to <stem>_figures/ beside it")
    p.add_argument("--title", default="hamixer report")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..experiments.report import build_report
    from ..io import write_text

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the report's file, e.g. "
                          f"{out / 'report.md'}")
    text = build_report([Path(d) for d in args.run_dirs], out, args.title)
    write_text(out, text)
    print(f"wrote {out}")
    return 0
