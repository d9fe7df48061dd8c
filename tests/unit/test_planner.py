"""Planner: pruning rules, exact evaluation, ranking per objective, inverse questions."""
import pytest

from oomplan.memory.budget import estimate
from oomplan.planner.evaluate import Evaluator
from oomplan.planner.inverse import max_batch_size, max_ctx_tokens, search_max
from oomplan.planner.search import search, sort_key
from oomplan.planner.space import SearchLimits, kv_dtypes, parallel_layouts, weight_formats
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

A100, H100 = load_gpu("a100-40g"), load_gpu("h100")
L70, L8 = load_model("llama-3-70b"), load_model("llama-3-8b")


def test_fp8_pruned_on_cards_without_it():
    assert "fp8" not in weight_formats(A100, SearchLimits(max_gpus=8))
    assert "fp8" not in kv_dtypes(A100, SearchLimits(max_gpus=8))
    assert "fp8" in weight_formats(H100, SearchLimits(max_gpus=8))
    assert "fp8" in weight_formats(A100, SearchLimits(max_gpus=8, allow_emulated_fp8=True))


def test_tp_divides_heads_and_stays_in_node():
    qwen = load_model("qwen2.5-7b")  # 28 heads: TP 8 does not divide
    # TP 8 is impossible; 8 GPUs only as TP 4 x PP 2, with the largest TP that divides the heads
    assert parallel_layouts(qwen, A100, SearchLimits(max_gpus=8)) == ((1, 1), (2, 1), (4, 1), (4, 2))
    assert (8, 1) in parallel_layouts(L70, A100, SearchLimits(max_gpus=8))
    assert all(tp <= 8 for tp, _ in parallel_layouts(L70, A100, SearchLimits(max_gpus=64)))


def test_pipeline_only_once_tp_fills_the_node():
    layouts = parallel_layouts(L70, A100, SearchLimits(max_gpus=32))
    assert {pp for tp, pp in layouts if tp < 8} == {1}
    assert (8, 4) in layouts and (8, 5) not in layouts
    assert parallel_layouts(L70, A100, SearchLimits(max_gpus=32, exact_gpus=16)) == ((8, 2),)


@pytest.fixture(scope="module")
def headline():
    return search(L70, A100, Workload(ctx_tokens=32768), SearchLimits(max_gpus=8))


def test_every_plan_equals_estimate(headline):
    for c in headline.plans:
        est = estimate(L70, A100, c.workload, c.plan)
        assert est.per_gpu.total_bytes == c.per_gpu.total_bytes
        assert est.per_gpu.weights_bytes == c.per_gpu.weights_bytes
        assert est.fits


def test_headline_has_one_card_and_lossless_multi_card(headline):
    one = [c for c in headline.plans if c.num_gpus == 1]
    assert one and all(c.plan.offload_bytes or c.quality.grade > 0 for c in one)
    assert any(c.num_gpus > 1 and c.quality.grade == 0 and not c.plan.offload_bytes for c in headline.plans)
    assert headline.num_considered >= 20_000


@pytest.mark.parametrize("objective", ["quality", "throughput", "gpus", "cost"])
def test_ranked_by_objective(headline, objective):
    result = search(L70, A100, Workload(ctx_tokens=32768), SearchLimits(max_gpus=8), objective)
    keys = [sort_key(c, objective) for c in result.plans]
    assert keys == sorted(keys)


def test_objectives_pick_what_they_say(headline):
    quality = search(L70, A100, Workload(ctx_tokens=8192), SearchLimits(max_gpus=8), "quality").plans[0]
    gpus = search(L70, A100, Workload(ctx_tokens=8192), SearchLimits(max_gpus=8), "gpus").plans[0]
    fast = search(L70, A100, Workload(ctx_tokens=8192), SearchLimits(max_gpus=8), "throughput").plans[0]
    assert quality.quality.grade == 0
    assert gpus.num_gpus == 1
    assert fast.speed.decode_tokens_per_s >= max(quality.speed.decode_tokens_per_s, gpus.speed.decode_tokens_per_s)


def test_host_memory_limits_offload():
    result = search(L70, A100, Workload(ctx_tokens=8192), SearchLimits(max_gpus=1, host_memory_bytes=0))
    assert all(c.plan.offload_bytes == 0 for c in result.plans)


def test_nothing_fits_reports_closest():
    result = search(load_model("llama-3.1-405b"), load_gpu("t4"), Workload(ctx_tokens=131072), SearchLimits(max_gpus=1, host_memory_bytes=0, allow_dms=False))
    assert result.plans == () and result.closest is not None and result.closest.headroom_bytes < 0


@pytest.mark.parametrize("plan", [Plan(), Plan(kv_dtype="int8", block_size=32), Plan(paged=False, weights="awq")])
def test_max_ctx_is_exact_to_the_block(plan):
    ev = Evaluator(L8, A100)
    best = max_ctx_tokens(ev, plan, 4, 1 << 20)
    step = plan.block_size if plan.paged else 1
    assert best % step == 0
    assert estimate(L8, A100, Workload(ctx_tokens=best, batch_size=4), plan).fits
    assert not estimate(L8, A100, Workload(ctx_tokens=best + step, batch_size=4), plan).fits


def test_max_batch_is_exact():
    ev = Evaluator(L8, A100)
    best = max_batch_size(ev, Plan(), 8192)
    assert estimate(L8, A100, Workload(ctx_tokens=8192, batch_size=best), Plan()).fits
    assert not estimate(L8, A100, Workload(ctx_tokens=8192, batch_size=best + 1), Plan()).fits


def test_search_max_ctx_respects_model_limit():
    result = search_max(L8, H100, Workload(ctx_tokens=1), SearchLimits(max_gpus=1, allow_dms=False), "quality", "ctx", L8.max_position_embeddings)
    assert result.plans and all(c.workload.ctx_tokens <= 8192 for c in result.plans)
