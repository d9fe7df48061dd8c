"""vLLM's hybrid KV cache manager for Mamba / Gated DeltaNet hybrids and DSA (sparse MLA + indexer) pools, per
release, with every value computed by hand from the source lines cited in oomplan/engines/vllm/mamba.py, kv.py and
oomplan/data/engines/vllm/<X.Y>.yaml (vllm-<X.Y.0> wheels: model_executor/layers/mamba/mamba_utils.py,
model_executor/models/config.py, platforms/interface.py, v1/kv_cache_interface.py, v1/core/kv_cache_utils.py).

Configs (tests/fixtures/configs/SOURCES.md): Qwen3-Next-80B-A3B (GDN: 16 key heads, 32 value heads of 128, conv 4;
attention: 2 KV heads of 256; 12 attention + 36 GDN layers), Qwen3.5-27B (GDN 16 / 48 heads of 128, mamba_ssm_dtype
float32; attention 4 KV heads of 256; 16 + 48 layers), Nemotron-H-56B (Mamba-2: 256 heads of 64, 8 groups, state 256,
conv 4; attention 8 KV heads of 128; 10 attention, 54 Mamba, 54 MLP-only layers), DeepSeek-V3.2 (MLA 512 + 64,
indexer key 128, 61 layers)."""
import json
from pathlib import Path

import pytest

from oomplan.engines.sglang.predict import predict_sglang
from oomplan.engines.sglang.settings import SglangGiven
from oomplan.engines.vllm.kv import KvLayout, blocks_per_request, kv_tokens, max_concurrency, request_bytes
from oomplan.engines.vllm.mamba import state_elements
from oomplan.engines.vllm.predict import predict_vllm
from oomplan.engines.vllm.settings import VllmGiven
from oomplan.engines.vllm.stages import predict_stages
from oomplan.errors import InputError
from oomplan.families import parse_hf_config
from oomplan.profiles import load_gpu

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"
H100, H200, A100 = load_gpu("h100"), load_gpu("h200"), load_gpu("a100-80gb")


def _model(name: str):
    return parse_hf_config(json.loads((CONFIGS / f"{name}.json").read_text()), name, "test")


QWEN3_NEXT, QWEN3_5, NEMOTRON_H, DSV32 = (_model(n) for n in ("qwen3-next-80b-a3b", "qwen3.5-27b", "nemotron-h-56b-base-8k", "deepseek-v3.2"))


def _stage(model, gpu, **given):
    s, (st,) = predict_stages(model, gpu, VllmGiven(max_model_len=32768, **given))
    return s, st


def test_qwen3_next_tp4_on_019_one_state_per_request():
    """0.19: prefix caching off for hybrids -> mode 'none'. GDN state per GPU (TP 4): conv (4 - 1) x (2*16*128 + 32*128)/4
    bf16 = 12,288; recurrent 32/4 x 128 x 128 bf16 = 262,144; attention 1 KV head (2 // 4 -> 1) x 256 x 2 (K, V) x 2 bytes =
    1,024 per token: block = 16 x cdiv(274,432, 16 x 1,024) = 272 (HybridAttentionMambaModelConfig), page 278,528."""
    s, st = _stage(QWEN3_NEXT, H100, tensor_parallel=4, engine_version="0.19")
    lay = st.layout
    assert lay.mamba is not None and lay.mamba.state_bytes == 3 * 2048 * 2 + 8 * 128 * 128 * 2 == 274_432
    assert (lay.block_size, lay.page_bytes, lay.mamba.mode) == (272, 272 * 1024, "none")
    assert (lay.num_full_layers, lay.num_mamba_layers, lay.group_size, lay.num_groups) == (12, 36, 12, 4)
    assert st.num_blocks == st.available_kv_bytes // (272 * 1024) // 12
    # one request of 32,768 tokens: cdiv(32768, 272) = 121 attention blocks + 3 state groups x 1 block
    assert blocks_per_request(lay, 32768, s.max_in_flight_tokens) == 121 + 3
    assert request_bytes(lay, 32768, s.max_in_flight_tokens) == 12 * 278_528 * 124
    # 'GPU KV cache size' before 0.21: num_blocks // 4 groups x min block size (272: the Mamba group's is max_model_len)
    p = predict_vllm(QWEN3_NEXT, H100, VllmGiven(max_model_len=32768, tensor_parallel=4, engine_version="0.19"))
    assert p.kv_cache_tokens == kv_tokens(lay, st.num_blocks, 32768) == st.num_blocks // 4 * 272
    assert p.max_concurrency == st.num_blocks / 124
    assert ("--block-size", "272") in p.settings
    assert any("attention block raised to 272 tokens" in n and "padded 1.49%" in n for n in p.notes)


