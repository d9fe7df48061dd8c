"""llama.cpp's --fit on several GPUs: the -ngl and --tensor-split it sets, or why it leaves the flags as given.

Read from ggml-org/llama.cpp@6d0892ba065b38ee790b825fdc8fb8e2c453e6dd common/fit.cpp common_params_fit_impl:
- step 1: price the flags as given; when every device keeps its margin (common_params.fit_params_target, 1024 MiB;
  free = ggml_backend_dev_memory at load, the card less its CUDA context; used = the device's model + context +
  compute buffers) nothing changes.
- step 2: only with -c 0 (the trained context) it lowers n_ctx by interpolating between two trial loads; oomplan
  does not model that interpolation and refuses (pass -c N).
- it then gives up (a warning; llama.cpp loads the flags as given) when -ngl, a non-zero --tensor-split,
  --split-mode row or a tensor override (--n-cpu-moe, -ot) was set by the user.
- step 3, a dense model: devices are filled back to front (the last device holds the output layer); device id gets
  the most layers of those still unassigned whose memory stays within free - margin, found by the method of false
  position between "none more" and "all the rest" (each trial a full test allocation, here box_split); layers no
  device takes stay on the CPU. It sets -ngl to the sum and --tensor-split to the layers per device.
- a MoE model takes steps 3-4 with per-layer expert overrides (dense-only layers at the back, the first of them
  partly overflowing, to the next device or the CPU), on one device as on several, which oomplan does not model:
  refused when it would change anything.
One device (fit_one_gpu) takes the same steps.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from oomplan.engines.llamacpp.constants import LlamaCppConstants
from oomplan.engines.llamacpp.devices import box_split, free_bytes
from oomplan.engines.llamacpp.gguf import GgufSizes
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.errors import InputError
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec

UINT32 = 2**32


@dataclass(frozen=True)
class BoxFit:
    """What --fit does on a box: `layers_per_gpu` set (-ngl their sum, --tensor-split them), or `kept_because` (the
    flags stay as given: they fit, or fit.cpp gives up for that reason)."""

    layers_per_gpu: tuple[int, ...] = ()
    kept_because: str = ""

    @property
    def n_gpu_layers(self) -> int:
        return sum(self.layers_per_gpu)


def _used(model: ModelSpec, sizes: GgufSizes, s: LlamaCppGiven, box: tuple[GpuSpec, ...], ngl: int,
          c: LlamaCppConstants) -> list[int]:
    """Each device's model + context + compute buffers (llama_get_memory_breakdown), no CUDA context."""
    split = box_split(model, sizes, s, box, ngl, c)
    return [d.weights_bytes + d.kv_bytes + d.compute_bytes for d in split.devices]


def _layers_used(model: ModelSpec, sizes: GgufSizes, s: LlamaCppGiven, box: tuple[GpuSpec, ...], per_gpu: list[int],
                 c: LlamaCppConstants) -> list[int]:
    """set_ngl_tensor_split_tbo + a test allocation: -ngl = the sum, --tensor-split = the layers per device (all zero:
    llama.cpp's default split, which places no layer anyway)."""
    ngl = sum(per_gpu)
    given = replace(s, n_gpu_layers=ngl, tensor_split=tuple(float(x) for x in per_gpu) if ngl else ())
    return _used(model, sizes, given, box, ngl, c)


