"""SGLang 0.5.23's hybrid and windowed pools (oomplan/engines/sglang/pools.py), hand-computed from the release's source:
python/sglang/srt/model_executor/pool_configurator.py (HybridSWAPoolConfigurator, SWARequestCapPoolConfigurator,
compute_swa_request_cap, DefaultPoolConfigurator._compute_cell_size / _compute_dsa_indexer_cell_size),
mem_cache/kv_cache_configurator.py (_handle_max_mamba_cache, _calculate_mamba_ratio, resolve_max_num_reqs,
calculate_mla_kv_cache_dim) and configs/mamba_utils.py (Mamba2StateShape.create, mamba_cache_per_req), sglang 0.5.23.
Model facts: the shipped profiles (model_profiles/*.yaml, from the configs in tests/fixtures/configs/SOURCES.md)."""
import pytest

from oomplan.engines.sglang.constants import sglang_constants
from oomplan.engines.sglang.pools import (
    dsa_pool, dsa_row_bytes, hybrid_swa_pool, mamba_layer_bytes, mamba_pool, mamba_slots_per_request, max_running_requests,
    multimodal_reserve_bytes, pool_kind, sglang_pp_layers,
)
from oomplan.engines.sglang.predict import predict_sglang
from oomplan.engines.sglang.settings import SglangGiven, resolve
from oomplan.errors import InputError
from oomplan.profiles import load_gpu, load_model

GIB = 2**30
C = sglang_constants("0.5.23")


def resolved(model, gpu="h100", **given):
    return resolve(load_model(model) if isinstance(model, str) else model, load_gpu(gpu), SglangGiven(**given))


def test_gpt_oss_splits_its_budget_between_the_full_and_the_swa_pool():
    m = load_model("gpt-oss-120b")  # 36 layers: 18 full, 18 sliding (window 128); 8 KV heads x 64
    s = resolved(m)
    assert pool_kind(m, s, C) == "hybrid_swa" and s.swa_full_tokens_ratio == 0.8
    pool = hybrid_swa_pool(m, s, C, tuple(range(36)), 2, 10 * GIB, "hybrid_swa")
    # per layer 8 x (64 + 64) x 2 B = 2,048 B; cell = 18 x 2,048 + 0.8 x 18 x 2,048 = 66,355.2 B
    # 10 GiB // 66,355.2 = 161,817 full tokens; swa = int(161,817 x 0.8) = 129,453
    assert (pool.tokens, pool.swa_tokens, pool.cell_bytes, pool.swa_cell_bytes) == (161_817, 129_453, 36_864, 36_864)
    half = hybrid_swa_pool(m, resolved(m, swa_full_tokens_ratio=0.5), C, tuple(range(36)), 2, 10 * GIB, "hybrid_swa")
    # 10 GiB // (36,864 + 0.5 x 36,864) = 194,180; swa = 97,090
    assert (half.tokens, half.swa_tokens) == (194_180, 97_090)
    capped = hybrid_swa_pool(m, resolved(m, max_total_tokens=100_000), C, tuple(range(36)), 2, 10 * GIB, "hybrid_swa")
    assert (capped.tokens, capped.swa_tokens) == (100_000, 80_000)  # config_from_budget re-solves from the cap


def test_a_tiny_swa_pool_is_the_start_up_error_sglang_raises():
    m = load_model("gpt-oss-20b")
    pool = hybrid_swa_pool(m, resolved(m, swa_full_tokens_ratio=0.01), C, tuple(range(24)), 2, 300_000_000, "hybrid_swa")
    # 12 x 2,048 + 0.01 x 12 x 2,048 = 24,821.76 B; 300e6 // that = 12,086; swa int(120.86) = 120 <= window 128 + page 1
    assert (pool.tokens, pool.swa_tokens) == (12_086, 120)
    assert pool.failure and "cannot hold even one request" in pool.failure


