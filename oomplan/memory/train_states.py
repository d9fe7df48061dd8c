"""Model states of a training step per GPU: weights, fp32 master weights, gradients, optimizer states.

Trainable tensors are listed per GPU (TP shard of one pipeline stage) so that per-tensor optimizer
layouts (8-bit blocks, Adafactor's factored moments) and the largest tensor (step temporaries) are exact.
ZeRO (Rajbhandari et al. 2020) and FSDP then divide what they shard by the shard group, and ZeRO-Offload
(Ren et al. 2021) moves the fp32 master, optimizer states and the optimizer step to CPU memory.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dataclasses import dataclass
from functools import lru_cache

from oomplan.memory.layout import Stage, pipeline_stages, shard
from oomplan.memory.params import TensorGroup, inventory
from oomplan.memory.weights import group_bytes
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.specs.training import LORA_ALL_LINEAR, TrainingPlan
from oomplan.units import FP32, ceil_div

BNB_BLOCK = 256  # bitsandbytes blockwise 8-bit optimizer states: one fp32 absmax per 256 values per state
BNB_MIN_8BIT_SIZE = 4096  # bitsandbytes keeps 32-bit states for tensors smaller than this


@dataclass(frozen=True)
class BytesPerParam:
    """Bytes one trainable parameter takes, before sharding (optimizer states are per tensor)."""

    weights: int  # the compute copy
    master: int  # fp32 master copy (mixed precision)
    gradients: int
    state: int  # bytes of one optimizer state value


# Rajbhandari et al. 2020 (ZeRO), section 3.1: mixed-precision Adam keeps 2 + 2 + 12 bytes per parameter.
PRECISION_BYTES = {
    "mixed": BytesPerParam(weights=2, master=4, gradients=2, state=4),
    "bf16": BytesPerParam(weights=2, master=0, gradients=2, state=4),
    "pure-bf16": BytesPerParam(weights=2, master=0, gradients=2, state=2),
    "fp32": BytesPerParam(weights=4, master=0, gradients=4, state=4),
}


@dataclass(frozen=True)
class Matrix:
    """`count` trainable tensors of shape [rows, cols] on one GPU (cols == 1 for vectors)."""

    rows: int
    cols: int
    count: int = 1

    @property
    def num_params(self) -> int:
        return self.rows * self.cols * self.count


def optimizer_state_bytes(optimizer: str, m: Matrix, state_bytes: int) -> int:
    """Optimizer states of `m` (unsharded)."""
    n = m.rows * m.cols
    if optimizer == "adamw":  # Loshchilov & Hutter 2019: first and second moments
        return 2 * n * state_bytes * m.count
    if optimizer == "sgd":  # momentum buffer
        return n * state_bytes * m.count
    if optimizer == "adafactor":  # Shazeer & Stern 2018: factored second moment (row + column), no momentum
        return (m.rows + m.cols if m.cols > 1 else n) * state_bytes * m.count
    if optimizer == "adamw8bit":  # Dettmers et al. 2022: uint8 states + fp32 absmax per 256-value block
        if n < BNB_MIN_8BIT_SIZE:
            return 2 * n * FP32 * m.count
        return (2 * n + 2 * ceil_div(n, BNB_BLOCK) * FP32) * m.count
    raise ValueError(f"unknown optimizer {optimizer!r}")


@dataclass(frozen=True)
class StageParams:
    """Parameters one GPU holds for its TP shard of one pipeline stage, before ZeRO/FSDP sharding."""

    trainable: tuple[Matrix, ...]
    num_frozen_params: int
    frozen_weight_bytes: int  # the frozen base (LoRA: bf16, QLoRA: nf4 for linear weights)
    largest_layer_params: int  # one decoder layer (trainable + frozen): ZeRO-3/FSDP gather one at a time
    num_layers: int
    largest_trainable_params: int  # the largest trainable tensor as stored (fused tensors whole)
    largest_layer_tensor_params: int  # the largest tensor of a decoder layer (its new gradient in backward)

    @property
    def num_trainable_params(self) -> int:
        return sum(m.num_params for m in self.trainable)


def is_lora_target(t: TensorGroup, targets: tuple[str, ...]) -> bool:
    """A linear weight whose module name (the last part of its name) is targeted; biases are not."""
    if not t.quantizable:
        return False
    return LORA_ALL_LINEAR in targets or t.name.rsplit(".", 1)[-1] in targets


def _stage_groups(model: ModelSpec, pp: int, stage_index: int) -> tuple[tuple[TensorGroup, int], ...]:
    """(group, number of layers it repeats over) for one pipeline stage."""
    stage = stage_layers(model.num_layers, pp, stage_index)
    inv = inventory(model)
    out = [(t, 1) for t in (inv.embedding if stage.is_first else ())]
    out += [(t, 1) for t in (inv.head if stage.is_last else ())]
    if stage.is_last and not stage.is_first and model.tie_word_embeddings:
        out += [(t, 1) for t in inv.embedding]  # a tied lm_head on the last stage holds its own copy
    layers = set(stage.layer_indices)
    for kind in inv.layer_kinds:
        num = len(layers.intersection(kind.layer_indices))
        out += [(t, num) for t in kind.tensors if num]
    return tuple(out)


def _layer_params(model: ModelSpec, tp: int) -> int:
    """Elements of the largest decoder layer on one GPU of the TP group."""
    def per_gpu(t: TensorGroup) -> int:
        rows, cols, count = shard(t, tp, False)
        return rows * cols * count

    return max(sum(per_gpu(t) for t in kind.tensors) for kind in inventory(model).layer_kinds)


def _stored_name(model: ModelSpec, t: TensorGroup) -> str:
    """The parameter a group is part of as transformers stores it: routed experts are one 3-D tensor per
    projection (gate and up fused) in transformers 5; Phi-3 fuses qkv and gate_up, Falcon qkv."""
    short = t.name.rsplit(".", 1)[-1]
    fuse_mlp = t.expert or model.fused_gate_up
    if fuse_mlp and short in ("gate_proj", "up_proj"):
        return t.name.replace(short, "gate_up_proj")
    if model.fused_qkv and short in ("q_proj", "k_proj", "v_proj"):
        return t.name.replace(short, "qkv_proj")
    return t.name


def largest_tensor_params(model: ModelSpec, groups: Iterable[TensorGroup], tp: int) -> int:
    """Elements of the largest parameter tensor among `groups` on one GPU, fused tensors as stored."""
    sizes: dict[str, int] = {}
    for t in groups:
        rows, cols, count = shard(t, tp, False)
        name = _stored_name(model, t)
        sizes[name] = sizes.get(name, 0) + rows * cols * (count if t.expert else 1)
    return max(sizes.values(), default=0)


@lru_cache(maxsize=64)
def stage_layers(num_layers: int, pipeline_parallel: int, stage_index: int) -> Stage:
    """pipeline_stages(...)[stage_index], cached: the training search asks many times."""
    return pipeline_stages(num_layers, pipeline_parallel)[stage_index]


PARAMS_FIELDS = ("mode", "precision", "lora_rank", "lora_targets", "tensor_parallel", "pipeline_parallel")


def stage_params(model: ModelSpec, tplan: TrainingPlan, stage_index: int) -> StageParams:
    """Trainable and frozen parameters of one GPU; LoRA adapters follow the TP split of their base."""
    return _stage_params(model, tuple(getattr(tplan, f) for f in PARAMS_FIELDS), stage_index)


@lru_cache(maxsize=1024)
def _stage_params(model: ModelSpec, key: tuple[Any, ...], stage_index: int) -> StageParams:
    """Cached on the knobs the parameter layout depends on (the training search asks many times)."""
    tplan = TrainingPlan.model_construct(seq_tokens=1, **dict(zip(PARAMS_FIELDS, key, strict=True)))
    tp, r = tplan.tensor_parallel, tplan.lora_rank
    dense = "fp32" if tplan.precision == "fp32" else "bf16"
    base = Plan(weights="nf4" if tplan.mode == "qlora" else dense, tensor_parallel=tp)
    trainable: list[Matrix] = []
    frozen_params = frozen_bytes = 0
    for t, num in _stage_groups(model, tplan.pipeline_parallel, stage_index):
        rows, cols, count = shard(t, tp, False)
        if not tplan.is_peft:
            trainable.append(Matrix(rows, cols, count * num))
            continue
        frozen_params += rows * cols * count * num
        frozen_bytes += group_bytes(t, base.weights, dense, base) * num
        if is_lora_target(t, tplan.lora_targets):  # Hu et al. 2021: A is r x in, B is out x r
            trainable += [Matrix(r, cols, count * num), Matrix(rows, r, count * num)]
    stage = stage_layers(model.num_layers, tplan.pipeline_parallel, stage_index)
    groups = [t for t, _ in _stage_groups(model, tplan.pipeline_parallel, stage_index)]
    layer_groups = [t for kind in inventory(model).layer_kinds for t in kind.tensors]
    largest = max((m.rows * m.cols for m in trainable), default=0) if tplan.is_peft else largest_tensor_params(model, groups, tp)
    return StageParams(tuple(trainable), frozen_params, frozen_bytes, _layer_params(model, tp), len(stage.layer_indices),
                       largest, largest_tensor_params(model, layer_groups, tp))


@dataclass(frozen=True)
class ModelStates:
    """Persistent bytes of one GPU (what survives between steps), and its share of CPU memory."""

    weights_bytes: int  # compute weights on the GPU: trainable + frozen base
    master_bytes: int  # fp32 master weights on the GPU
    gradient_bytes: int
    optimizer_bytes: int
    host_bytes: int  # offloaded to CPU memory (master, optimizer states, fp32 gradients, weight shards)

    @property
    def gpu_bytes(self) -> int:
        return self.weights_bytes + self.master_bytes + self.gradient_bytes + self.optimizer_bytes


def shard_group_size(tplan: TrainingPlan, num_gpus_per_node: int) -> int:
    """DP ranks one ZeRO/FSDP shard spans: all of them, or (FSDP hybrid) those within one node."""
    if tplan.fsdp == "hybrid":
        per_node = max(1, num_gpus_per_node // (tplan.tensor_parallel * tplan.pipeline_parallel))
        return min(tplan.data_parallel, per_node)
    return tplan.data_parallel


def sharded_states(num_trainable: int, frozen_weight_bytes: int, optimizer_bytes: int, bpp: BytesPerParam,
                   stage: int, shard_size: int, offload_optimizer: bool = False, offload_params: bool = False) -> ModelStates:
    """ZeRO stage 1 shards master + optimizer states, 2 also gradients, 3 also weights (Rajbhandari et al. 2020, fig. 1)."""
    def part(num_bytes: int, from_stage: int) -> int:
        return ceil_div(num_bytes, shard_size) if stage >= from_stage else num_bytes

    weights = part(num_trainable * bpp.weights + frozen_weight_bytes, 3)
    master, optimizer = part(num_trainable * bpp.master, 1), part(optimizer_bytes, 1)
    gradients = part(num_trainable * bpp.gradients, 2)
    host = 0
    if offload_optimizer:  # Ren et al. 2021 (ZeRO-Offload): gradients stream to the CPU, which holds them in fp32 with the
        host += master + optimizer + part(num_trainable * FP32, 1)  # master and the states and runs the step
        master = optimizer = gradients = 0
    if offload_params:  # ZeRO-Infinity: the weight shard lives in CPU memory, gathered layer by layer
        host, weights = host + weights, 0
    return ModelStates(weights, master, gradients, optimizer, host)


def model_states(model: ModelSpec, tplan: TrainingPlan, stage_index: int, num_gpus_per_node: int) -> ModelStates:
    """Model states of one GPU of pipeline stage `stage_index`."""
    params = stage_params(model, tplan, stage_index)
    bpp = PRECISION_BYTES[tplan.precision]
    state_bytes = 1 if tplan.optimizer == "adamw8bit" else bpp.state
    optimizer = sum(optimizer_state_bytes(tplan.optimizer, m, state_bytes) for m in params.trainable)
    return sharded_states(params.num_trainable_params, params.frozen_weight_bytes, optimizer, bpp, tplan.shard_stage,
                          shard_group_size(tplan, num_gpus_per_node), tplan.offload_optimizer, tplan.offload_params)


def num_trainable_params(model: ModelSpec, tplan: TrainingPlan) -> int:
    """Trainable parameters of the whole model (every layer, no TP split)."""
    whole = tplan.model_copy(update={"tensor_parallel": 1, "pipeline_parallel": 1, "sequence_parallel": False})
    return stage_params(model, whole, 0).num_trainable_params
