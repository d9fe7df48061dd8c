"""The pruned search against the exhaustive one (fit --all) on a grid: exact results stay exact.

The dominance rule is re-derived here from the exhaustive rows (not by calling the planner's own
filter): a row is dominated when a row with the same weights, KV dtype, DMS ratio and TP fits with
fewer pipeline stages and no offload (or, for a row with offload, at one stage without it); for
--ctx/--batch max the shallower row must also reach at least as far.
"""
import pytest

from oomplan.memory.budget import estimate
from oomplan.planner.evaluate import Evaluator
from oomplan.planner.inverse import largest_fitting, search_max
from oomplan.planner.search import search, sort_key
from oomplan.planner.space import SearchLimits
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

GRID = [  # (model, card, ctx, batch, max GPUs): uniform, tied embeddings (an extra lm_head copy on the last stage), MoE
    ("llama-3-70b", "a100-40g", 32768, 1, 32),
    ("llama-3-70b", "l40s", 8192, 8, 24),
    ("qwen2.5-0.5b", "t4", 131072, 64, 8),
    ("mixtral-8x7b", "l4", 16384, 4, 32),
    ("deepseek-v2-lite", "rtx-4090", 32768, 2, 16),
]
OBJECTIVES = ("quality", "throughput", "gpus", "cost")


def _row(c):
    return (c.plan, c.workload, c.per_gpu.total_bytes, c.speed.decode_tokens_per_s, c.speed.prefill_s)


def _knobs(c):
    return c.plan.weights, c.plan.kv_dtype, c.plan.dms_ratio, c.plan.tensor_parallel


def _dominator(c, rows, reach=None):
    for d in rows:
        if _knobs(d) != _knobs(c) or d.plan.offload_bytes:
            continue
        fewer = d.plan.pipeline_parallel < c.plan.pipeline_parallel or (c.plan.offload_bytes > 0 and d.plan.pipeline_parallel == 1)
        if fewer and (reach is None or reach(d) >= reach(c)):
            return d
    return None


@pytest.mark.parametrize("name,card,ctx,batch,max_gpus", GRID)
def test_pruned_fit_equals_exhaustive_without_dominated_rows(name, card, ctx, batch, max_gpus):
    model, gpu = load_model(name), load_gpu(card)
    workload = Workload(ctx_tokens=ctx, batch_size=batch)
    for objective in (OBJECTIVES if max_gpus < 32 else ("quality", "throughput")):
        full = search(model, gpu, workload, SearchLimits(max_gpus=max_gpus, keep_dominated=True), objective)
        pruned = search(model, gpu, workload, SearchLimits(max_gpus=max_gpus), objective)
        expected = [c for c in full.plans if _dominator(c, full.plans) is None]
        assert [_row(c) for c in pruned.plans] == [_row(c) for c in expected]
        assert pruned.num_dominated > 0 or len(expected) == len(full.plans)
        assert pruned.num_evaluated <= full.num_evaluated
        if full.plans:
            assert _row(pruned.plans[0]) == _row(full.plans[0])  # the best plan is never pruned


@pytest.mark.parametrize("name,card,ctx,batch,max_gpus", [GRID[0], GRID[1], GRID[3]])
def test_dominated_rows_gain_nothing(name, card, ctx, batch, max_gpus):
    """What the rule claims: more GPUs (or offload), same quality, no faster decode or prefill."""
    model, gpu = load_model(name), load_gpu(card)
    full = search(model, gpu, Workload(ctx_tokens=ctx, batch_size=batch), SearchLimits(max_gpus=max_gpus, keep_dominated=True))
    num_dominated = 0
    for c in full.plans:
        d = _dominator(c, full.plans)
        if d is None:
            continue
        num_dominated += 1
        assert c.num_gpus >= d.num_gpus and c.quality == d.quality
        for objective in OBJECTIVES:  # the dominator ranks first whatever the objective
            assert sort_key(d, objective) < sort_key(c, objective) or (c.num_gpus == d.num_gpus and c.plan.offload_bytes)
        assert c.speed.prefill_s >= d.speed.prefill_s * (1 - 1e-9)
    assert num_dominated  # the grid has deeper pipelines that fit