def test_qwen3_next_021_logs_concurrency_times_len_and_033_aligns_to_the_gdn_checkpoint():
    s21, st21 = _stage(QWEN3_NEXT, H100, tensor_parallel=4, engine_version="0.21")
    p21 = predict_vllm(QWEN3_NEXT, H100, VllmGiven(max_model_len=32768, tensor_parallel=4, engine_version="0.21"))
    assert p21.kv_cache_tokens == int(st21.num_blocks / 124 * 32768)  # 0.21 _report_kv_cache_config
    # 0.26: prefix caching on for hybrids; Qwen3-Next lacks SupportsMambaPrefixCaching -> 'align': 2 state blocks
    _, st26 = _stage(QWEN3_NEXT, H100, tensor_parallel=4, engine_version="0.26")
    assert (st26.layout.block_size, st26.layout.mamba.mode, st26.layout.mamba.state_blocks(32768)) == (272, "align", 2)
    # 0.33 on Hopper: FlashInfer GDN prefill checkpoint -> alignment lcm(16, 64) = 64: 64 x cdiv(274,432, 64 x 1,024) = 320,
    # and 2 + 1 checkpoint state blocks per request
    s33, st33 = _stage(QWEN3_NEXT, H100, tensor_parallel=4, engine_version="0.33")
    assert (st33.layout.block_size, st33.layout.mamba.state_blocks(32768)) == (320, 3)
    assert blocks_per_request(st33.layout, 32768, s33.max_in_flight_tokens) == 103 + 3 * 3  # cdiv(32768, 320) = 103
    # Ampere: the Triton GDN kernel exports no checkpoint: block 272, 2 state blocks
    _, sta = _stage(QWEN3_NEXT, A100, tensor_parallel=4, engine_version="0.33")
    assert (sta.layout.block_size, sta.layout.mamba.state_blocks(32768)) == (272, 2)
    # --no-enable-prefix-caching: back to one state per request
    _, stn = _stage(QWEN3_NEXT, H100, tensor_parallel=4, engine_version="0.33", disable_prefix_caching=True)
    assert (stn.layout.block_size, stn.layout.mamba.mode, stn.layout.mamba.state_blocks(32768)) == (272, "none", 1)


def test_qwen3_5_fp32_state_from_the_config_and_the_1568_token_block():
    """Qwen3_5ForConditionalGenerationConfig: mamba_ssm_cache_dtype <- mamba_ssm_dtype float32. TP 1: conv 3 x
    (2*16*128 + 48*128) bf16 = 61,440; recurrent 48 x 128 x 128 fp32 = 3,145,728 -> 3,207,168 bytes; attention
    4 x 256 x 2 x 2 = 4,096 per token -> block 16 x cdiv(3,207,168, 65,536) = 784; fp8 KV (2,048 per token) -> 1,568."""
    _, st = _stage(QWEN3_5, H200, engine_version="0.19")
    assert (st.layout.mamba.ssm_dtype, st.layout.mamba.state_bytes, st.layout.block_size) == ("float32", 3_207_168, 784)
    _, st8 = _stage(QWEN3_5, H200, engine_version="0.19", kv_cache_dtype="fp8")
    assert (st8.layout.block_size, st8.layout.page_bytes) == (1568, 1568 * 2048)
    _, st16 = _stage(QWEN3_5, H200, engine_version="0.19", mamba_ssm_cache_dtype="float16")
    assert st16.layout.mamba.state_bytes == 61_440 + 48 * 128 * 128 * 2  # the flag wins over the config


