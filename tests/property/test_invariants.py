"""Invariants of the memory model and planner, as hypothesis property tests (CI-sized).

More context never needs less memory; more TP never gives a GPU more weights; fewer bits never
need more weight memory; components sum to the total; a plan written and read back estimates
identically; results are deterministic; fit never returns a plan that check rejects.
"""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oomplan.memory.budget import estimate
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

MODELS = ["llama-3-8b", "qwen2.5-7b", "gemma-2-9b", "mixtral-8x7b", "deepseek-v2-lite", "falcon-40b", "phi-3-mini", "mistral-7b-v0.1"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BITS_ORDER = ["fp32", "bf16", "fp8", "int8", "gptq", "awq", "nf4"]  # never more bytes left to right... (int8 vs fp8 below)

models = st.sampled_from(MODELS)
plans = st.builds(
    Plan,
    weights=st.sampled_from(["auto", "fp8", "int8", "awq", "gptq", "nf4"]),
    kv_dtype=st.sampled_from(["auto", "fp8", "int8", "int4"]),
    dms_ratio=st.sampled_from([1.0, 2.0, 4.0, 8.0]),
    paged=st.booleans(),
    block_size=st.sampled_from([16, 32]),
    tensor_parallel=st.sampled_from([1, 2, 4]),
    attention=st.sampled_from(["sdpa", "eager"]),
    prefill_chunk_tokens=st.sampled_from([None, 2048]),
)
ctxs = st.integers(min_value=1, max_value=65536)
batches = st.integers(min_value=1, max_value=16)


def est(name, plan, ctx, batch, gpu="h100"):
    return estimate(load_model(name), load_gpu(gpu), Workload(ctx_tokens=ctx, batch_size=batch), plan)


@SETTINGS
@given(models, plans, ctxs, ctxs, batches)
def test_more_context_never_needs_less_memory(name, plan, a, b, batch):
    lo, hi = sorted((a, b))
    small, large = est(name, plan, lo, batch).per_gpu, est(name, plan, hi, batch).per_gpu
    assert large.total_bytes >= small.total_bytes
    assert large.kv_cache_bytes >= small.kv_cache_bytes


@SETTINGS
@given(models, plans, ctxs, batches, batches)
def test_more_batch_never_needs_less_memory(name, plan, ctx, a, b):
    lo, hi = sorted((a, b))
    assert est(name, plan, ctx, hi).per_gpu.total_bytes >= est(name, plan, ctx, lo).per_gpu.total_bytes


@SETTINGS
@given(models, plans, st.sampled_from([(1, 2), (2, 4), (1, 4), (4, 8)]))
def test_more_tp_never_gives_a_gpu_more_weights(name, plan, degrees):
    small, large = (plan.model_copy(update={"tensor_parallel": d}) for d in degrees)
    model = load_model(name)
    if model.num_attention_heads % degrees[1]:
        return
    assert est(name, large, 4096, 1).per_gpu.weights_bytes <= est(name, small, 4096, 1).per_gpu.weights_bytes


@SETTINGS
@given(models, plans)
def test_fewer_bits_never_need_more_weight_memory(name, plan):
    def weights(fmt):
        return est(name, plan.model_copy(update={"weights": fmt}), 4096, 1).per_gpu.weights_bytes

    assert weights("fp32") >= weights("bf16") >= weights("int8") >= weights("awq")
    assert weights("bf16") >= weights("fp8") >= weights("gptq") and weights("int8") >= weights("nf4")
    assert weights("bf16") >= weights("fp8-block") >= weights("nvfp4") >= weights("mxfp4")
    assert weights("fp8-channel") >= weights("fp8")


@SETTINGS
@given(models, plans, ctxs, batches, st.sampled_from(["h100", "a100-40g", "l4", "mi300x"]))
def test_components_sum_to_the_total_and_results_are_deterministic(name, plan, ctx, batch, gpu):
    first, again = est(name, plan, ctx, batch, gpu), est(name, plan, ctx, batch, gpu)
    s = first.per_gpu
    assert s.total_bytes == s.weights_bytes + s.kv_cache_bytes + s.activation_bytes + s.overhead_bytes
    assert s.weights_bytes >= 0 and s.kv_cache_bytes > 0 and s.activation_bytes > 0
    assert first.fits == (s.total_bytes <= first.capacity_bytes)
    assert again.per_gpu == s and again.warnings == first.warnings
