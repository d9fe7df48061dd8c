"""`oomplan curve --json`: the points and the cliff of every plan, in bytes."""
from __future__ import annotations

from oomplan.planner.curve import CurveSet

CURVE_SCHEMA_VERSION = 1


def curve_json(cs: CurveSet) -> dict:
    return {
        "schema_version": CURVE_SCHEMA_VERSION,
        "model": cs.model.name,
        "gpu": cs.gpu.name,
        "capacity_bytes": cs.capacity_bytes,
        "axis": cs.axis,
        "batch_size" if cs.axis == "ctx" else "ctx_tokens": cs.fixed,
        "curves": [
            {
                "label": c.label,
                "plan": c.plan.model_dump(mode="json"),
                "cliff": {"last_fit": c.cliff.last_fit, "first_oom": c.cliff.first_oom},
                "points": [
                    {"x": p.x, "weights_bytes": p.weights_bytes, "kv_cache_bytes": p.kv_cache_bytes,
                     "state_bytes": p.state_bytes,
                     "activation_bytes": p.activation_bytes, "overhead_bytes": p.overhead_bytes,
                     "total_bytes": p.total_bytes, "fits": p.total_bytes <= cs.capacity_bytes}
                    for p in c.points
                ],
                "warnings": list(c.warnings),
            }
            for c in cs.curves
        ],
    }
