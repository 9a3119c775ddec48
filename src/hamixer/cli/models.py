"""``hamixer models``: the registered configurations with parameters and GMACs."""

from __future__ import annotations

import argparse
import json

NAME = "models"
HELP = "list the registered models with parameter count and GMACs at their input size"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style filter, e.g. 'symmixer_*' (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--names-only", action="store_true", help="only the names (fast)")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..models import list_models
    from ..models.summary import summarize_by_name

    names = list_models(args.pattern)
    if not names:
        raise ConfigError(f"no model matches {args.pattern!r}")
    if args.names_only:
        print("\n".join(names))
        return 0
    rows = [summarize_by_name(name).as_dict() for name in names]  # shapes only, no weights
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(rows))
    return 0


def format_table(rows: list[dict]) -> str:
    lines = ["| model | params (M) | GMACs | input |", "|---|---:|---:|---|"]
    for r in rows:
        c, h, w = r["input_size"]
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.2f} | {r['gmacs']:.3f} | {c}×{h}×{w} |")
    return "\n".join(lines)
