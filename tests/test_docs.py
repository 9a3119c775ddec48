"""The docs quote the tree and the command line; neither may drift from what is there.

* Every repository path that README.md, docs/*.md, benchmarks/README.md and results/README.md
  name under src/, tests/, benchmarks/, results/, docs/ or examples/ exists (relative to the
  repository or, for a link, to the page); a glob matches something; ``file.py::test_x``
  names a test that the file defines; a path on a line that names a commit
  (``git archive 4173ffe src/...``) exists in that commit.
* Every ``hamixer ...`` command they quote (in a code block or inline) parses with the
  command line's own parser, :func:`hamixer.cli.main.build_parser`; nothing is run. One
  that writes a committed ``results/`` folder (``--out results/X``) is the command recorded
  in ``results/X/command.txt``.

How a quoted command is read, as a shell would: ``\\`` continues the line, ``&&``, ``;``
and ``|`` separate commands, ``#`` starts a comment, and environment assignments in front
(``HAMIXER_DATA_DIR=data``, ``OMP_NUM_THREADS=1``) are dropped. Placeholders in capitals
(``RUN``, ``PATH``, ``DIR``) stand where a path goes and parse as the string they are; an
ellipsis (``...`` or ``…``: "more of the same") is dropped; the optional parts of a synopsis
(``[--json] [--plot [FILE.png]]``) are parsed as if given. Two kinds of quote are not command
lines: the command line's own output (``hamixer train: error: ...``: the command word ends
in a colon) is skipped, and a quote that only names a command or its flags in prose
(``hamixer report``, ``hamixer memory train``, ``hamixer compare --n-iters``) must name a
command (and action) that exists and flags that it takes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from hamixer.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                ROOT / "benchmarks" / "README.md", ROOT / "results" / "README.md"])

_FENCE = re.compile(r"^\s*(```|~~~)")
_PATH = re.compile(r"(?<![\w/.-])((?:\.\./|\./)*(?:src|tests|benchmarks|results|docs|examples)/"
                   r"[\w.*/+-]*[\w*/])(?:::(\w+))?")
_AT_COMMIT = re.compile(r"\bgit (?:archive|show|checkout|diff) ([0-9a-f]{7,40})\b")
_INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_HAMIXER = ("hamixer", ".venv/bin/hamixer", "$(BIN)/hamixer")
_ELLIPSIS = ("...", "…")


def _lines(page: Path) -> list[tuple[int, str, bool]]:
    """(line number, text, whether it is inside a fenced code block) of ``page``."""
    out, fenced = [], False
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        out.append((n, line, fenced))
    return out


def _where(page: Path, n: int) -> str:
    return f"{page.relative_to(ROOT)}:{n}"


def quoted_paths() -> list[tuple[str, Path, str, str | None, str | None]]:
    """(where, page, path, test name or None, commit or None) for every quoted path."""
    found = []
    for page in PAGES:
        for n, line, _ in _lines(page):
            commit = _AT_COMMIT.search(line)
            for m in _PATH.finditer(line):
                found.append((_where(page, n), page, m.group(1), m.group(2),
                              commit.group(1) if commit else None))
    return found


def _code_commands(lines: list[tuple[int, str, bool]]) -> list[tuple[int, str]]:
    """Shell lines of the fenced blocks, continuations joined."""
    out: list[tuple[int, str]] = []
    start, parts = 0, []
    for n, line, fenced in lines:
        if not fenced:
            continue
        if not parts:
            start = n
        text = line.rstrip()
        parts.append(text.removesuffix("\\"))
        if not text.endswith("\\"):
            out.append((start, " ".join(parts)))
            parts = []
    return out


def _inline_commands(lines: list[tuple[int, str, bool]]) -> list[tuple[int, str]]:
    """Inline code spans outside the blocks (a span may run over a line break)."""
    prose = [(n, line) for n, line, fenced in lines if not fenced]
    text = "\n".join(line for _, line in prose)
    starts = [0]
    for _, line in prose:
        starts.append(starts[-1] + len(line) + 1)
    out = []
    for m in _INLINE.finditer(text):
        index = next(i for i, s in enumerate(starts) if s > m.start()) - 1
        out.append((prose[index][0], m.group(1).replace("\n", " ")))
    return out


def hamixer_argv(shell: str) -> list[list[str]]:
    """The argument lists of the ``hamixer`` commands in one shell line."""
    commands = []
    for segment in re.split(r"&&|;|\|", shell):
        try:
            words = shlex.split(segment, comments=True)
        except ValueError:  # an unbalanced quote: not a command line (prose in backticks)
            continue
        while words and (_ENV.match(words[0]) or words[0] == "$"):
            words = words[1:]
        if words[:3] == ["python", "-m", "hamixer"]:
            words = ["hamixer", *words[3:]]
        if not words or words[0] not in _HAMIXER or words[1:2] and words[1].endswith(":"):
            continue  # not hamixer, or its output quoted
        argv = [w.lstrip("[").rstrip("]") for w in words[1:] if w not in _ELLIPSIS]
        commands.append([w for w in argv if w])
    return commands


def quoted_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        lines = _lines(page)
        for n, shell in [*_code_commands(lines), *_inline_commands(lines)]:
            for argv in hamixer_argv(shell):
                found.append((_where(page, n), argv))
    return found


PATHS = quoted_paths()
COMMANDS = quoted_commands()


def _exists(page: Path, path: str) -> bool:
    for base in (ROOT, page.parent):
        target = base / path
        if "*" in path:
            if any(base.glob(path)):
                return True
        elif target.exists():
            return True
    return False


def _in_commit(commit: str, path: str) -> bool:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: a path at a named commit cannot be looked up")
    proc = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}:{path}"],
                          capture_output=True)
    return proc.returncode == 0


def test_the_docs_quote_paths_and_commands():
    """The collection itself: the pages are found and quote what the tests below check."""
    assert len(PATHS) > 50 and len(COMMANDS) > 50
    assert any(argv[:1] == ["compare"] for _, argv in COMMANDS)


@pytest.mark.parametrize("where,page,path,test,commit", PATHS, ids=[p[0] for p in PATHS])
def test_a_quoted_path_exists(where, page, path, test, commit):
    if commit:
        assert _in_commit(commit, path), f"{where}: {path} is not in commit {commit}"
        return
    assert _exists(page, path), f"{where}: {path} does not exist"
    if test:
        target = next(b / path for b in (ROOT, page.parent) if (b / path).is_file())
        assert re.search(rf"^\s*(async )?def {test}\b", target.read_text(), re.M), (
            f"{where}: {path} defines no {test}")


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """None if ``argv`` parses (``--help`` and ``--version`` stop with 0), else the error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as stop:
            return None if stop.code == 0 else err.getvalue()
    return None


