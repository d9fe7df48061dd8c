"""CUDA probe: the plan's per-GPU shard with real allocations (random weights), capped to the
target card with set_per_process_memory_fraction; an OOM is a verdict, and memory and the cap are
always restored. Only runs where torch sees a GPU (tests marked `cuda`)."""
from __future__ import annotations

import gc

from oomplan.memory.budget import Estimate
from oomplan.probe.compare import ComponentCheck, ProbeReport
from oomplan.probe.shard import shard_config


def _load(hf_config: dict, dtype, attention: str):
    import torch
    from transformers import AutoModelForCausalLM

    from oomplan.probe.meta_run import _attn_implementation, build_config

    cfg = build_config(hf_config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=_attn_implementation(cfg, attention))
    return model.to_empty(device="cuda").eval()  # real allocations, no initialisation


def _run_steps(model, est: Estimate, num_decode_steps: int) -> str | None:
    """Prefill (chunked as planned) then decode; returns where it ran out of memory, or None."""
    import torch
    from transformers import DynamicCache

    w, p = est.workload, est.plan
    prompt = w.ctx_tokens - num_decode_steps
    chunk = p.prefill_chunk_tokens or prompt
    cache = DynamicCache(config=model.config)
    keep = 1 if p.logits == "last" else 0
    step = "loading"
    try:
        with torch.no_grad():
            for i, start in enumerate(range(0, prompt, chunk)):
                step = f"prefill chunk {i + 1}"
                ids = torch.zeros(w.batch_size, min(chunk, prompt - start), dtype=torch.long, device="cuda")
                model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=keep)
            for i in range(num_decode_steps):
                step = f"decode step {i + 1}"
                ids = torch.zeros(w.batch_size, 1, dtype=torch.long, device="cuda")
                model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=keep)
        torch.cuda.synchronize()
    except torch.OutOfMemoryError:
        return step
    finally:
        del cache
    return None


def probe_cuda(est: Estimate, reference: Estimate, left: tuple[str, ...], tolerance_pct: float, num_decode_steps: int) -> ProbeReport:
    import torch
    import transformers

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(est.model.dtype, torch.bfloat16)
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, est.capacity_bytes / total))
    model, oom = None, None
    try:
        torch.cuda.reset_peak_memory_stats()
        try:
            model = _load(shard_config(est.model, est.plan.tensor_parallel), dtype, est.plan.attention)
            oom = _run_steps(model, est, num_decode_steps)
        except torch.OutOfMemoryError:
            oom = "loading weights"
        allocated, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        free, device_total = torch.cuda.mem_get_info()
        non_torch = device_total - free - torch.cuda.memory_reserved()
    finally:
        del model
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(1.0)
    s = reference.per_gpu
    tensors = s.weights_bytes + s.kv_cache_bytes + s.activation_bytes
    checks = (
        ComponentCheck("non-torch (context, cuBLAS)", s.overhead.cuda_context_bytes + s.overhead.cublas_workspace_bytes, non_torch),
        ComponentCheck("reserved (allocator)", tensors + s.overhead.allocator_bytes, reserved),
        ComponentCheck("total (max allocated)", tensors, allocated),
    )
    fits = oom is None and reserved + non_torch <= est.capacity_bytes
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, CUDA {torch.version.cuda}"
    return ProbeReport(torch.cuda.get_device_name(0), versions, checks, tolerance_pct, left, oom, fits)
