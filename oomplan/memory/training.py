"""The per-GPU budget of a training step: model states, then the peak of activations and temporaries.

Persistent (between steps): weights (+ fp32 master), gradients, optimizer states (train_states.py).
On top of them the step goes through phases, and the largest one is the activation budget:
  layer forward      the layers before the last + the last one's forward (eager: its softmax moment)
  forward            saved activations of every layer in flight + the loss (logits, fp32 copy, log-softmax)
  loss backward      saved activations + log-softmax, its gradient and the logits' gradient (fp32)
  head backward      saved activations + the logits' gradient, lm_head's new weight gradient
  layer backward     saved activations + one layer's gradients (+ the layer rebuilt by recompute)
  embedding backward the embedding's dense gradient (tied: summed with lm_head's)
  optimizer step     one tensor at a time: its fp32 gradient copy (mixed) + the optimizer's temporaries
ZeRO-3/FSDP add the gathered weights of two layers (current + prefetch) and one layer's gradients during
forward/backward; ZeRO-1/2 a gradient reduce bucket during backward.
"""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass
from functools import lru_cache

from oomplan.memory.overhead import OverheadBudget, overhead_budget
from oomplan.memory.train_activations import (
    LayerActivations, LossBytes, checkpoint_bytes, dims, eager_mask_bytes, layer_activations, layer_backward_bytes,
    layer_forward_bytes, loss_bytes, masked_layers, norm_bytes,
)
from oomplan.memory.train_states import PRECISION_BYTES, ModelStates, model_states, shard_group_size, stage_layers, stage_params
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.training import TrainingPlan
from oomplan.units import FP32, ceil_div

DEEPSPEED_REDUCE_BUCKET = 500_000_000  # elements: DeepSpeed's default reduce_bucket_size (ZeRO-1/2)


@dataclass(frozen=True)
class PhaseBytes:
    name: str
    bytes: int  # on top of the model states


@dataclass(frozen=True)
class TrainActivations:
    """Activations and temporaries of one GPU of one pipeline stage."""

    layer: LayerActivations  # one layer, one micro-batch, without full recompute
    saved_layer_bytes: int  # one layer under the recompute policy
    num_layers: int
    num_microbatches_in_flight: int  # 1F1B: stage i of p holds min(p - i, accumulation) micro-batches
    stored_bytes: int  # everything kept for backward at the end of the forward pass
    loss: LossBytes | None  # last stage only
    phases: tuple[PhaseBytes, ...]

    @property
    def peak(self) -> PhaseBytes:
        return max(self.phases, key=lambda p: p.bytes)

    @property
    def peak_bytes(self) -> int:
        return self.peak.bytes


def step_temporary_bytes(tplan: TrainingPlan, largest_params: int) -> int:
    """The optimizer step, one tensor (or shard) at a time: its fp32 gradient copy under mixed precision, plus
    torch.optim's single-tensor temporaries (AdamW: sqrt(v) and its quotient; Adafactor: the factored estimate and
    the update). bitsandbytes' fused kernels (adamw8bit, 32-bit states on bf16 weights) allocate none."""
    if tplan.offload_optimizer:
        return 0
    state = PRECISION_BYTES[tplan.precision].state
    copy = FP32 * largest_params if tplan.precision == "mixed" else 0
    fused = tplan.optimizer in ("adamw8bit", "sgd") or tplan.precision == "bf16"
    return copy + (0 if fused else 2 * state * largest_params)


def sharding_buffers(tplan: TrainingPlan, layer_params: int, num_trainable: int, shard_size: int) -> tuple[int, int]:
    """(gathered weights during forward/backward, gradient buffer during backward) of ZeRO/FSDP."""
    bpp = PRECISION_BYTES[tplan.precision]
    if tplan.offload_optimizer and tplan.shard_stage < 3:  # ZeRO-Offload: gradients leave through the reduce bucket
        return 0, min(DEEPSPEED_REDUCE_BUCKET, num_trainable) * bpp.gradients
    if shard_size == 1:
        return 0, 0
    if tplan.shard_stage == 3:  # FSDP/ZeRO-3: current + prefetched layer unsharded, one layer's gradients to reduce-scatter
        trainable_layer = 0 if tplan.is_peft else layer_params
        return 2 * layer_params * bpp.weights, trainable_layer * bpp.gradients
    if tplan.shard_stage in (1, 2):  # DeepSpeed's reduce bucket
        return 0, min(DEEPSPEED_REDUCE_BUCKET, num_trainable) * bpp.gradients
    return 0, 0  # DDP: gradients are views of its buckets


