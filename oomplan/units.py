"""Units: dtype sizes, parsing human sizes ("32k", "40GiB"), formatting bytes."""
from __future__ import annotations

import math
import re
from fractions import Fraction

from oomplan.errors import InputError

GIB = 1024**3
MIB = 1024**2
KIB = 1024

# Element sizes the memory model and engines name in formulas (one definition for all of them).
FP32 = INT32 = 4
INT64 = 8
# CPU memory assumed for offloaded weights or states when --host-mem is not given: one node's.
DEFAULT_HOST_MEMORY_BYTES = 256 * GIB

# Bytes per element of the plain (unquantised) dtypes.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4,
    "bf16": 2,
    "fp16": 2,
    "fp8": 1,
    "int8": 1,
    "int4": 0.5,
}

DTYPE_ALIASES: dict[str, str] = {
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
    "float8_e4m3fn": "fp8",
}


def canonical_dtype(name: str) -> str:
    """'bfloat16' -> 'bf16'; raises InputError for an unknown dtype name."""
    key = name.strip().lower()
    key = DTYPE_ALIASES.get(key, key)
    if key not in DTYPE_BYTES:
        accepted = ", ".join(DTYPE_BYTES)
        raise InputError(f"unknown dtype {name!r}; accepted: {accepted}")
    return key


# ---------------------------------------------------------------- the one number parser
# Every numeric flag (counts, sizes, fractions, engine knobs) is parsed here: exact (fractions.Fraction, so
# "1" followed by 400 zeros is a number out of range, not float('inf')), finite, bounded, and an error
# names the flag, the value (shortened) and what is accepted. Exit 2 (InputError).

MAX_TEXT = 1000  # characters of a numeric flag value; longer is not a number anyone means
MAX_SIZE_BYTES = 2**60  # 1 EiB: no memory size oomplan plans is larger
# re.ASCII: digits are 0-9 (Python's \d takes '１２' and '١٢' too, which typer's int flags refuse)
_NUMBER = re.compile(r"\s*([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d{1,4}))?\s*", re.ASCII)


def _shown(text: object) -> str:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        s = repr(text)
        return s if len(s) <= 40 else f"{s[:20]}...({len(s)} digits)"
    s = str(text)
    s = s if len(s) <= 60 else s[:57] + "..."
    return repr(s.encode("ascii", "backslashreplace").decode())


def _exact(text: str) -> Fraction | None:
    """A decimal literal (sign, digits, point, exponent) as an exact Fraction, or None."""
    if len(text) > MAX_TEXT:
        return None
    match = _NUMBER.fullmatch(text)
    if not match:
        return None
    sign, digits, exponent = match.groups()
    value = Fraction(digits + ("0" if digits.endswith(".") else ""))
    if exponent:
        value *= Fraction(10) ** int(exponent)
    return -value if sign == "-" else value


def _bounded(value: Fraction | int | float, shown: str, flag: str, low, high, integer: bool) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{flag}: {shown} is invalid: it must be a finite number")
    if integer and value != int(value):
        raise InputError(f"{flag}: {shown} is not a whole number")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "" if low is None else _fmt(low)
        hi = "" if high is None else _fmt(high)
        raise InputError(f"{flag}: {shown} is out of range; accepted: {lo}..{hi}")
    return int(value) if integer else float(value)


def _fmt(x) -> str:
    return str(int(x)) if x == int(x) else f"{float(x):g}"


def parse_number(text: str | int | float, flag: str, low: float | None = None, high: float | None = None,
                 integer: bool = False) -> int | float:
    """A plain number ('8', '0.9', '1e3'): finite, within [low, high], whole when `integer`."""
    if isinstance(text, bool):
        raise InputError(f"{flag}: {text!r} is not a number")
    if isinstance(text, (int, float)):
        return _bounded(text, _shown(text), flag, low, high, integer)
    value = _exact(str(text))
    if value is None:
        raise InputError(f"{flag}: {_shown(text)} is not a {'whole number' if integer else 'number'}")
    return _bounded(value, _shown(str(text).strip()), flag, low, high, integer)


_COUNT_SUFFIX = {"": 1, "k": 1024, "m": 1024**2}


