"""Rich rendering of an Estimate: the per-GPU budget table and a one-line verdict."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from oomplan.memory.budget import Estimate
from oomplan.memory.params import num_params
from oomplan.planner.verdict import Verdict, estimate_verdict
from oomplan.report.summary import plan_summary
from oomplan.memory.weights import weights_label
from oomplan.units import format_bytes, format_count
from oomplan.text import plural


def title(est: Estimate) -> str:
    w = est.workload
    return f"{est.model.name} on {est.gpu.display_name} · ctx {format_count(w.ctx_tokens)} x batch {w.batch_size}"


def budget_table(est: Estimate) -> Table:
    s, cap = est.per_gpu, est.capacity_bytes
    gpus = f"per GPU ({est.num_gpus} GPUs)" if est.num_gpus > 1 else "per GPU"
    table = Table(title=title(est), title_justify="left", caption=plan_summary(est.model, est.plan), caption_justify="left")
    table.add_column("component")
    table.add_column(gpus, justify="right")
    table.add_column("of card", justify="right")
    table.add_column("detail")
    rows = [
        ("weights", s.weights_bytes, f"{num_params(est.model) / 1e9:.2f}B params, {weights_label(est.model, est.plan)}"
         + (f", {format_bytes(s.weights.offloaded_bytes)} in CPU memory" if s.weights.offloaded_bytes else "")),
        ("KV cache", s.kv_cache_bytes, _kv_detail(s.kv, est.workload.batch_size, est.plan.kv_policy)),
        *_state_rows(s.state, est.workload.batch_size),
        ("activations", s.activation_bytes, _vision_detail(s) or _activation_detail(s.activations)),
        ("overhead", s.overhead_bytes, "CUDA context, cuBLAS, allocator" + (", NCCL" if s.overhead.nccl_bytes else "")),
    ]
    for name, value, detail in rows:
        table.add_row(name, format_bytes(value), f"{100 * value / cap:.1f}%", detail)
    table.add_section()
    table.add_row("total", format_bytes(s.total_bytes), f"{100 * s.total_bytes / cap:.1f}%", "", style="bold")
    peak = est.load_peak_stage
    transient_bytes = peak.load.transient_bytes if peak is not None and peak.load is not None else 0
    if peak is not None and peak.stage == s.stage:
        table.add_row("load peak", format_bytes(peak.load_total_bytes), f"{100 * peak.load_total_bytes / cap:.1f}%",
                      f"while loading (+{format_bytes(transient_bytes)} transient)", style="bold")
    elif peak is not None:
        table.add_row(f"load peak (stage {peak.stage})", format_bytes(peak.load_total_bytes), f"{100 * peak.load_total_bytes / cap:.1f}%",
                      f"while loading (+{format_bytes(transient_bytes)} transient)", style="bold")
    table.add_row("capacity", format_bytes(cap), "100.0%", f"{est.gpu.name}, as the driver reports it")
    table.add_row("headroom", format_bytes(est.headroom_bytes), f"{100 * est.headroom_bytes / cap:.1f}%", "")
    return table


def _kv_detail(kv, batch_size: int, policy=None) -> str:
    detail = f"{format_bytes(kv.bytes_per_token)}/token x {kv.tokens_per_sequence_full} tokens x {batch_size}"
    if kv.num_windowed_layers:  # sliding / chunked layers keep at most their window
        detail += f" ({kv.num_windowed_layers} of {kv.num_layers} layers keep {kv.window_tokens_max})"
    if policy is not None:
        detail += f" ({policy.label})"
    if kv.prefill_transient_bytes:
        detail += f" + {format_bytes(kv.prefill_transient_bytes)} prefill transient"
    if kv.cross_bytes:
        detail += f" + {format_bytes(kv.cross_bytes)} cross-attention K/V of the images"
    return detail


def _vision_detail(s) -> str | None:
    """With --images on the first stage: which moment is the peak, the tower's or the decoder's with the images kept."""
    v = s.vision
    if not v.num_images:
        if not v.output_held_bytes:
            return None
        # a Qwen VL text only: generate()'s M-RoPE position ids and mm_token_type_ids (memory/vision_activations.py)
        return f"{_activation_detail(s.activations)} + {format_bytes(v.output_held_bytes)} generate()'s M-RoPE position ids and mm_token_type_ids"
    if s.activation_bytes == v.encoder_bytes:
        return f"vision tower prefill ({plural(v.num_images, 'image')})"
    return f"{_activation_detail(s.activations)} + {format_bytes(v.prefill_held_bytes)} images, tower outputs and masks kept"


def _state_rows(state, batch_size: int) -> list[tuple[str, int, str]]:
    """The recurrent-state row, for models with Mamba / Gated DeltaNet layers (independent of context)."""
    if not state.num_layers:
        return []
    detail = f"{format_bytes(state.bytes_per_sequence)}/sequence x {batch_size} ({state.num_layers} {state.kind} layers, any context)"
    return [("recurrent state", state.bytes, detail)]


def _activation_detail(a) -> str:
    if a.peak_bytes == a.decode_step_bytes:
        return "decode step"
    if a.peak_bytes == a.logits_bytes:
        return "logits"
    return "prefill peak" + (f", eager scores {format_bytes(a.attention_scores_bytes)}" if a.attention_scores_bytes else "")


def verdict_style(v: Verdict) -> str:
    return "green" if v.ok else "bold red"


def verdict_text(v: Verdict) -> Text:
    """A library verdict (oomplan/planner/verdict.py), styled: green when it fits or passes, bold red otherwise."""
    return Text(v.line, style=verdict_style(v))


def verdict(est: Estimate) -> Text:
    return verdict_text(estimate_verdict(est))