def _trunc_div(a: int, b: int) -> int:
    """C++ int64 division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _gpus(n: int) -> str:
    return "one GPU" if n == 1 else f"{n} GPUs"


def _context_refusal(num_gpus: int) -> InputError:
    return InputError(f"-c 0 with --fit on {_gpus(num_gpus)}: llama.cpp lowers the trained context by interpolating two trial "
                      "loads (common/fit.cpp step 2), which oomplan does not model; pass -c N (or --fit off)")


def _moe_refusal(model: ModelSpec, num_gpus: int) -> InputError:
    placement = "-ngl N --tensor-split A,B" if num_gpus > 1 else "-ngl N"
    where = "the CPU or the next GPU" if num_gpus > 1 else "the CPU"
    return InputError(f"--fit on {_gpus(num_gpus)}: {model.name} is a MoE model, for which llama.cpp moves the experts of single "
                      f"layers to {where} (common/fit.cpp steps 3-4); oomplan does not model that: pass {placement} (and "
                      "--n-cpu-moe N) to price a placement, or --fit off")


def fit_one_gpu(model: ModelSpec, sizes: GgufSizes, s: LlamaCppGiven, gpu: GpuSpec, c: LlamaCppConstants) -> int:
    """common_params_fit_impl on one device, for -ngl left at its default: every layer when the GPU keeps the margin
    of its free memory; with tensor overrides (--n-cpu-moe, -ot) it gives up (every layer, as given); a MoE model or
    -c 0 is refused; else step 3, the most layers that fit (GPU bytes only grow with -ngl: split.fit_n_gpu_layers)."""
    from oomplan.engines.llamacpp.split import fit_n_gpu_layers, gpu_split

    n = model.num_layers
    if gpu_split(model, sizes, s, n + 1).gpu_bytes <= free_bytes(gpu) - c.fit_margin_bytes:
        return n + 1
    if s.ctx_tokens == 0:
        raise _context_refusal(1)
    if s.n_cpu_moe:
        return n + 1
    if model.moe is not None:
        raise _moe_refusal(model, 1)
    fitted = fit_n_gpu_layers(model, gpu, s, sizes)
    return 0 if fitted is None else fitted


def fit_box(model: ModelSpec, sizes: GgufSizes, s: LlamaCppGiven, box: tuple[GpuSpec, ...], c: LlamaCppConstants) -> BoxFit:
    """common_params_fit_impl for a layer split over `box` (s.fit on)."""
    n = model.num_layers
    explicit_ngl = s.n_gpu_layers is not None and s.n_gpu_layers >= 0
    ngl0 = s.n_gpu_layers if explicit_ngl and s.n_gpu_layers is not None else n + 1
    free = [free_bytes(g) for g in box]
    margin = c.fit_margin_bytes
    used = _used(model, sizes, s, box, ngl0, c)
    if all(f - u >= margin for f, u in zip(free, used, strict=True)):
        return BoxFit(kept_because="every GPU keeps --fit's 1024 MiB free")
    if s.ctx_tokens == 0 and sum(free) - sum(used) - margin * len(box) < 0:
        raise _context_refusal(len(box))
    if explicit_ngl:
        return BoxFit(kept_because=f"-ngl {s.n_gpu_layers} was set (fit.cpp: 'n_gpu_layers already set by user, abort')")
    if s.tensor_split:
        return BoxFit(kept_because="--tensor-split was set (fit.cpp: 'tensor_split already set by user, abort')")
    if s.split_mode == "row":
        return BoxFit(kept_because="--split-mode row (fit.cpp: 'changing weight allocation for LLAMA_SPLIT_MODE_ROW not implemented')")
    if s.n_cpu_moe:
        return BoxFit(kept_because="--n-cpu-moe / -ot set tensor overrides (fit.cpp: 'tensor_buft_overrides already set by user, abort')")
    if model.moe is not None:
        raise _moe_refusal(model, len(box))
    targets = [f - margin for f in free]
    per_gpu = [0] * len(box)
    mem = _layers_used(model, sizes, s, box, per_gpu, c)
    for i in reversed(range(len(box))):
        high = list(per_gpu)
        high[i] = n + 1 - sum(per_gpu[i + 1:])
        if high[i] == 0:
            continue
        mem_high = _layers_used(model, sizes, s, box, high, c)
        if mem_high[i] <= targets[i]:
            per_gpu, mem = high, mem_high
            continue
        delta = high[i] - per_gpu[i]
        while delta > 1:  # the method of false position; uint32_t step_size as in fit.cpp
            step = _trunc_div(delta * (targets[i] - mem[i]), mem_high[i] - mem[i]) % UINT32
            step = min(max(step, 1), delta - 1)
            test = list(per_gpu)
            test[i] += step
            mem_test = _layers_used(model, sizes, s, box, test, c)
            if mem_test[i] <= targets[i]:
                per_gpu, mem = test, mem_test
            else:
                high, mem_high = test, mem_test
            delta = high[i] - per_gpu[i]
    return BoxFit(layers_per_gpu=tuple(per_gpu))
