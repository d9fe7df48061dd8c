"""The registry proper: data rows joined with layouts, looked up by name, use and alias."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from oomplan.errors import FieldError
from oomplan.formats import fp4, fp8, integer, nf4, plain  # noqa: F401  (each registers its layouts)
from oomplan.formats.base import LAYOUTS, EngineSpelling, FormatRow, Grade, NumberFormat, Use

DATA = Path(__file__).resolve().parent.parent / "data" / "formats.yaml"
AUTO = "auto"  # the checkpoint's own format: a plan keyword, not a format


@lru_cache(maxsize=1)
def registry() -> dict[str, NumberFormat]:
    raw = yaml.load(DATA.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 8x faster
    out: dict[str, NumberFormat] = {}
    for name, fields in raw["formats"].items():
        row = shipped_row(fields)
        if row.layout not in LAYOUTS:
            raise ValueError(f"{DATA}: format {name!r} names layout {row.layout!r}, which no module registers")
        out[name] = NumberFormat(name, row, LAYOUTS[row.layout](fields))
    return out


def shipped_row(fields: dict[str, Any]) -> FormatRow:
    """A row of the shipped formats.yaml, built without pydantic validation: building the validators of three
    models and checking the file on every start was a tenth of a command's start-up (issue 16). The file is ours
    and tests/unit/test_formats.py validates every row with FormatRow.model_validate and compares (extra keys,
    types, ranges), so a bad edit fails the tests, never a user."""

    def tuples(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    def grade(data: Any) -> Grade | None:
        return None if data is None else Grade.model_construct(**{k: tuples(v) for k, v in data.items()})

    engines = {e: EngineSpelling.model_construct(**{k: tuples(v) for k, v in spelling.items()})
               for e, spelling in (fields.get("engines") or {}).items()}
    top = {k: tuples(v) for k, v in fields.items() if k not in ("weights", "kv", "engines")}
    return FormatRow.model_construct(**top, weights=grade(fields.get("weights")), kv=grade(fields.get("kv")), engines=engines)


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


FIELDS: dict[str, str] = {"weights": "weights", "kv": "kv_dtype"}  # the Plan field each use sets


def require(name: str, use: Use, field: str | None = None) -> str:
    """The canonical format name, or a FieldError naming the field (Plan's `weights` / `kv_dtype`, or
    `field`, e.g. `component_weights`) and what is accepted."""
    key = canonical(name, use)
    if key != AUTO and key not in format_names(use):
        raise FieldError(field or FIELDS[use], f"{name!r} is not accepted; use one of {', '.join((AUTO,) + format_names(use))}")
    return key
