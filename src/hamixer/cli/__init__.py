"""The ``hamixer`` command line: :func:`main`, the shared flags, one module per command."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
