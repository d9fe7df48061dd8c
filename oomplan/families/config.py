"""The config.json keys families read (leniently: unknown keys are ignored), and the config hash."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field, field_validator

from oomplan.specs.base import Lenient


def _none_named() -> list[str]:
    """The default `architectures` (a function, not `list`: pydantic inspects a factory's signature, and
    `list`'s is parsed from its text signature by the tokenize module, a few milliseconds of start-up)."""
    return []


class HfConfig(Lenient):
    """The union of config.json keys any family uses; unknown keys are ignored."""

    model_type: str = ""
    architectures: list[str] = Field(default_factory=_none_named)

    @field_validator("architectures", mode="before")
    @classmethod
    def _null_is_none_named(cls, value: Any) -> Any:
        """`"architectures": null`, as transformers' to_dict() writes it in sub-configs (a wrapper's text_config): none named."""
        return [] if value is None else value

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
    sliding_window_pattern: int | str | None = None
    attention_chunk_size: int | None = Field(default=None, ge=1, le=2**31)
    no_rope_layers: list[int] | None = None
    no_rope_layer_interval: int | None = Field(default=None, ge=1, le=10_000)
    interleave_moe_layer_step: int | None = Field(default=None, ge=1, le=10_000)
    moe_layers: list[int] | None = None
    intermediate_size_mlp: int | None = Field(default=None, ge=1, le=2**24)
    use_qk_norm: bool | None = None
    use_bias: bool | None = None
    num_nextn_predict_layers: int | None = Field(default=None, ge=0, le=1_000)
    num_mtp_layers: int | None = Field(default=None, ge=0, le=1_000)
    mtp_num_hidden_layers: int | None = Field(default=None, ge=0, le=1_000)  # Qwen3-Next / Qwen3.5
    num_mtp_modules: int | None = Field(default=None, ge=0, le=1_000)  # MiniMax-M2 (with use_mtp)
    use_mtp: bool | None = None
    rotary_dim: int | None = Field(default=None, ge=0, le=2**16)
    mlp_layer_types: list[str] | None = None
    indexer_types: list[str] | None = None
    index_topk_pattern: str | list[str] | None = None
    index_topk_freq: int | None = Field(default=None, ge=1, le=10_000)
    index_skip_topk_offset: int | None = Field(default=None, ge=0, le=10_000)
    # DSA indexer (DeepSeek-V3.2, GLM-5)
    index_n_heads: int | None = Field(default=None, ge=1, le=2**16)
    index_head_dim: int | None = Field(default=None, ge=1, le=2**16)
    index_topk: int | None = Field(default=None, ge=1, le=2**31)
    partial_rotary_factor: float | None = Field(default=None, gt=0, le=1)
    rope_scaling: Any = None  # free-form (a dict in real configs): read tolerantly by families/base.py rope()
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
    quantization_config: dict[str, Any] | None = None  # read by oomplan/formats/declared.py
    # Gemma 2
    final_logit_softcapping: float | None = None
    attn_logit_softcapping: float | None = None


def _canonical(obj: Any) -> Any:
    """Keys as JSON writes them (str; 1 -> "1", true -> "true"), so mixed YAML key types sort and hash."""
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else json.dumps(k) if isinstance(k, (bool, int, float)) or k is None else str(k)): _canonical(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def config_sha256(raw: dict[str, Any]) -> str:
    """Stable hash of a config: sorted-key JSON (keys made strings first, as JSON has them)."""
    return hashlib.sha256(json.dumps(_canonical(raw), sort_keys=True, default=str).encode()).hexdigest()
