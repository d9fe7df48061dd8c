"""Architecture families: a registry keyed by model_type (and by wrapper architectures), one module each.

A family turns a config.json into a ModelSpec with explicit per-layer structure (attention kind,
window, MLP kind and width per layer). Nothing outside families/ and probe/ reads the raw config or
compares model_type (tests/unit/test_family_boundary.py).
"""
from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from oomplan.errors import InputError, UnknownFamilyError
from oomplan.families.module_naming import naming_for
from oomplan.formats.declared import FIELD, Layers, declared_weights, declaring_fields
from oomplan.families.base import Family, model_dtype
from oomplan.families.config import HfConfig, config_sha256
from oomplan.families.engine_facts import EngineFacts, engine_facts
from oomplan.specs.convert import build
from oomplan.specs.model import ModelSpec
from oomplan.text import clean, shorten

__all__ = ["FAMILIES", "REGISTRY", "EngineFacts", "Family", "engine_facts", "family_for", "parse_hf_config", "config_sha256"]

# model_type (and wrapper architecture) -> (module of this package, attribute): a family's module, and the
# pydantic config class it defines, is imported only when a config names it (issue 16: start-up).
# tests/unit/test_families.py checks these tables against every Family defined in the package.
BY_TYPE: dict[str, tuple[str, str]] = {
    "llama": ("llama", "FAMILY"), "mistral": ("mistral", "MISTRAL"), "ministral3": ("mistral", "MINISTRAL3"),
    "mixtral": ("mistral", "MIXTRAL"),
    "qwen2": ("qwen2", "QWEN2"), "qwen2_moe": ("qwen2", "QWEN2_MOE"), "qwen3": ("qwen3", "QWEN3"), "qwen3_moe": ("qwen3", "QWEN3_MOE"),
    "gemma2": ("gemma2", "FAMILY"), "phi3": ("phi3", "FAMILY"), "falcon": ("falcon", "FAMILY"),
    "deepseek_v2": ("deepseek", "FAMILY"), "deepseek_v3": ("deepseek", "FAMILY"), "qwen3_next": ("qwen3_next", "FAMILY"),
    "qwen3_5": ("qwen3_5", "FAMILY"), "qwen3_5_text": ("qwen3_5", "FAMILY"), "qwen3_5_moe": ("qwen3_5", "FAMILY"),
    "qwen3_5_moe_text": ("qwen3_5", "FAMILY"), "qwen2_5_vl": ("qwen2_5_vl", "FAMILY"), "nemotron_h": ("nemotron_h", "FAMILY"),
    "granitemoehybrid": ("granitemoehybrid", "FAMILY"), "falcon_h1": ("falcon_h1", "FAMILY"), "jamba": ("jamba", "FAMILY"),
    "mamba2": ("mamba2", "FAMILY"), "bamba": ("bamba", "FAMILY"),
    # 2025-26 families (issue 13)
    "gemma3_text": ("gemma3", "TEXT"), "gemma3": ("gemma3", "WRAPPER"), "gpt_oss": ("gpt_oss", "FAMILY"),
    "kimi_k2": ("deepseek", "KIMI_K2"), "deepseek_v32": ("deepseek", "V32"), "glm_moe_dsa": ("deepseek", "GLM5"),
    "glm4_moe": ("glm4_moe", "FAMILY"), "minimax_m2": ("minimax_m2", "FAMILY"), "starcoder2": ("starcoder2", "FAMILY"),
    "olmo2": ("olmo", "OLMO2"), "olmo3": ("olmo", "OLMO3"), "exaone4": ("exaone4", "FAMILY"), "mistral3": ("mistral3", "WRAPPER"),
    "llama4_text": ("llama4", "TEXT"), "llama4": ("llama4", "WRAPPER"),
    "qwen3_vl_text": ("qwen3_vl", "TEXT"), "qwen3_vl_moe_text": ("qwen3_vl", "MOE_TEXT"), "qwen3_vl": ("qwen3_vl", "WRAPPER"),
    "qwen3_vl_moe": ("qwen3_vl", "MOE_WRAPPER"),
    "mllama_text_model": ("mllama", "TEXT"), "mllama": ("mllama", "WRAPPER"),
}
BY_WRAPPER: dict[str, tuple[str, str]] = {
    "Qwen3_5ForConditionalGeneration": ("qwen3_5", "FAMILY"), "Qwen3_5MoeForConditionalGeneration": ("qwen3_5", "FAMILY"),
    "Qwen2_5_VLForConditionalGeneration": ("qwen2_5_vl", "FAMILY"), "Gemma3ForCausalLM": ("gemma3", "TEXT"),
    "Gemma3ForConditionalGeneration": ("gemma3", "WRAPPER"), "Mistral3ForConditionalGeneration": ("mistral3", "WRAPPER"),
    "Llama4ForCausalLM": ("llama4", "TEXT"), "Llama4ForConditionalGeneration": ("llama4", "WRAPPER"),
    "Qwen3VLForConditionalGeneration": ("qwen3_vl", "WRAPPER"), "Qwen3VLMoeForConditionalGeneration": ("qwen3_vl", "MOE_WRAPPER"),
    "MllamaForCausalLM": ("mllama", "TEXT"), "MllamaForConditionalGeneration": ("mllama", "WRAPPER"),
}


