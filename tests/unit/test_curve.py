"""oomplan.planner.curve: points are estimate() itself, and the cliff is exact."""
import pytest

from oomplan.errors import InputError
from oomplan.memory.budget import estimate
from oomplan.planner.curve import log_points, memory_curves
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

CASES = [  # model, gpu, plan, batch, to
    ("llama-3.1-8b", "a100-40g-sxm", Plan(), 1, 131072),
    ("llama-3.1-8b", "rtx-4090", Plan(kv_dtype="fp8"), 4, 131072),
    ("mistral-7b-v0.1", "l4", Plan(block_size=32), 2, 32768),
    ("llama-3.1-70b", "h100-sxm", Plan(tensor_parallel=2), 8, 131072),
    ("qwen2.5-14b", "a10g", Plan(weights="awq", paged=False), 1, 131072),
    ("mixtral-8x7b", "h100-sxm", Plan(tensor_parallel=2, pipeline_parallel=2), 16, 32768),
]


def _fits(model, gpu, plan, ctx, batch):
    return estimate(model, gpu, Workload(ctx_tokens=ctx, batch_size=batch), plan).fits


@pytest.mark.parametrize("name,card,plan,batch,to", CASES, ids=[c[0] + "-" + c[1] for c in CASES])
def test_ctx_cliff_matches_estimate(name, card, plan, batch, to):
    model, gpu = load_model(name), load_gpu(card)
    cs = memory_curves(model, gpu, (("base", plan),), "ctx", batch, 1024, to, 12)
    cliff = cs.curves[0].cliff
    assert cliff.first_oom is not None, "every case is chosen to run out of memory in range"
    step = plan.block_size if plan.paged else 1
    assert cliff.first_oom == cliff.last_fit + step
    assert not _fits(model, gpu, plan, cliff.first_oom, batch)
    if cliff.last_fit:
        assert _fits(model, gpu, plan, cliff.last_fit, batch)


def test_batch_cliff_matches_estimate():
    model, gpu = load_model("llama-3.1-8b"), load_gpu("h100-sxm")
    cs = memory_curves(model, gpu, (("base", Plan()),), "batch", 32768, 1, 256, 9)
    cliff = cs.curves[0].cliff
    assert cliff.first_oom == cliff.last_fit + 1
    assert _fits(model, gpu, Plan(), 32768, cliff.last_fit)
    assert not _fits(model, gpu, Plan(), 32768, cliff.first_oom)


def test_points_are_estimate_components():
    model, gpu = load_model("llama-3.1-8b"), load_gpu("a100-40g-sxm")
    cs = memory_curves(model, gpu, (("base", Plan()),), "ctx", 1, 1024, 65536, 5)
    for p in cs.curves[0].points:
        g = estimate(model, gpu, Workload(ctx_tokens=p.x), Plan()).per_gpu
        assert (p.weights_bytes, p.kv_cache_bytes, p.activation_bytes, p.overhead_bytes) == (
            g.weights_bytes, g.kv_cache_bytes, g.activation_bytes, g.overhead_bytes)
        assert p.total_bytes == g.total_bytes


def test_no_cliff_when_everything_fits():
    cs = memory_curves(load_model("qwen2.5-0.5b"), load_gpu("h200"), (("base", Plan()),), "ctx", 1, 1024, 32768, 6)
    assert cs.curves[0].cliff.first_oom is None and cs.curves[0].cliff.last_fit == 32768


def test_compare_plans_share_x_and_order_cliffs():
    model, gpu = load_model("llama-3.1-8b"), load_gpu("a100-40g-sxm")
    plans = (("base", Plan()), ("fp8", Plan(kv_dtype="fp8")), ("dms", Plan(dms_ratio=4)))
    cs = memory_curves(model, gpu, plans, "ctx", 1, 1024, 262144, 8)
    xs = [tuple(p.x for p in c.points) for c in cs.curves]
    assert xs[0] == xs[1] == xs[2]
    assert cs.curves[0].cliff.first_oom < cs.curves[1].cliff.first_oom < cs.curves[2].cliff.first_oom


def test_log_points():
    xs = log_points(1024, 131072, 8)
    assert xs[0] == 1024 and xs[-1] == 131072 and len(xs) == 8 and list(xs) == sorted(set(xs))
    assert log_points(1, 3, 24) == (1, 2, 3)
    with pytest.raises(InputError):
        log_points(10, 5, 4)
    with pytest.raises(InputError):
        log_points(1, 5, 1)
