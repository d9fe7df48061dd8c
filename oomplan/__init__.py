"""oomplan: memory planner and OOM predictor for large language models.

The Python API (oomplan/api.py, docs/python-api.md), re-exported here and imported on first use
(so `oomplan --version` and each command load only what they need):
    load_model, load_gpu, estimate, estimate_training, fit, fit_training, check, vet, curve,
    probe_plan (oomplan.api.probe: `oomplan.probe` is the probe subpackage), Plan, TrainingPlan, Workload, Estimate
No torch or transformers on this path; `probe_plan` imports torch when called.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Estimate", "Plan", "TrainingPlan", "Workload", "__version__", "check", "curve", "estimate", "estimate_training",
           "fit", "fit_training", "load_gpu", "load_model", "probe_plan", "vet"]


def __getattr__(name: str):
    if name in __all__:
        from oomplan import api

        return getattr(api, "probe" if name == "probe_plan" else name)
    raise AttributeError(f"module 'oomplan' has no attribute {name!r}")
