"""What produced a result: the command line and the software versions, recorded with outputs.

Every command that writes a run directory records ``command.txt`` (the exact ``hamixer ...``
line) so that ``hamixer report`` can print how each table and plot was made.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

#: The ``hamixer`` command line being run (set by :func:`hamixer.cli.main`).
_COMMAND: list[str] | None = None


def set_command_line(argv: Sequence[str] | None) -> None:
    global _COMMAND
    _COMMAND = list(sys.argv[1:] if argv is None else argv)


def command_line() -> str | None:
    """``hamixer ARGS...`` quoted for a shell, or None outside the CLI."""
    return None if _COMMAND is None else shlex.join(["hamixer", *_COMMAND])


def record_command(out: str | os.PathLike) -> None:
    """Write ``command.txt`` into ``out`` (no-op outside the CLI)."""
    from .io import write_text

    cmd = command_line()
    if cmd is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_text(Path(out) / "command.txt", cmd + "\n")


def read_command(run_dir: str | os.PathLike) -> str | None:
    path = Path(run_dir) / "command.txt"
    return path.read_text().strip() if path.is_file() else None


def versions() -> dict[str, str]:
    """Versions of python, torch, timm, numpy and hamixer in this process."""
    import platform

    import numpy as np
    import timm
    import torch

    from .version import __version__

    return {"hamixer": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "numpy": np.__version__, "python": platform.python_version()}
