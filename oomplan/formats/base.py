"""A number format: its data row (oomplan/data/formats.yaml) joined with its byte layout (a module here).

A layout turns a tensor's shape into bytes: packing, scales, zeros, blocks. Everything else about a
format (names, quality grade and source, native hardware, engine spellings) is data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol
from collections.abc import Callable

from pydantic import Field

from oomplan.specs.base import Strict

Use = Literal["weights", "kv"]


class Layout(Protocol):
    """Bytes of tensors stored in one format; a layout without KV (or weight) support raises ValueError."""

    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        """One [rows, cols] (out, in) weight matrix, scales and zeros included."""
        ...

    def kv_vector_bytes(self, num_values: int) -> int:
        """`num_values` cached values of one token (one K or V head, or one latent)."""
        ...


LAYOUTS: dict[str, Callable[[dict[str, Any]], Layout]] = {}


def layout(name: str) -> Callable[[Callable[[dict[str, Any]], Layout]], Callable[[dict[str, Any]], Layout]]:
    """Register a layout factory under `name` (the data rows' `layout:` key); it gets the row's params."""

    def register(factory: Callable[[dict[str, Any]], Layout]) -> Callable[[dict[str, Any]], Layout]:
        LAYOUTS[name] = factory
        return factory

    return register


class Grade(Strict):
    """The quality risk of storing this use (weights or KV) in the format, with its source."""

    grade: int = Field(ge=0, le=3)
    reason: str = ""
    source: str = ""
    searched: bool = Field(default=False, description="fit tries it")
    aliases: tuple[str, ...] = ()
    note: str = Field(default="", description="what a user must know to realise it; a note when a plan stores it")


class EngineSpelling(Strict):
    """How one engine names the format (vLLM/SGLang flags, llama.cpp GGUF/cache types, transformers config)."""

    dtype: str | None = None  # --dtype for 16-bit formats
    dtype_accepts: tuple[str, ...] = ()
    quantization: str | None = None  # --quantization
    accepts: tuple[str, ...] = ()  # --quantization values the engine model reads as this format
    load: str = "flag"  # flag | checkpoint | "unrealised: <sentence with {engine}>"
    kv_cache_dtype: str | None = None
    kv_accepts: tuple[str, ...] = ()
    gguf_type: str | None = None
    cache_type: str | None = None
    nearest: bool = False  # llama.cpp: GGUF has no such type; gguf_type is the nearest one (bits differ)
    search: bool = True  # False: fit --engine skips it (another format maps to the same engine type)
    quantization_config: str | None = None  # transformers from_pretrained(quantization_config=...)
    import_: str | None = Field(default=None, alias="import")
    cache_nbits: int | None = None  # transformers QuantizedCache nbits


class FormatRow(Strict):
    layout: str
    element_bytes: float | None = None
    title: str
    weights: Grade | None = None
    kv: Grade | None = None
    native: str | tuple[str, ...] = "any"
    fallback: str = ""
    engines: dict[str, EngineSpelling] = {}


@dataclass(frozen=True)
class NumberFormat:
    name: str
    row: FormatRow
    layout: Layout

    def grade(self, use: Use) -> Grade | None:
        return self.row.weights if use == "weights" else self.row.kv

    def stores(self, use: Use) -> bool:
        return self.grade(use) is not None

    @property
    def is_sixteen_bit(self) -> bool:
        """Lossless floats (fp32, bf16, fp16): no quantisation, the dense dtype of a model."""
        return self.row.layout == "plain"

    def engine(self, engine: str) -> EngineSpelling:
        return self.row.engines.get(engine, EngineSpelling())

    def runs_natively(self, architecture: str, supports_fp8: bool) -> bool:
        """On this card, with its own kernels (not a weight-only or dequantising fallback)."""
        native = self.row.native
        if native == "any":
            return True
        if native == "supports_fp8":
            return supports_fp8
        return architecture in native

    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        return self.layout.matrix_bytes(rows, cols, group_size)

    def kv_vector_bytes(self, num_values: int) -> int:
        return self.layout.kv_vector_bytes(num_values)