ACTIVATION_FIELDS = ("mode", "precision", "seq_tokens", "micro_batch_size", "tensor_parallel", "sequence_parallel",
                     "recompute", "attention", "lora_rank", "lora_targets")


def activation_key(tplan: TrainingPlan) -> tuple[Any, ...]:
    """The knobs one micro-batch's activations depend on (a cache key; the search varies the others)."""
    return tuple(getattr(tplan, f) for f in ACTIVATION_FIELDS)


def _plan(key: tuple[Any, ...]) -> TrainingPlan:
    return TrainingPlan.model_construct(**dict(zip(ACTIVATION_FIELDS, key, strict=True)))


@lru_cache(maxsize=1024)
def _kind_counts(model: ModelSpec, seq_tokens: int, layer_indices: tuple[int, ...]) -> tuple[tuple[tuple[bool, bool], int], ...]:
    """How many of the layers are of each kind: (MoE layer, masked sliding-window layer)."""
    masked = masked_layers(model, TrainingPlan.model_construct(seq_tokens=seq_tokens))
    counts: dict[tuple[bool, bool], int] = {}
    for i in layer_indices:
        kind = (model.is_moe_layer(i), i in masked)
        counts[kind] = counts.get(kind, 0) + 1
    return tuple(counts.items())


@lru_cache(maxsize=8192)
def _kind_bytes(model: ModelSpec, key: tuple[Any, ...], kind: tuple[bool, bool]) -> tuple[int, int, int]:
    """(kept under the recompute policy, forward transient, backward transient) of one layer of a kind."""
    plan = _plan(key)
    kept = checkpoint_bytes(model, plan) if plan.recompute == "full" else layer_activations(model, plan, *kind).total_bytes
    return kept, layer_forward_bytes(model, plan, *kind), layer_backward_bytes(model, plan, *kind)


def _stored_layer_bytes(model: ModelSpec, tplan: TrainingPlan, layer_indices: tuple[int, ...]) -> int:
    """What the stage's layers keep for one micro-batch under the recompute policy."""
    key = activation_key(tplan)
    return sum(_kind_bytes(model, key, kind)[0] * num for kind, num in _kind_counts(model, tplan.seq_tokens, layer_indices))


@lru_cache(maxsize=4096)
def _first_stage_bytes(model: ModelSpec, key: tuple[Any, ...]) -> int:
    """RoPE's cos and sin (1 x s x head_dim each); the masks when checkpoints keep them as inputs (eager: one
    per attention kind in e bytes; sdpa: the sliding-window mask, bool); a frozen embedding leaves layer 0's
    first norm nothing to keep."""
    tplan = _plan(key)
    d = dims(model, tplan)
    first = 2 * d.seq_tokens * d.head_dim * d.dtype_bytes
    if model.sdpa_causal_mask and tplan.attention == "sdpa":  # FalconModel's float mask, kept by every layer
        first += eager_mask_bytes(d)
    if tplan.recompute != "none":
        if tplan.attention == "eager":
            first += eager_mask_bytes(d) * (2 if model.num_sliding_layers else 1)
        elif masked_layers(model, tplan):
            first += d.num_sequences * d.seq_tokens**2
    if tplan.is_peft and tplan.recompute != "full":
        first -= ceil_div(norm_bytes(model, d, d.hidden, False) * d.num_tokens, d.replicated_divisor)
    return first


def _embedding_backward_bytes(model: ModelSpec, tplan: TrainingPlan, stage_is_last: bool) -> int:
    """The end of backward: the embedding's dense gradient; tied, it is summed with lm_head's (a third copy)."""
    if tplan.is_peft:
        return 0
    d = dims(model, tplan)
    copies = 3 if model.tie_word_embeddings and stage_is_last else 1
    return copies * d.dtype_bytes * ceil_div(model.vocab_size, d.tensor_parallel) * d.hidden + d.dtype_bytes * d.num_tokens * d.hidden


def _tied_head_gradient_bytes(model: ModelSpec, tplan: TrainingPlan) -> int:
    """A tied lm_head's weight gradient waits, unsummed, for the embedding's until the end of backward."""
    if not model.tie_word_embeddings or tplan.is_peft:
        return 0
    d = dims(model, tplan)
    return d.dtype_bytes * ceil_div(model.vocab_size, d.tensor_parallel) * d.hidden


