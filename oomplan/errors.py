"""User-facing errors. Each carries one clear line and maps to a process exit code.

Exit codes (stable, documented in the README):
    0 success / fits, 1 does not fit, 2 invalid input or usage, 3 runtime failure.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_DOES_NOT_FIT = 1
EXIT_BAD_INPUT = 2
EXIT_RUNTIME = 3


class OomplanError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""

    exit_code = EXIT_BAD_INPUT


class InputError(OomplanError):
    """Bad input: a flag, file or field has a value we cannot accept (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class ProfileNotFoundError(InputError):
    """A model or GPU name that matches no profile and no path."""


class RuntimeFailure(OomplanError):
    """Something outside the user's input failed: no driver, a probe that could not run (exit 3)."""

    exit_code = EXIT_RUNTIME


def did_you_mean(value: str, choices: list[str] | tuple[str, ...], limit: int = 3) -> str:
    """' (did you mean: a, b?)' for the closest choices, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(value.lower(), [c.lower() for c in choices], n=limit, cutoff=0.6)
    by_lower = {c.lower(): c for c in choices}
    if not close:
        return ""
    return " (did you mean: " + ", ".join(by_lower[c] for c in close) + "?)"