@pytest.mark.parametrize("what", ["ctx", "batch"])
@pytest.mark.parametrize("name,card,ctx,batch,max_gpus", [GRID[0], GRID[2], GRID[3]])
def test_pruned_max_search_equals_exhaustive(what, name, card, ctx, batch, max_gpus):
    model, gpu = load_model(name), load_gpu(card)
    limit = model.max_position_embeddings if what == "ctx" else 1 << 12
    workload = Workload(ctx_tokens=ctx if what == "batch" else 1, batch_size=batch if what == "ctx" else 1)
    reach = (lambda c: c.workload.ctx_tokens) if what == "ctx" else (lambda c: c.workload.batch_size)
    full = search_max(model, gpu, workload, SearchLimits(max_gpus=max_gpus, keep_dominated=True), "quality", what, limit)
    pruned = search_max(model, gpu, workload, SearchLimits(max_gpus=max_gpus), "quality", what, limit)
    expected = [c for c in full.plans if _dominator(c, full.plans, reach) is None]
    assert [_row(c) for c in pruned.plans] == [_row(c) for c in expected]
    if what == "ctx":  # deeper pipelines past the model's context limit reach no further
        assert len(expected) < len(full.plans)


def test_interpolating_search_is_exact_and_brief():
    """largest_fitting against every threshold of a linear, a convex and a step margin."""
    shapes = (lambda n, t: 3 * n - t, lambda n, t: n * n - t, lambda n, t: (n > t) * 10 - 5)
    for shape in shapes:
        for t in (0, 1, 2, 17, 999, 4096, 9000):
            probes: list[int] = []

            def margin(n: int, shape=shape, t=t, probes=probes) -> int:
                probes.append(n)
                return shape(n, t)

            got = largest_fitting(margin, 1, 8192)
            want = max((n for n in range(1, 8193) if shape(n, t) <= 0), default=0)
            assert got == want
            assert len(probes) <= 2 * 14 + 2  # never worse than twice binary search


def test_linear_memory_takes_few_probes():
    """A paged context on one card: the margin is near-linear, so a handful of probes find the block."""
    model, gpu = load_model("llama-3-8b"), load_gpu("a100-40g")
    ev, plan = Evaluator(model, gpu), Plan(dms_ratio=1.0)
    from oomplan.planner.inverse import max_ctx_tokens

    best = max_ctx_tokens(ev, plan, 16, 1 << 20)
    assert estimate(model, gpu, Workload(ctx_tokens=best, batch_size=16), plan).fits
    assert not estimate(model, gpu, Workload(ctx_tokens=best + 16, batch_size=16), plan).fits
    assert ev.num_evaluated <= 8


def test_throughput_ties_do_not_rank_more_gpus_first():
    """An 8-GPU plan and the same knobs at 16 GPUs (PP2) decode equally fast: the 8-GPU one ranks first."""
    model, gpu = load_model("llama-3.1-405b"), load_gpu("h100")
    result = search(model, gpu, Workload(ctx_tokens=32768), SearchLimits(max_gpus=32, keep_dominated=True), "throughput")
    for i, c in enumerate(result.plans):
        for d in result.plans[i + 1:]:
            same = _knobs(c) == _knobs(d) and not c.plan.offload_bytes and not d.plan.offload_bytes
            if same and round(c.speed.decode_tokens_per_s, 6) == round(d.speed.decode_tokens_per_s, 6):
                assert c.num_gpus <= d.num_gpus


def test_estimate_is_linear_in_pipeline_depth():
    """Stages are split once per depth (cached), not once per stage: a 126-stage estimate is exact and each stage's layers are its own."""
    model, gpu = load_model("llama-3.1-405b"), load_gpu("h100")
    est = estimate(model, gpu, Workload(ctx_tokens=4096), Plan(tensor_parallel=8, pipeline_parallel=126))
    assert [len(s.weights.layer_bytes) for s in est.stages] == [1] * 126
    ev = Evaluator(model, gpu)
    assert len(ev.depth(126).distinct) == 3  # first, middle, last
    assert tuple(s.total_bytes for s in est.stages) == tuple(s.total_bytes for s in ev.all_stages(est.plan, est.workload))
