"""Activation memory of a training step per GPU: what autograd keeps per decoder layer, the loss, and the
transients of one layer's forward and backward (memory/training.py assembles the step's phases).

Two models:
  * `korthikanti_layer_bytes`: the paper's closed forms for Megatron's GPT layer (Korthikanti et al. 2022,
    "Reducing Activation Recomputation in Large Transformer Models", table 2), checked in the tests.
  * `layer_activations`: the same accounting (each op keeps the inputs its backward needs; section 4.1)
    applied to Hugging Face transformers' decoder layers as they run: RMSNorm's fp32 upcast, SwiGLU, no
    dropout, GQA, fused attention (FlashAttention-2 keeps q, k, v, the output and an fp32 logsumexp) or eager
    attention (fp32 softmax + its bf16 copy, b x a x s^2 each). A frozen weight (LoRA/QLoRA base) does not
    keep its input. This is what the meta probe measures (oomplan.probe.train_run, benchmarks/train_meta.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from oomplan.memory.train_states import is_lora_target, largest_tensor_params
from oomplan.memory.params import TensorGroup, inventory
from oomplan.specs.model import ModelSpec
from oomplan.specs.training import TrainingPlan
from oomplan.units import FP32, ceil_div, round_up


def korthikanti_layer_bytes(seq: int, batch: int, hidden: int, heads: int, tensor_parallel: int = 1,
                            sequence_parallel: bool = False, recompute: str = "none") -> int:
    """Activation bytes of one GPT transformer layer, 16-bit activations (Korthikanti et al. 2022, table 2)."""
    s, b, h, a, t = seq, batch, hidden, heads, tensor_parallel
    sbh = Fraction(s * b * h)
    if recompute == "full":  # only the layer input is kept
        return int(2 * sbh)
    scores = 0 if recompute == "selective" else Fraction(5 * a * s, h * t)  # softmax, dropout mask and output
    if sequence_parallel:
        return round(sbh * (Fraction(34, t) + scores))
    return round(sbh * (10 + Fraction(24, t) + scores))  # layer norms, dropout masks and linear inputs are replicated


@dataclass(frozen=True)
class Dims:
    """Per-GPU sizes of one micro-batch: tokens, TP-split heads and widths, activation dtype bytes."""

    num_sequences: int
    seq_tokens: int
    dtype_bytes: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    v_head_dim: int
    intermediate: int
    replicated_divisor: int  # sequence parallel splits the hidden-sized (replicated) tensors over TP
    tensor_parallel: int

    @property
    def num_tokens(self) -> int:
        return self.num_sequences * self.seq_tokens


def dims(model: ModelSpec, tplan: TrainingPlan) -> Dims:
    """Heads and widths split over TP as Megatron splits them (ceil: KV heads past their count replicate)."""
    t = tplan.tensor_parallel
    v_head_dim = model.mla.v_head_dim if model.mla else model.head_dim
    return Dims(tplan.micro_batch_size, tplan.seq_tokens, FP32 if tplan.precision == "fp32" else 2, model.hidden_size,
                ceil_div(model.num_attention_heads, t), ceil_div(model.num_kv_heads, t), model.head_dim, v_head_dim,
                ceil_div(model.intermediate_size, t), t if tplan.sequence_parallel else 1, t)


@dataclass(frozen=True)
class Saves:
    """Which linear layers keep their input (trainable weight, or a LoRA adapter reads it)."""

    weights_trainable: bool
    qkv: bool
    o: bool
    up: bool  # gate/up (or the plain MLP's first linear)
    down: bool
    num_lora_modules: int  # targeted linear layers per decoder layer


def saves(model: ModelSpec, tplan: TrainingPlan, moe_layer: bool = False) -> Saves:
    if not tplan.is_peft:
        return Saves(True, True, True, True, True, 0)
    hit = {t.name.rsplit(".", 1)[-1] for t in _layer_groups(model, moe_layer) if is_lora_target(t, tplan.lora_targets)}

    def any_of(*names: str) -> bool:
        return any(n in hit for n in names)

    return Saves(False, any_of("q_proj", "k_proj", "v_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa"),
                 any_of("o_proj"), any_of("gate_proj", "up_proj"), any_of("down_proj"), len(hit))


def norm_bytes(model: ModelSpec, d: Dims, width: int, trainable: bool) -> int:
    """Bytes one norm keeps per token over `width` values."""
    e = d.dtype_bytes
    if model.norm_kind == "layer":  # nn.LayerNorm: the input, fp32 mean and rstd
        return e * width + 2 * FP32
    if model.rms_norm_fp32_output:  # Gemma2RMSNorm: fp32 input, rsqrt, fp32 normalised x (times 1 + weight)
        return FP32 * width + FP32 + (FP32 * width if trainable else 0)
    return FP32 * width + FP32 + (e * width if trainable else 0)  # LlamaRMSNorm: fp32 upcast, rsqrt, normalised x


@dataclass(frozen=True)
class LayerActivations:
    """Bytes one decoder layer keeps for backward, one micro-batch, one GPU."""

    norm_bytes: int  # norms (and Qwen3's per-head q/k norms)
    linear_input_bytes: int  # the norm outputs q/k/v and gate/up read
    attention_bytes: int  # q, k, v (repeated for eager or masked GQA), the attention output
    scores_bytes: int  # s x s tensors (eager's softmax, a mask's bias) and the logsumexp
    mlp_bytes: int
    lora_bytes: int  # each adapter's r-wide A output

    @property
    def total_bytes(self) -> int:
        return self.norm_bytes + self.linear_input_bytes + self.attention_bytes + self.scores_bytes + self.mlp_bytes + self.lora_bytes


def _attention_per_token(model: ModelSpec, d: Dims, tplan: TrainingPlan, sv: Saves, masked: bool) -> int:
    """q, k, v, output and logsumexp per token; selective recompute drops the core (output, logsumexp, repeats).
    K/V are repeated to every query head by eager attention, and by sdpa when a mask is passed (sliding windows)."""
    e, a, k = d.dtype_bytes, d.heads, d.kv_heads
    v_storage = e * (a + 2 * k) * d.head_dim if model.v_views_qkv else e * k * d.v_head_dim  # phi3: v views qkv
    if model.mla is not None:  # modeling_deepseek_v2: v views kv_b_proj's output (no-RoPE keys and values of every head)
        v_storage = e * a * (model.mla.qk_nope_head_dim + d.v_head_dim)
    core_kept = tplan.recompute != "selective"
    falcon = model.hf_repeats_kv  # modeling_falcon repeats K/V and passes sdpa a float mask itself
    repeated = core_kept and k < a and (masked or falcon or tplan.attention == "eager")
    kv = e * a * (d.head_dim + d.v_head_dim) if repeated else e * k * d.head_dim + v_storage
    if tplan.attention == "eager":
        out = e * a * d.v_head_dim if sv.o else 0  # transpose(1, 2).contiguous(), kept by o_proj
        return e * a * d.head_dim + kv + out
    out = e * a * d.v_head_dim if (core_kept or sv.o) else 0  # the fused kernel's output is o_proj's input
    return e * a * d.head_dim + kv + out


def square_bytes(model: ModelSpec, d: Dims, tplan: TrainingPlan, masked: bool) -> int:
    """The s x s tensors and the logsumexp one layer keeps, one micro-batch. Eager: the fp32 softmax and its copy
    in e bytes (Gemma 2 also its tanh soft-capping); sdpa with a mask: the memory-efficient kernel's additive bias."""
    if tplan.recompute == "selective":
        return 0
    e, b, s, a = d.dtype_bytes, d.num_sequences, d.seq_tokens, d.heads
    if tplan.attention == "eager":
        softcap = e if model.attn_logit_softcapping else 0
        return (FP32 + (e if e != FP32 else 0) + softcap) * a * s * s * b
    falcon = model.sdpa_causal_mask  # its float mask is one tensor for all layers (counted once per stage)
    rows = round_up(s, 32) if masked or falcon else s  # the memory-efficient kernel pads its logsumexp to 32 rows
    return FP32 * a * rows * b + (e * s * s * b if masked else 0)


