"""vLLM engine mechanics, one at a time, with values computed by hand on tiny configs."""
import pytest

from conftest import tiny_llama
from oomplan.engines.vllm.constants import vllm_constants
from oomplan.engines.vllm.settings import VllmGiven, derived_max_model_len, resolve
from oomplan.engines.vllm.stages import predict_stages
from oomplan.engines.vllm.kv import (
    KvLayout, blocks_per_request, estimate_max_model_len, kv_layout, kv_tokens, max_concurrency, num_kv_blocks,
    page_bytes, request_bytes,
)
from oomplan.engines.vllm.predict import predict_vllm
from oomplan.engines.vllm.profile import forward_bytes, non_torch_bytes, profile_run, sampler_bytes
from oomplan.engines.weights import rope_cache_bytes, vocab_padding_bytes, weight_format
from oomplan.errors import InputError
from oomplan.profiles import load_gpu, load_model
from oomplan.families import parse_hf_config
from oomplan.specs.plan import Plan

TINY = parse_hf_config(tiny_llama(), "tiny", "test")  # h 64, I 128, 2 layers, 8 heads, 2 KV heads, head_dim 8, vocab 1000
TINY_MLA = parse_hf_config(tiny_llama(model_type="deepseek_v2", kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
                                      v_head_dim=16, q_lora_rank=None), "tiny-mla", "test")


def test_page_bytes_gqa_tp_and_mla():
    assert page_bytes(TINY, 1, 2, 16) == 2 * 16 * 2 * 8 * 2  # K and V, 2 heads of 8, bf16
    assert page_bytes(TINY, 4, 2, 16) == 2 * 16 * 1 * 8 * 2  # 2 KV heads over TP 4: one (replicated) per GPU
    assert page_bytes(TINY, 1, 1, 16) == 512  # fp8
    assert page_bytes(TINY_MLA, 4, 2, 16) == 16 * (32 + 8) * 2  # latent + rope key, not split by TP


def test_hybrid_groups_blocks_tokens():
    layout = KvLayout(page_bytes=1024, block_size=16, num_full_layers=2, num_sliding_layers=6, sliding_window_tokens=64)
    assert (layout.group_size, layout.num_groups) == (2, 4)  # (full x2), (sw x2) x 3
    assert num_kv_blocks(layout, 1024 * 2 * 100) == 100  # available // page // group_size
    assert kv_tokens(layout, 100) == 100 // 4 * 16
    # full group: cdiv(1000, 16) = 63; sliding groups: cdiv(min(64 - 1 + 32, 1000), 16) + 1 = 7, three of them
    assert blocks_per_request(layout, 1000, 32) == 63 + 3 * 7
    assert request_bytes(layout, 1000, 32) == (2 * 63 + 6 * 7) * 1024
    assert max_concurrency(layout, 840, 1000, 32) == 10.0
    assert estimate_max_model_len(layout, (2 * 63 + 6 * 7) * 1024, 32, 10**6) == 63 * 16


def test_uniform_layout():
    layout = kv_layout(TINY, (0, 1), 1, 2, 16)
    assert (layout.group_size, layout.num_groups, layout.bytes_per_token) == (2, 1, 2 * 2 * 8 * 2 * 2)
    assert num_kv_blocks(layout, 10_000) == 10_000 // 1024 // 2
    assert blocks_per_request(layout, 100, 8192) == 7


def test_forward_and_sampler_bytes():
    # residual + hidden [64, 64] bf16 = 16384; MLP gate_up [64, 256] + act [64, 128] = 49152 > attention 20480
    assert forward_bytes(TINY, (0, 1), 1, 64, 2) == 16384 + 49152
    assert forward_bytes(TINY, (0, 1), 2, 64, 2) == 16384 + 64 * 64 * 3 * 2  # MLP split over TP 2
    # hidden [64, 64] + last_hidden and rand_like [8, 64] + logits [8, 1000] bf16 and three fp32 copies
    assert sampler_bytes(TINY, 64, 8, 2, 3) == 64 * 64 * 2 + 2 * 8 * 64 * 2 + 8 * 1000 * (2 + 12)
    run = profile_run(TINY, (0, 1), True, 1, 64, 1024, 2, vllm_constants("0.19"))
    assert run.sampler_bytes == sampler_bytes(TINY, 64, 64, 2, 3)  # rows = min(max_num_seqs, tokens)
    assert run.activation_peak_bytes == max(run.forward_bytes, run.sampler_bytes) + vllm_constants("0.19").profile_extra_bytes
    assert profile_run(TINY, (0,), False, 1, 64, 8, 2, vllm_constants("0.19")).sampler_bytes == 0  # not the last stage