def test_without_the_radix_cache_the_swa_pool_is_sized_from_the_request_cap():
    m = load_model("gpt-oss-120b")
    s = resolved(m, max_running_requests=64, disable_radix_cache=True)
    assert pool_kind(m, s, C) == "swa_request_cap" and s.chunked_prefill_size == 8192
    pool = hybrid_swa_pool(m, s, C, tuple(range(36)), 2, 10 * GIB, "swa_request_cap")
    # per request (128 + 128 eviction interval + 1) + 1 decode page = 258; 258 x 64 + 2 chunks x 8,192 + 1 = 32,897
    # full = (10 GiB - 32,897 x 36,864) // 36,864 = 258,374
    assert (pool.swa_tokens, pool.tokens) == (32_897, 258_374)
    assert pool_kind(m, resolved(m, max_running_requests=64), C) == "hybrid_swa"  # the radix cache on: the ratio
    assert pool_kind(m, resolved(m, disable_hybrid_swa_memory=True), C) == "default"


def test_mamba2_state_bytes_follow_mamba2_state_shape():
    m = load_model("nemotron-3-nano-30b-a3b")  # 64 heads x 64, 8 groups, state 128, conv kernel 4; 23 Mamba layers
    # conv (64 x 64 + 2 x 8 x 128) x (4 - 1) x 2 B = 36,864; ssm 64 x 64 x 128 x 4 B = 2,097,152
    assert mamba_layer_bytes(m, 1, 4, 2) == (2_134_016, 36_864)
    # TP 16: 8 groups widened to 16 (extra_groups_for_head_shards): conv (4,096 + 2 x 16 x 128) / 16 x 3 x 2 = 3,072
    assert mamba_layer_bytes(m, 16, 4, 2) == (3_072 + 4 * 64 * 128 * 4, 3_072)
    with pytest.raises(InputError, match="--tp-size 3 does not divide the Mamba conv width .*SGLang 0.5.23 refuses it"):
        mamba_layer_bytes(m, 3, 4, 2)


def test_nemotron_h_state_pool_comes_out_of_the_budget_first():
    m = load_model("nemotron-3-nano-30b-a3b")
    s = resolved(m)
    assert pool_kind(m, s, C) == "mamba" and s.mamba_full_memory_ratio == 0.9
    pool = mamba_pool(m, s, C, 0, tuple(range(m.num_layers)), 2, 20 * GIB)
    # per request 23 x 2,134,016 = 49,082,368 B; budget 20 GiB x 0.9 / 1.9 = 10,172,291,280 B
    # slots int((10,172,291,280 - 49,082,368) // 49,082,368) = 206
    # KV: (20 GiB - 207 x 49,082,368) // (6 layers x 2 heads x 128 x 2 x 2 B = 6,144) = 1,841,599
    assert (pool.state_bytes_per_slot, pool.state_slots, pool.cell_bytes, pool.tokens) == (49_082_368, 206, 6_144, 1_841_599)
    assert pool.state_bytes == 207 * 49_082_368
    # extra_buffer (Nemotron-H, overlap on): 3 + 2 slots per request -> 206 // 5 = 41 running requests at most
    assert pool.slots_per_request == 5 and max_running_requests(s, pool) == 41
    bf16 = mamba_pool(m, resolved(m, mamba_ssm_dtype="bfloat16"), C, 0, tuple(range(m.num_layers)), 2, 20 * GIB)
    assert bf16.state_bytes_per_slot == 23 * (36_864 + 64 * 64 * 128 * 2)
    fixed = mamba_pool(m, resolved(m, max_mamba_cache_size=64), C, 0, tuple(range(m.num_layers)), 2, 20 * GIB)
    # (20 GiB - 65 x 49,082,368) // 6,144 = 2,975,990
    assert (fixed.state_slots, fixed.tokens) == (64, 2_975_990)


