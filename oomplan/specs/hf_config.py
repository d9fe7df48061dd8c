"""Read a Hugging Face config.json (leniently) into a ModelSpec, family by family.

No transformers import: the defaults below mirror each family's configuration class
in transformers (the file named in each comment) for keys a config.json may omit.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from pydantic import Field, ValidationError

from oomplan.errors import InputError
from oomplan.specs.base import Lenient
from oomplan.specs.model import MlaSpec, ModelSpec, MoeSpec

_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


class HfConfig(Lenient):
    """The union of config.json keys any family uses; unknown keys are ignored."""

    model_type: str = ""
    architectures: list[str] = Field(default_factory=list)
    vocab_size: int | None = Field(default=None, ge=1, le=2**24)
    hidden_size: int | None = Field(default=None, ge=1, le=2**20)
    intermediate_size: int | None = Field(default=None, ge=1, le=2**24)
    num_hidden_layers: int | None = Field(default=None, ge=1, le=10_000)
    num_attention_heads: int | None = Field(default=None, ge=1, le=2**16)
    num_key_value_heads: int | None = Field(default=None, ge=1, le=2**16)
    head_dim: int | None = Field(default=None, ge=1, le=2**16)
    max_position_embeddings: int | None = Field(default=None, ge=1, le=2**31)
    tie_word_embeddings: bool | None = None
    torch_dtype: str | None = None
    dtype: str | None = None
    attention_bias: bool | None = None
    mlp_bias: bool | None = None
    sliding_window: int | None = Field(default=None, ge=0, le=2**31)
    use_sliding_window: bool | None = None
    max_window_layers: int | None = Field(default=None, ge=0, le=10_000)
    layer_types: list[str] | None = None
    # MoE
    num_local_experts: int | None = Field(default=None, ge=0, le=2**16)
    num_experts: int | None = Field(default=None, ge=0, le=2**16)
    num_experts_per_tok: int | None = Field(default=None, ge=0, le=2**16)
    moe_intermediate_size: int | None = Field(default=None, ge=0, le=2**24)
    shared_expert_intermediate_size: int | None = Field(default=None, ge=0, le=2**24)
    decoder_sparse_step: int | None = Field(default=None, ge=0, le=10_000)
    mlp_only_layers: list[int] | None = None
    n_routed_experts: int | None = Field(default=None, ge=0, le=2**16)
    n_shared_experts: int | None = Field(default=None, ge=0, le=2**16)
    first_k_dense_replace: int | None = Field(default=None, ge=0, le=10_000)
    moe_layer_freq: int | None = Field(default=None, ge=0, le=10_000)
    # MLA
    q_lora_rank: int | None = Field(default=None, ge=0, le=2**20)
    kv_lora_rank: int | None = Field(default=None, ge=0, le=2**20)
    qk_nope_head_dim: int | None = Field(default=None, ge=0, le=2**16)
    qk_rope_head_dim: int | None = Field(default=None, ge=0, le=2**16)
    v_head_dim: int | None = Field(default=None, ge=0, le=2**16)
    # Falcon
    n_head: int | None = Field(default=None, ge=0, le=2**16)
    n_layer: int | None = Field(default=None, ge=0, le=10_000)
    num_kv_heads: int | None = Field(default=None, ge=0, le=2**16)
    new_decoder_architecture: bool | None = None
    multi_query: bool | None = None
    parallel_attn: bool | None = None
    bias: bool | None = None
    ffn_hidden_size: int | None = Field(default=None, ge=0, le=2**24)
    alibi: bool | None = None
    final_logit_softcapping: float | None = None


def config_sha256(raw: dict[str, Any]) -> str:
    """Stable hash of a config: sorted-key JSON."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


def _require(cfg: HfConfig, where: str, *keys: str) -> None:
    missing = [k for k in keys if getattr(cfg, k) is None]
    if missing:
        raise InputError(f"{where}: missing required field(s) {', '.join(missing)} for model_type {cfg.model_type!r}")