def test_non_torch_grows_with_tp_only():
    c = vllm_constants("0.19")
    assert non_torch_bytes(1, c) == c.non_torch_bytes
    assert non_torch_bytes(4, c) == c.non_torch_bytes + c.allreduce_bytes + 3 * c.allreduce_bytes_per_peer


def test_vocab_padding_and_rope_cache():
    # vocab 1000 -> 1024 rows: 24 extra rows of 64 bf16, for embed_tokens and the untied lm_head
    assert vocab_padding_bytes(TINY, Plan(), 0, 64) == 24 * 64 * 2 * 2
    assert vocab_padding_bytes(TINY, Plan(tensor_parallel=4), 0, 64) == (256 - 250) * 64 * 2 * 2
    assert vocab_padding_bytes(TINY, Plan(pipeline_parallel=2), 0, 64) == 24 * 64 * 2  # first stage: embed only
    assert rope_cache_bytes(TINY, Plan()) == 4096 * 8 * 2  # [max_position, rotary_dim] bf16
    assert rope_cache_bytes(TINY_MLA, Plan()) == 4096 * 8 * 2  # MLA: qk_rope_head_dim


def test_defaults_follow_get_batch_defaults():
    h100, a100, l4 = load_gpu("h100"), load_gpu("a100-80g"), load_gpu("l4")
    s = resolve(TINY, h100, VllmGiven(engine_version="0.19"))
    assert (s.max_num_seqs, s.max_num_batched_tokens, s.block_size, s.gpu_memory_utilization) == (1024, 8192, 16, 0.9)
    assert s.max_model_len == 4096  # the config's max_position_embeddings
    assert (resolve(TINY, a100, VllmGiven(engine_version="0.19")).max_num_seqs, resolve(TINY, l4, VllmGiven(engine_version="0.19")).max_num_batched_tokens) == (256, 2048)
    short = resolve(TINY, h100, VllmGiven(engine_version="0.19", max_model_len=4))
    assert (short.max_num_batched_tokens, short.max_num_seqs) == (4096, 1024)  # min(1024 x 4, 8192)


def test_derived_max_model_len_with_yarn():
    cfg = tiny_llama(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024})
    assert derived_max_model_len(parse_hf_config(cfg, "y", "test")) == 4096
    cfg = tiny_llama(rope_scaling={"rope_type": "llama3", "factor": 8.0})
    assert derived_max_model_len(parse_hf_config(cfg, "l3", "test")) == 4096


def test_weight_formats_and_errors():
    assert weight_format("auto", "fp8") == "fp8" and weight_format("half", None) == "fp16"
    with pytest.raises(InputError, match="--quantization: 'int3' is not modelled"):
        weight_format("auto", "int3")
    with pytest.raises(InputError, match="--kv-cache-dtype: 'fp4'"):
        predict_stages(TINY, load_gpu("h100"), VllmGiven(engine_version="0.19", kv_cache_dtype="fp4"))


def test_fp8_online_keeps_embeddings_16_bit():
    model = load_model("llama-3.1-8b")
    _, stages = predict_stages(model, load_gpu("h100"), VllmGiven(engine_version="0.19", quantization="fp8"))
    assert round(stages[0].weights_bytes / 2**30, 2) == 8.49  # 6.50 GiB fp8 layers + 2 x 0.98 GiB bf16 vocab matrices


