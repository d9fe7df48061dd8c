"""The `estimate --json` object. Stable: fields are only added; schema_version bumps otherwise.

Documented in docs/json-schema.md.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from oomplan import __version__
from oomplan.memory.budget import Estimate, StageBudget
from oomplan.memory.images import image_load
from oomplan.memory.kv_cache import resolved_kv_dtype
from oomplan.memory.params import num_active_params, params_by_component
from oomplan.memory.weights import effective_plan, resolved_weight_format
from oomplan.report.weights_source import weights_source_json
from oomplan.specs.model import ModelSpec

SCHEMA_VERSION = 1


def model_json(m: ModelSpec) -> dict[str, Any]:
    """The `model` object of every JSON (estimate, estimate --train, check): the model itself, whatever the plan."""
    by_comp = params_by_component(m)
    return {
        "name": m.name,
        "model_type": m.model_type,
        "source": m.source,
        "config_sha256": m.config_sha256,
        "num_params": sum(by_comp.values()),
        "num_active_params": num_active_params(m),
        "params_by_component": by_comp,
        "max_position_embeddings": m.max_position_embeddings,
    }


def stage_json(stage: StageBudget, capacity_bytes: int) -> dict[str, Any]:
    w = stage.weights
    return {
        "stage": stage.stage,
        "weights_bytes": stage.weights_bytes,
        "kv_cache_bytes": stage.kv_cache_bytes,
        "cross_kv_bytes": stage.kv.cross_bytes,
        "state_bytes": stage.state_bytes,
        "activation_bytes": stage.activation_bytes,
        "overhead_bytes": stage.overhead_bytes,
        "total_bytes": stage.total_bytes,
        "capacity_bytes": capacity_bytes,
        "headroom_bytes": capacity_bytes - stage.total_bytes,
        "weights": {
            "resident_bytes": w.resident_bytes,
            "offloaded_bytes": w.offloaded_bytes,
            "staging_bytes": w.staging_bytes,
            "by_component_bytes": asdict(w.by_component),
        },
        "kv_cache": {
            "bytes_per_token": stage.kv.bytes_per_token,
            "tokens_per_sequence_full": stage.kv.tokens_per_sequence_full,
            "tokens_per_sequence_sliding": stage.kv.tokens_per_sequence_sliding,
            "num_layers": stage.kv.num_layers,
            "prefill_transient_bytes": stage.kv.prefill_transient_bytes,
            "cross_kv_bytes": stage.kv.cross_bytes,
        },
        "vision": asdict(stage.vision),
        "state": {
            "kind": stage.state.kind,
            "bytes_per_sequence": stage.state.bytes_per_sequence,
            "num_layers": stage.state.num_layers,
        },
        "activations": asdict(stage.activations) | {"peak_bytes": stage.activation_bytes},
        "load_peak": None if stage.load is None else {
            "transient_bytes": stage.load.transient_bytes, "total_bytes": stage.load_total_bytes,
            "exceeds_steady": stage.load_exceeds_steady, "reason": stage.load.reason,
        },
        "overhead": asdict(stage.overhead),
    }


def _images_json(est: Estimate) -> dict[str, Any] | None:
    """--images: how many per sequence, their tokens each and where that count comes from; None without images."""
    images = image_load(est.model, est.workload)
    return None if images is None else asdict(images) | {"context_tokens": images.context_tokens}


def estimate_json(est: Estimate) -> dict[str, Any]:
    busiest = est.per_gpu
    return {
        "schema_version": SCHEMA_VERSION,
        "oomplan_version": __version__,
        "model": model_json(est.model),
        "gpu": {
            "name": est.gpu.name,
            "display_name": est.gpu.display_name,
            "memory_bytes": est.gpu.memory_bytes,
            "num_gpus": est.num_gpus,
        },
        "workload": est.workload.model_dump(),
        "images": _images_json(est),
        "plan": est.plan.model_dump() | {
            "resolved_weights": resolved_weight_format(est.model, est.plan),
            "resolved_kv_dtype": resolved_kv_dtype(est.model, est.plan),
            "declared_weights": est.model.declared_weights.model_dump() if est.model.declared_weights else None,
            "resolved_component_weights": effective_plan(est.model, est.plan).component_weights,
        },
        "weights_source": weights_source_json(est),
        "kv_cache_bytes_per_token": busiest.kv.bytes_per_token,
        "per_gpu": stage_json(busiest, est.capacity_bytes),
        "stages": [stage_json(s, est.capacity_bytes) for s in est.stages],
        "fits": est.fits,
        "warnings": list(est.warnings),
        "notes": list(est.notes),
    }
