"""The load-time peak: the largest transient on a GPU while transformers' from_pretrained loads the weights.

transformers 5.24 (core_model_loading.py convert_and_load_state_dict_in_model) reads safetensors through a
CPU mmap and materialises each tensor with `tensor.to(device, dtype)`; a dtype cast in that copy runs on the
CPU (PyTorch aten/src/ATen/native/cuda/Copy.cu: "Type conversions are performed on the CPU for CPU-GPU
copies"), so an fp32 checkpoint loaded as bf16 never holds fp32 on the GPU. What does hold extra is:
- quantise-on-load (bitsandbytes nf4/int8, online fp8) of an unquantised checkpoint: each weight arrives on
  the GPU in its float dtype and is quantised there. transformers then loads synchronously ("to avoid worker
  threads loading full-precision tensors to GPU faster than the main thread can quantize them"), so the
  transient is the largest single quantisable weight in that dtype;
- routed experts stored one tensor per expert (Mixtral, Qwen-MoE, DeepSeek on the hub) are fused into one
  3-D tensor per layer (conversion_mapping.py: MergeModulelist + Concatenate): a layer's expert weights exist
  twice, as pieces and merged. With async loading (the default) the 4 loader threads may run further ahead;
  HF_DEACTIVATE_ASYNC_LOAD=1 bounds it to this figure.
vLLM's default loader and llama.cpp (tensors copied from the mmap into buffers allocated at their final
size) add no GPU transient at load, so only the transformers path has this row. vLLM's online fp8
(`--quantization fp8` on a bf16 checkpoint) held the whole bf16 model before quantising until
https://github.com/vllm-project/vllm/pull/31914 (merged 2026-01, weights created on `meta` and materialised
per layer just in time); the calibrated vLLM (0.19) streams, so no row is added for it either.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from oomplan.memory.layout import pipeline_stages, shard
from oomplan.memory.params import inventory
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import DTYPE_BYTES

ON_THE_FLY = ("fp8", "fp8-channel", "fp8-block", "int8", "nf4")  # formats transformers can quantise at load (bitsandbytes, finegrained fp8)


@dataclass(frozen=True)
class LoadPeak:
    transient_bytes: int  # above the steady weights, on this GPU
    reason: str


def _float_bytes(model: ModelSpec, plan: Plan) -> float:
    from oomplan.memory.weights import dense_dtype

    return DTYPE_BYTES[dense_dtype(model, plan)]


def _pre_quantized(model: ModelSpec) -> bool:
    ck = model.checkpoint
    return model.declared_weights is not None or (ck is not None and (ck.quant_method is not None or ck.kind == "gguf"))


def _largest_quantisable(model: ModelSpec, plan: Plan) -> int:
    """The largest weight matrix one GPU receives, in the float dtype it arrives in."""
    per = _float_bytes(model, plan)
    inv = inventory(model)
    best = 0
    for kind in inv.layer_kinds:
        for t in kind.tensors:
            if t.quantizable:
                rows, cols, _ = shard(t, plan.tensor_parallel, plan.expert_parallel)
                best = max(best, int(rows * cols * per))
    return best


def _stored_per_expert(model: ModelSpec) -> bool:
    ck = model.checkpoint
    if ck is None:  # profiles: the hub checkpoints store one tensor per expert, except where the family says fused (Llama 4)
        return model.moe is None or not model.moe.stored_fused
    return any(".experts.0." in t.name for t in ck.tensors)


def _experts_per_layer(model: ModelSpec, plan: Plan, stage_index: int) -> int:
    """The largest MoE layer's routed-expert bytes on one GPU of the stage."""
    stage = pipeline_stages(model.num_layers, plan.pipeline_parallel)[stage_index]
    ck = model.checkpoint
    layers = set(stage.layer_indices)
    if ck is not None and ck.kind == "safetensors":
        from oomplan.memory.checkpoint_weights import _tp_ratios, held_weights

        ratio = _tp_ratios(model, plan, stage_index)["experts"]
        per_layer: dict[int, float] = {}
        for t in held_weights(model, plan.weights).tensors:
            if t.component == "experts" and t.layer in layers:
                per_layer[t.layer] = per_layer.get(t.layer, 0) + t.held_bytes * ratio
        return int(max(per_layer.values(), default=0))
    from oomplan.memory.weights import group_bytes, dense_dtype, resolved_weight_format

    fmt, dense = resolved_weight_format(model, plan), dense_dtype(model, plan)
    best = 0
    for kind in inventory(model).layer_kinds:
        if not layers.intersection(kind.layer_indices):
            continue
        best = max(best, sum(group_bytes(t, fmt, dense, plan) for t in kind.tensors if t.component == "experts"))
    return best


def load_peak(model: ModelSpec, plan: Plan, stage_index: int) -> LoadPeak | None:
    """The transient transformers adds while loading this stage's weights, when there is one."""
    peaks: list[LoadPeak] = []
    if plan.weights in ON_THE_FLY and not _pre_quantized(model):
        b = _largest_quantisable(model, plan)
        if b:
            peaks.append(LoadPeak(b, f"quantise-on-load to {plan.weights}: the largest weight arrives unquantised "
                                     f"({b:,} B in {'fp32' if _float_bytes(model, plan) == 4 else 'bf16/fp16'}) before it is quantised"))
    if model.is_moe and plan.weights in ("auto", "bf16", "fp16", "fp32") and not _pre_quantized(model) and _stored_per_expert(model):
        b = _experts_per_layer(model, plan, stage_index)
        if b:
            peaks.append(LoadPeak(b, f"experts stored one tensor per expert are fused per layer at load: one layer's experts "
                                     f"({b:,} B) exist twice"))
    return max(peaks, key=lambda p: p.transient_bytes) if peaks else None


def load_total_bytes(weights_bytes: int, transient_bytes: int, cuda_context_bytes: int, allocator_fraction: float) -> int:
    """What the GPU holds at the load peak: the weights loaded so far (all of them, at worst), the transient,
    the CUDA context and allocator rounding; no KV cache, activations or cuBLAS workspace exist yet."""
    tensors = weights_bytes + transient_bytes
    return tensors + cuda_context_bytes + int(math.floor(tensors * allocator_fraction))