def _dtype(cfg: HfConfig) -> str:
    name = cfg.torch_dtype or cfg.dtype or "bfloat16"
    return _DTYPES.get(str(name).replace("torch.", ""), "bf16")


def _base_fields(cfg: HfConfig, where: str, tie_default: bool) -> dict[str, Any]:
    """Fields shared by every family; head_dim explicit when the config gives it."""
    _require(cfg, where, "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    num_heads = cfg.num_attention_heads
    head_dim = cfg.head_dim or cfg.hidden_size // num_heads
    return dict(
        dtype=_dtype(cfg),
        num_layers=cfg.num_hidden_layers,
        hidden_size=cfg.hidden_size,
        vocab_size=cfg.vocab_size,
        num_attention_heads=num_heads,
        num_kv_heads=cfg.num_key_value_heads or num_heads,
        head_dim=head_dim,
        intermediate_size=cfg.intermediate_size or 4 * cfg.hidden_size,
        max_position_embeddings=cfg.max_position_embeddings or 2048,
        tie_word_embeddings=tie_default if cfg.tie_word_embeddings is None else cfg.tie_word_embeddings,
        layer_attention=("full",) * cfg.num_hidden_layers,
    )


def _sliding(cfg: HfConfig, fields: dict[str, Any], pattern: Callable[[int], bool]) -> None:
    """Mark sliding-window layers: layer_types when given, else pattern(i)."""
    if not cfg.sliding_window:
        return
    n = fields["num_layers"]
    if cfg.layer_types:
        kinds = tuple("sliding" if "sliding" in t else "full" for t in cfg.layer_types[:n])
    else:
        kinds = tuple("sliding" if pattern(i) else "full" for i in range(n))
    if "sliding" in kinds:
        fields.update(layer_attention=kinds, sliding_window_tokens=cfg.sliding_window)


def _llama(cfg: HfConfig, where: str) -> dict[str, Any]:
    # transformers/models/llama/configuration_llama.py: attention_bias covers q,k,v,o
    f = _base_fields(cfg, where, tie_default=False)
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), mlp_bias=bool(cfg.mlp_bias))
    return f


def _mistral(cfg: HfConfig, where: str) -> dict[str, Any]:
    # Mistral v0.1: sliding_window on every layer
    f = _base_fields(cfg, where, tie_default=False)
    _sliding(cfg, f, lambda i: True)
    return f


def _qwen2(cfg: HfConfig, where: str) -> dict[str, Any]:
    # modeling_qwen2.py: q,k,v carry a bias, o_proj does not; sliding only with use_sliding_window
    f = _base_fields(cfg, where, tie_default=False)
    f.update(qkv_bias=True)
    if cfg.use_sliding_window:
        first = cfg.max_window_layers or 0
        _sliding(cfg, f, lambda i: i >= first)
    return f


def _qwen3(cfg: HfConfig, where: str) -> dict[str, Any]:
    # modeling_qwen3.py: per-head RMSNorm on q and k
    f = _base_fields(cfg, where, tie_default=False)
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), qk_norm=True)
    if cfg.use_sliding_window:
        first = cfg.max_window_layers or 0
        _sliding(cfg, f, lambda i: i >= first)
    return f


def _sparse_layers(num_layers: int, step: int, dense_only: list[int]) -> tuple[int, ...]:
    # modeling_qwen3_moe.py: a layer is sparse when (i + 1) % decoder_sparse_step == 0
    return tuple(i for i in range(num_layers) if i not in dense_only and (i + 1) % step == 0)


def _mixtral(cfg: HfConfig, where: str) -> dict[str, Any]:
    f = _mistral(cfg, where)
    _require(cfg, where, "num_local_experts", "num_experts_per_tok")
    f["moe"] = MoeSpec(
        num_experts=cfg.num_local_experts,
        num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=f["intermediate_size"],
        moe_layer_indices=tuple(range(f["num_layers"])),
    )
    return f


