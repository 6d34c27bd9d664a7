"""Run `downvote` commands in this process, exactly as `main()` runs them for a user.

Output, exit code and one-line errors are those of the real entry point; only the process is
saved (about a second and a half of imports per command). Commands that need a process of their
own (`serve`, signals, replicas) use `tests.support.processes`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.cli import main
from tests.support.processes import ROOT


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved


def run_cli(env: dict[str, str], *args: str, cwd: Path = ROOT, input: str = "") -> Ran:
    """`downvote ARGS` with exactly `env` as its environment, run from `cwd`, reading `input`
    as what the user types."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with (
        _environment(env),
        contextlib.chdir(cwd),
        _stdin(input),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    return Ran(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())