def test_qwen3_next_gdn_state_at_tp4():
    m = load_model("qwen3-next-80b-a3b")  # GDN 16 key / 32 value heads x 128, conv 4; 36 GDN + 12 attention layers
    s = resolved(m, tp_size=4)
    # conv (2 x 16 x 128 + 32 x 128) / 4 x 3 x 2 B = 12,288; ssm 32 / 4 x 128 x 128 x 4 B = 524,288
    assert mamba_layer_bytes(m, 4, 4, 2) == (536_576, 12_288)
    pool = mamba_pool(m, s, C, 0, tuple(range(48)), 2, 20 * GIB)
    # 36 x 536,576 = 19,316,736 B; slots int((10,172,291,280 - 19,316,736) // 19,316,736) = 525
    # KV: 2 KV heads // 4 -> 1 x 256 x 2 x 2 B x 12 layers = 12,288 B; (20 GiB - 526 x 19,316,736) // 12,288 = 920,754
    assert (pool.state_slots, pool.cell_bytes, pool.tokens) == (525, 12_288, 920_754)
    assert max_running_requests(s, pool) == 105  # 525 // 5


def test_the_slots_per_request_follow_the_radix_cache_strategy():
    m = load_model("qwen3-next-80b-a3b")
    assert mamba_slots_per_request(m, resolved(m), C) == 5  # auto -> extra_buffer, overlap: 3 + 2
    assert mamba_slots_per_request(m, resolved(m, disable_overlap_schedule=True), C) == 3  # auto -> no_buffer
    assert mamba_slots_per_request(m, resolved(m, disable_overlap_schedule=True, mamba_radix_cache_strategy="extra_buffer"), C) == 4
    assert mamba_slots_per_request(m, resolved(m, mamba_radix_cache_strategy="extra_buffer_lazy"), C) == 4
    assert mamba_slots_per_request(m, resolved(m, disable_radix_cache=True), C) == 1
    pool = mamba_pool(m, resolved(m, tp_size=4, disable_radix_cache=True, max_running_requests=48), C, 0, tuple(range(48)), 2, 20 * GIB)
    assert pool.state_slots == 48  # the radix cache off: one slot per --max-running-requests


def test_pipeline_stages_charge_the_largest_stage_share_of_state_layers():
    assert list(sglang_pp_layers(10, 4, 0)) == [0, 1] and list(sglang_pp_layers(10, 4, 3)) == [7, 8, 9]  # get_pp_indices
    m = load_model("qwen3-next-80b-a3b")  # 48 layers, full attention every 4th: 9 GDN layers per 12-layer stage
    s = resolved(m, pp_size=4)
    pool = mamba_pool(m, s, C, 0, tuple(range(12)), 2, 20 * GIB)
    # TP 1: conv 8,192 x 3 x 2 B + ssm 32 x 128 x 128 x 4 B per layer, 9 GDN layers in the largest stage
    assert pool.state_bytes_per_slot == 9 * (8_192 * 3 * 2 + 32 * 128 * 128 * 4)


def test_dsa_cell_by_card_and_kv_dtype():
    m = load_model("deepseek-v3.2")  # kv_lora_rank 512, rope 64, 61 layers all indexed, index_head_dim 128
    h200, b200 = load_gpu("h200"), load_gpu("b200")
    # below compute capability 10 'auto' is bfloat16: (512 + 64) x 2 B; indexer 128 + 128 // 128 x 4 = 132 B per layer
    assert dsa_row_bytes(m, h200, resolved(m, "h200", tp_size=8), C) == (1_152, "bfloat16")
    pool = dsa_pool(m, h200, resolved(m, "h200", tp_size=8), C, tuple(range(61)), 20 * GIB)
    # 61 x (1,152 + 132) = 78,324 B; 20 GiB // 78,324 = 274,179 -> pages of 64: 274,176
    assert (pool.cell_bytes, pool.tokens, pool.page_size) == (78_324, 274_176, 64)
    # Blackwell: fp8_e4m3 on trtllm, raw rows (512 + 64) x 1 B
    assert dsa_row_bytes(m, b200, resolved(m, "b200", tp_size=8), C) == (576, "fp8_e4m3")
    # fp8 on Hopper: flashmla_kv, scaled rows 512 + 512 // 128 x 4 + 64 x 2 = 656 B
    assert dsa_row_bytes(m, h200, resolved(m, "h200", tp_size=8, kv_cache_dtype="fp8_e4m3"), C) == (656, "fp8_e4m3")
    assert dsa_row_bytes(m, h200, resolved(m, "h200", kv_cache_dtype="fp8_e4m3", dsa_decode_backend="trtllm"), C)[0] == 576
    assert dsa_row_bytes(m, h200, resolved(m, "h200", kv_cache_dtype="fp8_e4m3", dsa_prefill_backend="tilelang",
                                           dsa_decode_backend="tilelang"), C)[0] == 576


