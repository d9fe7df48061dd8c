"""Each engine's names for the formats (the `engines:` part of the data rows), looked up both ways."""
from __future__ import annotations

from oomplan.errors import FieldError
from oomplan.formats.base import Use
from oomplan.formats.registry import AUTO, format_names, get, registry


def by_engine_name(engine: str, field: str) -> dict[str, str]:
    """An engine's spellings (the `field` list of each row, e.g. vLLM 'accepts') -> format name, in registry order."""
    out: dict[str, str] = {}
    for n, f in registry().items():
        for spelling in getattr(f.engine(engine), field):
            out.setdefault(spelling, n)
    return out


def engine_kv_names(engine: str) -> dict[str, str]:
    """An engine's --kv-cache-dtype values -> format name."""
    return by_engine_name(engine, "kv_accepts")


def engine_formats(engine: str, use: Use) -> tuple[str, ...]:
    """Plan values the engine can serve (weights: a --quantization/--dtype or GGUF type) or store (KV), less
    those marked search: false (another format maps to the same engine type)."""
    fields = ("quantization", "dtype", "gguf_type") if use == "weights" else ("kv_cache_dtype", "cache_type")
    names = [n for n in format_names(use)
             if any(getattr(get(n).engine(engine), f) for f in fields) and get(n).engine(engine).search]
    return (AUTO,) + tuple(names)


def plan_kv_table(engine: str, field: str = "kv_cache_dtype") -> dict[str, str]:
    """Plan.kv_dtype -> the engine's KV spelling ('auto' -> the engine's default)."""
    out = {AUTO: "auto"}
    for n in format_names("kv"):
        spelling = getattr(get(n).engine(engine), field)
        if spelling:
            out[n] = spelling
    return out


def served_weights(engine: str, weights: str) -> tuple[str, str | None]:
    """Plan.weights -> (--dtype, --quantization) for vLLM/SGLang."""
    if weights == AUTO:
        return "auto", None
    spelling = get(weights).engine(engine)
    if spelling.dtype:
        return spelling.dtype, None
    if spelling.quantization is None:
        raise FieldError("weights", f"{weights!r} is not available in {engine}")
    return "auto", spelling.quantization


def gguf_type(weights: str) -> str:
    """Plan.weights -> the GGUF file type llama.cpp would load (GGUF has no fp8/AWQ/GPTQ: the nearest type)."""
    if weights == AUTO:
        return "F16"
    gguf = get(weights).engine("llamacpp").gguf_type
    if gguf is None:
        accepted = [n for n in format_names("weights") if get(n).engine("llamacpp").gguf_type]
        raise FieldError("weights", f"llama.cpp has no GGUF type for {weights}; accepted: {', '.join(accepted)}")
    return gguf
