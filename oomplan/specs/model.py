"""ModelSpec: the architecture facts the memory model needs, from any HF config.json.

Counts start with num_, sizes are in elements (dims) or bytes (named *_bytes).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from oomplan.formats.declared import DeclaredWeights
from oomplan.specs.base import Strict
from oomplan.specs.state import Mixer
from oomplan.specs.vision import VisionTower
from oomplan.specs.checkpoint import Checkpoint

AttentionKind = Literal["full", "sliding", "chunked", "mla", "linear", "cross", "none"]
MlpKind = Literal["gated", "plain", "moe", "none"]


class LayerAttention(Strict):
    """One layer's token mixer: what it caches per token (or per sequence) and how far it looks back."""

    kind: AttentionKind
    window_tokens: int | None = Field(default=None, ge=1, description="sliding: window W; chunked: chunk size C")
    rope: bool = True  # False: a NoPE layer (Llama 4 every 4th layer)
    sinks: bool = False  # gpt-oss: a learned sink logit per head (num_heads parameters)
    indexed: bool = False  # DSA (kind 'mla'): this layer runs the lightning indexer and caches its keys (ModelSpec.indexer)
    # the recurrent-state mixer (oomplan.specs.state): kind 'linear' layers run one instead of attention;
    # a 'full' layer may run one beside its attention (Falcon-H1's parallel hybrid)
    state: Mixer | None = None

    @model_validator(mode="after")
    def _check(self) -> LayerAttention:
        if self.kind in ("sliding", "chunked") and self.window_tokens is None:
            raise ValueError(f"{self.kind} attention needs window_tokens")
        if self.kind == "linear" and self.state is None:
            raise ValueError("a linear/recurrent layer needs its state mixer")
        if self.state is not None and self.kind not in ("linear", "full"):
            raise ValueError(f"a {self.kind} attention layer cannot carry a recurrent state")
        return self


class LayerMlp(Strict):
    """One layer's feed-forward: a dense MLP of `intermediate_size`, or the model's MoE (ModelSpec.moe)."""

    kind: MlpKind
    intermediate_size: int = Field(default=0, ge=0, description="dense width (gated/plain); 0 for moe/none")


class LayerSpec(Strict):
    attention: LayerAttention
    mlp: LayerMlp


class RopeSpec(Strict):
    """Rotary embedding facts the engines need (vLLM's max_model_len, its cos/sin cache)."""

    partial_rotary_factor: float = Field(default=1.0, gt=0, le=1)
    scaling_type: str | None = None  # rope_scaling's rope_type / type
    scaling_factor: float | None = None
    original_max_position_embeddings: int | None = None
    per_sequence_tables: bool = False  # transformers' cos/sin are [B, S, d], not [1, S, d] (Qwen3.5's 3D position ids)
    num_tables: int = Field(default=1, ge=1, le=8)  # cos/sin pairs alive for the whole forward: one per layer type in Gemma 3 / OLMo 3


class MoeSpec(Strict):
    """Mixture-of-experts feed-forward, on the layers listed in `moe_layer_indices`."""

    num_experts: int = Field(ge=1)
    num_experts_per_token: int = Field(ge=1)
    expert_intermediate_size: int = Field(ge=1)
    num_shared_experts: int = Field(default=0, ge=0)
    shared_expert_intermediate_size: int = Field(default=0, ge=0, description="total width of the shared expert MLP")
    shared_expert_gate: bool = False  # Qwen2-MoE's sigmoid gate on the shared expert
    routing_weights_fp32: bool = True  # Mixtral/DeepSeek keep top-k weights fp32 (promotes the expert output)
    router_fp32: bool = False  # the router's weight is held in fp32 whatever the model dtype (DeepSeek, transformers >= 5.24)
    latent_size: int | None = Field(default=None, ge=1, description="Nemotron 3 latent MoE: experts run in this width, between fc1/fc2 latent projections")
    expert_bias: bool = False  # gpt-oss: gate_up_proj_bias [E, 2I] and down_proj_bias [E, h]
    router_bias: bool = False  # gpt-oss: the router's bias [E]
    router_score_bias: bool = False  # DeepSeek-V3-style e_score_correction_bias [E] (a buffer or parameter)
    stored_fused: bool = False  # the published checkpoint keeps each layer's experts as one 3-D tensor (Llama 4), not one per expert
    moe_layer_indices: tuple[int, ...]  # the layers whose LayerMlp.kind is 'moe' (checked by ModelSpec)

    @model_validator(mode="after")
    def _top_k_within_experts(self) -> MoeSpec:
        if self.num_experts_per_token > self.num_experts:
            raise ValueError(f"num_experts_per_tok ({self.num_experts_per_token}) exceeds the number of experts ({self.num_experts})")
        return self