def _mlp_per_token(model: ModelSpec, d: Dims, sv: Saves, moe_layer: bool) -> int:
    """Gated: gate, act(gate), up and (kept by down_proj) their product; plain: up and act(up)."""
    e, gated = d.dtype_bytes, model.mlp_kind == "gated"

    def mlp(width: int) -> int:
        return e * width * (3 if gated else 1) + (e * width if sv.down else 0)

    if not moe_layer or model.moe is None:
        return mlp(d.intermediate)
    m, t = model.moe, d.tensor_parallel
    # approximate (not probe-checked): each routed copy keeps its gathered input, its expert MLP and its output
    routed = m.num_experts_per_token * (2 * e * d.hidden + mlp(ceil_div(m.expert_intermediate_size, t)))
    shared = mlp(ceil_div(m.shared_expert_intermediate_size, t)) if m.shared_expert_intermediate_size else 0
    return routed + shared + (e + FP32) * m.num_experts  # router logits and their fp32 softmax


def layer_activations(model: ModelSpec, tplan: TrainingPlan, moe_layer: bool = False, masked: bool = False) -> LayerActivations:
    """What one decoder layer keeps without full recompute (selective drops the attention core).
    `masked`: a sliding-window layer whose window the sequence reaches, so transformers passes sdpa a mask."""
    d, sv = dims(model, tplan), saves(model, tplan, moe_layer)
    n, split, e = d.num_tokens, d.replicated_divisor, d.dtype_bytes
    norms = ceil_div(model.num_norms_per_layer * norm_bytes(model, d, d.hidden, sv.weights_trainable) * n, split)
    if model.norms_share_input:  # Falcon-40B/180B: ln_attn and ln_mlp read one input
        norms -= ceil_div((model.num_norms_per_layer - 1) * e * d.hidden * n, split)
    if model.qk_norm:  # Qwen3: RMSNorm over each head's q and k
        norms += n * (d.heads + d.kv_heads) * norm_bytes(model, d, d.head_dim, sv.weights_trainable)
    inputs = ceil_div((int(sv.qkv) + int(sv.up)) * e * d.hidden * n, split)
    for rank in _mla_latent_ranks(model):  # MLA: the latents' RMSNorms and their outputs, kept by the up-projections
        norms += n * norm_bytes(model, d, rank, sv.weights_trainable)
        inputs += n * e * rank if sv.qkv else 0
    return LayerActivations(
        norm_bytes=norms, linear_input_bytes=inputs, attention_bytes=_attention_per_token(model, d, tplan, sv, masked) * n,
        scores_bytes=square_bytes(model, d, tplan, masked), mlp_bytes=_mlp_per_token(model, d, sv, moe_layer) * n,
        lora_bytes=sv.num_lora_modules * e * tplan.lora_rank * n,
    )


