"""Planner: pruning rules, exact evaluation, ranking per objective, inverse questions."""
import pytest

from oomplan.memory.budget import estimate
from oomplan.planner.evaluate import Evaluator
from oomplan.planner.inverse import max_batch_size, max_ctx_tokens, search_max
from oomplan.planner.quality import LossyChoice, QualityRisk
from oomplan.planner.search import SLOW_DECODE_FACTOR, Candidate, ranking_key, search, sort_key
from oomplan.planner.speed import SpeedEstimate
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
    key = ranking_key(result.plans, objective)
    keys = [key(c) for c in result.plans]
    assert keys == sorted(keys)


LOSSLESS = QualityRisk(0, "lossless", ())
INT8 = QualityRisk(1, "near-lossless", (LossyChoice("weights", "int8", 1, "", ""),))


def _candidate(num_gpus: int, tokens_per_s: float, quality: QualityRisk = LOSSLESS) -> Candidate:
    return Candidate(Plan(tensor_parallel=num_gpus), Workload(ctx_tokens=4096), (), 0, quality,
                     SpeedEstimate(1 / tokens_per_s, tokens_per_s, 0.0))


def _ranked(cands: list[Candidate], objective: str = "quality") -> list[Candidate]:
    return sorted(cands, key=ranking_key(cands, objective))


def test_quality_ranks_a_slow_plan_after_the_others_of_its_quality():
    # SLOW_DECODE_FACTOR = 10: 9.99 tok/s x 10 = 99.9 < 100 (slow); 10.0 x 10 = 100 is not under 100 (not slow)
    assert SLOW_DECODE_FACTOR == 10
    crawl, two, ten = _candidate(1, 9.99), _candidate(2, 100.0), _candidate(1, 10.0)
    assert _ranked([crawl, two]) == [two, crawl]  # more GPUs, but the 1-GPU plan decodes 10.01x slower
    assert _ranked([ten, two]) == [ten, two]  # exactly a tenth: fewest GPUs first, as before
    assert sort_key(crawl, "quality", 100.0) == (0, 0, 0, True, 1, -9.99)
    assert sort_key(ten, "quality", 100.0) == (0, 0, 0, False, 1, -10.0)
    # only a plan of the same quality makes one slow: a faster int8 plan ranks after both lossless plans
    fast_int8 = _candidate(1, 1000.0, INT8)
    assert _ranked([fast_int8, ten, two]) == [ten, two, fast_int8]
    # the other objectives are unchanged: gpus keeps the 1-GPU plan first, throughput the fastest
    assert _ranked([two, crawl], "gpus") == [crawl, two]
    assert _ranked([crawl, two], "throughput") == [two, crawl]


def test_offload_on_one_h100_ranks_after_all_gpu_tensor_parallel_plans():
    """Llama 3.1 70B at 8k on H100s (docs/memory-model.md "Ranking"). Hand roofline (planner/speed.py): a GPU of a
    TP-t plan reads per step its shard of the 70,553,706,496 bf16 params, the RMSNorm weights whole
    ((2 x 80 + 1) x 8192 x 2 B = 2,637,824 B, replicated), and 1/t of the KV (80 layers x 2 x 8 heads x 128
    x 2 B x 8192 = 2,684,354,560 B), at 3.35e12 B/s: TP2 46.594 tok/s, TP8 186.357. One H100 streams its
    offloaded layers over the host link at ~1 tok/s: 1 x 10 < 186.357, so it is slow."""
    result = search(load_model("llama-3.1-70b"), H100, Workload(ctx_tokens=8192), SearchLimits(max_gpus=8))
    lossless = [c for c in result.plans if c.quality.grade == 0]
    assert [(c.num_gpus, bool(c.plan.offload_bytes)) for c in lossless] == [(2, False), (4, False), (8, False), (1, True)]
    tp2, tp8, offload = lossless[0], lossless[2], lossless[3]
    norms = 161 * 8192 * 2

    def tps(tp: int) -> float:
        return 3.35e12 / ((2 * 70_553_706_496 - norms) / tp + norms + 2_684_354_560 / tp)

    assert tp2.speed.decode_tokens_per_s == pytest.approx(tps(2), rel=1e-12)
    assert tp8.speed.decode_tokens_per_s == pytest.approx(tps(8), rel=1e-12)
    assert offload.speed.decode_tokens_per_s * SLOW_DECODE_FACTOR < tp8.speed.decode_tokens_per_s
    from oomplan.report.fit_report import slow_legend

    assert slow_legend(result, 4) == ["#4: decode under 1/10 of the fastest plan of the same quality (186.4 tok/s), so ranked after "
                                      "the others of that quality (docs/memory-model.md, Ranking)"]
    assert slow_legend(result, 3) == []  # not among the rows shown
    assert search(load_model("llama-3.1-70b"), H100, Workload(ctx_tokens=8192), SearchLimits(max_gpus=8), "gpus").plans[0].num_gpus == 1


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