class MlaSpec(Strict):
    """Multi-head latent attention (DeepSeek-V2/V3): the KV cache holds a compressed latent."""

    q_lora_rank: int | None = Field(description="None: queries are projected directly (no low-rank q)")
    kv_lora_rank: int = Field(ge=1)
    qk_nope_head_dim: int = Field(ge=1)
    qk_rope_head_dim: int = Field(ge=1)
    v_head_dim: int = Field(ge=1)


class IndexerSpec(Strict):
    """DeepSeek-V3.2 / GLM-5 DSA lightning indexer: its own per-token key cache besides the MLA latent."""

    num_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1, description="the cached indexer key per token and layer: [head_dim]")
    top_k: int = Field(ge=1, description="tokens each query attends to (the sparse selection)")


class ModuleNaming(Strict):
    """How the family's checkpoint names a decoder layer's modules (`layers.<i>.<block>.<projection>`), for matching a
    quantization_config's exclusion entries module by module (oomplan/memory/module_formats.py); set by the family
    (oomplan/families/module_naming.py)."""

    attention: str = "self_attn"
    mixer: str = "self_attn"  # a recurrent mixer's block (Gated DeltaNet: linear_attn, Mamba: mamba / mixer)
    block: str = "mlp"  # the MLP / MoE block
    router: str = "gate"
    shared: str = "shared_expert"
    experts: tuple[tuple[str, str], ...] = ()  # oomplan's expert projection name -> the checkpoint's (Mixtral: w1/w3/w2)