def _qwen3_moe(cfg: HfConfig, where: str) -> dict[str, Any]:
    f = _qwen3(cfg, where)
    _require(cfg, where, "num_experts", "num_experts_per_tok", "moe_intermediate_size")
    layers = _sparse_layers(f["num_layers"], cfg.decoder_sparse_step or 1, cfg.mlp_only_layers or [])
    f["moe"] = MoeSpec(
        num_experts=cfg.num_experts,
        num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=cfg.moe_intermediate_size,
        moe_layer_indices=layers,
        routing_weights_fp32=False,  # modeling_qwen3_moe: routing_weights.to(hidden_states.dtype)
    )
    return f


def _qwen2_moe(cfg: HfConfig, where: str) -> dict[str, Any]:
    f = _qwen2(cfg, where)
    _require(cfg, where, "num_experts", "num_experts_per_tok", "moe_intermediate_size")
    shared = cfg.shared_expert_intermediate_size or 0
    f["moe"] = MoeSpec(
        num_experts=cfg.num_experts,
        num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=cfg.moe_intermediate_size,
        num_shared_experts=1 if shared else 0,
        shared_expert_intermediate_size=shared,
        shared_expert_gate=bool(shared),
        routing_weights_fp32=False,
        moe_layer_indices=_sparse_layers(f["num_layers"], cfg.decoder_sparse_step or 1, cfg.mlp_only_layers or []),
    )
    return f


def _gemma2(cfg: HfConfig, where: str) -> dict[str, Any]:
    # modeling_gemma2.py: four RMSNorms per layer; even layers use the sliding window
    f = _base_fields(cfg, where, tie_default=True)
    f.update(num_norms_per_layer=4, qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias),
             logit_softcapping=bool(cfg.final_logit_softcapping))
    _sliding(cfg, f, lambda i: i % 2 == 0)
    return f


def _phi3(cfg: HfConfig, where: str) -> dict[str, Any]:
    # modeling_phi3.py: fused qkv_proj and gate_up_proj (same element counts as split)
    f = _base_fields(cfg, where, tie_default=False)
    f["fused_gate_up"] = True
    _sliding(cfg, f, lambda i: True)
    return f


def _falcon(cfg: HfConfig, where: str) -> dict[str, Any]:
    # configuration_falcon.py: n_head/n_layer are aliases; LayerNorm with bias
    raw = cfg.model_dump()
    raw["num_attention_heads"] = cfg.num_attention_heads or cfg.n_head
    raw["num_hidden_layers"] = cfg.num_hidden_layers or cfg.n_layer
    fixed = HfConfig.model_validate(raw)
    f = _base_fields(fixed, where, tie_default=True)
    heads = f["num_attention_heads"]
    if cfg.new_decoder_architecture:
        kv, norms = cfg.num_kv_heads or heads, 2
    else:
        kv, norms = (1 if cfg.multi_query is not False else heads), (1 if cfg.parallel_attn is not False else 2)
    f.update(
        num_kv_heads=kv, norm_kind="layer", num_norms_per_layer=norms, mlp_kind="plain",
        intermediate_size=cfg.ffn_hidden_size or 4 * f["hidden_size"],
        qkv_bias=bool(cfg.bias), o_bias=bool(cfg.bias), mlp_bias=bool(cfg.bias),
        # modeling_falcon.py: FalconAttention broadcasts K/V to all heads before the cache update,
        # and its eager path runs softmax in the hidden dtype
        hf_expands_kv_cache=bool(cfg.new_decoder_architecture), eager_softmax_fp32=False,
        parallel_attention=bool(cfg.new_decoder_architecture or cfg.parallel_attn is not False),
        sdpa_causal_mask=True,
    )
    return f


