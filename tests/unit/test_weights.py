"""Weight bytes per GPU: formats (scales and zeros counted), TP sharding, replication, offload."""
import pytest
from conftest import tiny_llama

from oomplan.memory.weights import matrix_bytes, weights_budget
from oomplan.families import parse_hf_config
from oomplan.specs.plan import Plan


@pytest.mark.parametrize("fmt,expected", [
    ("bf16", 8192), ("fp32", 16384), ("fp8", 4096 + 4), ("int8", 4096 + 64 * 4),
    # int4: 2048 packed + 1 group x 64 rows x fp16 scale (128) + 64 int4 zeros (32)
    ("awq", 2048 + 128 + 32),
    ("gptq", 2048 + 128 + 32 + 64 * 4),  # + g_idx int32 per input channel
    # nf4: 2048 + 64 uint8 absmax + 1 fp32 absmax2 + 1024 nested code + 64 nf4 code + 4 offset
    ("nf4", 2048 + 64 + 4 + 1024 + 64 + 4),
])
def test_matrix_bytes_64x64(fmt, expected):
    assert matrix_bytes(64, 64, fmt, 128) == expected


def test_awq_group_count_on_real_width():
    # [4096 out, 14336 in], group 128: 112 groups of scales and zeros per output row
    n = 4096 * 14336
    assert matrix_bytes(4096, 14336, "awq", 128) == n // 2 + 112 * 4096 * 2 + 112 * 4096 // 2


def test_bf16_total(tiny_llama_spec):
    assert weights_budget(tiny_llama_spec, Plan()).gpu_bytes == 197_952 * 2


@pytest.mark.parametrize("tp,params_per_gpu", [
    # TP 2: q/o halve, 1 KV head each, MLP halves, vocab-parallel embed/lm_head (500 rows)
    (2, 2 * 500 * 64 + 64 + 2 * (32 * 64 + 2 * 8 * 64 + 64 * 32 + 3 * 64 * 64 + 128)),
    # TP 4: 2 KV heads over 4 GPUs -> each keeps one (replicated)
    (4, 2 * 250 * 64 + 64 + 2 * (16 * 64 + 2 * 8 * 64 + 64 * 16 + 3 * 32 * 64 + 128)),
])
def test_tp_sharding_and_kv_head_replication(tiny_llama_spec, tp, params_per_gpu):
    assert weights_budget(tiny_llama_spec, Plan(tensor_parallel=tp)).gpu_bytes == params_per_gpu * 2


def test_embeddings_stay_16bit_unless_told(tiny_llama_spec):
    plain = weights_budget(tiny_llama_spec, Plan(weights="awq"))
    assert plain.by_component.embedding == 1000 * 64 * 2
    told = weights_budget(tiny_llama_spec, Plan(weights="awq", quantize_embeddings=True))
    assert told.by_component.embedding == matrix_bytes(1000, 64, "awq", 128)


def test_fp32_checkpoint_served_bf16():
    spec = parse_hf_config(tiny_llama(torch_dtype="float32"), "t", "test")
    assert weights_budget(spec, Plan()).gpu_bytes == 197_952 * 2
    assert weights_budget(spec, Plan(weights="fp32")).gpu_bytes == 197_952 * 4


def test_offload_moves_layer_bytes_and_adds_staging(tiny_llama_spec):
    base = weights_budget(tiny_llama_spec, Plan())
    layer = base.layer_bytes[0]
    off = weights_budget(tiny_llama_spec, Plan(offload_bytes=layer))
    assert off.offloaded_bytes == layer
    assert off.resident_bytes == base.resident_bytes - layer
    assert off.staging_bytes == layer
    everything = weights_budget(tiny_llama_spec, Plan(offload_bytes=10**12))
    assert everything.offloaded_bytes == sum(base.layer_bytes)  # embeddings and head never offloaded


def test_pipeline_stage_holds_its_layers_and_globals(tiny_llama_spec):
    first = weights_budget(tiny_llama_spec, Plan(pipeline_parallel=2), stage_index=0)
    last = weights_budget(tiny_llama_spec, Plan(pipeline_parallel=2), stage_index=1)
    assert first.by_component.embedding == 128_000 and first.by_component.lm_head == 0
    assert last.by_component.lm_head == 128_000 and last.by_component.embedding == 0
    assert first.gpu_bytes + last.gpu_bytes == 197_952 * 2


def test_expert_parallel_splits_expert_count():
    spec = parse_hf_config(dict(tiny_llama(), model_type="mixtral", num_local_experts=8, num_experts_per_tok=2), "m", "t")
    ep = weights_budget(spec, Plan(tensor_parallel=2, expert_parallel=True)).by_component.experts
    tp = weights_budget(spec, Plan(tensor_parallel=2)).by_component.experts
    assert ep == tp == 2 * 4 * 3 * 128 * 64 * 2  # 4 whole experts vs 8 half experts: same bytes


def test_deepseek_v3_router_is_fp32_as_transformers_5_24_holds_it():
    """transformers 5.24.0 modeling_deepseek_v3.py:126,551: gate.weight [256, 7168] fp32 on each of the 58 MoE layers
    (61 layers, first_k_dense_replace 3). vLLM/SGLang load it in the model dtype (bf16): 2 bytes less per weight."""
    from oomplan.engines.weights import rope_cache_bytes, stage_weight_bytes, vocab_padding_bytes
    from oomplan.memory.weights import fp32_kept_extra_bytes
    from oomplan.profiles import load_model

    model, plan = load_model("deepseek-v3"), Plan()
    router_weights = 58 * 256 * 7168
    assert weights_budget(model, plan).by_component.router == router_weights * 4
    assert fp32_kept_extra_bytes(model, plan) == router_weights * 2  # 212.75 MiB
    vllm = stage_weight_bytes(model, plan, 0, 64)
    assert vllm == weights_budget(model, plan).gpu_bytes - router_weights * 2 + vocab_padding_bytes(
        model, plan, 0, 64) + rope_cache_bytes(model, plan)
    # TP 8 replicates the router: the same fp32 bytes on every GPU
    tp8 = Plan(tensor_parallel=8)
    assert weights_budget(model, tp8).by_component.router == router_weights * 4
    assert fp32_kept_extra_bytes(model, tp8) == router_weights * 2


def test_a_bf16_router_elsewhere():
    from oomplan.memory.weights import fp32_kept_extra_bytes
    from oomplan.profiles import load_model

    mixtral = load_model("mixtral-8x7b")
    assert weights_budget(mixtral, Plan()).by_component.router == 32 * 8 * 4096 * 2
    assert fp32_kept_extra_bytes(mixtral, Plan()) == 0
