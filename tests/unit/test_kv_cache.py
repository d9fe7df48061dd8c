"""KV cache bytes: published per-token sizes, windows, TP replication, paging, DMS, dtypes."""
import pytest
from conftest import tiny_llama

from oomplan.memory.kv_cache import dms_kept_tokens, kv_budget, kv_bytes_per_token_per_layer, kv_vector_bytes
from oomplan.memory.layout import pipeline_stages
from oomplan.profiles import load_model
from oomplan.families import parse_hf_config
from oomplan.specs.plan import Plan


def whole_model_bytes_per_token(name, **plan):
    spec = load_model(name)
    return kv_bytes_per_token_per_layer(spec, Plan(**plan)) * spec.num_layers


@pytest.mark.parametrize("name,expected", [
    ("llama-3-8b", 131_072),  # 2 x 8 heads x 128 x 2 B x 32 layers
    ("llama-3-70b", 327_680),  # 2 x 8 x 128 x 2 x 80
    ("deepseek-v3", 70_272),  # MLA: (512 + 64) x 2 B x 61 layers
    ("llama-2-7b", 524_288),  # MHA: 2 x 32 x 128 x 2 x 32
])
def test_published_bytes_per_token(name, expected):
    assert whole_model_bytes_per_token(name) == expected


def test_fp8_halves_and_int4_adds_group_scales():
    assert whole_model_bytes_per_token("llama-3-8b", kv_dtype="fp8") == 65_536
    # int4: 64 B of data + 2 groups x (fp16 scale + fp16 zero) per 128-dim head vector
    assert kv_vector_bytes(128, "int4") == 64 + 2 * 4
    assert kv_vector_bytes(128, "int8") == 128 + 2 * 4


@pytest.mark.parametrize("tp,heads", [(1, 8), (2, 4), (8, 1), (16, 1)])
def test_kv_heads_split_then_replicated(tp, heads):
    spec = load_model("llama-3-70b")
    assert kv_bytes_per_token_per_layer(spec, Plan(tensor_parallel=tp)) == 2 * heads * 128 * 2


def test_mla_latent_not_split_by_tp():
    spec = load_model("deepseek-v3")
    assert kv_bytes_per_token_per_layer(spec, Plan(tensor_parallel=8)) == (512 + 64) * 2


def test_gemma2_sliding_layers_keep_the_window():
    spec = load_model("gemma-2-9b")
    stage = pipeline_stages(spec.num_layers, 1)[0]
    kv = kv_budget(spec, Plan(paged=False), 8192, 1, stage)
    per_layer_token = 2 * 8 * 256 * 2
    assert spec.num_sliding_layers == 21
    assert kv.bytes == per_layer_token * (21 * 8192 + 21 * 4096)


def test_mistral_v01_every_layer_is_windowed():
    spec = load_model("mistral-7b-v0.1")
    stage = pipeline_stages(spec.num_layers, 1)[0]
    kv = kv_budget(spec, Plan(paged=False), 32768, 2, stage)
    assert kv.bytes == 2 * 8 * 128 * 2 * 32 * 4096 * 2


def test_paged_rounds_to_blocks_contiguous_does_not(tiny_llama_spec):
    stage = pipeline_stages(2, 1)[0]
    assert kv_budget(tiny_llama_spec, Plan(block_size=16), 1000, 3, stage).bytes == 128 * 1008 * 3
    assert kv_budget(tiny_llama_spec, Plan(block_size=32), 1000, 3, stage).bytes == 128 * 1024 * 3
    assert kv_budget(tiny_llama_spec, Plan(paged=False), 1000, 3, stage).bytes == 128 * 1000 * 3


def test_dms_keeps_ctx_over_ratio_plus_window():
    assert dms_kept_tokens(32768, 8, 512) == 4096 + 512
    assert dms_kept_tokens(1000, 8, 512) == 125 + 512
    assert dms_kept_tokens(300, 8, 512) == 300  # never more than the context
    assert dms_kept_tokens(32768, 1, 512) == 32768


def test_pipeline_stages_split_layers_like_vllm():
    sizes = [len(s.layer_indices) for s in pipeline_stages(30, 4)]
    assert sizes == [7, 8, 8, 7]  # remainder to the stages before the last
    assert [len(s.layer_indices) for s in pipeline_stages(32, 2)] == [16, 16]


def test_qwen2_sliding_window_only_when_enabled():
    spec = parse_hf_config(dict(tiny_llama(model_type="qwen2"), sliding_window=32, use_sliding_window=False), "q", "t")
    assert spec.num_sliding_layers == 0
