"""vLLM's memory profiling run on one GPU: the torch activation peak and the non-torch memory.

vllm/v1/worker/gpu_worker.py determine_available_memory runs GPUModelRunner.profile_run under
vllm/utils/mem_utils.py memory_profiling: torch_peak_increase (allocated-bytes peak over the weights)
and non_torch_increase (driver memory not held by torch: NCCL, custom all-reduce buffers) are
subtracted from gpu_memory_utilization x total memory, with the weights, to leave the KV pool.
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.engines.vllm.constants import VllmConstants
from oomplan.specs.model import ModelSpec
from oomplan.units import FP32, INT32, ceil_div


@dataclass(frozen=True)
class ProfileRun:
    """One GPU of one stage: what the profile run measures."""

    forward_bytes: int  # the dummy forward of max_num_batched_tokens tokens
    sampler_bytes: int  # _dummy_sampler_run over max_num_reqs rows (last stage only, else 0)
    extra_bytes: int  # calibrated workspaces (cuBLAS, attention backend)

    @property
    def activation_peak_bytes(self) -> int:
        return max(self.forward_bytes, self.sampler_bytes) + self.extra_bytes


def _attention_bytes(model: ModelSpec, tp: int, tokens: int, dtype_bytes: int) -> int:
    """qkv_proj output and the attention output (MLA: the MHA prefill path's q, k, v and output)."""
    heads = ceil_div(model.num_attention_heads, tp)
    if model.mla is not None:
        a = model.mla
        per_token = heads * (2 * (a.qk_nope_head_dim + a.qk_rope_head_dim) + 2 * a.v_head_dim)
    else:
        per_token = (2 * heads + 2 * max(1, model.num_kv_heads // tp)) * model.head_dim
    return tokens * per_token * dtype_bytes


def _dense_mlp_bytes(model: ModelSpec, width: int, tokens: int, dtype_bytes: int) -> int:
    """llama.py LlamaMLP: gate_up_proj output [T, 2I] and SiluAndMul's [T, I] (plain MLP: up and act)."""
    factor = 3 if model.mlp_kind == "gated" else 2
    return tokens * width * factor * dtype_bytes


def _moe_bytes(model: ModelSpec, tp: int, tokens: int, dtype_bytes: int) -> int:
    """fused_moe.py fused_experts_impl: cache13 [T*k, max(2I, h)] and cache2 [T*k, I], plus fp32 router logits."""
    moe, h = model.moe, model.hidden_size
    assert moe is not None, "called for MoE layers only"
    width = ceil_div(moe.expert_intermediate_size, tp)
    routed = tokens * moe.num_experts_per_token * (max(2 * width, h) + width) * dtype_bytes
    shared = _dense_mlp_bytes(model, ceil_div(moe.shared_expert_intermediate_size, tp), tokens, dtype_bytes)
    return routed + shared + tokens * moe.num_experts * FP32


def forward_bytes(model: ModelSpec, layers: tuple[int, ...], tp: int, tokens: int, dtype_bytes: int) -> int:
    """One decoder layer's working set on top of the residual stream and hidden states [T, h] x 2."""
    mlp = 0
    if any(not model.is_moe_layer(i) for i in layers):
        mlp = _dense_mlp_bytes(model, ceil_div(model.intermediate_size, tp), tokens, dtype_bytes)
    if model.moe is not None and any(model.is_moe_layer(i) for i in layers):
        mlp = max(mlp, _moe_bytes(model, tp, tokens, dtype_bytes))
    residual = 2 * tokens * model.hidden_size * dtype_bytes
    return residual + max(mlp, _attention_bytes(model, tp, tokens, dtype_bytes))


def sampler_bytes(model: ModelSpec, tokens: int, rows: int, dtype_bytes: int, fp32_tensors: int, hidden_copies: int = 2) -> int:
    """gpu_model_runner profile_run: the forward's hidden states [T, h] stay alive; _dummy_sampler_run adds
    `hidden_copies` [R, h] tensors (V1: last_hidden_states and rand_like; V2: the gathered sample rows),
    logits [R, V] in the model dtype (all-gathered under TP), and the sampler's fp32 tensors [R, V]
    (V1: three; V2: none, it samples in place)."""
    h, vocab = model.hidden_size, model.vocab_size
    hidden = tokens * h * dtype_bytes + hidden_copies * rows * h * dtype_bytes
    return hidden + rows * vocab * (dtype_bytes + fp32_tensors * FP32)


def profile_run(model: ModelSpec, layers: tuple[int, ...], is_last: bool, tp: int, max_num_batched_tokens: int,
                max_num_seqs: int, dtype_bytes: int, c: VllmConstants, model_runner_v2: bool = False) -> ProfileRun:
    tokens = max_num_batched_tokens
    fwd = forward_bytes(model, layers, tp, tokens, dtype_bytes)
    rows = min(max_num_seqs, tokens)  # _dummy_run: num_reqs = min(num_tokens, max_num_seqs)
    fp32, copies = ((c.v2_sampler_fp32_tensors, c.v2_sampler_hidden_copies) if model_runner_v2
                    else (c.sampler_fp32_tensors, c.sampler_hidden_copies))
    smp = sampler_bytes(model, tokens, rows, dtype_bytes, fp32, copies) if is_last else 0
    return ProfileRun(fwd, smp, c.profile_extra_bytes)


def v2_persistent_bytes(model: ModelSpec, is_last: bool, max_num_seqs: int, model_runner_v2: bool, c: VllmConstants) -> int:
    """Model Runner V2's sampler state on the last stage, inside the budget from 0.27 (c.v2_persistent_state_in_budget):
    v1/worker/gpu/sample/penalties.py PenaltiesState output_bin_counts [max_num_reqs, vocab] int32 and
    prompt_bin_mask [max_num_reqs, cdiv(vocab, 32)] int32 (max_num_reqs = max_num_seqs)."""
    if not (model_runner_v2 and is_last and c.v2_persistent_state_in_budget):
        return 0
    return max_num_seqs * (model.vocab_size + ceil_div(model.vocab_size, 32)) * INT32


def non_torch_bytes(tensor_parallel: int, c: VllmConstants) -> int:
    """memory_profiling non_torch_increase: a base per GPU, plus NCCL/custom all-reduce buffers once TP > 1."""
    if tensor_parallel == 1:
        return c.non_torch_bytes
    return c.non_torch_bytes + c.allreduce_bytes + c.allreduce_bytes_per_peer * (tensor_parallel - 1)
