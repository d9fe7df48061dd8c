"""User-facing errors. Each carries one clear line and maps to a process exit code.

Exit codes (stable, documented in the README):
    0 success / fits, 1 does not fit, 2 invalid input or usage, 3 runtime failure.
"""
from __future__ import annotations

from collections.abc import Mapping

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


class FieldError(InputError):
    """A value the specs cannot take, named by its FIELD (`tensor_parallel`), not by a flag or a file key.

    The library raises it knowing only the field; the caller words where the value came from: the CLI
    by its flag table (`--tp: ...`, oomplan/cli/common.py FIELD_FLAGS), a plan file by its key
    (`plan.yaml: plan.tensor_parallel: ...`, `in_file`). `str()` is the line for the Python API.
    """

    def __init__(self, field: str, detail: str, file: str | None = None, key_prefix: str = "") -> None:
        self.field, self.detail, self.file, self.key_prefix = field, detail, file, key_prefix
        super().__init__(self.line())

    def line(self, flags: Mapping[str, str] | None = None) -> str:
        """One line: from a file, '<file>: <key>: detail'; else '<flag or field>: detail' (the field is
        left out when the detail already starts with it and no flag is known)."""
        if self.file is not None:
            return f"{self.file}: {self.key_prefix}{self.field}: {self.detail}"
        name = (flags or {}).get(self.field)
        if name is None and self.detail.startswith(self.field):
            return self.detail
        return f"{name or self.field}: {self.detail}"

    def in_file(self, file: str, key_prefix: str = "") -> FieldError:
        """The same error, worded as the key `key_prefix + field` of `file` (a plan file's `plan.`)."""
        return FieldError(self.field, self.detail, file, key_prefix)


class ProfileNotFoundError(InputError):
    """A model or GPU name that matches no profile and no path."""


class UnknownFamilyError(InputError):
    """A config whose model_type oomplan has no family for: refused (exit 2), unless the CLI counts it with
    transformers (oomplan/probe/hf_meta.py). Carries the parsed config and where it came from."""

    def __init__(self, message: str, raw: dict, name: str, source: str, model_type: str, dtype: str) -> None:
        super().__init__(message)
        self.raw, self.name, self.source = raw, name, source
        self.model_type, self.dtype = model_type, dtype  # dtype: the checkpoint's (torch_dtype), as oomplan names it


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