def test_refusal_names_the_need_and_the_fix():
    p = predict_vllm(load_model("llama-3.1-70b"), load_gpu("h100"), VllmGiven(engine_version="0.19", tensor_parallel=2))
    assert not p.starts
    # 80 layers x 4 KV heads (8 over TP 2) x 128 x 2 (K, V) x 2 B x 131072 tokens = 20 GiB
    assert "max_model_len 131072 needs 20.00 GiB of KV cache for one request" in p.failures[0]
    assert p.fixes[0] == f"--max-model-len {p.kv_cache_tokens}" and "--tensor-parallel-size 4" in p.fixes
    fixed = VllmGiven(engine_version="0.19", tensor_parallel=2, max_model_len=p.kv_cache_tokens)  # the longest len the pool holds
    assert predict_vllm(load_model("llama-3.1-70b"), load_gpu("h100"), fixed).starts
    too_long = VllmGiven(engine_version="0.19", tensor_parallel=2, max_model_len=p.kv_cache_tokens + 1)
    assert not predict_vllm(load_model("llama-3.1-70b"), load_gpu("h100"), too_long).starts


def test_startup_and_long_len_refusals():
    p = predict_vllm(TINY, load_gpu("h100"), VllmGiven(engine_version="0.19", gpu_memory_utilization=1.0))
    assert "asks for more than the free memory at start-up" in p.failures[0]
    assert p.fixes == ("--gpu-memory-utilization 0.99",)  # (79.19 GiB - 0.5 GiB context) / 79.19 GiB = 0.9937
    p = predict_vllm(TINY, load_gpu("h100"), VllmGiven(engine_version="0.19", max_model_len=8192))
    assert "greater than the derived max_model_len (4096" in p.failures[0]


def test_sliding_window_and_mla_models_generalise():
    gemma = predict_vllm(load_model("gemma-2-9b"), load_gpu("h100"), VllmGiven(engine_version="0.19"))
    # hybrid: 21 full + 21 sliding layers, group size 21, two groups; tokens count every layer, concurrency windows
    assert gemma.kv_cache_tokens == gemma.num_kv_blocks // 2 * 16
    assert gemma.max_concurrency == pytest.approx(gemma.num_kv_blocks / (512 + 513))
    mla = predict_vllm(load_model("deepseek-v2-lite"), load_gpu("h100"), VllmGiven(engine_version="0.19"))
    per_token = 27 * (512 + 64) * 2  # latent + rope key, 27 layers, bf16
    assert mla.kv_cache_tokens == mla.kv_pool_bytes // per_token // 16 * 16


def test_moe_forward_uses_fused_moe_caches():
    moe = parse_hf_config(tiny_llama(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2), "tiny-moe", "test")
    # fused_experts: cache13 [T*k, max(2I, h)] + cache2 [T*k, I] in bf16, router logits [T, E] fp32; + residual stream
    routed = 64 * 2 * (max(2 * 128, 64) + 128) * 2
    assert forward_bytes(moe, (0, 1), 1, 64, 2) == 2 * 64 * 64 * 2 + routed + 64 * 4 * 4


def test_fp8_kv_halves_the_page_and_doubles_the_tokens():
    model, gpu = load_model("llama-3.1-8b"), load_gpu("h100")
    bf16 = predict_vllm(model, gpu, VllmGiven(engine_version="0.19", max_model_len=8192))
    fp8 = predict_vllm(model, gpu, VllmGiven(engine_version="0.19", max_model_len=8192, kv_cache_dtype="fp8"))
    assert fp8.kv_pool_bytes == pytest.approx(bf16.kv_pool_bytes, rel=1e-4)
    assert fp8.kv_cache_tokens == pytest.approx(2 * bf16.kv_cache_tokens, rel=1e-4)


def test_vocab_padding_counts_mllamas_eight_extra_embedding_rows():
    """vllm/model_executor/models/mllama.py: embed_tokens = VocabParallelEmbedding(vocab_size + 8, h), lm_head = ParallelLMHead(vocab_size)."""
    mllama = load_model("llama-3.2-11b-vision")  # vocab 128256 (a multiple of 64), h 4096, bf16
    assert mllama.num_extra_embedding_rows == 8
    # embed: 128264 rows -> 128320 (56 padding rows); lm_head: 128256 rows, none
    assert vocab_padding_bytes(mllama, Plan(), 0, 64) == 56 * 4096 * 2
    # TP 2: embed 128320 / 2 - 128264 / 2 = 28 rows per GPU; lm_head none
    assert vocab_padding_bytes(mllama, Plan(tensor_parallel=2), 0, 64) == 28 * 4096 * 2
