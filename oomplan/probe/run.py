"""`oomplan probe`: run a plan for real (CUDA when torch sees a GPU, else meta) and compare."""
from __future__ import annotations

from oomplan.errors import InputError, RuntimeFailure
from oomplan.memory.budget import Estimate, StageBudget, estimate
from oomplan.probe.compare import ComponentCheck, ProbeReport
from oomplan.probe.shard import probe_dtype, probe_plan, shard_config


def _torch():
    try:
        import torch
    except ImportError:
        raise RuntimeFailure("the probe needs torch and transformers: pip install 'oomplan[probe]'") from None
    return torch


def tensor_bytes(s: StageBudget) -> int:
    return s.weights_bytes + s.kv_cache_bytes + s.state_bytes + s.activation_bytes


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if _torch().cuda.is_available() else "meta"
    if device == "cuda" and not _torch().cuda.is_available():
        raise RuntimeFailure("--device cuda: torch sees no CUDA GPU (use --device meta)")
    return device


def probe(est: Estimate, device: str = "auto", tolerance_pct: float = 2.0, num_decode_steps: int = 2) -> ProbeReport:
    """Probe the busiest GPU's shard of the plan; knobs the probe cannot realise stay analytic."""
    if est.workload.ctx_tokens <= num_decode_steps:
        raise InputError(f"--decode-steps: {num_decode_steps} leaves no prompt in the plan's ctx of "
                         f"{est.workload.ctx_tokens} tokens; use fewer decode steps than ctx tokens")
    device = pick_device(device)
    probed, left = probe_plan(est.model, est.plan)
    reference = estimate(est.model, est.gpu, est.workload, probed)
    if device == "cuda":
        from oomplan.probe.cuda_run import probe_cuda

        return probe_cuda(est, reference, left, tolerance_pct, num_decode_steps)
    return _probe_meta(est, reference, left, tolerance_pct, num_decode_steps)


def _meta_kwargs(est: Estimate, reference: Estimate, num_decode_steps: int) -> dict:
    p = est.plan
    return dict(ctx_tokens=est.workload.ctx_tokens, batch_size=est.workload.batch_size, attention=p.attention,
                dtype=probe_dtype(est.model, reference.plan),
                num_decode_steps=num_decode_steps, prefill_chunk_tokens=p.prefill_chunk_tokens,
                logits_to_keep=1 if p.logits == "last" else 0)


def _probe_meta(est: Estimate, reference: Estimate, left: tuple[str, ...], tolerance_pct: float, steps: int) -> ProbeReport:
    from oomplan.probe.meta_run import run_meta_probe

    try:
        r = run_meta_probe(shard_config(est.model, est.plan.tensor_parallel), **_meta_kwargs(est, reference, steps))
    except (ValueError, RuntimeError, NotImplementedError) as exc:
        raise RuntimeFailure(f"the meta probe could not run {est.model.name}: {exc}") from None
    s = reference.per_gpu
    transient = r.peak_bytes - r.weights_bytes - r.kv_cache_bytes_final
    checks = (
        ComponentCheck("weights", s.weights_bytes, r.weights_bytes),
        # the cache the probe measures holds the recurrent state too (cache_utils.LinearAttentionLayer)
        ComponentCheck("KV cache + state" if s.state_bytes else "KV cache", s.kv_cache_bytes + s.state_bytes, r.kv_cache_bytes_final),
        ComponentCheck("activations", s.activation_bytes, transient),
        ComponentCheck("total (tensors)", tensor_bytes(s), r.peak_bytes),
    )
    delta = tensor_bytes(est.per_gpu) - tensor_bytes(s)  # what the unprobed knobs change, analytically
    fits = r.peak_bytes + delta + est.per_gpu.overhead_bytes <= est.capacity_bytes
    versions = f"torch {r.torch_version}, transformers {r.transformers_version}, attention {r.attn_implementation}"
    return ProbeReport("meta", versions, checks, tolerance_pct, left, None, fits)
