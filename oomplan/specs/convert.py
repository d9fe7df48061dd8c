"""The one converter from user input to a spec: every pydantic model built from a file, a flag or a
value derived from them is built here, so a ValidationError never escapes; it becomes one line naming
the file or flag, the field, the value (sanitised, shortened) and what is accepted.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from oomplan.errors import InputError, did_you_mean
from oomplan.text import shorten

M = TypeVar("M", bound=BaseModel)


def _value(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return f"a {type(value).__name__}"
    return shorten(repr(value), 80)


def _expected(err: Mapping[str, Any]) -> list[str]:
    """The accepted values of a Literal field, from pydantic's "'a', 'b' or 'c'"."""
    return re.findall(r"'((?:[^'\\]|\\.)*)'", str(err.get("ctx", {}).get("expected", "")))


def error_line(exc: ValidationError, where: str | None = None, flags: Mapping[str, str] | None = None,
               known: tuple[str, ...] = (), echo: bool = True) -> str:
    """The first error of a ValidationError as one line (an unknown key first: a typo'd key is also why
    a required field looks missing). With a `flags` entry for the field the line names the flag;
    `echo=False` never repeats a key or value from the input (for files that may not be ours)."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(p) for p in err["loc"]]
    field = ".".join(loc) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input")
    flag = (flags.get(loc[0], loc[0] if where is None else None) if flags is not None else None) if loc else None
    if flag and where is None:
        if isinstance(value, float) and not math.isfinite(value):
            return f"{flag}: {value!r} is invalid: it must be a finite number"
        if err["type"] == "literal_error":  # worded as every choice flag is: formats.require, the training choices
            return f"{flag}: {_value(value)} is not accepted; use one of {', '.join(_expected(err))}"
        return f"{flag}: {_value(value)} is invalid: {msg}"
    prefix = f"{shorten(where)}: " if where else ""
    if flag:
        prefix += f"{flag}: "
    if not loc and msg.startswith("field "):  # a model-level check that names its field
        return f"{prefix}{msg}"
    if err["type"] == "extra_forbidden":
        if not echo:
            return f"{prefix}an unknown field"
        return f"{prefix}unknown field {shorten(field, 80)!r}{did_you_mean(loc[-1], list(known))}"
    if err["type"] == "missing":
        return f"{prefix}missing required field {field!r}"
    if not echo:
        return f"{prefix}field {field!r}: {msg}"
    return f"{prefix}field {field!r}: {msg} (got {_value(value)})"


def build(cls: type[M], data: Any, where: str | None = None, flags: Mapping[str, str] | None = None,
          known: tuple[str, ...] = (), echo: bool = True) -> M:
    """cls.model_validate(data), or InputError with error_line()."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InputError(error_line(exc, where, flags, known or tuple(cls.model_fields), echo)) from None
    except (RecursionError, OverflowError, MemoryError) as exc:
        raise InputError(f"{shorten(where or cls.__name__)}: value out of range ({type(exc).__name__})") from None


def build_file(cls: type[M], data: Any, path: object, what: str, known: tuple[str, ...] = ()) -> M:
    """A spec from one of our files: a mapping at the top level; a file with none of the spec's keys is
    refused without echoing any of it (it may be /etc/shadow, given by mistake or malice)."""
    where = str(path)
    if not isinstance(data, dict):
        raise InputError(f"{shorten(where)}: expected a {what} mapping at the top level, got {type(data).__name__}")
    fields = tuple(cls.model_fields)
    ours = any(isinstance(k, str) and k in fields for k in data)
    if not ours:
        raise InputError(f"{shorten(where)}: not a {what} (none of its keys is a {what} field, e.g. {', '.join(fields[:3])})")
    return build(cls, data, where, None, known or fields)
