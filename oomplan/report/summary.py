"""One-line descriptions of a plan's knobs, shared by every report."""
from __future__ import annotations

from oomplan.memory.kv_cache import resolved_kv_dtype
from oomplan.memory.weights import weights_label
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import format_bytes


def plan_summary(model: ModelSpec, p: Plan) -> str:
    """'bf16 weights, fp8 KV, paged/16, sdpa, TP 2'."""
    parts = [f"{weights_label(model, p)} weights", f"{resolved_kv_dtype(model, p)} KV"]
    if p.dms_ratio > 1:
        parts.append(f"DMS {p.dms_ratio:g}x")
    if p.kv_policy is not None:
        parts.append(p.kv_policy.label)
    parts.append(f"paged/{p.block_size}" if p.paged else "contiguous KV")
    if p.prefill_chunk_tokens:
        parts.append(f"chunk {p.prefill_chunk_tokens}")
    parts.append(p.attention)
    if p.tensor_parallel > 1:
        parts.append(f"TP {p.tensor_parallel}")
    if p.pipeline_parallel > 1:
        parts.append(f"PP {p.pipeline_parallel}")
    if p.expert_parallel:
        parts.append("EP")
    if p.offload_bytes:
        parts.append(f"offload {format_bytes(p.offload_bytes)}")
    return ", ".join(parts)


def _short_bytes(num_bytes: int) -> str:
    return format_bytes(num_bytes).replace(" GiB", "G").replace(" MiB", "M")


def plan_short(model: ModelSpec, p: Plan) -> str:
    """Compact form for table rows: 'awq · KV fp8 · TP4 · off 12.5G'; defaults left out."""
    parts = [weights_label(model, p), f"KV {resolved_kv_dtype(model, p)}"]
    if p.dms_ratio > 1:
        parts.append(f"DMS{p.dms_ratio:g}")
    if p.kv_policy is not None:
        parts.append(p.kv_policy.short)
    if p.tensor_parallel > 1:
        parts.append(f"TP{p.tensor_parallel}")
    if p.pipeline_parallel > 1:
        parts.append(f"PP{p.pipeline_parallel}")
    if not p.paged:
        parts.append("contig")
    elif p.block_size != 16:
        parts.append(f"blk{p.block_size}")
    if p.prefill_chunk_tokens:
        parts.append(f"chunk{p.prefill_chunk_tokens}")
    if p.offload_bytes:
        parts.append(f"off {_short_bytes(p.offload_bytes)}")
    return " · ".join(parts)
