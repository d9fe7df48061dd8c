"""The registry proper: data rows joined with layouts, looked up by name, use and alias."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from oomplan.errors import InputError
from oomplan.formats import fp4, fp8, integer, nf4, plain  # noqa: F401  (each registers its layouts)
from oomplan.formats.base import LAYOUTS, FormatRow, NumberFormat, Use

DATA = Path(__file__).resolve().parent.parent / "data" / "formats.yaml"
AUTO = "auto"  # the checkpoint's own format: a plan keyword, not a format


@lru_cache(maxsize=1)
def registry() -> dict[str, NumberFormat]:
    raw = yaml.load(DATA.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 8x faster
    out: dict[str, NumberFormat] = {}
    for name, fields in raw["formats"].items():
        row = FormatRow(**fields)
        if row.layout not in LAYOUTS:
            raise ValueError(f"{DATA}: format {name!r} names layout {row.layout!r}, which no module registers")
        out[name] = NumberFormat(name, row, LAYOUTS[row.layout](fields))
    return out


def get(name: str) -> NumberFormat:
    try:
        return registry()[name]
    except KeyError:
        raise ValueError(f"unknown number format {name!r}") from None


def format_names(use: Use) -> tuple[str, ...]:
    """Formats that store weights (or KV), in registry order."""
    return tuple(n for n, f in registry().items() if f.stores(use))


def searched(use: Use) -> tuple[str, ...]:
    """What fit tries besides 'auto'."""
    return tuple(n for n, f in registry().items() if f.stores(use) and f.grade(use).searched)  # type: ignore[union-attr]


@lru_cache(maxsize=2)
def aliases(use: Use) -> dict[str, str]:
    """Spellings users type -> the format name."""
    return {a: n for n, f in registry().items() if f.stores(use) for a in f.grade(use).aliases}  # type: ignore[union-attr]


def canonical(name: str, use: Use) -> str:
    """'bfloat16' -> 'bf16', 'int4' -> 'awq' (weights); lower-cased; unknown names pass through (validation refuses)."""
    key = name.strip().lower()
    return aliases(use).get(key, key)


def require(name: str, use: Use, flag: str) -> str:
    """The canonical format name, or an InputError naming the flag and what is accepted."""
    key = canonical(name, use)
    if key != AUTO and key not in format_names(use):
        raise InputError(f"{flag}: {name!r} is not accepted; use one of {', '.join((AUTO,) + format_names(use))}")
    return key