def _names_only(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """Whether ``argv`` only names a command, its actions and flags, all of which exist."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if not argv or argv[0] not in commands.choices:
        return False
    command = commands.choices[argv[0]]
    actions = {c for a in command._actions if not a.option_strings and a.choices
               for c in a.choices}
    return all(w in command._option_string_actions if w.startswith("-") else w in actions
               for w in argv[1:])


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_quoted_command_parses(parser, where, argv):
    error = _parse(parser, argv)
    assert error is None or _names_only(parser, argv), (
        f"{where}: hamixer {shlex.join(argv)}\n{error}")


def test_a_misspelt_command_or_flag_is_caught(parser):
    """The checks above can fail: a wrong flag, value, command or action does not parse."""
    for argv in (["train", "--epohcs", "2"], ["train", "--epochs", "two"], ["trian"],
                 ["memory", "trian"], ["compare", "--n-iter"]):
        assert _parse(parser, argv) is not None and not _names_only(parser, argv), argv
    assert _names_only(parser, ["memory", "train"])
    assert hamixer_argv("HAMIXER_DATA_DIR=data OMP_NUM_THREADS=1 hamixer train --epochs 2 "
                        "# two") == [["train", "--epochs", "2"]]
    assert hamixer_argv("hamixer train: error: bad") == []


RESULT_COMMANDS = [(where, argv) for where, argv in COMMANDS if "--out" in argv[:-1]
                   and (ROOT / argv[argv.index("--out") + 1] / "command.txt").is_file()]


def test_the_docs_quote_the_commands_of_the_committed_results():
    assert len(RESULT_COMMANDS) >= 5  # README's findings and docs/results.md


@pytest.mark.parametrize("where,argv", RESULT_COMMANDS, ids=[c[0] for c in RESULT_COMMANDS])
def test_a_quoted_command_of_a_result_is_the_recorded_one(where, argv):
    """A command quoted with ``--out results/X`` is the one ``results/X/command.txt``
    records, flag for flag (what the numbers beside it came from)."""
    recorded = shlex.split((ROOT / argv[argv.index("--out") + 1] / "command.txt").read_text())
    assert ["hamixer", *argv] == recorded, f"{where}: the run was\n{shlex.join(recorded)}"