def _mla_latent_ranks(model: ModelSpec) -> tuple[int, ...]:
    """DeepSeek-V2/V3: the compressed KV latent and (when present) the compressed query."""
    if model.mla is None:
        return ()
    return (model.mla.kv_lora_rank,) + ((model.mla.q_lora_rank,) if model.mla.q_lora_rank else ())


def masked_layers(model: ModelSpec, tplan: TrainingPlan) -> frozenset[int]:
    """Sliding-window layers the sequence fills: transformers builds them a mask instead of is_causal."""
    window = model.sliding_window_tokens
    if window is None or tplan.seq_tokens < window:
        return frozenset()
    return frozenset(i for i, kind in enumerate(model.layer_attention) if kind == "sliding")


def checkpoint_bytes(model: ModelSpec, tplan: TrainingPlan) -> int:
    """Full recompute keeps each layer's input only (Korthikanti et al. 2022: 2sbh)."""
    d = dims(model, tplan)
    return ceil_div(d.dtype_bytes * d.hidden * d.num_tokens, d.replicated_divisor)


@dataclass(frozen=True)
class LossBytes:
    """The LM head and loss of one micro-batch (HF ForCausalLMLoss: logits.float(), then cross-entropy)."""

    head_saved_bytes: int  # final norm, and its output when lm_head trains
    forward_bytes: int  # logits, their fp32 copy, the fp32 log-softmax (kept for backward)
    backward_bytes: int  # log-softmax, its gradient and the logits' gradient, fp32
    head_backward_bytes: int  # the logits' gradient in e bytes, lm_head's new weight gradient, the hidden gradient


def loss_bytes(model: ModelSpec, tplan: TrainingPlan) -> LossBytes:
    """Logits are vocab x tokens x 4 bytes in fp32; with TP, vocab-parallel (Megatron) splits the vocabulary."""
    d, full = dims(model, tplan), not tplan.is_peft
    n, e, h = d.num_tokens, d.dtype_bytes, d.hidden
    vocab = ceil_div(model.vocab_size, d.tensor_parallel)
    head = ceil_div(n * (norm_bytes(model, d, h, full) + (e * h if full else 0)), d.replicated_divisor)
    upcast = FP32 if e != FP32 else 0
    softcap = e * n * vocab if model.final_logit_softcapping else 0  # Gemma 2 keeps tanh's output
    return LossBytes(
        head_saved_bytes=head, forward_bytes=n * vocab * (e + upcast + FP32) + softcap,
        backward_bytes=3 * FP32 * n * vocab + softcap, head_backward_bytes=n * vocab * e + (e * vocab * h if full else 0) + e * n * h,
    )


