"""The ``hamixer`` command line.

Every module of :mod:`hamixer.cli` but ``main`` and ``flags`` is one sub-command: it defines
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy
dependencies inside ``run`` so that ``hamixer --help`` stays fast.

Errors that are the user's input (:class:`hamixer.errors.HamixerError`, a missing file, a
bad value) print one line to stderr and exit with status 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from ..errors import HamixerError, Interrupted
from ..provenance import set_command_line
from ..version import __version__

#: Modules of the package that are not commands.
_NOT_COMMANDS = ("main", "flags")


def _command_modules() -> list:
    from .. import cli

    mods = [importlib.import_module(f"{cli.__name__}.{m.name}")
            for m in pkgutil.iter_modules(cli.__path__)
            if not m.name.startswith("_") and m.name not in _NOT_COMMANDS]
    return sorted(mods, key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hamixer",
        description="Hierarchical associative memory and the Mixer family it generates.",
    )
    parser.add_argument("--version", action="version", version=f"hamixer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run, command_parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user's error is one line on stderr and exit status 2 (with
    ``HAMIXER_DEBUG=1``, the traceback of any error instead)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before a command runs (it says its own name otherwise)
        if os.environ.get("HAMIXER_DEBUG"):
            raise
        print("hamixer: stopped (interrupted)", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # say it with the usage of the command it was given to
        (getattr(args, "command_parser", None) or parser).error(
            f"unrecognized arguments: {' '.join(extra)}")
    set_command_line(argv)  # recorded next to results (command.txt, sweep.json, report)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = bool(os.environ.get("HAMIXER_DEBUG"))
    try:
        return int(args.func(args) or 0)
    except Interrupted as err:  # a stop asked for (a signal), with the state saved
        if debug:
            raise
        print(f"hamixer {args.command}: stopped: {err}", file=sys.stderr)
        return err.exit_code
    except HamixerError as err:
        if debug:
            raise
        print(f"hamixer {args.command}: error: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as err:
        if debug:
            raise
        print(f"hamixer {args.command}: error: {err.strerror or err}: {err.filename}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"hamixer {args.command}: stopped (interrupted)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
