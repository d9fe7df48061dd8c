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
- on Apple GPUs (MPS) a float cast happens on the GPU: transformers 5.24 modeling_utils.py (the safetensors
  branch of _load_pretrained_model, "backend, device = 'pread', 'mps'") opens each file with
  safe_open(device="mps", backend="pread"), which reads the tensor bytes straight into a Metal buffer in the
  stored dtype (safetensors 0.8.0 __init__.pyi, safe_open `backend`); core_model_loading.py _materialize_copy
  then casts it there (`tensor.to(device, dtype)`), the stored copy alive until the cast returns. An fp32
  checkpoint loaded as bf16 thus holds, beside the weights loaded so far, each tensor once more in fp32;
  with async loading (GLOBAL_WORKERS = min(4, os.cpu_count()) threads, every Apple M-series has >= 8 cores)
  up to 4 of them at once, so the transient is the 4 largest cast tensors' stored bytes (the worst case of
  4 in flight; HF_DEACTIVATE_ASYNC_LOAD=1 makes it the largest one).
On CUDA/ROCm the files are opened on "cpu" (the same branch), and `tensor.to("cuda", bf16)` allocates the
bf16 result on the GPU and converts on the CPU before the copy (PyTorch aten/src/ATen/native/cuda/Copy.cu
copy_kernel_cuda: "Type conversions are performed on the CPU for CPU-GPU copies"): no fp32 on the GPU.
vLLM's default loader (vllm 0.19.0 model_executor/model_loader/weight_utils.py safetensors_weights_iterator:
safe_open(st_file, framework="pt") on the CPU, then `param.data.copy_(loaded_weight)` in the layers' weight
loaders) and llama.cpp (tensors copied from the mmap into buffers allocated at their final size) add no GPU
transient at load either. vLLM's `--load-format fastsafetensors` does (weight_utils.py
fastsafetensors_weights_iterator: `loader.copy_files_to_device()` puts one whole shard file per rank on the GPU
in its stored dtype before the weight loaders copy out of it); vet names --load-format as not modelled. vLLM's online fp8
(`--quantization fp8` on a bf16 checkpoint) held the whole bf16 model before quantising until
https://github.com/vllm-project/vllm/pull/31914 (merged 2026-01, weights created on `meta` and materialised
per layer just in time); the calibrated vLLM (0.19) streams, so no row is added for it either.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from oomplan.checkpoint.naming import component, layer_index
from oomplan.memory.layout import pipeline_stages, shard
from oomplan.memory.params import inventory
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import DTYPE_BYTES

MPS_LOAD_WORKERS = 4  # transformers 5.24 core_model_loading.py GLOBAL_WORKERS = min(4, os.cpu_count()); M-series: >= 8 cores
ON_THE_FLY = ("fp8", "fp8-channel", "fp8-block", "int8", "nf4")  # formats transformers can quantise at load (bitsandbytes, finegrained fp8)


@dataclass(frozen=True)
class LoadPeak:
    transient_bytes: int  # above the steady weights, on this GPU
    reason: str


def _float_bytes(model: ModelSpec, plan: Plan) -> float:
    return DTYPE_BYTES[dense_dtype_of(model, plan)]


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


def _cast_on_gpu(model: ModelSpec, plan: Plan, stage_index: int) -> tuple[int, int, str]:
    """(bytes, count, stored dtypes) of the MPS_LOAD_WORKERS largest tensors of the stage read onto an Apple GPU in
    a float dtype other than the one they are held in (stored bytes, this GPU's share)."""
    from oomplan.memory.checkpoint_weights import SAFETENSORS_FLOATS, _tp_ratios

    ck = model.checkpoint
    if ck is None or ck.kind != "safetensors" or ck.quant_method:
        return 0, 0, ""
    target = dense_dtype_of(model, plan)
    stage = pipeline_stages(model.num_layers, plan.pipeline_parallel)[stage_index]
    layers, ratios = set(stage.layer_indices), _tp_ratios(model, plan, stage_index)
    names = {t.name for t in ck.tensors}
    has_embedding = any(component(n) == "embedding" for n in names)
    cast: list[int] = []
    dtypes: set[str] = set()
    for t in ck.tensors:
        if SAFETENSORS_FLOATS.get(t.dtype, target) == target:
            continue
        comp, layer = component(t.name), layer_index(t.name)
        if comp == "lm_head" and model.tie_word_embeddings and has_embedding:
            continue  # not loaded (tied): never materialised
        here = layer in layers if layer is not None else (stage.is_first if comp == "embedding" else stage.is_last)
        if here:
            cast.append(int(t.nbytes * ratios.get(comp, 1.0)))
            dtypes.add(t.dtype)
    top = sorted(cast, reverse=True)[:MPS_LOAD_WORKERS]
    return sum(top), len(top), "/".join(sorted(dtypes))


def dense_dtype_of(model: ModelSpec, plan: Plan) -> str:
    from oomplan.memory.weights import dense_dtype

    return dense_dtype(model, plan)


def load_peak(model: ModelSpec, plan: Plan, stage_index: int, gpu: GpuSpec | None = None) -> LoadPeak | None:
    """The transient transformers adds while loading this stage's weights onto `gpu`, when there is one."""
    peaks: list[LoadPeak] = []
    if gpu is not None and gpu.vendor == "apple" and plan.weights in ("auto", "bf16", "fp16", "fp32"):
        b, n, dtypes = _cast_on_gpu(model, plan, stage_index)
        if b:
            peaks.append(LoadPeak(b, f"cast on the Apple GPU (MPS): tensors are read onto it in {dtypes} and cast to "
                                     f"{dense_dtype_of(model, plan)} there; the {n} largest ({b:,} B stored) may be in flight "
                                     f"at once (4 loader threads; HF_DEACTIVATE_ASYNC_LOAD=1 keeps one)"))
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