def _attention_backward_bytes(d: Dims, attention: str) -> int:
    """Attention's backward transient. Eager: the probabilities' gradient in fp32 and softmax's backward output.
    Fused: FlashAttention-2's mha_bwd - dq, dk, dv, an fp32 dq accumulator and softmax_d (rows rounded to 128,
    head dim to 32), per-query-head dk/dv under GQA."""
    e, n, b, a = d.dtype_bytes, d.num_tokens, d.num_sequences, d.heads
    if attention == "eager":
        return 2 * FP32 * a * d.seq_tokens**2 * b
    rows, width = round_up(d.seq_tokens, 128), round_up(d.head_dim, 32)
    accum = FP32 * b * rows * a * (width + 1)
    grads = e * n * (a * d.head_dim + d.kv_heads * (d.head_dim + d.v_head_dim))
    expanded = e * n * a * (d.head_dim + d.v_head_dim) if d.kv_heads < a else 0
    return accum + grads + expanded


def _layer_groups(model: ModelSpec, moe_layer: bool) -> tuple[TensorGroup, ...]:
    return next(k.tensors for k in inventory(model).layer_kinds if (k.name == "moe") == moe_layer)


def layer_backward_bytes(model: ModelSpec, tplan: TrainingPlan, moe_layer: bool = False, masked: bool = False) -> int:
    """Transient while one layer runs backward, on top of what it keeps: what recompute rebuilds (full: the
    layer; selective: the attention core), then the larger moment - the MLP's gradients and one new weight
    gradient, or attention's backward once the MLP's activations (and eager's output and bf16 probabilities)
    are freed."""
    d = dims(model, tplan)
    n, e = d.num_tokens, d.dtype_bytes
    whole = layer_activations(model, tplan.model_copy(update={"recompute": "none"}), moe_layer, masked)
    kept = layer_activations(model, tplan, moe_layer, masked).total_bytes
    rebuilt = {"full": whole.total_bytes, "selective": whole.total_bytes - kept}
    weight_grad = 0 if tplan.is_peft else e * largest_tensor_params(model, _layer_groups(model, moe_layer), d.tensor_parallel)
    mlp = e * n * (d.hidden + 2 * d.intermediate) + weight_grad
    freed = whole.mlp_bytes
    if tplan.attention == "eager":
        freed += e * n * d.heads * d.v_head_dim + (whole.scores_bytes * e // (FP32 + e) if e != FP32 else 0)
    attention = e * n * d.hidden + _attention_backward_bytes(d, tplan.attention) - freed
    return rebuilt.get(tplan.recompute, 0) + max(mlp, attention)


def layer_forward_bytes(model: ModelSpec, tplan: TrainingPlan, moe_layer: bool = False, masked: bool = False) -> int:
    """One layer's forward on top of what the layers before it keep: its activations; for eager attention the
    moment of the softmax (masked scores in e bytes, their fp32 copy, the fp32 softmax) and the 4-D mask.
    Under full recompute the layer keeps nothing: only its live locals count."""
    layer = layer_activations(model, tplan.model_copy(update={"recompute": "none"}), moe_layer, masked)
    if tplan.attention != "eager":
        return layer.total_bytes if tplan.recompute != "full" else layer.linear_input_bytes + layer.attention_bytes
    d = dims(model, tplan)
    upcast = FP32 if d.dtype_bytes != FP32 else 0
    softmax = (d.dtype_bytes + upcast + FP32) * d.heads * d.seq_tokens**2 * d.num_sequences
    out = d.dtype_bytes * d.num_tokens * d.heads * d.v_head_dim
    norms = layer.norm_bytes if tplan.recompute != "full" else 0
    return norms + layer.linear_input_bytes + layer.attention_bytes - out + softmax + eager_mask_bytes(d)


def eager_mask_bytes(d: Dims) -> int:
    """transformers' eager attention adds a b x 1 x s x s mask (in the activation dtype)."""
    return d.dtype_bytes * d.num_sequences * d.seq_tokens**2
