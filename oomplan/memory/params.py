"""Parameter inventory: every weight tensor of the model as a few groups of identical tensors.

A TensorGroup is `count` tensors of shape [rows, cols] (cols == 1 for vectors), with the
way tensor parallelism splits it. Layer groups are listed once per layer kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from oomplan.specs.model import LayerAttention, LayerMlp, LayerSpec, ModelSpec

Component = Literal["embedding", "attention", "mlp", "experts", "router", "norm", "lm_head", "vision"]
# column: rows split over TP in `num_units` units; row: cols split; expert: a routed expert's
# matrix (split by TP like column/row, or by expert parallelism); replicated: whole on every GPU.
Shard = Literal["column", "row", "replicated"]
# vision: a multimodal model's vision tower and projector (memory/vision_params.py), on the first stage
COMPONENTS: tuple[Component, ...] = ("embedding", "attention", "mlp", "experts", "router", "norm", "lm_head", "vision")


@dataclass(frozen=True)
class TensorGroup:
    name: str
    component: Component
    rows: int
    cols: int
    count: int = 1
    shard: Shard = "replicated"
    num_units: int = 1  # units along the split dim (heads, channels); TP gives ceil(units/tp) to each GPU
    quantizable: bool = False  # a linear layer's weight matrix (not embeddings, norms, biases, routers)
    expert: bool = False  # a routed expert's matrix: expert parallelism splits `count`
    fp32: bool = False  # held in fp32 whatever the model dtype (transformers' _keep_in_fp32_modules_strict)
    linear: bool = False  # a vision tower's nn.Linear weight, one module per count: a declared method quantising the tower prices it

    @property
    def num_params(self) -> int:
        return self.rows * self.cols * self.count


@dataclass(frozen=True)
class LayerKind:
    """Layers that share one tensor inventory (e.g. DeepSeek's dense vs MoE layers)."""

    name: str
    layer_indices: tuple[int, ...]
    tensors: tuple[TensorGroup, ...]

    @property
    def num_params_per_layer(self) -> int:
        return sum(t.num_params for t in self.tensors)


@dataclass(frozen=True)
class Inventory:
    embedding: tuple[TensorGroup, ...]  # on the first pipeline stage
    head: tuple[TensorGroup, ...]  # final norm and (untied) lm_head, on the last stage
    layer_kinds: tuple[LayerKind, ...]


def _linear(name: str, comp: Component, out: int, inp: int, shard: Shard, units: int, bias: bool, count: int = 1, expert: bool = False) -> list[TensorGroup]:
    """A linear layer [out, inp]; a column-parallel bias is split, a row-parallel bias is replicated."""
    groups = [TensorGroup(name, comp, out, inp, count, shard, units, quantizable=True, expert=expert)]
    if bias:
        bias_shard: Shard = "column" if shard == "column" else "replicated"
        groups.append(TensorGroup(name + ".bias", comp, out, 1, count, bias_shard, units if shard == "column" else 1, expert=expert))
    return groups


def _norm(name: str, m: ModelSpec, size: int, count: int = 1) -> list[TensorGroup]:
    per = 2 if m.norm_kind == "layer" else 1  # LayerNorm: weight + bias
    return [TensorGroup(name, "norm", size, 1, count * per)]


def _attention(m: ModelSpec, attn: LayerAttention) -> list[TensorGroup]:
    h, H, K, d = m.hidden_size, m.num_attention_heads, m.num_kv_heads, m.head_dim
    gate = 2 if m.attn_output_gate else 1  # modeling_qwen3_next.py: q_proj -> [query, gate] per head
    g = _linear("q_proj", "attention", gate * H * d, h, "column", H, m.qkv_bias)
    g += _linear("k_proj", "attention", K * d, h, "column", K, m.qkv_bias)
    g += _linear("v_proj", "attention", K * d, h, "column", K, m.qkv_bias)
    g += _linear("o_proj", "attention", h, H * d, "row", H, m.o_bias)
    if m.qk_norm:  # per head (Qwen3, Gemma 3), or over all heads (OLMo 2/3: RMSNorm(H*d), RMSNorm(K*d))
        g += _norm("q_norm", m, H * d if m.qk_norm_over_heads else d) + _norm("k_norm", m, K * d if m.qk_norm_over_heads else d)
    if attn.kind == "cross":  # modeling_mllama.py MllamaTextCrossAttention: q_norm, k_norm [head_dim]; two tanh gates per layer
        g += _norm("cross_attn.q_norm", m, d) + _norm("cross_attn.k_norm", m, d)
        g.append(TensorGroup("cross_attn_attn_mlp_gates", "attention", 1, 1, 2))
    if attn.sinks:  # modeling_gpt_oss: sinks = nn.Parameter(num_attention_heads)
        g.append(TensorGroup("sinks", "attention", H, 1, shard="column", num_units=H))
    return g


def _mla(m: ModelSpec, attn: LayerAttention) -> list[TensorGroup]:
    # DeepSeek-V2 paper, section 2.1: low-rank q (optional) and joint KV compression
    a, h, H = m.mla, m.hidden_size, m.num_attention_heads
    assert a is not None  # called only for MLA models
    qk = a.qk_nope_head_dim + a.qk_rope_head_dim
    assert a is not None
    if a.q_lora_rank:
        g = _linear("q_a_proj", "attention", a.q_lora_rank, h, "replicated", 1, m.qkv_bias)
        g += _norm("q_a_layernorm", m, a.q_lora_rank)
        g += _linear("q_b_proj", "attention", H * qk, a.q_lora_rank, "column", H, False)
    else:
        g = _linear("q_proj", "attention", H * qk, h, "column", H, False)
    g += _linear("kv_a_proj_with_mqa", "attention", a.kv_lora_rank + a.qk_rope_head_dim, h, "replicated", 1, m.qkv_bias)
    g += _norm("kv_a_layernorm", m, a.kv_lora_rank)
    g += _linear("kv_b_proj", "attention", H * (a.qk_nope_head_dim + a.v_head_dim), a.kv_lora_rank, "column", H, False)
    g += _linear("o_proj", "attention", h, H * a.v_head_dim, "row", H, m.o_bias)
    if attn.indexed:
        g += _indexer(m)
    return g


def _indexer(m: ModelSpec) -> list[TensorGroup]:
    """DSA lightning indexer (modeling_deepseek_v32.py / modeling_glm_moe_dsa.py, 5.24.0): wq_b from the q latent,
    wk + its LayerNorm (weight and bias), weights_proj (one weight per indexer head)."""
    x, a, h = m.indexer, m.mla, m.hidden_size
    assert x is not None and a is not None
    g = [TensorGroup("indexer.wq_b", "attention", x.num_heads * x.head_dim, a.q_lora_rank or h, quantizable=True)]
    g.append(TensorGroup("indexer.wk", "attention", x.head_dim, h, quantizable=True))
    g.append(TensorGroup("indexer.k_norm", "norm", x.head_dim, 1, 2))
    g.append(TensorGroup("indexer.weights_proj", "attention", x.num_heads, h))  # fp32 only in fp16 models (_keep_in_fp32_modules)
    return g


def _mlp(prefix: str, comp: Component, m: ModelSpec, width: int, count: int = 1, expert: bool = False,
         kind: str | None = None, hidden: int | None = None) -> list[TensorGroup]:
    h = hidden or m.hidden_size
    b = (m.moe is not None and m.moe.expert_bias) if expert else m.mlp_bias
    g: list[TensorGroup] = []
    if (kind or m.mlp_kind) == "gated":
        g += _linear(prefix + "gate_proj", comp, width, h, "column", width, b, count, expert)
    g += _linear(prefix + "up_proj", comp, width, h, "column", width, b, count, expert)
    g += _linear(prefix + "down_proj", comp, h, width, "row", width, b, count, expert)
    return g


def _moe(m: ModelSpec) -> list[TensorGroup]:
    e, h = m.moe, m.hidden_size
    assert e is not None
    g = [TensorGroup("router", "router", e.num_experts, h, fp32=e.router_fp32)]
    if e.router_bias:
        g.append(TensorGroup("router.bias", "router", e.num_experts, 1))
    if e.router_score_bias:
        g.append(TensorGroup("router.e_score_correction_bias", "router", e.num_experts, 1))
    g += _mlp("experts.", "experts", m, e.expert_intermediate_size, e.num_experts, expert=True, hidden=e.latent_size)
    if e.latent_size:  # modeling_nemotron_h.py NemotronHMoE: fc1_latent_proj / fc2_latent_proj around the experts
        g += _linear("fc1_latent_proj", "mlp", e.latent_size, h, "replicated", 1, m.mlp_bias)
        g += _linear("fc2_latent_proj", "mlp", h, e.latent_size, "replicated", 1, m.mlp_bias)
    if e.shared_expert_intermediate_size:
        g += _mlp("shared_expert.", "mlp", m, e.shared_expert_intermediate_size)
    if e.shared_expert_gate:
        g.append(TensorGroup("shared_expert_gate", "router", 1, h))
    return g


def _attention_tensors(m: ModelSpec, attn: LayerAttention) -> list[TensorGroup]:
    from oomplan.memory.mixer_params import mixer_tensors  # it builds on this module's TensorGroup

    if attn.kind in ("none", "linear"):
        return mixer_tensors(attn.state, m.hidden_size) if attn.state is not None else []
    if attn.state is not None:  # Falcon-H1: attention and a Mamba-2 mixer side by side
        return _attention(m, attn) + mixer_tensors(attn.state, m.hidden_size)
    if attn.kind == "mla":
        return _mla(m, attn)
    if attn.kind in ("full", "sliding", "chunked", "cross"):
        return _attention(m, attn)
    raise ValueError(f"{m.name}: {attn.kind} attention layers are not priced yet")


def _mlp_tensors(m: ModelSpec, mlp: LayerMlp) -> list[TensorGroup]:
    if mlp.kind == "moe":
        return _moe(m)
    if mlp.kind == "none":
        return []
    return _mlp("mlp.", "mlp", m, mlp.intermediate_size, kind=mlp.kind)


def _layer_tensors(m: ModelSpec, layer: LayerSpec) -> tuple[TensorGroup, ...]:
    return tuple(_norm("layer_norms", m, m.hidden_size, m.num_norms_per_layer) + _attention_tensors(m, layer.attention)
                 + _mlp_tensors(m, layer.mlp))


def _param_shape(layer: LayerSpec) -> tuple[Any, ...]:
    """What decides a layer's tensors: its attention kind (sliding and full share weights) and its MLP."""
    kind = "full" if layer.attention.kind == "sliding" else layer.attention.kind
    return (kind, layer.attention.sinks, layer.attention.indexed, layer.attention.state, layer.mlp)


@lru_cache(maxsize=256)
def inventory(m: ModelSpec) -> Inventory:
    """All parameter tensors of `m`, grouped by per-layer structure (layers with the same attention and
    MLP share one LayerKind, named 'moe' or 'dense'). Cached: ModelSpec is frozen and hashable by identity."""
    h, V = m.hidden_size, m.vocab_size
    from oomplan.memory.vision_params import vision_tensors  # it builds on this module's TensorGroup

    rows = V + m.num_extra_embedding_rows
    embedding = (TensorGroup("embed_tokens", "embedding", rows, h, shard="column", num_units=rows), *vision_tensors(m.vision))
    head = tuple(_norm("final_norm", m, h))
    if not m.tie_word_embeddings:
        head += (TensorGroup("lm_head", "lm_head", V, h, shard="column", num_units=V),)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, layer in enumerate(m.layers):
        groups.setdefault(_param_shape(layer), []).append(i)
    kinds = [LayerKind("moe" if m.layers[idx[0]].mlp.kind == "moe" else "dense", tuple(idx), _layer_tensors(m, m.layers[idx[0]]))
             for idx in groups.values()]
    kinds.sort(key=lambda k: k.name == "moe")  # dense kinds first, as before
    return Inventory(embedding, head, tuple(kinds))


def params_by_component(m: ModelSpec) -> dict[Component, int]:
    """Exact parameter count per component (tied lm_head counted once, under embedding)."""
    inv = inventory(m)
    counts: dict[Component, int] = {c: 0 for c in COMPONENTS}
    for t in inv.embedding + inv.head:
        counts[t.component] += t.num_params
    for kind in inv.layer_kinds:
        for t in kind.tensors:
            counts[t.component] += t.num_params * len(kind.layer_indices)
    return counts


@lru_cache(maxsize=256)
def num_params(m: ModelSpec) -> int:
    return sum(params_by_component(m).values())


@lru_cache(maxsize=256)
def num_active_params(m: ModelSpec) -> int:
    """Parameters a token touches: routed experts count num_experts_per_token of num_experts."""
    counts = params_by_component(m)
    if m.moe is None:
        return sum(counts.values())
    experts = counts["experts"] * m.moe.num_experts_per_token // m.moe.num_experts
    return sum(counts.values()) - counts["experts"] + experts


linear_group = _linear  # public name for other memory modules (mixer_params)