def parse_count(text: str | int, flag: str, minimum: int = 1, maximum: int = 2**31) -> int:
    """Parse a token count like '32k', '32K', '128k', '32768' (k = 1024, m = 1024^2)."""
    if isinstance(text, bool):
        raise InputError(f"{flag}: {text!r} is not a count")
    if isinstance(text, int):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", str(text), re.ASCII) if len(str(text)) <= MAX_TEXT else None
        if not match:
            raise InputError(
                f"{flag}: {_shown(text)} is not a count; use an integer with an optional k (x1024) or m suffix, e.g. 32k or 32768"
            )
        number, suffix = match.groups()
        scaled = Fraction(number) * _COUNT_SUFFIX[suffix.lower()]
        if scaled.denominator != 1:
            raise InputError(f"{flag}: {_shown(text)} is not a whole number of tokens")
        value = int(scaled)
    if value < minimum or value > maximum:
        shown = str(value) if len(str(value)) <= 40 else _shown(str(text).strip())
        raise InputError(f"{flag}: {shown} is out of range; accepted: {minimum}..{maximum}")
    return value


_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": KIB, "kb": 1000, "kib": KIB,
    "m": MIB, "mb": 1000**2, "mib": MIB,
    "g": GIB, "gb": 1000**3, "gib": GIB,
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}


def parse_bytes(text: str | float, flag: str, default_unit: str = "gib", maximum: int = MAX_SIZE_BYTES) -> int:
    """Parse '40GiB', '40 GB', '512MiB', '1.5' (in default_unit) into bytes; 0..maximum (1 EiB)."""
    if isinstance(text, bool):
        raise InputError(f"{flag}: {text!r} is not a size")
    if isinstance(text, (int, float)):
        if not math.isfinite(text):
            raise InputError(f"{flag}: {text!r} must be a finite size >= 0")
        number, unit, shown = Fraction(text), default_unit, _shown(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text), re.ASCII) if len(str(text)) <= MAX_TEXT else None
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise InputError(
                f"{flag}: {_shown(text)} is not a size; use a number with an optional unit B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB), e.g. 40GiB"
            )
        number, unit, shown = Fraction(match.group(1)), (match.group(2).lower() or default_unit), _shown(str(text).strip())
    if number < 0:
        raise InputError(f"{flag}: {shown} must be a finite size >= 0")
    value = number * _SIZE_UNITS[unit]
    if value > maximum:
        raise InputError(f"{flag}: {shown} is out of range; accepted: 0..{maximum} bytes")
    return int(round(value))


def parse_fraction(text: str | float, flag: str, low: float = 0.0, high: float = 1.0) -> float:
    """Parse '10%', '0.1' into 0.1, checked against [low, high]."""
    raw = str(text).strip()
    percent = _exact(raw[:-1]) if raw.endswith("%") else None
    value = percent / 100 if percent is not None else _exact(raw)
    if value is None or isinstance(text, bool):
        raise InputError(f"{flag}: {_shown(text)} is not a fraction; use e.g. 0.9 or 90%")
    if not (low <= value <= high):
        raise InputError(f"{flag}: {_shown(text)} is out of range; accepted: {low}..{high}")
    return float(value)


def finite_or_none(value: object) -> float | None:
    """A free-form field of a third-party file (rope_scaling.factor ...) as a finite float, or None when it is
    not one (a string, NaN, a bool, a list): such fields are read tolerantly, never crash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None


def format_bytes(num_bytes: float) -> str:
    """Human size in binary units: '37.50 GiB', '512.0 MiB'."""
    sign = "-" if num_bytes < 0 else ""
    value = abs(num_bytes)
    if value >= GIB:
        return f"{sign}{value / GIB:.2f} GiB"
    if value >= MIB:
        return f"{sign}{value / MIB:.1f} MiB"
    if value >= KIB:
        return f"{sign}{value / KIB:.1f} KiB"
    return f"{sign}{value:.0f} B"


def format_count(num: int) -> str:
    """'32768' -> '32k' when it is a whole number of k, else the plain integer."""
    if num >= 1024 and num % 1024 == 0:
        return f"{num // 1024}k"
    return str(num)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def round_up(value: int, multiple: int) -> int:
    """The least multiple of `multiple` not below `value` (a padded dimension, a block-aligned token count)."""
    return ceil_div(value, multiple) * multiple
