"""Roofline speed of a training step: FLOPs over the GPUs' peak, pipeline bubbles, CPU offload traffic.

FLOPs per token: 6N for forward + backward (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", 2.1),
4N when frozen weights need no weight gradients (LoRA/QLoRA), plus causal attention (2 matmuls x 2 FLOPs x s/2
per head dimension per layer, forward), plus what recompute runs again: full recompute a second forward (8N in
all; Korthikanti et al. 2022, table 3), selective the attention core. Communication is added, not overlapped, at the
GPU's interconnect bandwidth: TP's four all-reduces of the activations per layer (Shoeybi et al. 2019, fig. 4),
DP's gradient all-reduce per step, ZeRO-3's two weight all-gathers and gradient reduce-scatter per micro-batch
(Rajbhandari et al. 2020, 7.2.2). Ideal figures for ranking: real runs reach 35-55% of the compute roofline (MFU).
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.memory.params import num_active_params, params_by_component
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.training import TrainingPlan

OFFLOAD_BYTES_PER_PARAM = 2 + 2  # ZeRO-Offload: 16-bit gradients to the CPU, 16-bit weights back (Ren et al. 2021)
CPU_ADAM_PARAMS_PER_S = 2e9  # assumed: DeepSpeed's vectorised CPU-Adam on one node's CPUs (order of magnitude, for ranking)


@dataclass(frozen=True)
class TrainSpeed:
    flops_per_token: float
    step_s: float  # one optimizer step: the global batch on all GPUs
    tokens_per_s: float


def train_flops_per_token(model: ModelSpec, plan: TrainingPlan) -> float:
    """Forward + backward (+ recompute) FLOPs per token; the input embedding is a lookup, not a matmul."""
    embedding = params_by_component(model)["embedding"] if not model.tie_word_embeddings else 0
    n = num_active_params(model) - embedding
    attention = 2.0 * plan.seq_tokens * model.num_attention_heads * model.head_dim * model.num_layers  # forward, causal
    backward = 2.0 if plan.is_peft else 4.0  # input gradients; weight gradients only when the weights train
    flops = (2.0 + backward) * n + 3.0 * attention
    if plan.recompute == "full":
        flops += 2.0 * n + attention
    elif plan.recompute == "selective":
        flops += attention
    return flops


def pipeline_efficiency(plan: TrainingPlan) -> float:
    """1F1B: m micro-batches through p stages take m + p - 1 slots (Narayanan et al. 2021, 2.2)."""
    m, p = plan.grad_accum_steps, plan.pipeline_parallel
    return m / (m + p - 1)


def communication_s(model: ModelSpec, gpu: GpuSpec, plan: TrainingPlan) -> float:
    """Seconds per step one GPU spends in collectives (ring algorithms: 2(n-1)/n of the data per all-reduce)."""
    bw, tp, dp = gpu.interconnect.bandwidth_bytes_per_s, plan.tensor_parallel, plan.data_parallel
    act_bytes = 4 if plan.precision == "fp32" else 2
    seconds = 0.0
    if tp > 1:
        tokens = plan.micro_batch_size * plan.grad_accum_steps * plan.seq_tokens
        per_token = 4 * 2 * (tp - 1) / tp * model.hidden_size * act_bytes * model.num_layers / plan.pipeline_parallel
        seconds += tokens * per_token / bw
    if dp > 1:
        shard = num_active_params(model) / (tp * plan.pipeline_parallel) if not plan.is_peft else 0.0
        grads = shard * act_bytes
        if plan.shard_stage == 3:
            seconds += 3 * (dp - 1) / dp * grads * plan.grad_accum_steps / bw
        else:
            seconds += 2 * (dp - 1) / dp * grads / bw
    return seconds


def train_speed(model: ModelSpec, gpu: GpuSpec, plan: TrainingPlan) -> TrainSpeed:
    flops = train_flops_per_token(model, plan)
    compute_s = flops * plan.tokens_per_step / (gpu.dense_bf16_flops_per_s * plan.num_gpus) / pipeline_efficiency(plan)
    compute_s += communication_s(model, gpu, plan)
    offload_s = 0.0
    if plan.offload_optimizer:
        trainable = num_active_params(model) if not plan.is_peft else 0  # adapters are small
        shard = max(1, plan.data_parallel if plan.shard_stage else 1) * plan.tensor_parallel * plan.pipeline_parallel
        offload_s = trainable / shard * OFFLOAD_BYTES_PER_PARAM / gpu.host_link.bandwidth_bytes_per_s
        offload_s += trainable / shard * min(plan.num_gpus, gpu.num_gpus_per_node) / CPU_ADAM_PARAMS_PER_S  # the CPU step
    if plan.offload_params:  # each GPU streams its 16-bit weight shard in for forward and backward, and back after the update
        offload_s += 3 * 2 * num_active_params(model) / plan.num_gpus / gpu.host_link.bandwidth_bytes_per_s
    step_s = compute_s + offload_s
    return TrainSpeed(flops, step_s, plan.tokens_per_step / step_s)