def _load(entry: tuple[str, str]) -> Family:
    module, attribute = entry
    family: Family = getattr(importlib.import_module(f"oomplan.families.{module}"), attribute)
    return family


def family_named(model_type: str) -> Family | None:
    """The family reading this model_type, its module imported now; None when no family does."""
    entry = BY_TYPE.get(model_type)
    return _load(entry) if entry is not None else None


def all_families() -> tuple[Family, ...]:
    """Every family, each module imported: for listings, messages and tests, never on a plan's path."""
    unique: dict[int, Family] = {}  # by identity: a Family holds a dict (its defaults) and does not hash
    for entry in (*BY_TYPE.values(), *BY_WRAPPER.values()):
        family = _load(entry)
        unique.setdefault(id(family), family)
    return tuple(unique.values())


def __getattr__(name: str) -> Any:
    """FAMILIES, REGISTRY and BY_ARCHITECTURE (every family module imported), as before the lazy tables."""
    if name == "FAMILIES":
        return all_families()
    if name == "REGISTRY":
        return {t: _load(e) for t, e in BY_TYPE.items()}
    if name == "BY_ARCHITECTURE":
        return {a: _load(e) for a, e in BY_WRAPPER.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def family_for(cfg: HfConfig) -> Family | None:
    """The family of a config: by model_type, else by a wrapper architecture that names one."""
    if cfg.model_type in BY_TYPE:
        return family_named(cfg.model_type)
    return next((_load(BY_WRAPPER[a]) for a in cfg.architectures if a in BY_WRAPPER), None)


_NOT_CAUSAL_HINTS = ("ForMaskedLM", "ForSequenceClassification", "ForImageClassification", "ForConditionalGeneration", "Model")
_NOT_DECODERS = ("bert", "roberta", "t5", "bart", "vit", "clip", "whisper", "distilbert", "deberta", "electra")


def _check_decoder(cfg: HfConfig, raw: dict[str, Any], where: str, name: str) -> None:
    """Reject configs that are clearly not decoder-only causal LMs, and multimodal wrappers we do not read yet."""
    arch = cfg.architectures[0] if cfg.architectures else ""
    if (arch.endswith("ForConditionalGeneration") and arch not in BY_WRAPPER and cfg.model_type not in BY_TYPE
            and isinstance(raw.get("text_config"), dict)):
        wrappers = sorted({fam.name for fam in all_families() if fam.text_config or fam.architectures})
        raise UnknownFamilyError(
            f"{where}: {clean(arch)} (model_type {clean(cfg.model_type)!r}) is a multimodal wrapper of a decoder that oomplan "
            f"does not read yet (its decoder is under text_config); refusing rather than guessing. Wrappers read: {', '.join(wrappers)}",
            raw, name, where, str(cfg.model_type), model_dtype(cfg.torch_dtype, cfg.dtype, where))
    if arch and arch not in BY_WRAPPER and not arch.endswith("ForCausalLM") and arch.endswith(_NOT_CAUSAL_HINTS):
        raise InputError(f"{where}: field 'architectures': {clean(arch)} ({clean(cfg.model_type or 'unknown model_type')}) is not a "
                         "decoder-only causal LM; oomplan plans *ForCausalLM models")
    if cfg.model_type in _NOT_DECODERS:
        raise InputError(f"{where}: model_type {cfg.model_type!r} is not a decoder-only causal LM")


# Keys the llama reader cannot price: an unknown model_type holding any of them is refused (issue 13 part 7).
UNPRICED_BY_LLAMA: tuple[str, ...] = (
    # experts
    "num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
    "n_shared_experts", "shared_expert_intermediate_size", "first_k_dense_replace", "moe_layer_freq",
    "decoder_sparse_step", "mlp_only_layers", "interleave_moe_layer_step", "num_shared_experts",
    # per-layer attention
    "layer_types", "sliding_window", "sliding_window_pattern", "use_sliding_window", "attention_chunk_size",
    "no_rope_layers", "global_attn_layers", "swa_layers",
    # latent / sparse attention
    "kv_lora_rank", "q_lora_rank", "index_n_heads", "index_head_dim", "index_topk",
    # linear attention / state-space layers
    "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
    "linear_conv_kernel_dim", "full_attention_interval", "mamba_d_state", "mamba_d_conv", "mamba_expand",
    "mamba_n_heads", "mamba_head_dim", "ssm_state_size", "state_size", "conv_kernel", "d_state", "d_conv",
    "hybrid_override_pattern", "layers_block_type", "attn_layer_indices", "attn_layer_period", "expert_layer_period",
    # multimodal / cross-attention
    "text_config", "vision_config", "audio_config", "cross_attention_layers",
    # declared quantisation (oomplan/formats/declared.py DECLARING_KEYS)
    "quantization_config", "compression_config", "quantization",
    # projections the llama reader does not lay out
    "num_nextn_predict_layers", "parallel_attn", "new_decoder_architecture", "multi_query", "alibi",
)


def unpriced_fields(raw: dict[str, Any]) -> list[str]:
    """Memory-relevant keys of `raw` the llama reader would ignore (present and not null/false/0/empty)."""
    return [k for k in UNPRICED_BY_LLAMA if raw.get(k) not in (None, False, 0, [], {}, "")]


def _text_view(raw: dict[str, Any], family: Family, source: str) -> tuple[dict[str, Any], list[str]]:
    """A multimodal wrapper's decoder config: its text_config (with the text family's defaults underneath)."""
    text = raw.get("text_config")
    if text is None:  # transformers builds the text config class's defaults (the text family's defaults here)
        text = {}
    if not isinstance(text, dict):
        raise InputError(f"{source}: field 'text_config': {family.name} wrappers describe their decoder there (got {type(text).__name__})")
    view = dict(text)
    view.setdefault("model_type", family.text_model_type or "")
    if family.wrapper_tie_default is not None:
        tie = raw.get("tie_word_embeddings", family.wrapper_tie_default)
        view["tie_word_embeddings"] = tie if isinstance(tie, bool) else family.wrapper_tie_default
    elif "tie_word_embeddings" not in view and "tie_word_embeddings" in raw:
        view["tie_word_embeddings"] = raw["tie_word_embeddings"]
    for key in ("torch_dtype", "dtype", "quantization_config"):
        if key not in view and key in raw:
            view[key] = raw[key]
    if family.vision is not None:
        return view, []
    arch = raw.get("architectures") or [family.name]
    return view, [f"{arch[0]}: the text decoder is priced; its vision tower and projector are not counted yet"]


def _validated(raw: dict[str, Any], name: str, source: str) -> HfConfig:
    """The config's keys as oomplan reads them. A key oomplan's families read with another meaning or type (MiniMax-M3's
    and MiMo-V2-Flash's per-layer list `moe_layer_freq`) in a config of a model_type no family reads is that
    model_type's own key: the config is an unknown family (refused, or counted by transformers), not a bad value."""
    try:
        return build(HfConfig, raw, source)
    except InputError as exc:
        model_type, archs = raw.get("model_type"), raw.get("architectures")
        if not isinstance(model_type, str) or not model_type or model_type in BY_TYPE:
            raise
        if isinstance(archs, list) and any(isinstance(a, str) and a in BY_WRAPPER for a in archs):
            raise
        dtype = model_dtype(raw.get("torch_dtype"), raw.get("dtype"), source)
        raise UnknownFamilyError(
            f"{source}: model_type {clean(model_type)!r} is not a known family, and one of its keys has a form oomplan's families "
            f"do not read ({str(exc).removeprefix(f'{source}: ')}); refusing rather than guessing. Families: {', '.join(BY_TYPE)}",
            raw, name, source, model_type, dtype) from None


# The declarations a family reads (formats/declared.py): the config's quantization_config, or its text_config's.
# Vision-tower declarations are the wrapper families' to read.
_READ_DECLARATIONS = (FIELD, f"text_config.{FIELD}")


def _refuse_unread_quantisation(raw: dict[str, Any], source: str) -> None:
    """A quantisation declared where no reader looks (MLX's `quantization`, the old `compression_config`) would be priced
    as 16-bit: refuse, naming the field (issue 13: never a silent guess)."""
    unread = [f for f in declaring_fields(raw) if f not in _READ_DECLARATIONS and not f.startswith("vision_config.")]
    if unread:
        raise InputError(f"{source}: field {', '.join(repr(f) for f in unread)} declares a quantisation oomplan does not read "
                         f"(priced only from {FIELD}: quant_method fp8, awq, gptq, bitsandbytes, compressed-tensors, mxfp4, "
                         "modelopt); refusing rather than pricing the checkpoint as 16-bit")


def parse_hf_config(raw: dict[str, Any], name: str, source: str, hf_repo: str | None = None, where: str | None = None) -> ModelSpec:
    """HF config.json (already parsed from JSON) -> ModelSpec; errors name `where` (default: `source`)."""
    origin, source = source, where or source
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a JSON object (a config.json), got {type(raw).__name__}")
    cfg = _validated(raw, name, source)
    architectures = tuple(cfg.architectures)  # the top-level classes (a wrapper's, not its text decoder's)
    _check_decoder(cfg, raw, source, name)
    warnings: list[str] = []
    family = family_for(cfg)
    if family is not None:
        _refuse_unread_quantisation(raw, source)
    view, wrapper = raw, None
    if family is not None and family.text_config:
        wrapper = family
        view, warnings = _text_view(raw, family, source)
        family = family_named(str(view.get("model_type")))
        cfg = build(HfConfig, view, f"{source}: text_config")
    if family is None:
        if cfg.hidden_size is None or cfg.num_hidden_layers is None or cfg.num_attention_heads is None:
            raise UnknownFamilyError(
                f"{source}: {f'model_type {clean(cfg.model_type)!r} is not supported' if cfg.model_type else 'the config has no model_type'} and lacks llama-like fields "
                f"(hidden_size, num_hidden_layers, num_attention_heads); supported: {', '.join(BY_TYPE)}", raw, name, source, str(cfg.model_type), model_dtype(cfg.torch_dtype, cfg.dtype, source))
        unpriced = unpriced_fields(view)
        if unpriced:
            raise UnknownFamilyError(
                f"{source}: model_type {clean(cfg.model_type)!r} is not a known family and its config holds fields the llama "
                f"reader cannot price ({', '.join(unpriced)}); refusing rather than guessing. Families: {', '.join(BY_TYPE)}", raw, name, source, str(cfg.model_type), model_dtype(cfg.torch_dtype, cfg.dtype, source))
        if cfg.model_type:
            # llama-shaped keys do not make a llama: a plain MLP (phi, gpt_neox), biases, parallel blocks or
            # partial rotary change the counts, and a guess would look exact. Only an unnamed config is read as llama.
            raise UnknownFamilyError(
                f"{source}: model_type {clean(cfg.model_type)!r} is not a known family; refusing rather than guessing its layout "
                f"(if it is exactly llama's, set \"model_type\": \"llama\" in a copy of the config). Families: {', '.join(BY_TYPE)}", raw, name, source, str(cfg.model_type), model_dtype(cfg.torch_dtype, cfg.dtype, source))
        warnings.append("config names no model_type; read as llama (set model_type to use another family's layout)")
    elif family.defaults or family.config is not HfConfig:
        # the family's own keys (its config class's defaults); an explicit null overrides a default, as in transformers
        cfg = build(family.config, {**family.defaults, **view}, source)
    try:  # every later-stage spec (MoeSpec, MlaSpec, LayerSpec, ModelSpec) too: one line, never a ValidationError
        if family is None:
            fields = _load(BY_TYPE["llama"]).build(cfg, source)
            # read as llama; the probe-checked and llama.cpp per-arch rules apply only when it names no other type
            fields.update(training_probe_checked=not cfg.model_type, gguf_arch=cfg.model_type or "llama")
        else:
            fields = family.build(cfg, source)
        if wrapper is not None and wrapper.vision is not None:
            fields["vision"] = wrapper.vision(raw, fields["hidden_size"], source)
        declared = cfg.quantization_config
        nested = raw.get("text_config")
        if declared is None and isinstance(nested, dict) and nested.get("quantization_config") is not None:
            # a wrapper whose text_config declares the quantisation (families reading text keys at the top level too)
            declared = build(HfConfig, {"quantization_config": nested["quantization_config"]}, f"{source}: text_config").quantization_config
        fields["module_naming"] = naming_for(str(view.get("model_type") or "llama"))
        if declared is not None:
            moe = fields.get("moe")
            layers = Layers(fields["num_layers"], frozenset(moe.moe_layer_indices) if moe is not None else frozenset(),
                            vision=fields.get("vision") is not None,
                            vision_linears=getattr(fields.get("vision"), "kind", None) in ("qwen2_5_vl", "qwen3_vl"))
            fields["declared_weights"] = declared_weights(declared, layers, source)
        fields["warnings"] = tuple(warnings) + tuple(fields.get("warnings", ()))
        return ModelSpec(
            name=name, model_type=str(raw.get("model_type") or "llama"), source=origin, config_sha256=config_sha256(raw),
            hf_repo=hf_repo, hf_config=raw, architectures=architectures, **fields,
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
