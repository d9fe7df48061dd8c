"""When nothing fits: what overflows and by how much, and what would fit instead."""
from __future__ import annotations

from dataclasses import dataclass, replace

from oomplan.planner.inverse import search_max
from oomplan.planner.search import Candidate, SearchResult, search
from oomplan.planner.space import SearchLimits
from oomplan.profiles import load_gpu, profile_names
from oomplan.specs.plan import Attention, Logits

MAX_NODES = 8


@dataclass(frozen=True)
class Diagnosis:
    closest: Candidate | None  # the candidate that came nearest
    shorter_ctx: Candidate | None  # the longest context that fits at this batch, on these GPUs
    more_gpus: Candidate | None  # best plan with up to MAX_NODES nodes of this card
    larger_card: tuple[str, Candidate] | None  # the smallest shipped card where a plan fits


def _first(result: SearchResult) -> Candidate | None:
    return result.plans[0] if result.plans else None


def diagnose(result: SearchResult, limits: SearchLimits, attention: Attention = "sdpa", logits: Logits = "last") -> Diagnosis:
    model, gpu, workload = result.model, result.gpu, result.workload
    shorter = None
    if workload.ctx_tokens > 1:
        found = search_max(model, gpu, workload, limits, "quality", "ctx", workload.ctx_tokens - 1, attention, logits)
        shorter = max(found.plans, key=lambda c: c.workload.ctx_tokens, default=None)
    more = None
    bigger = replace(limits, max_gpus=gpu.num_gpus_per_node * MAX_NODES, exact_gpus=None)
    if bigger.max_gpus > limits.max_gpus:
        more = _first(search(model, gpu, workload, bigger, "quality", attention, logits))
    return Diagnosis(result.closest, shorter, more, _larger_card(result, limits, attention, logits))


def _larger_card(result: SearchResult, limits: SearchLimits, attention: Attention, logits: Logits) -> tuple[str, Candidate] | None:
    cards = sorted((load_gpu(n) for n in profile_names("hardware_profiles")), key=lambda g: g.memory_bytes)
    for card in cards:
        if card.memory_bytes <= result.gpu.memory_bytes:
            continue
        scaled = replace(limits, max_gpus=min(limits.max_gpus, card.num_gpus_per_node))
        hit = _first(search(result.model, card, result.workload, scaled, "quality", attention, logits))
        if hit is not None:
            return card.name, hit
    return None
