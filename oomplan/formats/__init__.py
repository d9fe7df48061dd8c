"""The number-format registry: weights and KV caches alike, one data row each (oomplan/data/formats.yaml)
joined with a byte layout (a module of this package). CLI choices, plan literals, quality grades and the
engines' spellings all come from here.
"""
from __future__ import annotations

from oomplan.formats.base import EngineSpelling, Grade, NumberFormat, Use
from oomplan.formats.registry import AUTO, aliases, canonical, format_names, get, registry, require, searched
from oomplan.formats.spellings import (
    by_engine_name, engine_formats, engine_kv_names, gguf_type, plan_kv_table, served_weights,
)

__all__ = ["AUTO", "EngineSpelling", "Grade", "NumberFormat", "Use", "aliases", "by_engine_name", "canonical",
           "engine_formats", "engine_kv_names", "format_names", "get", "gguf_type", "plan_kv_table", "registry",
           "require", "searched", "served_weights"]
