"""Architecture families: a registry keyed by model_type (and by wrapper architectures), one module each.

A family turns a config.json into a ModelSpec with explicit per-layer structure (attention kind,
window, MLP kind and width per layer). Nothing outside families/ and probe/ reads the raw config or
compares model_type (tests/unit/test_family_boundary.py).
"""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from oomplan.errors import InputError
from oomplan.families import (
    deepseek, falcon, falcon_h1, gemma2, granitemoehybrid, jamba, llama, mamba2, mistral, nemotron_h, phi3, qwen2, qwen2_5_vl, qwen3, qwen3_5, qwen3_next,
)
from oomplan.formats.declared import declared_weights
from oomplan.families.base import Family
from oomplan.families.config import HfConfig, config_sha256
from oomplan.specs.convert import build
from oomplan.specs.model import ModelSpec
from oomplan.text import clean, shorten

__all__ = ["FAMILIES", "REGISTRY", "Family", "family_for", "parse_hf_config", "config_sha256"]

FAMILIES: tuple[Family, ...] = (
    llama.FAMILY, mistral.MISTRAL, mistral.MIXTRAL, qwen2.QWEN2, qwen2.QWEN2_MOE, qwen3.QWEN3, qwen3.QWEN3_MOE,
    gemma2.FAMILY, phi3.FAMILY, falcon.FAMILY, deepseek.FAMILY,
    qwen3_next.FAMILY, qwen3_5.FAMILY, qwen2_5_vl.FAMILY, nemotron_h.FAMILY, granitemoehybrid.FAMILY, falcon_h1.FAMILY, jamba.FAMILY, mamba2.FAMILY,
)
REGISTRY: dict[str, Family] = {t: fam for fam in FAMILIES for t in fam.model_types}
BY_ARCHITECTURE: dict[str, Family] = {a: fam for fam in FAMILIES for a in fam.architectures}

_NOT_CAUSAL_HINTS = ("ForMaskedLM", "ForSequenceClassification", "ForImageClassification", "ForConditionalGeneration", "Model")
_NOT_DECODERS = ("bert", "roberta", "t5", "bart", "vit", "clip", "whisper", "distilbert", "deberta", "electra")


def family_for(cfg: HfConfig) -> Family | None:
    """The family of a config: by model_type, else by a wrapper architecture that names one."""
    if cfg.model_type in REGISTRY:
        return REGISTRY[cfg.model_type]
    return next((BY_ARCHITECTURE[a] for a in cfg.architectures if a in BY_ARCHITECTURE), None)


def _check_decoder(cfg: HfConfig, where: str) -> None:
    """Reject configs that are clearly not decoder-only causal LMs."""
    arch = cfg.architectures[0] if cfg.architectures else ""
    if arch and arch not in BY_ARCHITECTURE and not arch.endswith("ForCausalLM") and arch.endswith(_NOT_CAUSAL_HINTS):
        raise InputError(f"{where}: {arch} ({cfg.model_type or 'unknown model_type'}) is not a decoder-only causal LM; oomplan plans *ForCausalLM models")
    if cfg.model_type in _NOT_DECODERS:
        raise InputError(f"{where}: model_type {cfg.model_type!r} is not a decoder-only causal LM")


def parse_hf_config(raw: dict[str, Any], name: str, source: str, hf_repo: str | None = None, where: str | None = None) -> ModelSpec:
    """HF config.json (already parsed from JSON) -> ModelSpec; errors name `where` (default: `source`)."""
    origin, source = source, where or source
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a JSON object (a config.json), got {type(raw).__name__}")
    cfg = build(HfConfig, raw, source)
    _check_decoder(cfg, source)
    warnings: list[str] = []
    family = family_for(cfg)
    if family is None:
        if cfg.hidden_size is None or cfg.num_hidden_layers is None or cfg.num_attention_heads is None:
            raise InputError(
                f"{source}: model_type {cfg.model_type!r} is not supported and lacks llama-like fields "
                f"(hidden_size, num_hidden_layers, num_attention_heads); supported: {', '.join(REGISTRY)}"
            )
        warnings.append(f"model_type {cfg.model_type!r} is not a known family; read as llama-like (counts may be approximate)")
    try:  # every later-stage spec (MoeSpec, MlaSpec, LayerSpec, ModelSpec) too: one line, never a ValidationError
        if family is None:
            fields = llama.build(cfg, source)
            # read as llama; the probe-checked and llama.cpp per-arch rules apply only when it names no other type
            fields.update(training_probe_checked=not cfg.model_type, gguf_arch=cfg.model_type or "llama")
        else:
            if family.config is not HfConfig:  # the family's own keys, with its config class's defaults
                cfg = build(family.config, raw, source)
            fields = family.build(cfg, source)
        if cfg.quantization_config is not None:
            fields["declared_weights"] = declared_weights(cfg.quantization_config, fields["num_layers"], source)
        return ModelSpec(
            name=name, model_type=cfg.model_type or "llama", source=origin, config_sha256=config_sha256(raw), hf_repo=hf_repo,
            warnings=tuple(warnings), hf_config=raw, **fields,
        )
    except ValidationError as exc:
        raise InputError(_derived_error(exc, cfg, source)) from None
    except (ZeroDivisionError, OverflowError) as exc:
        raise InputError(f"{clean(source)}: sizes that cannot describe a model ({exc})") from None


def _derived_error(exc: ValidationError, cfg: HfConfig, source: str) -> str:
    """A spec built from the config refused a value: name the config keys it came from."""
    err = exc.errors()[0]
    field = str(err["loc"][-1]) if err["loc"] else ""
    msg = err["msg"].removeprefix("Value error, ")
    if field == "head_dim" and cfg.hidden_size and cfg.num_attention_heads and not cfg.head_dim:
        return (f"{clean(source)}: head_dim = hidden_size ({cfg.hidden_size}) // num_attention_heads ({cfg.num_attention_heads}) "
                f"= {cfg.hidden_size // cfg.num_attention_heads}; it must be >= 1 (fix the sizes or give head_dim)")
    if field and err["type"] != "value_error":
        return f"{clean(source)}: {field} {shorten(repr(err.get('input')), 60)} (derived from the config) is invalid: {msg}"
    return f"{clean(source)}: {msg}"