def test_nemotron_h_state_dtype_default_changes_at_020():
    """NemotronHForCausalLMConfig: no mamba_ssm_cache_dtype in the config -> float16 (0.19) / float32 (0.20+).
    Mamba-2 TP 1: conv 3 x (256*64 + 2*8*256) bf16 = 122,880; ssm 256 x 64 x 256 (fp16 8,388,608; fp32 16,777,216);
    attention 8 x 128 x 2 x 2 = 4,096 per token; 10 attention layers, 54 Mamba (MLP-only layers hold nothing)."""
    _, st19 = _stage(NEMOTRON_H, H200, engine_version="0.19")
    assert (st19.layout.mamba.ssm_dtype, st19.layout.mamba.state_bytes, st19.layout.block_size) == ("float16", 8_511_488, 2080)
    assert (st19.layout.num_full_layers, st19.layout.num_mamba_layers, st19.layout.num_groups) == (10, 54, 1 + 6)
    _, st26 = _stage(NEMOTRON_H, H200, engine_version="0.26")
    assert (st26.layout.mamba.state_bytes, st26.layout.block_size) == (122_880 + 16_777_216, 16 * 258)
    # 0.19 with --enable-prefix-caching: NemotronH has SupportsMambaPrefixCaching in 0.19 -> 'all': the block aligns to
    # the chunk (128): 128 x cdiv(cdiv(8,511,488, 4,096), 128) = 2,176, one state per 2,176 tokens
    _, sta = _stage(NEMOTRON_H, H200, engine_version="0.19", enable_prefix_caching=True)
    assert (sta.layout.mamba.mode, sta.layout.block_size, sta.layout.mamba.state_blocks(32768)) == ("all", 2176, 16)
    with pytest.raises(InputError, match="'all' is not accepted by vLLM 0.33"):
        _stage(NEMOTRON_H, H200, engine_version="0.33", mamba_cache_mode="all")


