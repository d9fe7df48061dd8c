"""ModelSpec: the architecture facts the memory model needs, from any HF config.json.

Counts start with num_, sizes are in elements (dims) or bytes (named *_bytes).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from oomplan.specs.base import Strict

LayerAttention = Literal["full", "sliding"]


class MoeSpec(Strict):
    """Mixture-of-experts feed-forward, on the layers listed in `moe_layer_indices`."""

    num_experts: int = Field(ge=1)
    num_experts_per_token: int = Field(ge=1)
    expert_intermediate_size: int = Field(ge=1)
    num_shared_experts: int = Field(default=0, ge=0)
    shared_expert_intermediate_size: int = Field(default=0, ge=0, description="total width of the shared expert MLP")
    shared_expert_gate: bool = False  # Qwen2-MoE's sigmoid gate on the shared expert
    routing_weights_fp32: bool = True  # Mixtral/DeepSeek keep top-k weights fp32 (promotes the expert output)
    moe_layer_indices: tuple[int, ...]


class MlaSpec(Strict):
    """Multi-head latent attention (DeepSeek-V2/V3): the KV cache holds a compressed latent."""

    q_lora_rank: int | None = Field(description="None: queries are projected directly (no low-rank q)")
    kv_lora_rank: int = Field(ge=1)
    qk_nope_head_dim: int = Field(ge=1)
    qk_rope_head_dim: int = Field(ge=1)
    v_head_dim: int = Field(ge=1)


class ModelSpec(Strict):
    name: str
    model_type: str
    source: str = Field(description="where the architecture facts came from (profile file, config.json path)")
    hf_repo: str | None = Field(default=None, description="Hugging Face repo id, when known (shipped profiles)")
    config_sha256: str = Field(description="hash of the canonical config, for plan files")
    dtype: Literal["fp32", "bf16", "fp16"] = Field(description="the checkpoint's torch_dtype")
    num_layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    vocab_size: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    intermediate_size: int = Field(ge=1, description="dense MLP width")
    mlp_kind: Literal["gated", "plain"] = "gated"
    fused_gate_up: bool = False  # Phi-3: one gate_up_proj output [T, 2I] stays alive (views of it are used)
    hf_expands_kv_cache: bool = False  # Falcon (transformers): K/V are broadcast to every query head, then cached
    eager_softmax_fp32: bool = True  # Falcon's eager softmax runs in the model dtype
    parallel_attention: bool = False  # Falcon: attention and MLP both read the layer input
    sdpa_causal_mask: bool = False  # Falcon passes SDPA a materialised bool causal mask [1, 1, S, S]
    max_position_embeddings: int = Field(ge=1)
    tie_word_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_kind: Literal["rms", "layer"] = "rms"
    num_norms_per_layer: int = Field(default=2, ge=0, le=8)
    qk_norm: bool = False
    logit_softcapping: bool = False  # Gemma 2: final logits soft-capped (an extra logits-sized tensor)
    layer_attention: tuple[LayerAttention, ...]
    sliding_window_tokens: int | None = Field(default=None, ge=1, description="None: no sliding-window layers")
    moe: MoeSpec | None = None
    mla: MlaSpec | None = None
    warnings: tuple[str, ...] = ()
    hf_config: dict[str, Any] = Field(default_factory=dict, repr=False, description="the raw config, for the probe")

    @model_validator(mode="after")
    def _check_consistency(self) -> "ModelSpec":
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of num_key_value_heads ({self.num_kv_heads})"
            )
        if len(self.layer_attention) != self.num_layers:
            raise ValueError(f"layer_attention has {len(self.layer_attention)} entries for {self.num_layers} layers")
        if "sliding" in self.layer_attention and self.sliding_window_tokens is None:
            raise ValueError("sliding-window layers need sliding_window_tokens")
        return self

    def __hash__(self) -> int:  # identity: lets the memory model cache per spec (hf_config is a dict)
        return id(self)

    @property
    def num_sliding_layers(self) -> int:
        return self.layer_attention.count("sliding")

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def is_moe_layer(self, layer_index: int) -> bool:
        return self.moe is not None and layer_index in self.moe.moe_layer_indices
