"""CUDA probe: the plan's per-GPU shard with real allocations (random weights) on the local GPU, the caching
allocator capped so that the local card stands for the plan's card; an OOM is a verdict.

What the cap is (`CudaCap`): the plan card's capacity, plus what the probe builds that the plan does not hold
(the 16-bit weights of a quantised plan, offloaded layers, the other PP stages' share, a 16-bit KV cache for
fp8/int KV, the KV that DMS evicts: `unrealised_bytes`, from the analytic model as the meta path adds it),
minus NCCL buffers (TP plans; one process allocates none) and minus this process's memory outside the
allocator (the CUDA context). When the local card cannot give that much (a plan for a larger card, other
processes' memory, a quantised plan built in 16-bit) the probe refuses with exit 3, saying which.

Bookkeeping: the CUDA calls go through `cuda_device.TorchCuda` (tests pass a fake). The memory fraction is set
for the run and the previous one restored first in a `finally`, whatever the run or its cleanup does.
Tied embeddings are tied again after `to_empty` (which would allocate lm_head twice), then the peak statistics
are reset. cuBLAS workspaces come from the caching allocator (torch >= 2.3), so they are predicted on the
allocated side, not the non-torch one. The SDPA kernel the dispatcher chose is recorded. Errors other than an
OOM (cuBLAS, cuDNN, a driver error) are exit 3, never a "does not fit".
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Protocol
from collections.abc import Callable

from oomplan.errors import InputError, RuntimeFailure
from oomplan.memory.budget import Estimate
from oomplan.probe.compare import ComponentCheck, CudaRunRecord, ProbeReport
from oomplan.probe.meta_run import AttentionName, DtypeName
from oomplan.probe.shard import probe_dtype, shard_config

GiB = 2**30


class CudaDevice(Protocol):  # oomplan.probe.cuda_device.TorchCuda, or a test's fake
    def versions(self): ...
    def init(self) -> None: ...
    def total_bytes(self) -> int: ...
    def free_bytes(self) -> int: ...
    def process_used_bytes(self) -> int | None: ...
    def reserved_bytes(self) -> int: ...
    def allocated_bytes(self) -> int: ...
    def max_allocated_bytes(self) -> int: ...
    def max_reserved_bytes(self) -> int: ...
    def reset_peak(self) -> None: ...
    def get_fraction(self) -> float: ...
    def set_fraction(self, fraction: float) -> None: ...
    def synchronize(self) -> None: ...
    def empty_cache(self) -> None: ...


@dataclass(frozen=True)
class RunOutcome:
    oom_at: str | None  # "loading weights", "prefill chunk 2", "decode step 1", or None
    attention_kernel: str
    transformers_version: str


# (hf_config, dtype name, attention, estimate, decode steps, device) -> outcome; the model is released on return
RunFn = Callable[[dict, DtypeName, AttentionName, Estimate, int, CudaDevice], RunOutcome]


@dataclass(frozen=True)
class CudaCap:
    plan_capacity_bytes: int
    unrealised_bytes: int  # signed: the probed build minus the plan's tensors
    nccl_bytes: int
    context_bytes: int

    @property
    def allocator_cap_bytes(self) -> int:
        return self.plan_capacity_bytes + self.unrealised_bytes - self.nccl_bytes - self.context_bytes


def _tensor_bytes(est: Estimate) -> int:
    s = est.per_gpu
    return s.weights_bytes + s.kv_cache_bytes + s.state_bytes + s.activation_bytes


def cuda_cap(est: Estimate, reference: Estimate, context_bytes: int) -> CudaCap:
    """`reference`: the estimate of the plan as probed (oomplan.probe.shard.probe_plan)."""
    return CudaCap(est.capacity_bytes, _tensor_bytes(reference) - _tensor_bytes(est),
                   est.per_gpu.overhead.nccl_bytes, context_bytes)


def probe_build_bytes(reference: Estimate) -> int:
    """What the probe itself is predicted to allocate (the probed plan's tensors, cuBLAS and allocator rounding)."""
    o = reference.per_gpu.overhead
    return _tensor_bytes(reference) + o.cublas_workspace_bytes + o.allocator_bytes


def check_local_card(est: Estimate, reference: Estimate, cap: CudaCap, local_name: str, local_total: int,
                     other_bytes: int | None, left: tuple[str, ...]) -> int:
    """The allocator limit to run under, or exit 3 when the local card cannot stand for the plan's card."""
    if est.capacity_bytes > local_total:
        raise RuntimeFailure(
            f"the plan is for {est.gpu.display_name} ({est.capacity_bytes / GiB:.2f} GiB) but the local GPU is {local_name} "
            f"({local_total / GiB:.2f} GiB): the probe cannot stand in for a larger card; run it on that card "
            f"(or --device meta)")
    available = local_total - (other_bytes or 0) - cap.context_bytes  # for this process's allocator
    build = probe_build_bytes(reference)
    if min(build, cap.allocator_cap_bytes) > available:
        what = (f"; it builds {cap.unrealised_bytes / GiB:.2f} GiB more than the plan holds ({'; '.join(left)})"
                if cap.unrealised_bytes > 0 else "")
        others = f" ({other_bytes / GiB:.2f} GiB are held by other processes)" if other_bytes else ""
        raise RuntimeFailure(
            f"the local {local_name} cannot hold what the probe must build: {build / GiB:.2f} GiB predicted, "
            f"{available / GiB:.2f} GiB available{others}{what}; use --device meta")
    return min(cap.allocator_cap_bytes, available)


def probe_cuda(est: Estimate, reference: Estimate, left: tuple[str, ...], tolerance_pct: float,
               num_decode_steps: int, device: CudaDevice | None = None, run: RunFn | None = None) -> ProbeReport:
    if est.workload.ctx_tokens <= num_decode_steps:
        raise InputError(f"--decode-steps: {num_decode_steps} leaves no prompt in the plan's ctx of "
                         f"{est.workload.ctx_tokens} tokens; use fewer decode steps than ctx tokens")
    if device is None:
        from oomplan.probe.cuda_device import TorchCuda

        device = TorchCuda()
    run = run or transformers_run
    device.init()
    versions = device.versions()
    total, free, reserved0 = device.total_bytes(), device.free_bytes(), device.reserved_bytes()
    own = device.process_used_bytes()
    if own is None:  # NVML cannot tell this process apart: everything in use counts as ours (others unknown)
        context0, other = max(0, total - free - reserved0), None
    else:
        context0, other = max(0, own - reserved0), max(0, total - free - own)
    cap = cuda_cap(est, reference, context0)
    limit = check_local_card(est, reference, cap, versions.device_name, total, other, left)
    previous = device.get_fraction()
    fraction = min(1.0, limit / total)
    outcome: RunOutcome | None = None
    try:
        device.set_fraction(fraction)
        outcome = run(shard_config(est.model, est.plan.tensor_parallel), probe_dtype(est.model, reference.plan),
                      est.plan.attention, est, num_decode_steps, device)
        allocated, reserved = device.max_allocated_bytes(), device.max_reserved_bytes()
        own_after = device.process_used_bytes()
        used_now = own_after if own_after is not None else total - device.free_bytes() - (other or 0)
        context = max(context0, used_now - device.reserved_bytes())
    finally:
        device.set_fraction(previous)  # first: a failing cleanup must not leave the cap behind
        try:
            gc.collect()
            device.empty_cache()
        except Exception:  # noqa: BLE001 - the run's own outcome or error is what is reported
            pass
    assert outcome is not None
    if outcome.oom_at and limit < cap.allocator_cap_bytes:
        others = f" ({other / GiB:.2f} GiB are held by other processes)" if other else ""
        raise RuntimeFailure(
            f"the local {versions.device_name} ran out of memory at {outcome.oom_at} under {limit / GiB:.2f} GiB, below "
            f"the {cap.allocator_cap_bytes / GiB:.2f} GiB that stand for the plan's {est.gpu.display_name}{others}: no verdict; "
            f"use --device meta")
    return _report(est, reference, left, tolerance_pct, cap, outcome, versions, allocated, reserved, context, other,
                   fraction, previous, device)


def _report(est, reference, left, tolerance_pct, cap: CudaCap, outcome: RunOutcome, versions, allocated: int,
            reserved: int, context: int, other: int | None, fraction: float, previous: float, device) -> ProbeReport:
    o = reference.per_gpu.overhead
    tensors = _tensor_bytes(reference)
    checks = (
        ComponentCheck("non-torch (CUDA context)", o.cuda_context_bytes, context),
        ComponentCheck("reserved (allocator)", tensors + o.cublas_workspace_bytes + o.allocator_bytes, reserved),
        ComponentCheck("total (max allocated, cuBLAS incl.)", tensors + o.cublas_workspace_bytes, allocated),
    )
    fits = outcome.oom_at is None and reserved + context + cap.nccl_bytes - cap.unrealised_bytes <= est.capacity_bytes
    notes = []
    if est.plan.attention != "eager" and outcome.attention_kernel == "math":
        notes.append("attention ran on SDPA's math kernel (scores materialised), not a fused one: the prediction "
                     "assumes a fused kernel")
    if cap.nccl_bytes:
        notes.append(f"NCCL buffers ({cap.nccl_bytes / 2**20:.0f} MiB) counted analytically (one process runs the TP shard)")
    record = CudaRunRecord(
        driver=versions.driver, cuda=versions.cuda, cudnn=versions.cudnn, torch=versions.torch,
        transformers=outcome.transformers_version, attention_kernel=outcome.attention_kernel,
        peak_allocated_bytes=allocated, peak_reserved_bytes=reserved, context_bytes=context,
        other_processes_bytes=other, unrealised_bytes=cap.unrealised_bytes, nccl_bytes=cap.nccl_bytes,
        allocator_cap_bytes=cap.allocator_cap_bytes, fraction=fraction, previous_fraction=previous,
        fraction_after=device.get_fraction(), allocated_after_bytes=device.allocated_bytes(),
    )
    text = (f"torch {versions.torch}, transformers {outcome.transformers_version}, CUDA {versions.cuda}, "
            f"cuDNN {versions.cudnn}, driver {versions.driver}, attention {outcome.attention_kernel}")
    return ProbeReport(versions.device_name, text, checks, tolerance_pct, left, outcome.oom_at, fits, record, tuple(notes))


# --- the real run (torch + transformers) ------------------------------------------------------------------
SDPA_KERNELS = {  # aten ops SDPA dispatches to (torch/nn/functional.py scaled_dot_product_attention, 2.11-2.13)
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "mem-efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "_scaled_dot_product_fused_attention_overrideable": "fused (overrideable)",
}


class KernelRecorder:
    """Names the SDPA kernels the dispatcher runs inside the `with` block (a TorchDispatchMode; holds no tensors).
    No fused op seen under sdpa means the math kernel (a composite of matmul/softmax)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        seen: set[str] = set()

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                name = func.overloadpacket.__name__
                if name in SDPA_KERNELS:
                    seen.add(SDPA_KERNELS[name])
                return func(*args, **(kwargs or {}))

        self.seen = seen
        self._mode = _Mode()

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)

    def kernel(self, attention: str) -> str:
        if attention == "eager":
            return "eager"
        return "+".join(sorted(self.seen)) if self.seen else "math"


def materialise(model, device: str):
    """`to_empty` on `device`, keeping tied embeddings tied: to_empty visits the shared Parameter once per module
    and would allocate lm_head as a second copy (Qwen2.5-0.5B: +0.25 GiB), so the output embedding's weight is
    taken out first and tied back after."""
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    tied = out is not None and inp is not None and getattr(out, "weight", None) is getattr(inp, "weight", None)
    if tied:
        del out._parameters["weight"]
    model.to_empty(device=device)
    if tied:
        out.weight = inp.weight
    return model.eval()


def transformers_run(hf_config: dict, dtype: DtypeName, attention: AttentionName, est: Estimate, num_decode_steps: int,
                     device: CudaDevice, device_type: str = "cuda") -> RunOutcome:
    """Build the shard (random weights), prefill (chunked as planned) then decode; the model and cache are
    released before returning. An OOM is an outcome; any other error is exit 3."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, DynamicCache

    from oomplan.probe.meta_run import _attn_implementation, _torch_dtype, build_config, cache_kwarg

    w, p = est.workload, est.plan
    prompt = w.ctx_tokens - num_decode_steps
    chunk = p.prefill_chunk_tokens or prompt
    keep = 1 if p.logits == "last" else 0
    step, model, cache, recorder = "loading weights", None, None, KernelRecorder()
    try:
        cfg = build_config(hf_config)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=_torch_dtype(dtype),
                                                     attn_implementation=_attn_implementation(cfg, attention))
        materialise(model, device_type)
        device.reset_peak()  # after tying: the peak starts at the weights
        cache = DynamicCache(config=model.config)
        kw = cache_kwarg(model)
        with torch.no_grad():
            for i, start in enumerate(range(0, prompt, chunk)):
                step = f"prefill chunk {i + 1}"
                ids = torch.zeros(w.batch_size, min(chunk, prompt - start), dtype=torch.long, device=device_type)
                if i == 0:
                    with recorder:
                        model(input_ids=ids, use_cache=True, logits_to_keep=keep, **{kw: cache})
                else:
                    model(input_ids=ids, use_cache=True, logits_to_keep=keep, **{kw: cache})
            for i in range(num_decode_steps):
                step = f"decode step {i + 1}"
                ids = torch.zeros(w.batch_size, 1, dtype=torch.long, device=device_type)
                model(input_ids=ids, use_cache=True, logits_to_keep=keep, **{kw: cache})
        device.synchronize()
        oom_at = None
    except torch.OutOfMemoryError:
        oom_at = step
    except (RuntimeError, ValueError, NotImplementedError) as exc:  # cuBLAS/cuDNN/driver (torch.AcceleratorError)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise RuntimeFailure(f"the CUDA probe failed at {step} ({type(exc).__name__}): {first}") from None
    finally:
        del model, cache
    return RunOutcome(oom_at, recorder.kernel(attention), transformers.__version__)
