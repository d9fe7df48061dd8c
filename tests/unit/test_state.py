"""Recurrent state bytes, by hand: Mamba-2, Mamba (Jamba) and Gated DeltaNet layers, TP splits, and the budget.

Shapes: transformers 5.24 cache_utils.LinearAttentionLayer as filled by each mixer (conv state
[B, conv_dim, d_conv] in the activation dtype, recurrent state in fp32); the golden test
tests/golden/test_hybrid_families.py checks them against a meta forward.
"""
import pytest
from conftest import tiny_llama

from oomplan.memory.budget import estimate
from oomplan.memory.kv_cache import kv_budget
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.state import state_budget, state_bytes_per_sequence_per_layer
from oomplan.planner.evaluate import Evaluator
from oomplan.profiles import load_gpu
from oomplan.families import parse_hf_config
from oomplan.specs.model import LayerAttention, ModelSpec
from oomplan.specs.plan import Plan, Workload
from oomplan.specs.state import GatedDeltaNetMixer, Mamba1Mixer, Mamba2Mixer

# Nemotron-H-8B's mixer (mamba_num_heads 128, mamba_head_dim 64, n_groups 8, ssm_state_size 128, conv 4)
NEMOTRON_H_8B = Mamba2Mixer(num_heads=128, head_dim=64, num_groups=8, state_size=128, conv_kernel=4)
# Qwen3-Next-80B-A3B's Gated DeltaNet (16 key heads, 32 value heads, 128 x 128, conv 4)
QWEN3_NEXT = GatedDeltaNetMixer(num_key_heads=16, num_value_heads=32, key_head_dim=128, value_head_dim=128, conv_kernel=4)
# Jamba-v0.1's Mamba (hidden 4096, expand 2, d_state 16, d_conv 4, dt_rank 256)
JAMBA = Mamba1Mixer(inner_size=8192, state_size=16, conv_kernel=4, dt_rank=256)


def hybrid(mixer, kinds: str) -> ModelSpec:
    """tiny llama with one layer per character: 'A' attention, 'S' state layer."""
    base = parse_hf_config(tiny_llama(num_hidden_layers=len(kinds)), "tiny-hybrid", "test")
    attention = {"A": LayerAttention(kind="full"), "S": LayerAttention(kind="linear", state=mixer)}
    layers = tuple(layer.model_copy(update={"attention": attention[k]}) for layer, k in zip(base.layers, kinds, strict=True))
    return ModelSpec.model_validate(base.model_dump() | {"layers": [layer.model_dump() for layer in layers]})


@pytest.mark.parametrize("mixer,tp,expected", [
    # conv (128*64 + 2*8*128) x 4 x 2 B + ssm 128*64*128 x 4 B
    (NEMOTRON_H_8B, 1, (8192 + 2048) * 4 * 2 + 128 * 64 * 128 * 4),
    (NEMOTRON_H_8B, 2, (4096 + 1024) * 4 * 2 + 64 * 64 * 128 * 4),
    # 8 groups over 16 GPUs: one group (replicated) per GPU, 8 heads each
    (NEMOTRON_H_8B, 16, (8 * 64 + 2 * 128) * 4 * 2 + 8 * 64 * 128 * 4),
    # conv (2*16*128 + 32*128) x 4 x 2 B + recurrent 32*128*128 x 4 B
    (QWEN3_NEXT, 1, 8192 * 4 * 2 + 32 * 128 * 128 * 4),
    (QWEN3_NEXT, 4, 2048 * 4 * 2 + 8 * 128 * 128 * 4),
    # conv 8192 x 4 x 2 B + ssm 8192 x 16 x 4 B
    (JAMBA, 1, 8192 * 4 * 2 + 8192 * 16 * 4),
])
def test_bytes_per_sequence_per_layer(mixer, tp, expected):
    assert state_bytes_per_sequence_per_layer(mixer, Plan(tensor_parallel=tp), "bf16") == expected


def test_conv_state_follows_the_activation_dtype_recurrent_stays_fp32():
    fp32 = state_bytes_per_sequence_per_layer(QWEN3_NEXT, Plan(), "fp32")
    assert fp32 == 8192 * 4 * 4 + 32 * 128 * 128 * 4