def _deepseek(cfg: HfConfig, where: str) -> dict[str, Any]:
    # modeling_deepseek_v2.py / _v3.py: MLA attention, first_k_dense_replace dense layers
    f = _base_fields(cfg, where, tie_default=False)
    _require(cfg, where, "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
    f["mla"] = MlaSpec(
        q_lora_rank=cfg.q_lora_rank, kv_lora_rank=cfg.kv_lora_rank, qk_nope_head_dim=cfg.qk_nope_head_dim,
        qk_rope_head_dim=cfg.qk_rope_head_dim, v_head_dim=cfg.v_head_dim,
    )
    f["head_dim"] = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
    if cfg.n_routed_experts:
        first, freq = cfg.first_k_dense_replace or 0, cfg.moe_layer_freq or 1
        n_shared = cfg.n_shared_experts or 0
        f["moe"] = MoeSpec(
            num_experts=cfg.n_routed_experts,
            num_experts_per_token=cfg.num_experts_per_tok or 1,
            expert_intermediate_size=cfg.moe_intermediate_size or f["intermediate_size"],
            num_shared_experts=n_shared,
            shared_expert_intermediate_size=n_shared * (cfg.moe_intermediate_size or 0),
            moe_layer_indices=tuple(i for i in range(f["num_layers"]) if i >= first and i % freq == 0),
        )
    return f


FAMILIES: dict[str, Callable[[HfConfig, str], dict[str, Any]]] = {
    "llama": _llama,
    "mistral": _mistral,
    "mixtral": _mixtral,
    "qwen2": _qwen2,
    "qwen2_moe": _qwen2_moe,
    "qwen3": _qwen3,
    "qwen3_moe": _qwen3_moe,
    "gemma2": _gemma2,
    "phi3": _phi3,
    "falcon": _falcon,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
}

_NOT_CAUSAL_HINTS = ("ForMaskedLM", "ForSequenceClassification", "ForImageClassification", "ForConditionalGeneration", "Model")


def _check_decoder(cfg: HfConfig, where: str) -> None:
    """Reject configs that are clearly not decoder-only causal LMs."""
    arch = cfg.architectures[0] if cfg.architectures else ""
    if arch and not arch.endswith("ForCausalLM") and arch.endswith(_NOT_CAUSAL_HINTS):
        raise InputError(f"{where}: {arch} ({cfg.model_type or 'unknown model_type'}) is not a decoder-only causal LM; oomplan plans *ForCausalLM models")
    if cfg.model_type in ("bert", "roberta", "t5", "bart", "vit", "clip", "whisper", "distilbert", "deberta", "electra"):
        raise InputError(f"{where}: model_type {cfg.model_type!r} is not a decoder-only causal LM")


def parse_hf_config(raw: dict[str, Any], name: str, source: str, hf_repo: str | None = None, where: str | None = None) -> ModelSpec:
    """HF config.json (already parsed from JSON) -> ModelSpec; errors name `where` (default: `source`)."""
    origin, source = source, where or source
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a JSON object (a config.json), got {type(raw).__name__}")
    try:
        cfg = HfConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InputError(f"{source}: field {field!r}: {err['msg']} (got {err.get('input')!r})") from None
    _check_decoder(cfg, source)
    warnings: list[str] = []
    family = FAMILIES.get(cfg.model_type)
    if family is None:
        if cfg.hidden_size is None or cfg.num_hidden_layers is None or cfg.num_attention_heads is None:
            raise InputError(
                f"{source}: model_type {cfg.model_type!r} is not supported and lacks llama-like fields "
                f"(hidden_size, num_hidden_layers, num_attention_heads); supported: {', '.join(FAMILIES)}"
            )
        warnings.append(f"model_type {cfg.model_type!r} is not a known family; read as llama-like (counts may be approximate)")
        family = _llama
    fields = family(cfg, source)
    try:
        return ModelSpec(
            name=name, model_type=cfg.model_type or "llama", source=origin, config_sha256=config_sha256(raw), hf_repo=hf_repo,
            warnings=tuple(warnings), hf_config=raw, **fields,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"{source}: {err['msg'].removeprefix('Value error, ')}") from None
