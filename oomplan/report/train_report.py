"""Rendering of a training estimate: the per-GPU budget table, the verdict and the JSON object.

The JSON keeps `estimate --json`'s keys and meanings (docs/json-schema.md): `per_gpu.kv_cache_bytes` is 0,
`per_gpu` also itemises `gradient_bytes` and `optimizer_bytes`, and `total_bytes` is the sum of all components.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.table import Table

from oomplan import __version__
from oomplan.memory.params import num_params
from oomplan.memory.train_estimate import TrainEstimate
from oomplan.memory.train_states import num_trainable_params, stage_params
from oomplan.memory.training import TrainStageBudget
from oomplan.report.estimate_json import SCHEMA_VERSION, model_json
from oomplan.specs.training import TrainingPlan
from oomplan.units import format_bytes, format_count


def training_summary(p: TrainingPlan) -> str:
    """'full fine-tuning, adamw (mixed), recompute full, ZeRO-2, DP 8 x TP 2, micro 2 x accum 4'."""
    mode = {"full": "full fine-tuning", "lora": f"LoRA r{p.lora_rank}", "qlora": f"QLoRA r{p.lora_rank}"}[p.mode]
    parts = [mode, f"{p.optimizer} ({p.precision})", f"recompute {p.recompute}", p.attention]
    if p.fsdp != "none":
        parts.append(f"FSDP {p.fsdp}")
    elif p.zero_stage:
        parts.append(f"ZeRO-{p.zero_stage}")
    if p.offload_optimizer or p.offload_params:
        parts.append("offload " + " + ".join(x for x, on in (("optimizer", p.offload_optimizer), ("weights", p.offload_params)) if on))
    layout = [f"{name} {n}" for name, n in (("DP", p.data_parallel), ("TP", p.tensor_parallel), ("PP", p.pipeline_parallel)) if n > 1]
    parts.append(" x ".join(layout) if layout else "1 GPU")
    if p.sequence_parallel:
        parts.append("SP")
    parts.append(f"micro {p.micro_batch_size} x accum {p.grad_accum_steps}")
    return ", ".join(parts)


def train_title(est: TrainEstimate) -> str:
    p = est.plan
    return f"{est.model.name} on {est.gpu.display_name} · train seq {format_count(p.seq_tokens)} x micro-batch {p.micro_batch_size}"


def _weights_detail(est: TrainEstimate, s: TrainStageBudget) -> str:
    p, params = est.plan, stage_params(est.model, est.plan, s.stage)
    base = {"full": p.precision if p.precision != "mixed" else "bf16", "lora": "bf16 base", "qlora": "nf4 base"}[p.mode]
    text = f"{num_params(est.model) / 1e9:.2f}B params, {base}"
    if p.is_peft:
        text += f" + {params.num_trainable_params / 1e6:.1f}M adapter params"
    return text + (f" + fp32 master {format_bytes(s.states.master_bytes)}" if s.states.master_bytes else "")


def _rows(est: TrainEstimate, s: TrainStageBudget) -> list[tuple[str, int, str]]:
    a, p = s.activations, est.plan
    return [
        ("weights", s.weights_bytes, _weights_detail(est, s)),
        ("gradients", s.gradient_bytes, "streamed to CPU memory" if p.offload_optimizer else ("fp32" if p.precision == "fp32" else "bf16")),
        ("optimizer", s.optimizer_bytes, f"{p.optimizer} states" + (f", ZeRO-{p.shard_stage} shard" if p.shard_stage else "")
         + (" in CPU memory" if p.offload_optimizer else "")),
        ("activations", s.activation_bytes, f"peak at {a.peak.name}; {a.num_layers} layers x {format_bytes(a.saved_layer_bytes)} kept"
         + (f" x {a.num_microbatches_in_flight} micro-batches" if a.num_microbatches_in_flight > 1 else "")),
        ("overhead", s.overhead_bytes, "CUDA context, cuBLAS, allocator" + (", NCCL" if s.overhead.nccl_bytes else "")),
    ]


def train_budget_table(est: TrainEstimate) -> Table:
    s, cap = est.per_gpu, est.capacity_bytes
    gpus = f"per GPU ({est.num_gpus} GPUs)" if est.num_gpus > 1 else "per GPU"
    table = Table(title=train_title(est), title_justify="left", caption=training_summary(est.plan), caption_justify="left")
    for name, just in (("component", "left"), (gpus, "right"), ("of card", "right"), ("detail", "left")):
        table.add_column(name, justify="right" if just == "right" else "left")
    for name, value, detail in _rows(est, s):
        table.add_row(name, format_bytes(value), f"{100 * value / cap:.1f}%", detail)
    table.add_section()
    table.add_row("total", format_bytes(s.total_bytes), f"{100 * s.total_bytes / cap:.1f}%", "", style="bold")
    table.add_row("capacity", format_bytes(cap), "100.0%", f"{est.gpu.name}, as the driver reports it")
    table.add_row("headroom", format_bytes(est.headroom_bytes), f"{100 * est.headroom_bytes / cap:.1f}%", "")
    if s.states.host_bytes:
        table.add_row("CPU memory", format_bytes(est.host_bytes_per_node), "", f"offloaded states of {min(est.num_gpus, est.gpu.num_gpus_per_node)} GPU(s) per node")
    return table


def train_stage_json(s: TrainStageBudget, capacity_bytes: int) -> dict[str, Any]:
    a = s.activations
    return {
        "stage": s.stage,
        "weights_bytes": s.weights_bytes,
        "kv_cache_bytes": 0,
        "activation_bytes": s.activation_bytes,
        "overhead_bytes": s.overhead_bytes,
        "gradient_bytes": s.gradient_bytes,
        "optimizer_bytes": s.optimizer_bytes,
        "total_bytes": s.total_bytes,
        "capacity_bytes": capacity_bytes,
        "headroom_bytes": capacity_bytes - s.total_bytes,
        "weights": {"compute_bytes": s.states.weights_bytes, "master_bytes": s.states.master_bytes},
        "host_bytes": s.states.host_bytes,
        "activations": {
            "peak_phase": a.peak.name,
            "phases": {p.name: p.bytes for p in a.phases},
            "layer": asdict(a.layer) | {"total_bytes": a.layer.total_bytes},
            "saved_layer_bytes": a.saved_layer_bytes,
            "num_layers": a.num_layers,
            "num_microbatches_in_flight": a.num_microbatches_in_flight,
            "stored_bytes": a.stored_bytes,
            "loss": asdict(a.loss) if a.loss else None,
        },
        "overhead": asdict(s.overhead),
    }


def train_estimate_json(est: TrainEstimate, speed=None) -> dict[str, Any]:
    p = est.plan
    return {
        "schema_version": SCHEMA_VERSION,
        "oomplan_version": __version__,
        "model": model_json(est.model),
        "gpu": {"name": est.gpu.name, "display_name": est.gpu.display_name, "memory_bytes": est.gpu.memory_bytes, "num_gpus": est.num_gpus},
        "workload": {"ctx_tokens": p.seq_tokens, "batch_size": p.micro_batch_size, "engine": "hf"},
        "training": p.model_dump(mode="json") | {
            "global_batch_size": p.global_batch_size, "tokens_per_step": p.tokens_per_step, "summary": training_summary(p),
            "num_trainable_params": num_trainable_params(est.model, p),
            "tokens_per_s": speed.tokens_per_s if speed else None,
        },
        "per_gpu": train_stage_json(est.per_gpu, est.capacity_bytes),
        "stages": [train_stage_json(s, est.capacity_bytes) for s in est.stages],
        "host_memory": {"bytes_per_node": est.host_bytes_per_node, "limit_bytes": est.host_memory_limit_bytes, "fits": est.host_fits},
        "fits": est.fits,
        "warnings": list(est.warnings),
        "notes": list(est.notes),
    }
