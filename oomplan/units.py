"""Units: dtype sizes, parsing human sizes ("32k", "40GiB"), formatting bytes."""
from __future__ import annotations

import math
import re

from oomplan.errors import InputError

GIB = 1024**3
MIB = 1024**2
KIB = 1024

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


_COUNT_SUFFIX = {"": 1, "k": 1024, "m": 1024**2}


def parse_count(text: str | int, flag: str, minimum: int = 1, maximum: int = 2**31) -> int:
    """Parse a token count like '32k', '32K', '128k', '32768' (k = 1024, m = 1024^2)."""
    if isinstance(text, int):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", str(text))
        if not match:
            raise InputError(
                f"{flag}: {text!r} is not a count; use an integer with an optional k (x1024) or m suffix, e.g. 32k or 32768"
            )
        number, suffix = match.groups()
        scaled = float(number) * _COUNT_SUFFIX[suffix.lower()]
        if scaled != math.floor(scaled):
            raise InputError(f"{flag}: {text!r} is not a whole number of tokens")
        value = int(scaled)
    if value < minimum or value > maximum:
        raise InputError(f"{flag}: {value} is out of range; accepted: {minimum}..{maximum}")
    return value


_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": KIB, "kb": 1000, "kib": KIB,
    "m": MIB, "mb": 1000**2, "mib": MIB,
    "g": GIB, "gb": 1000**3, "gib": GIB,
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}


def parse_bytes(text: str | float, flag: str, default_unit: str = "gib") -> int:
    """Parse '40GiB', '40 GB', '512MiB', '1.5' (in default_unit) into bytes; >= 0."""
    if isinstance(text, (int, float)):
        number, unit = float(text), default_unit
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise InputError(
                f"{flag}: {text!r} is not a size; use a number with an optional unit B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB), e.g. 40GiB"
            )
        number, unit = float(match.group(1)), (match.group(2).lower() or default_unit)
    if not math.isfinite(number) or number < 0:
        raise InputError(f"{flag}: {text!r} must be a finite size >= 0")
    return int(round(number * _SIZE_UNITS[unit]))


def parse_fraction(text: str | float, flag: str, low: float = 0.0, high: float = 1.0) -> float:
    """Parse '10%', '0.1' into 0.1, checked against [low, high]."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InputError(f"{flag}: {text!r} is not a fraction; use e.g. 0.9 or 90%") from None
    if not math.isfinite(value) or not (low <= value <= high):
        raise InputError(f"{flag}: {text!r} is out of range; accepted: {low}..{high}")
    return value


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
