"""Rendering of a MeasuredEstimate (a model counted by transformers on the meta device): table, verdict, JSON.

The JSON is the `estimate --json` object's shape where the two agree (model, gpu, workload, plan, per_gpu, fits,
warnings, notes; docs/json-schema.md), with `counted_by` and the measured cache layers added.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.table import Table
from rich.text import Text

from oomplan import __version__
from oomplan.memory.measured import MeasuredEstimate
from oomplan.report.estimate_json import SCHEMA_VERSION
from oomplan.units import format_bytes, format_count


def measured_notes(est: MeasuredEstimate) -> list[str]:
    m = est.model
    acts = m.activations
    notes = [f"{m.architecture} counted by {m.counted_by} on the meta device: parameters from its module tree, KV cache and "
             "state from the cache tensors of short forwards, activations measured at this context and batch (seconds)"]
    other = next((c for c in m.components if c.component == "other"), None)
    if other is not None:
        notes.append(f"{other.num_params:,} parameters sit in modules oomplan does not name (component 'other'); they are counted")
    if acts.peak_phase == "decode":
        notes.append("the peak is a decode step")
    return notes + list(m.notes)


def measured_table(est: MeasuredEstimate) -> Table:
    m, w, cap = est.model, est.workload, est.capacity_bytes
    table = Table(title=f"{m.name} on {est.gpu.display_name} · ctx {format_count(w.ctx_tokens)} x batch {w.batch_size}",
                  title_justify="left", caption_justify="left",
                  caption=f"{m.dtype} weights, {m.dtype} KV" + (f", paged/{est.plan.block_size}" if est.plan.paged else "")
                  + f", {est.plan.attention}; counted by {m.counted_by}")
    table.add_column("component")
    table.add_column("per GPU", justify="right")
    table.add_column("of card", justify="right")
    table.add_column("detail")
    windows = sorted({layer.window_tokens for layer in m.cache_layers if layer.window_tokens and layer.bytes_per_token})
    num_state = sum(bool(layer.per_sequence_bytes) for layer in m.cache_layers)
    rows = [
        ("weights", est.weights_bytes, (f"{m.num_params / 1e9:.2f}B" if m.num_params >= 10**8 else f"{m.num_params / 1e6:.2f}M")
         + f" params, {m.dtype}"),
        ("KV cache", est.kv_cache_bytes, f"{format_bytes(est.kv_cache_bytes_per_token)}/token x {w.ctx_tokens} tokens x {w.batch_size}"
         + (f" (windows {', '.join(map(str, windows))})" if windows else "")),
    ]
    if num_state:
        rows.append(("recurrent state", est.state_bytes, f"{format_bytes(est.state_bytes_per_sequence)}/sequence x {w.batch_size} "
                                                         f"({num_state} layers, any context)"))
    rows += [
        ("activations", est.activation_bytes, f"{m.activations.peak_phase} peak, measured"),
        ("overhead", est.overhead.total, "CUDA context, cuBLAS, allocator"),
    ]
    for name, value, detail in rows:
        table.add_row(name, format_bytes(value), f"{100 * value / cap:.1f}%", detail)
    table.add_section()
    table.add_row("total", format_bytes(est.total_bytes), f"{100 * est.total_bytes / cap:.1f}%", "", style="bold")
    table.add_row("capacity", format_bytes(cap), "100.0%", f"{est.gpu.name}, as the driver reports it")
    table.add_row("headroom", format_bytes(est.headroom_bytes), f"{100 * est.headroom_bytes / cap:.1f}%", "")
    return table


def measured_verdict(est: MeasuredEstimate) -> Text:
    total, cap = est.total_bytes, est.capacity_bytes
    if est.fits:
        return Text(f"fits: {format_bytes(total)} of {format_bytes(cap)} per GPU, {format_bytes(cap - total)} headroom", style="green")
    return Text(f"does not fit: needs {format_bytes(total)} per GPU, {format_bytes(cap)} available ({format_bytes(total - cap)} over)",
                style="bold red")


def measured_json(est: MeasuredEstimate) -> dict[str, Any]:
    m, cap = est.model, est.capacity_bytes
    num_kv = sum(bool(layer.bytes_per_token) for layer in m.cache_layers)
    num_state = sum(bool(layer.per_sequence_bytes) for layer in m.cache_layers)
    return {
        "schema_version": SCHEMA_VERSION,
        "oomplan_version": __version__,
        "counted_by": m.counted_by,
        "model": {
            "name": m.name, "model_type": m.model_type, "architecture": m.architecture, "source": m.source,
            "config_sha256": m.config_sha256, "num_params": m.num_params, "params_by_component": m.params_by_component,
            "max_position_embeddings": m.max_position_embeddings, "dtype": m.dtype,
            "transformers_version": m.transformers_version, "torch_version": m.torch_version,
        },
        "gpu": {"name": est.gpu.name, "display_name": est.gpu.display_name, "memory_bytes": est.gpu.memory_bytes, "num_gpus": 1},
        "workload": est.workload.model_dump(),
        "plan": est.plan.model_dump() | {"resolved_weights": m.dtype, "resolved_kv_dtype": m.dtype},
        "kv_cache_bytes_per_token": est.kv_cache_bytes_per_token,
        "per_gpu": {
            "weights_bytes": est.weights_bytes, "kv_cache_bytes": est.kv_cache_bytes, "state_bytes": est.state_bytes,
            "activation_bytes": est.activation_bytes, "overhead_bytes": est.overhead.total, "total_bytes": est.total_bytes,
            "capacity_bytes": cap, "headroom_bytes": est.headroom_bytes,
            "weights": {"by_component_bytes": {c.component: c.bytes for c in m.components}, "buffer_bytes": m.buffer_bytes},
            "kv_cache": {"bytes_per_token": est.kv_cache_bytes_per_token, "num_layers": num_kv},
            "state": {"bytes_per_sequence": est.state_bytes_per_sequence, "num_layers": num_state},
            "activations": m.activations.model_dump(),
            "overhead": asdict(est.overhead),
        },
        "cache_layers": [layer.model_dump() for layer in m.cache_layers],
        "fits": est.fits,
        "warnings": list(est.warnings),
        "notes": measured_notes(est),
    }
