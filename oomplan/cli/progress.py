"""A progress spinner on stderr for slow steps (probes, large searches).

Shown only when stderr is a terminal: never in --json mode, in pipes, or in CI logs.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from collections.abc import Iterator

from rich.console import Console


def spinner_wanted(quiet: bool) -> bool:
    stream = sys.stderr
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    return not quiet and is_tty and os.environ.get("TERM") != "dumb"


@contextmanager
def spinner(message: str, quiet: bool = False) -> Iterator[None]:
    """`with spinner("probing ...", quiet=as_json):` -- a transient spinner while the block runs."""
    if not spinner_wanted(quiet):
        yield
        return
    console = Console(file=sys.stderr, highlight=False)
    with console.status(message, spinner="dots"):
        yield
