"""Errors that the command line turns into a one-line message and a non-zero exit."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HamixerError(Exception):
    """Base class for every error that is the user's input, not a bug."""


class ConfigError(HamixerError, ValueError):
    """An unknown model name, an unknown keyword argument, or a value out of range."""


class Interrupted(HamixerError):
    """A run stopped by a signal after saving its state; the exit status is 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


def closest(word: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``"; did you mean: a, b?"`` for the closest valid names, or ``""``."""
    matches = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    return f"; did you mean: {', '.join(matches)}?" if matches else ""