class ModelSpec(Strict):
    name: str
    model_type: str
    source: str = Field(description="where the architecture facts came from (profile file, config.json path)")
    hf_repo: str | None = Field(default=None, description="Hugging Face repo id, when known (shipped profiles)")
    hf_revision: str | None = Field(default=None, description="the repo revision asked for (org/name@REV, --revision); "
                                    "None: the default branch")
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
    num_extra_embedding_rows: int = Field(default=0, ge=0, le=2**16, description="embed_tokens rows beyond vocab_size (Mllama: 8)")
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_kind: Literal["rms", "layer"] = "rms"
    num_norms_per_layer: int = Field(default=2, ge=0, le=8)
    qk_norm: bool = False
    attn_output_gate: bool = False  # Qwen3-Next / Qwen3.5: q_proj also yields a sigmoid gate on the attention output (2x wide)
    qk_norm_over_heads: bool = False  # OLMo 2/3: q_norm/k_norm over all heads (H*d, K*d) instead of per head (d)
    final_logit_softcapping: float | None = None  # Gemma 2: final logits soft-capped (an extra logits-sized tensor)
    attn_logit_softcapping: float | None = None  # Gemma 2: eager scores soft-capped (tanh keeps a copy)
    rms_norm_fp32_output: bool = False  # Gemma2RMSNorm: x * (1 + weight) in fp32, kept fp32 for backward
    fused_qkv: bool = False  # transformers stores q, k, v as one tensor (Phi-3 qkv_proj, Falcon query_key_value)
    v_views_qkv: bool = False  # Phi-3: v is a view of the fused qkv output (its storage stays alive)
    hf_repeats_kv: bool = False  # Falcon (transformers): K/V repeated to every head before attention
    norms_share_input: bool = False  # Falcon-40B/180B: ln_attn and ln_mlp read the same layer input
    rope: RopeSpec = RopeSpec()
    gguf_arch: str = Field(description="llama.cpp's architecture (its per-arch quantize rules)")
    architectures: tuple[str, ...] = Field(default=(), description="config.json's architectures (the classes vLLM "
                                           "keys per-architecture defaults on, e.g. its Model Runner V2 list)")
    training_probe_checked: bool = False  # the meta probe checked this family's training activations
    layers: tuple[LayerSpec, ...] = Field(description="per-layer structure, one entry per decoder layer")
    moe: MoeSpec | None = None
    vision: VisionTower | None = None  # multimodal wrappers: the vision tower + projector (weights on the first stage)
    mla: MlaSpec | None = None
    declared_weights: DeclaredWeights | None = Field(default=None, description="the checkpoint's quantization_config, as shipped")
    module_naming: ModuleNaming = Field(default_factory=ModuleNaming, description="the checkpoint's module names, by family")
    indexer: IndexerSpec | None = None  # DSA indexer on the MLA layers
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # facts the answer depends on (e.g. MTP layers shipped but not instantiated)
    hf_config: dict[str, Any] = Field(default_factory=dict, repr=False, description="the raw config, for the probe")
    checkpoint: Checkpoint | None = Field(default=None, repr=False, description="the stored tensor table, when read")

    @model_validator(mode="after")
    def _check_consistency(self) -> ModelSpec:
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of num_key_value_heads ({self.num_kv_heads})"
            )
        if len(self.layers) != self.num_layers:
            raise ValueError(f"layers has {len(self.layers)} entries for {self.num_layers} layers")
        moe_layers = tuple(i for i, layer in enumerate(self.layers) if layer.mlp.kind == "moe")
        if moe_layers and self.moe is None:
            raise ValueError("MoE layers need a moe spec")
        if self.moe is not None and self.moe.moe_layer_indices != moe_layers:
            raise ValueError("moe.moe_layer_indices must list the layers whose mlp kind is 'moe'")
        if any(layer.attention.kind == "mla" for layer in self.layers) and self.mla is None:
            raise ValueError("MLA layers need an mla spec")
        if any(layer.attention.indexed for layer in self.layers) and self.indexer is None:
            raise ValueError("indexed (DSA) layers need an indexer spec")
        return self

    def __hash__(self) -> int:  # identity: lets the memory model cache per spec (hf_config is a dict)
        return id(self)

    @property
    def layer_attention(self) -> tuple[AttentionKind, ...]:
        """Each layer's attention kind."""
        return tuple(layer.attention.kind for layer in self.layers)

    @property
    def sliding_window_tokens(self) -> int | None:
        """The sliding window (the largest, if layers differ); None: no sliding-window layers."""
        windows = [layer.attention.window_tokens or 0 for layer in self.layers if layer.attention.kind == "sliding"]
        return max(windows) if windows else None

    @property
    def logit_softcapping(self) -> bool:
        return bool(self.final_logit_softcapping)

    @property
    def num_attention_layers(self) -> int:
        """Layers that keep a per-token KV cache (not the Mamba / linear-attention ones, MLP-only blocks, nor
        cross-attention layers, whose cache holds image tokens)."""
        return sum(kind not in ("linear", "none", "cross") for kind in self.layer_attention)

    @property
    def state_layer_indices(self) -> tuple[int, ...]:
        """Layers that keep a recurrent state (a Mamba / Gated DeltaNet mixer)."""
        return tuple(i for i, layer in enumerate(self.layers) if layer.attention.state is not None)

    @property
    def num_sliding_layers(self) -> int:
        return self.layer_attention.count("sliding")

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def is_moe_layer(self, layer_index: int) -> bool:
        return self.moe is not None and layer_index in self.moe.moe_layer_indices