def train_activations(model: ModelSpec, tplan: TrainingPlan, stage_index: int, num_gpus_per_node: int) -> TrainActivations:
    """Every phase of one step on one GPU of pipeline stage `stage_index`, on top of the model states."""
    stage, key = stage_layers(model.num_layers, tplan.pipeline_parallel, stage_index), activation_key(tplan)
    in_flight = min(tplan.pipeline_parallel - stage_index, tplan.grad_accum_steps)
    layers = in_flight * _stored_layer_bytes(model, tplan, stage.layer_indices)
    first = _first_stage_bytes(model, key) if stage.is_first else 0
    loss = _loss_bytes(model, key) if stage.is_last else None
    stored = layers + first + (loss.head_saved_bytes if loss else 0)
    params, shard = stage_params(model, tplan, stage_index), shard_group_size(tplan, num_gpus_per_node)
    gather, bucket = sharding_buffers(tplan, params.largest_layer_params, params.num_trainable_params, shard)
    last = stage.layer_indices[-1]  # the last layer forward is the first one backward
    kind = _kind_counts(model, tplan.seq_tokens, (last,))[0][0]
    saved, forward, backward = _kind_bytes(model, key, kind)
    d = dims(model, tplan)
    phases = [PhaseBytes("layer forward", layers - saved + first + gather + forward),
              PhaseBytes("forward", stored + gather + (loss.forward_bytes if loss else d.dtype_bytes * d.num_tokens * d.hidden))]
    if loss:
        phases.append(PhaseBytes("loss backward", stored + gather + bucket + loss.backward_bytes))
        phases.append(PhaseBytes("head backward", stored + gather + bucket + loss.head_backward_bytes))
    held = _tied_head_gradient_bytes(model, tplan) if stage.is_first and stage.is_last else 0
    phases.append(PhaseBytes("layer backward", layers + first + gather + bucket + held + backward))
    if stage.is_first:
        phases.append(PhaseBytes("embedding backward", gather + bucket + _embedding_backward_bytes(model, tplan, stage.is_last)))
    largest = ceil_div(params.largest_trainable_params, shard) if tplan.shard_stage else params.largest_trainable_params
    phases.append(PhaseBytes("optimizer step", step_temporary_bytes(tplan, largest)))
    layer = _layer(model, key, kind)
    return TrainActivations(layer, saved, len(stage.layer_indices), in_flight, stored, loss, tuple(phases))


@lru_cache(maxsize=4096)
def _layer(model: ModelSpec, key: tuple[Any, ...], kind: tuple[bool, bool]) -> LayerActivations:
    return layer_activations(model, _plan(key), *kind)


@lru_cache(maxsize=4096)
def _loss_bytes(model: ModelSpec, key: tuple[Any, ...]) -> LossBytes:
    return loss_bytes(model, _plan(key))


@dataclass(frozen=True)
class TrainStageBudget:
    """One GPU of one pipeline stage. The JSON keys keep the inference meanings; KV cache is 0."""

    stage: int
    states: ModelStates
    activations: TrainActivations
    overhead: OverheadBudget

    @property
    def weights_bytes(self) -> int:  # compute weights + fp32 master weights
        return self.states.weights_bytes + self.states.master_bytes

    @property
    def kv_cache_bytes(self) -> int:
        return 0

    @property
    def gradient_bytes(self) -> int:
        return self.states.gradient_bytes

    @property
    def optimizer_bytes(self) -> int:
        return self.states.optimizer_bytes

    @property
    def activation_bytes(self) -> int:  # the peak phase: activations, loss tensors and temporaries
        return self.activations.peak_bytes

    @property
    def overhead_bytes(self) -> int:
        return self.overhead.total

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.gradient_bytes + self.optimizer_bytes + self.activation_bytes + self.overhead_bytes


def train_stage_budget(model: ModelSpec, gpu: GpuSpec, tplan: TrainingPlan, stage_index: int) -> TrainStageBudget:
    states = model_states(model, tplan, stage_index, gpu.num_gpus_per_node)
    acts = train_activations(model, tplan, stage_index, gpu.num_gpus_per_node)
    overhead = overhead_budget(gpu, states.gpu_bytes + acts.peak_bytes, tplan.num_gpus)
    return TrainStageBudget(stage_index, states, acts, overhead)
