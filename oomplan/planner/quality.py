"""Quality-risk grades of a plan's lossy choices: number formats from the format registry (data/formats.yaml),
DMS ratios and KV policies from data/quality_risk.yaml."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from oomplan import formats
from oomplan.memory.kv_cache import resolved_kv_dtype
from oomplan.memory.weights import SIXTEEN_BIT, resolved_weight_format
from oomplan.specs.kv_policy import BudgetPolicy, WindowPolicy, kept_tokens
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan

DATA = Path(__file__).resolve().parent.parent / "data" / "quality_risk.yaml"


@dataclass(frozen=True)
class LossyChoice:
    knob: str
    value: str
    grade: int
    reason: str
    source: str


@dataclass(frozen=True)
class QualityRisk:
    grade: int  # worst choice: 0 lossless .. 3 high
    label: str
    choices: tuple[LossyChoice, ...]


@lru_cache(maxsize=1)
def _table() -> dict:
    return yaml.load(DATA.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _choice(knob: str, value: str) -> LossyChoice:
    entry = _table()["choices"][knob][value]
    return LossyChoice(knob, value, entry["grade"], entry["reason"], entry["source"])


def _format_choice(knob: str, value: str) -> LossyChoice:
    g = formats.get(value).grade("weights" if knob == "weights" else "kv")
    assert g is not None, f"{value} does not store {knob}"
    return LossyChoice(knob, value, g.grade, g.reason, g.source)


@lru_cache(maxsize=4096)
def _risk(weights: tuple[str, ...], kv: str, dms: float, policy: str | None = None) -> QualityRisk:
    choices = []
    for w in weights:
        if w not in SIXTEEN_BIT:
            choices.append(_format_choice("weights", w))
    if kv not in SIXTEEN_BIT:
        choices.append(_format_choice("kv_dtype", kv))
    if dms > 1:
        key = str(min((2, 4, 8), key=lambda r: (abs(r - dms), -r)))  # the nearest graded ratio
        choices.append(_choice("dms_ratio", key))
    if policy is not None:
        key, _, spec = policy.partition(" ")
        choices.append(dataclasses.replace(_choice("kv_policy", key), value=spec))
    grade = max((c.grade for c in choices), default=0)
    return QualityRisk(grade, _table()["grades"][grade], tuple(choices))


def policy_grade_key(plan: Plan, ctx_tokens: int | None) -> str | None:
    """The data file's kv_policy entry for the plan's policy and its parameters (None: no policy). At a known
    context: a window, budget or recent window at least the context evicts nothing (nothing_evicted); a budget of
    at least a fifth of the context is H2O's 20% (budget_fifth). A window without sinks is window attention."""
    p = plan.kv_policy
    if p is None:
        return None
    if ctx_tokens is not None:
        kept = kept_tokens(p)  # episodic: None, a different model, always graded
        if kept is not None and kept >= ctx_tokens:
            return "nothing_evicted"
        if isinstance(p, BudgetPolicy) and 5 * p.budget_tokens >= ctx_tokens:
            return "budget_fifth"
    if isinstance(p, WindowPolicy) and p.sink_tokens == 0:
        return "window_no_sinks"
    return p.kind


def quality_risk(model: ModelSpec, plan: Plan, ctx_tokens: int | None = None) -> QualityRisk:
    """TP, PP, paging, chunking and offload are lossless; grades come from the data file. `ctx_tokens`: the
    workload's context, which grades a KV policy by what it keeps of it (policy_grade_key)."""
    weights = (resolved_weight_format(model, plan),) + tuple(
        f for f in dict.fromkeys(plan.component_weights.values()) if f != resolved_weight_format(model, plan))
    key = policy_grade_key(plan, ctx_tokens)
    policy = None if plan.kv_policy is None else f"{key} {plan.kv_policy.spec}"
    return _risk(weights, resolved_kv_dtype(model, plan), plan.dms_ratio, policy)
