"""oomplan: memory planner and OOM predictor for large language models.

Library API (no torch, no transformers on this path):
    load_model, load_gpu, estimate, Plan, Workload
"""
from __future__ import annotations

__version__ = "0.1.0"

from oomplan.memory.budget import Estimate, estimate
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

__all__ = ["Estimate", "Plan", "Workload", "__version__", "estimate", "load_gpu", "load_model"]
