"""llama.cpp prediction: the split for the requested (or --fit) -ngl, whether it loads, and what would."""
from __future__ import annotations

from dataclasses import replace

from oomplan.engines.llamacpp.box_fit import fit_box, fit_one_gpu
from oomplan.engines.llamacpp.constants import llamacpp_constants
from oomplan.engines.llamacpp.devices import BoxSplit, DeviceUse, box_devices, box_split, format_split
from oomplan.engines.llamacpp.gguf import GgufSizes, gguf_sizes
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.engines.llamacpp.split import (
    GpuSplit, decode_tokens_per_s, fit_n_cpu_moe, fit_n_gpu_layers, flash_attention, gpu_repeating_layers, gpu_split,
)
from oomplan.engines.result import EnginePrediction, MemoryItem
from oomplan.memory.params import num_params
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.units import format_bytes


def _effective_ngl(model: ModelSpec, gpu: GpuSpec, s: LlamaCppGiven, sizes: GgufSizes) -> int:
    """An explicit -ngl is kept (--fit only changes what the user left at its default)."""
    if s.n_gpu_layers is not None and s.n_gpu_layers >= 0:
        return s.n_gpu_layers
    if s.fit:
        return fit_one_gpu(model, sizes, s, gpu, llamacpp_constants())
    return model.num_layers + 1


def _items(model: ModelSpec, gpu: GpuSpec, split: GpuSplit, s: LlamaCppGiven) -> tuple[MemoryItem, ...]:
    n = model.num_layers
    return (
        MemoryItem("weights", split.weights_gpu_bytes, f"{s.gguf_type}: {gpu_repeating_layers(n, split.n_gpu_layers)}/{n} layers"
                   + (" + output layer" if split.n_gpu_layers >= 1 else "") + f"; {format_bytes(split.weights_host_bytes)} on the CPU"
                   + (f" (experts of {split.num_cpu_moe_layers} layers: {format_bytes(split.experts_host_bytes)})"
                      if split.num_cpu_moe_layers else "")),
        MemoryItem("KV cache", split.kv_gpu_bytes, f"{split.kv_cells:,} cells, K {s.cache_type_k}, V {s.cache_type_v}"
                   + (f"; {format_bytes(split.kv_host_bytes)} on the CPU" if split.kv_host_bytes else "")),
        MemoryItem("compute buffer", split.compute_bytes, f"n_ubatch {s.ubatch_tokens or llamacpp_constants().default_ubatch_tokens}, "
                   f"flash attention {'on' if flash_attention(model, s, llamacpp_constants()) else 'off'}"),
        MemoryItem("CUDA context", gpu.overhead.cuda_context_bytes, "driver context and kernels"),
    )


def _failures(model: ModelSpec, gpu: GpuSpec, s: LlamaCppGiven, split: GpuSplit, total: int) -> list[str]:
    out = []
    if s.cache_type_v.lower() not in ("f16", "bf16", "f32") and not flash_attention(model, s, llamacpp_constants()):
        out.append(f"a quantized V cache ({s.cache_type_v}) requires flash attention, which is off")
    if total > gpu.memory_bytes:
        out.append(f"CUDA out of memory: -ngl {split.n_gpu_layers} needs {format_bytes(total)} on the GPU "
                   f"(weights {format_bytes(split.weights_gpu_bytes)}, KV {format_bytes(split.kv_gpu_bytes)}, compute "
                   f"{format_bytes(split.compute_bytes)}, context), the card has {format_bytes(gpu.memory_bytes)}")
    return out