def test_state_is_flat_in_context_and_linear_in_batch():
    spec = hybrid(NEMOTRON_H_8B, "SSAS")
    stage = pipeline_stages(4, 1)[0]
    per_layer = state_bytes_per_sequence_per_layer(NEMOTRON_H_8B, Plan(), "bf16")
    one = state_budget(spec, Plan(), 1, stage, "bf16")
    assert (one.bytes, one.num_layers, one.kind) == (3 * per_layer, 3, "mamba2")
    assert state_budget(spec, Plan(), 5, stage, "bf16").bytes == 5 * one.bytes
    gpu = load_gpu("h100-80g")
    short = estimate(spec, gpu, Workload(ctx_tokens=1024, batch_size=2), Plan()).per_gpu
    long = estimate(spec, gpu, Workload(ctx_tokens=65536, batch_size=2), Plan()).per_gpu
    assert short.state_bytes == long.state_bytes == 2 * 3 * per_layer
    assert long.kv_cache_bytes == 64 * short.kv_cache_bytes  # the one attention layer's KV grows
    assert long.total_bytes == long.weights_bytes + long.kv_cache_bytes + long.state_bytes + long.activation_bytes + long.overhead_bytes


def test_kv_counts_only_attention_layers():
    spec = hybrid(QWEN3_NEXT, "SSSA")
    kv = kv_budget(spec, Plan(), 1024, 1, pipeline_stages(4, 1)[0])
    assert kv.num_layers == 1
    assert kv.bytes == 2 * 2 * 8 * 2 * 1024  # K and V, 2 kv heads x head_dim 8 x 2 B, one layer


def test_pipeline_stages_split_the_state_layers():
    spec = hybrid(JAMBA, "SSAS")
    stages = pipeline_stages(4, 2)
    assert [state_budget(spec, Plan(pipeline_parallel=2), 1, s, "bf16").num_layers for s in stages] == [2, 1]


def test_planner_fast_path_counts_the_state_like_estimate():
    spec = hybrid(NEMOTRON_H_8B, "SASA")
    gpu, work, plan = load_gpu("h100-80g"), Workload(ctx_tokens=4096, batch_size=3), Plan()
    total = Evaluator(spec, gpu).stage_total(plan, work, 0)
    per_gpu = estimate(spec, gpu, work, plan).per_gpu
    assert total.state_bytes == per_gpu.state_bytes > 0
    assert total.total_bytes == per_gpu.total_bytes
    assert Evaluator(spec, gpu).worst_total_at(plan, 4096, 3) == per_gpu.total_bytes  # the --ctx/--batch max hot path


def test_a_declared_state_dtype_is_priced():
    bf16_state = QWEN3_NEXT.model_copy(update={"state_dtype": "bf16"})
    assert state_bytes_per_sequence_per_layer(bf16_state, Plan(), "bf16") == 8192 * 4 * 2 + 32 * 128 * 128 * 2


def test_parallel_hybrid_layers_keep_both_kv_and_state():
    """Falcon-H1: every layer runs attention and a Mamba-2 mixer side by side."""
    base = parse_hf_config(tiny_llama(num_hidden_layers=2), "tiny-parallel", "test")
    layers = [layer.model_copy(update={"attention": LayerAttention(kind="full", state=JAMBA)}).model_dump() for layer in base.layers]
    spec = ModelSpec.model_validate(base.model_dump() | {"layers": layers})
    stage = pipeline_stages(2, 1)[0]
    assert kv_budget(spec, Plan(), 1024, 1, stage).num_layers == 2
    assert state_budget(spec, Plan(), 1, stage, "bf16").num_layers == 2


def test_models_without_state_layers_keep_none():
    spec = parse_hf_config(tiny_llama(), "tiny", "test")
    per_gpu = estimate(spec, load_gpu("h100-80g"), Workload(ctx_tokens=128, batch_size=1), Plan()).per_gpu
    assert per_gpu.state_bytes == 0 and per_gpu.state.kind is None