def test_glm5_fp8_on_blackwell_needs_the_backends_named():
    m = load_model("glm-5")
    b200 = load_gpu("b200")
    with pytest.raises(InputError, match="pass --dsa-prefill-backend and --dsa-decode-backend"):
        dsa_row_bytes(m, b200, resolved(m, "b200", tp_size=8), C)
    s = resolved(m, "b200", tp_size=8, dsa_prefill_backend="flashinfer_sparse_mla", dsa_decode_backend="flashinfer_sparse_mla")
    assert dsa_row_bytes(m, b200, s, C) == (656, "fp8_e4m3")
    with pytest.raises(InputError, match="DSA pool on AMD Instinct MI300X"):
        dsa_row_bytes(m, load_gpu("mi300x"), resolved(m, "mi300x"), C)


def test_multimodal_models_reserve_the_vlm_cache_out_of_the_budget():
    assert multimodal_reserve_bytes(load_model("qwen3.5-27b"), C) == 100 * 2**20  # SGLANG_VLM_CACHE_SIZE_MB
    assert multimodal_reserve_bytes(load_model("qwen3-next-80b-a3b"), C) == 0
    assert multimodal_reserve_bytes(load_model("gemma-3-12b-it"), C) == 0  # multimodal off by default


def test_refusals_name_what_is_not_modelled():
    with pytest.raises(InputError, match="Llama4ForConditionalGeneration with multimodal off"):
        predict_sglang(load_model("llama-4-scout-17b-16e"), load_gpu("h100"), SglangGiven(tp_size=8))


def test_the_prediction_itemises_the_pools_and_states_the_logged_lines():
    p = predict_sglang(load_model("nemotron-3-nano-30b-a3b"), load_gpu("h100"), SglangGiven())
    names = [i.name for i in p.items]
    assert names[:3] == ["weights", "KV pool", "Mamba state"]
    state = next(i for i in p.items if i.name == "Mamba state")
    assert state.bytes % 49_082_368 == 0 and p.kv_pool_bytes == p.kv_cache_tokens * 6_144
    assert any("Mamba Cache is allocated. max_mamba_cache_size:" in n for n in p.notes)
    q = predict_sglang(load_model("gpt-oss-20b"), load_gpu("h100"), SglangGiven())
    swa = next(i for i in q.items if i.name == "SWA pool")
    assert q.kv_pool_bytes == q.kv_cache_tokens * 24_576 + swa.bytes
    assert any("Use sliding window memory pool. full_layer_tokens=" in n for n in q.notes)


def test_concurrency_is_bounded_by_every_pool():
    from oomplan.engines.sglang.predict import concurrency
    from oomplan.engines.sglang.pools import SglangPool
    s = resolved("gpt-oss-20b", context_length=4096)
    # full 400,000 / 4,096 = 97.66; SWA 10,000 / (min(4,096, 128) + 1) = 77.52
    assert concurrency(s, SglangPool("hybrid_swa", 400_000, 1, 1, 10_000, 1, 128)) == pytest.approx(10_000 / 129)
    m = resolved("qwen3-next-80b-a3b", context_length=4096)
    # state 206 slots // 5 = 41 < 400,000 / 4,096
    assert concurrency(m, SglangPool("mamba", 400_000, 1, 1, state_slots=206, state_bytes_per_slot=1, slots_per_request=5)) == 41