def _fixes(model: ModelSpec, gpu: GpuSpec, s: LlamaCppGiven, sizes: GgufSizes) -> list[str]:
    out = []
    needs_fa = s.cache_type_v.lower() not in ("f16", "bf16", "f32") and s.flash_attn == "off"
    usable = replace(s, flash_attn="on") if needs_fa else s
    if (fitted := fit_n_gpu_layers(model, gpu, usable, sizes)) is not None:
        out.append(f"-ngl {fitted}")
    q8 = replace(s, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="on")
    if s.cache_type_k == "f16" and fit_n_gpu_layers(model, gpu, q8, sizes) == model.num_layers + 1:
        out.append("-ctk q8_0 -ctv q8_0 -fa on")  # every layer fits with an 8-bit cache
    if needs_fa:
        out.append("-fa on")
    if s.n_cpu_moe >= 0 and (moe := fit_n_cpu_moe(model, gpu, usable, sizes)) is not None and moe > s.n_cpu_moe:
        out.append(f"-ngl all --n-cpu-moe {moe}")  # attention, shared experts and router stay on the GPU
    return out


def _settings(model: ModelSpec, s: LlamaCppGiven, sizes: GgufSizes, split: GpuSplit | BoxSplit,
              placement: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
    """The llama-server flags a prediction prices, in the order they are shown; `placement`: the multi-GPU flags."""
    settings = (("-m", f"{model.name} {s.gguf_type} ({format_bytes(sizes.file_bytes)})"), ("-ngl", str(split.n_gpu_layers)),
                *placement, ("-c", str(split.kv_cells)), ("-np", str(s.n_parallel)), ("-ctk", s.cache_type_k),
                ("-ctv", s.cache_type_v), ("-fa", s.flash_attn), ("--fit", "on" if s.fit else "off"))
    if split.num_cpu_moe_layers:
        settings += (("--n-cpu-moe", str(split.num_cpu_moe_layers)),)
    if s.context_shift:
        settings += (("--context-shift", ""), ("--keep", str(s.keep_tokens)))
    return settings


def _partial_offload_notes(num_layers: int, n_gpu_layers: int) -> list[str]:
    """llama.cpp offloads num_layers + 1 layers (the output layer last); fewer on the GPU is a partial offload."""
    if n_gpu_layers > num_layers:
        return []
    return [f"partial offload: {num_layers + 1 - n_gpu_layers} of {num_layers + 1} layers run on the CPU"]


def predict_llamacpp(model: ModelSpec, gpu: GpuSpec, s: LlamaCppGiven) -> EnginePrediction:
    ck = model.checkpoint if model.checkpoint is not None and model.checkpoint.kind == "gguf" else None
    if ck is not None:  # the file's own tensor types decide, not a name or a flag
        s = replace(s, gguf_type=ck.quant_method or s.gguf_type)
    box = box_devices(gpu, s)
    if s.split_mode == "none" or len(box) == 1:  # llama_prepare_model_devices: only devices[main_gpu]
        gpu, s = box[s.main_gpu], replace(s, devices=(), tensor_split=())
    else:
        return predict_box(model, box, s)
    sizes = device_sizes(gguf_sizes(model, s.gguf_type), (gpu,))
    split = gpu_split(model, sizes, s, _effective_ngl(model, gpu, s, sizes))
    items = _items(model, gpu, split, s)
    total = sum(i.bytes for i in items)
    failures = _failures(model, gpu, s, split, total)
    fixes = _fixes(model, gpu, s, sizes) if failures else []
    per_slot = split.kv_cells // max(1, s.n_parallel)
    settings = _settings(model, s, sizes, split)
    notes = [f"GGUF {s.gguf_type}: {format_bytes(sizes.file_bytes)} ({sizes.file_bytes * 8 / num_params(model):.2f} bits per weight)"
             + (f", from the file's tensor infos ({ck.num_tensors} tensors in {len(ck.files)} file(s))" if ck is not None else "")]
    if s.context_shift:
        notes.append(context_shift_note(per_slot, s.keep_tokens))
    notes += _partial_offload_notes(model.num_layers, split.n_gpu_layers)
    if split.num_cpu_moe_layers and model.moe is not None:
        c = llamacpp_constants()
        notes.append(f"expert offload: the routed experts of {split.num_cpu_moe_layers} layers ({format_bytes(split.experts_host_bytes)}) "
                     f"run on the CPU from host RAM; decode about {decode_tokens_per_s(model, gpu, sizes, split, c):.0f} tokens/s "
                     f"(memory-bound: active experts {model.moe.num_experts_per_token}/{model.moe.num_experts} per token, "
                     f"host RAM {c.host_memory_bandwidth_bytes_per_s / 1e9:.1f} GB/s assumed, {gpu.display_name} "
                     f"{gpu.memory_bandwidth_bytes_per_s / 1e9:.0f} GB/s)")
    return EnginePrediction(
        engine="llamacpp", model=model, gpu=gpu, num_gpus=1, settings=settings, items=items, gpu_total_bytes=total,
        kv_pool_bytes=split.kv_gpu_bytes + split.kv_host_bytes, kv_cache_tokens=split.kv_cells, num_kv_blocks=0,
        context_tokens=per_slot, max_concurrency=float(s.n_parallel), max_running_requests=s.n_parallel, starts=not failures,
        failures=tuple(failures), fixes=tuple(fixes), warnings=(), notes=tuple(notes),
        host_bytes=split.weights_host_bytes + split.kv_host_bytes, shifts_context=s.context_shift)


def context_shift_note(per_slot: int, keep: int) -> str:
    """tools/server/README.md --context-shift, --keep N; ggml-org/llama.cpp#17284 (a prompt over the context: HTTP 400)."""
    return (f"context shift: each slot holds {per_slot:,} tokens; when one fills while generating, llama.cpp keeps the first "
            f"{keep} (--keep) and discards half of the rest, so a sequence runs past {per_slot:,} tokens with "
            f"{per_slot:,} held; a prompt of {per_slot:,} tokens or more is refused (HTTP 400)")


def _layer_range(layers: tuple[int, ...]) -> str:
    return "no layers" if not layers else f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"


def _device_line(d: DeviceUse, n: int) -> str:
    return (f"GPU {d.index} {d.gpu.name}: {_layer_range(d.layers)} ({len(d.layers)}/{n})" + (" + output layer" if d.output else "")
            + f", weights {format_bytes(d.weights_bytes)}, KV {format_bytes(d.kv_bytes)}, compute {format_bytes(d.compute_bytes)}, "
            f"context {format_bytes(d.gpu.overhead.cuda_context_bytes)} = {format_bytes(d.total_bytes)} of {format_bytes(d.gpu.memory_bytes)}")


def _box_ngl(model: ModelSpec, s: LlamaCppGiven) -> int:
    """An explicit (or --fit's) -ngl; else every layer."""
    return s.n_gpu_layers if s.n_gpu_layers is not None and s.n_gpu_layers >= 0 else model.num_layers + 1


def device_sizes(sizes: GgufSizes, box: tuple[GpuSpec, ...]) -> GgufSizes:
    """The weights as the devices' buffers hold them: CUDA and HIP (ggml-cuda, NVIDIA and AMD cards) pad a quantized
    tensor's last row to 512 weights (gguf.cuda_row_padding_bytes); other backends (Metal) allocate the bytes."""
    return sizes if all(g.vendor in ("nvidia", "amd") for g in box) else sizes.without_padding()


def predict_box(model: ModelSpec, box: tuple[GpuSpec, ...], s: LlamaCppGiven) -> EnginePrediction:
    """-sm layer | row over several GPUs: each GPU priced on its own (devices.py); the table shows the tightest."""
    c, n = llamacpp_constants(), model.num_layers
    sizes = device_sizes(gguf_sizes(model, s.gguf_type), box)
    fitted = fit_box(model, sizes, s, box, c) if s.fit else None
    if fitted is not None and fitted.layers_per_gpu:
        s = replace(s, n_gpu_layers=fitted.n_gpu_layers, tensor_split=tuple(float(x) for x in fitted.layers_per_gpu))
    split = box_split(model, sizes, s, box, _box_ngl(model, s), c)
    t = split.tightest
    fa = flash_attention(model, s, c)
    items = (
        MemoryItem("weights", t.weights_bytes, f"{s.gguf_type}: GPU {t.index} of {len(box)}, {_layer_range(t.layers)} ({len(t.layers)}/{n})"
                   + (" + output layer" if t.output else "") + (", rows of every layer's matrices" if s.split_mode == "row" else "")
                   + f"; {format_bytes(split.weights_host_bytes)} on the CPU"),
        MemoryItem("KV cache", t.kv_bytes, f"{split.kv_cells:,} cells of its layers, K {s.cache_type_k}, V {s.cache_type_v}"
                   + (f"; {format_bytes(split.kv_host_bytes)} on the CPU" if split.kv_host_bytes else "")),
        MemoryItem("compute buffer", t.compute_bytes, f"n_ubatch {s.ubatch_tokens or c.default_ubatch_tokens}, flash attention {'on' if fa else 'off'}"
                   + (", output logits" if t.output or (t.index == 0 and not any(d.output for d in split.devices)) else "")),
        MemoryItem("CUDA context", t.gpu.overhead.cuda_context_bytes, "driver context and kernels"),
    )
    failures = []
    if s.cache_type_v.lower() not in ("f16", "bf16", "f32") and not fa:
        failures.append(f"a quantized V cache ({s.cache_type_v}) requires flash attention, which is off")
    for d in split.devices:
        if d.free_bytes < 0:
            failures.append(f"CUDA out of memory on GPU {d.index} ({d.gpu.name}): it needs {format_bytes(d.total_bytes)} (weights "
                            f"{format_bytes(d.weights_bytes)}, KV {format_bytes(d.kv_bytes)}, compute {format_bytes(d.compute_bytes)}, "
                            f"context), the card has {format_bytes(d.gpu.memory_bytes)}")
    notes = [f"GGUF {s.gguf_type}: {format_bytes(sizes.file_bytes)} ({sizes.file_bytes * 8 / num_params(model):.2f} bits per weight)",
             f"--split-mode {s.split_mode} over {len(box)} GPUs, --tensor-split "
             + (format_split(s.tensor_split) if s.tensor_split else "by free memory (llama.cpp's default: "
                + ",".join(f"{(g.memory_bytes - g.overhead.cuda_context_bytes) / 2**30:.2f}" for g in box) + " GiB)")]
    notes += [_device_line(d, n) for d in split.devices]
    if s.split_mode == "row":
        notes.append("row split: each matrix's rows are shared in the ratio of the split (ggml-cuda, default each GPU's total memory), "
                     "every boundary rounded down to a multiple of the kernels' row tile (128 rows) and each GPU's part padded "
                     "to whole 512-element rows; the layer's norms, its KV and its experts stay on the GPU that holds the layer")
    notes += _partial_offload_notes(n, split.n_gpu_layers)
    if fitted is not None and fitted.layers_per_gpu:
        notes.append(f"--fit (on by default) set -ngl {fitted.n_gpu_layers} --tensor-split {format_split(s.tensor_split)}: "
                     "it fills the GPUs back to front, each with the most layers that leave it 1024 MiB free "
                     "(common/fit.cpp); oomplan priced that placement")
    elif fitted is not None and failures:
        failures.append(f"--fit leaves the flags as given: {fitted.kept_because}")
    per_slot = split.kv_cells // max(1, s.n_parallel)
    placement = (("-sm", s.split_mode), ("-ts", format_split(s.tensor_split) if s.tensor_split else "default"))
    settings = _settings(model, s, sizes, split, placement)
    if s.context_shift:
        notes.append(context_shift_note(per_slot, s.keep_tokens))
    return EnginePrediction(
        engine="llamacpp", model=model, gpu=t.gpu, num_gpus=len(box), settings=settings, items=items, gpu_total_bytes=t.total_bytes,
        kv_pool_bytes=sum(d.kv_bytes for d in split.devices) + split.kv_host_bytes, kv_cache_tokens=split.kv_cells, num_kv_blocks=0,
        context_tokens=per_slot, max_concurrency=float(s.n_parallel), max_running_requests=s.n_parallel, starts=not failures,
        failures=tuple(failures), fixes=(), warnings=(), notes=tuple(notes),
        host_bytes=split.weights_host_bytes + split.kv_host_bytes, box=box, shifts_context=s.context_shift)

