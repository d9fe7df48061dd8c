"""Config facts the serving-engine models key on (vLLM's per-architecture defaults), read here so the engines work
from typed values, not the raw config (tests/unit/test_family_boundary.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oomplan.specs.model import ModelSpec


@dataclass(frozen=True)
class EngineFacts:
    architecture: str  # config.json architectures[0] ('' when absent)
    is_nemotron_h: bool  # model_type nemotron_h (vLLM NemotronHForCausalLMConfig applies)
    mamba_ssm_cache_dtype: str | None  # NemotronH's declared SSM cache dtype (config key mamba_ssm_cache_dtype)
    mamba_ssm_dtype: str | None  # Qwen3.5's declared SSM dtype (text config key mamba_ssm_dtype)
    mamba_chunk_size: int | None  # mamba_chunk_size, else chunk_size (vLLM config/model.py get_mamba_chunk_size)


def _text(raw: dict[str, Any]) -> dict[str, Any]:
    text = raw.get("text_config")
    return text if isinstance(text, dict) else raw


def engine_facts(model: ModelSpec) -> EngineFacts:
    raw = model.hf_config
    archs = raw.get("architectures") or []
    text = _text(raw)
    chunk = text.get("mamba_chunk_size") or text.get("chunk_size")
    ssm_cache = raw.get("mamba_ssm_cache_dtype")
    ssm = text.get("mamba_ssm_dtype")
    return EngineFacts(str(archs[0]) if archs else "", model.model_type == "nemotron_h",
                       str(ssm_cache) if ssm_cache else None, str(ssm) if ssm else None,
                       int(chunk) if isinstance(chunk, int) else None)