def test_mamba2_groups_replicate_when_tp_exceeds_them():
    """mamba_utils.py extra_groups_for_head_shards: 8 groups over TP 16 -> 16 groups: conv width 256*64 + 2*16*256 = 24,576,
    split 16 -> 1,536 x (4 - 1); ssm 256/16 heads x 64 x 256. An inexact split is refused (vllm divide() asserts)."""
    mixer = NEMOTRON_H.layers[0].attention.state
    assert state_elements(mixer, 16, NEMOTRON_H) == (3 * 1536, 16 * 64 * 256)
    assert state_elements(mixer, 8, NEMOTRON_H) == (3 * 20480 // 8, 32 * 64 * 256)
    with pytest.raises(InputError, match="--tensor-parallel-size 3 does not divide"):
        state_elements(mixer, 3, NEMOTRON_H)


def test_group_size_pads_the_few_when_counts_are_close():
    """_get_kv_cache_groups_uniform_page_size: 12 sliding + 13 full -> max 13 < 1.5 x 12: group size 13, 2 groups."""
    lay = KvLayout(page_bytes=1024, block_size=16, num_full_layers=13, num_sliding_layers=12, sliding_window_tokens=128)
    assert (lay.group_size, lay.num_groups) == (13, 2)
    assert request_bytes(lay, 1000, 32) == 13 * 1024 * (63 + 11)  # cdiv(1000, 16); cdiv(min(127 + 32, 1000), 16) + 1


def test_dsa_pool_latent_plus_indexer_keys():
    """DeepSeek-V3.2: one full-attention group of 61 MLA + 61 indexer layers (UniformTypeKVCacheSpecs), block 64
    (FLASHMLA_SPARSE). Per token and layer: latent (512 + 64) x 2 = 1,152 (fp8 -> fp8_ds_mla 656) + indexer 128 + 4 = 132."""
    for kv, latent in (("auto", 1152), ("fp8", 656), ("fp8_ds_mla", 656)):
        s, st = _stage(DSV32, H200, tensor_parallel=8, engine_version="0.26", kv_cache_dtype=kv)
        assert (st.layout.block_size, st.layout.page_bytes, st.layout.group_size) == (64, 64 * (latent + 132), 61)
        assert st.num_blocks == st.available_kv_bytes // (64 * (latent + 132)) // 61
    p = predict_vllm(DSV32, H200, VllmGiven(max_model_len=32768, tensor_parallel=8, engine_version="0.26"))
    assert p.kv_cache_tokens == int(p.num_kv_blocks / 512 * 32768) and ("--block-size", "64") in p.settings
    with pytest.raises(InputError, match="FLASHMLA_SPARSE accepts 64"):
        _stage(DSV32, H200, tensor_parallel=8, engine_version="0.26", block_size=16)
    with pytest.raises(InputError, match="vLLM 0.33's sparse-MLA \\(DSA\\) pool layout is not modelled"):
        _stage(DSV32, H200, tensor_parallel=8)
    with pytest.raises(InputError, match="vLLM's sparse-MLA backend on NVIDIA B200"):
        _stage(DSV32, load_gpu("b200"), tensor_parallel=8, engine_version="0.26")  # FLASHINFER_MLA_SPARSE on SM100
    with pytest.raises(InputError, match="'fp8_e5m2' is not accepted by vLLM's sparse-MLA backend"):
        _stage(DSV32, H200, tensor_parallel=8, engine_version="0.26", kv_cache_dtype="fp8_e5m2")


def test_max_concurrency_counts_state_blocks():
    """A request holds its state blocks whatever its length: with 100 blocks, a 16-token request of Qwen3-Next takes
    1 attention block + 3 state groups x 1 block ('none' mode) -> 25 at once, not 100."""
    _, st = _stage(QWEN3_NEXT, H100, tensor_parallel=4, engine_version="0.19")
    lay = st.layout
    assert max_concurrency(lay, 100, 16, 0) == 100 / (1 + 3)


def test_sglang_prices_the_pools_it_used_to_refuse():
    """SGLang 0.5.23's hybrid, DSA and hybrid-SWA pools are priced (hand-computed: tests/unit/test_engine_sglang_pools.py)."""
    gpt_oss = parse_hf_config(json.loads((CONFIGS / "families" / "gpt-oss-20b.json").read_text()), "gpt-oss-20b", "test")
    for model, item in ((QWEN3_NEXT, "Mamba state"), (DSV32, "KV pool"), (gpt_oss, "SWA pool")):
        p = predict_sglang(model, H200, SglangGiven(tp_size=8))
        assert item in [i.name for i in p.items]


# A Falcon-H1-7B-shaped config (hand-written: no real Falcon-H1 config in the fixtures yet): 44 parallel hybrid layers,
# attention 2 KV heads of 128, Mamba-2 24 heads of 128, 1 group, state 256, conv 4, chunk 128, inner 3072.
FALCON_H1 = parse_hf_config({
    "architectures": ["FalconH1ForCausalLM"], "model_type": "falcon_h1", "hidden_size": 3072, "num_hidden_layers": 44,
    "num_attention_heads": 12, "num_key_value_heads": 2, "head_dim": 128, "intermediate_size": 12288,
    "vocab_size": 130048, "tie_word_embeddings": False, "mamba_d_state": 256, "mamba_n_groups": 1, "mamba_n_heads": 24,
    "mamba_d_head": 128, "mamba_d_ssm": 3072, "mamba_d_conv": 4, "mamba_chunk_size": 128,
    "max_position_embeddings": 262144, "torch_dtype": "bfloat16"}, "falcon-h1-7b-shaped", "test")


def test_falcon_h1_parallel_layers_are_an_attention_layer_and_a_state_layer_each():
    """models/falcon_h1.py FalconH1ParallelHybrid (0.19.0 - 0.33.0) registers each layer's Mamba-2 mixer under its own index
    (num_hidden_layers + i): get_kv_cache_spec lists 44 FullAttentionSpec + 44 MambaSpec, grouped 44 + 44 (2 groups).
    TP 1, 0.19 (prefix caching off -> 'none'): state conv 3 x (3072 + 2 x 1 x 256) + ssm 24 x 128 x 256, bf16 =
    (10,752 + 786,432) x 2 = 1,594,368; attention 2 x 128 x 2 x 2 = 1,024 per token -> block 16 x cdiv(1,594,368,
    16 x 1,024) = 1,568, page 1,605,632; num_blocks = available // page // 44; a 32,768-token request: cdiv(32768, 1568)
    = 21 attention blocks + 1 state block; 'GPU KV cache size' = num_blocks // 2 groups x 1,568."""
    s, st = _stage(FALCON_H1, H100, engine_version="0.19")
    lay = st.layout
    assert lay.mamba is not None and lay.mamba.state_bytes == (3 * 3584 + 24 * 128 * 256) * 2 == 1_594_368
    assert (lay.block_size, lay.page_bytes, lay.mamba.mode) == (1568, 1568 * 1024, "none")
    assert (lay.num_full_layers, lay.num_mamba_layers, lay.group_size, lay.num_groups) == (44, 44, 44, 2)
    assert lay.bytes_per_token == 44 * 1024  # every layer's attention keeps its K and V
    assert st.num_blocks == st.available_kv_bytes // (1568 * 1024) // 44
    assert blocks_per_request(lay, 32768, s.max_in_flight_tokens) == 21 + 1
    assert kv_tokens(lay, st.num_blocks, 32768) == st.num_blocks // 2 * 1568


def test_falcon_h1_per_release_and_tp():
    """0.26: prefix caching on, FalconH1 SupportsMambaPrefixCaching -> 'all': the block aligns to the chunk (128):
    128 x cdiv(cdiv(1,594,368, 1,024), 128) = 1,664, one state per 1,664 tokens (20 for 32,768). 0.33: no
    SupportsMambaPrefixCaching -> 'align': 1,568-token block, 2 + 1 (Mamba-2 prefill checkpoint) state blocks.
    TP 2 (0.19): 1 group replicated to 2 (extra_groups_for_head_shards): conv 3 x (3072 + 2 x 2 x 256) / 2 = 6,144,
    ssm 12 x 128 x 256 = 393,216 -> 798,720 bytes; attention 1 KV head: 512 per token -> 16 x cdiv(798,720, 8,192) = 1,568."""
    _, st26 = _stage(FALCON_H1, H100, engine_version="0.26")
    assert (st26.layout.mamba.mode, st26.layout.block_size, st26.layout.mamba.state_blocks(32768)) == ("all", 1664, 20)
    _, st33 = _stage(FALCON_H1, H100, engine_version="0.33")
    assert (st33.layout.mamba.mode, st33.layout.block_size, st33.layout.mamba.state_blocks(32768)) == ("align", 1568, 3)
    _, tp2 = _stage(FALCON_H1, H100, engine_version="0.19", tensor_parallel=2)
    assert (tp2.layout.mamba.state_bytes, tp2.layout.block_size, tp2.layout.page_bytes) == ((6144 + 393_216) * 2, 1568, 1568 * 512)
    assert (tp2.layout.num_full_layers, tp2.layout.num_mamba_layers) == (44, 44)


def test_falcon_h1_pipeline_stages_keep_both_per_layer():
    """PP 2: 22 decoder layers per stage, each with its attention and its state (vLLM raises one block for all stages)."""
    _, stages = predict_stages(FALCON_H1, H100, VllmGiven(max_model_len=32768, pipeline_parallel=2, engine_version="0.19"))
    assert [(st.layout.num_full_layers, st.layout.num_mamba_layers, st.layout.num_groups) for st in stages] == [(22, 22, 2)] * 2
