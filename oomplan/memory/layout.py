"""Which layers sit on which pipeline stage, and how TP/EP split one tensor group."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from oomplan.memory.params import TensorGroup
from oomplan.units import ceil_div


@dataclass(frozen=True)
class Stage:
    index: int
    layer_indices: tuple[int, ...]
    is_first: bool
    is_last: bool


@lru_cache(maxsize=1024)
def pipeline_stages(num_layers: int, num_stages: int) -> tuple[Stage, ...]:
    """Even split; the remainder goes to the stages just before the last one. Cached: budgeting a
    depth-p plan asks for each of its p stages, which must not rebuild the list p times.

    vllm/distributed/utils.py get_pp_indices: `partitions[-i] += 1 for i in 2..remaining+1`.
    """
    sizes = [num_layers // num_stages] * num_stages
    for i in range(2, num_layers % num_stages + 2):
        sizes[-i] += 1
    stages, start = [], 0
    for s, size in enumerate(sizes):
        stages.append(Stage(s, tuple(range(start, start + size)), s == 0, s == num_stages - 1))
        start += size
    return tuple(stages)


def stage_at(num_layers: int, num_stages: int, index: int, layers: tuple[int, ...] | None = None) -> Stage:
    """Stage `index` of `num_stages`: pipeline_stages' split, or the given decoder layers where an engine splits them
    its own way (SGLang: oomplan/engines/sglang/pools.py sglang_stages); the first stage holds the embedding, the last the head."""
    if layers is None:
        return pipeline_stages(num_layers, num_stages)[index]
    return Stage(index, layers, index == 0, index == num_stages - 1)


def shard(t: TensorGroup, tensor_parallel: int, expert_parallel: bool) -> tuple[int, int, int]:
    """(rows, cols, count) one GPU holds of a tensor group.

    A split dim gives each GPU ceil(units / tp) units, so heads fewer than the TP degree
    (e.g. 8 KV heads at TP 16) are replicated, one per GPU, as vLLM does.
    """
    if t.expert and expert_parallel:
        return t.rows, t.cols, ceil_div(t.count, tensor_parallel)
    if t.shard == "column":
        return ceil_div(t.num_units, tensor_parallel) * (t.rows // t.num_units), t.cols, t.count
    if t.shard == "row":
        return t.rows, ceil_div(t.num_units, tensor_parallel) * (t.cols // t.num_units), t.count
    return t.rows, t.cols, t.count
