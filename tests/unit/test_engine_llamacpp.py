"""GGUF sizes and llama.cpp's GPU split, against ggml's block sizes and llama.cpp's own logs
(tests/fixtures/engines/llamacpp-facts.yaml)."""
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from oomplan.engines.llamacpp.constants import llamacpp_constants
from oomplan.engines.llamacpp.gguf import _more_bits, gguf_sizes, gguf_tensors, row_bytes
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.engines.llamacpp.split import compute_buffer_bytes, fit_n_gpu_layers, gpu_split, kv_layer_bytes
from oomplan.engines.llamacpp.predict import predict_llamacpp
from oomplan.errors import InputError
from oomplan.profiles import load_gpu, load_model

FACTS = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "engines" / "llamacpp-facts.yaml").read_text())
MIB = 2**20
LLAMA8 = load_model("llama-3.1-8b")


@pytest.mark.parametrize("kind", ["Q4_K", "Q6_K", "Q8_0", "Q4_0"])
def test_block_sizes_are_ggmls(kind):
    block = FACTS["ggml_block_sizes"][kind]
    assert llamacpp_constants().ggml_types[kind] == (block["weights"], block["bytes"])
    assert row_bytes(kind, 4 * block["weights"]) == 4 * block["bytes"]
    assert row_bytes("Q4_K", 256) * 8 / 256 == 4.5  # bits per weight


def test_use_more_bits_picks_half_the_layers_of_32():
    assert [i for i in range(32) if _more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


@pytest.mark.parametrize("log", FACTS["logs"], ids=lambda x: x["id"])
def test_q4_k_m_buffers_equal_llama_cpp_logs(log):
    sizes = gguf_sizes(LLAMA8, "Q4_K_M")
    s = LlamaCppGiven(ctx_tokens=log["n_ctx"], flash_attn="off", n_gpu_layers=log["n_gpu_layers"])
    split = gpu_split(LLAMA8, sizes, s, log["n_gpu_layers"])
    assert round(sizes.token_embd_bytes / MIB, 2) == log["cpu_model_buffer_mib"]  # the input layer stays on the CPU
    assert round(split.weights_gpu_bytes / MIB, 2) == log["gpu_model_buffer_mib"]
    assert round(split.kv_gpu_bytes / MIB, 2) == log["kv_buffer_mib"]
    assert round(split.compute_bytes / MIB, 2) == log["gpu_compute_buffer_mib"]


def test_q4_k_m_mix_and_model_size():
    log = FACTS["logs"][0]
    counts = Counter(t.ggml_type for t in gguf_tensors(LLAMA8, "Q4_K_M"))
    assert counts["Q6_K"] == log["tensor_types"]["q6_K"]  # output + 16 attn_v + 16 ffn_down
    assert counts["Q4_K"] == log["tensor_types"]["q4_K"]
    sizes = gguf_sizes(LLAMA8, "Q4_K_M")
    assert round(sizes.file_bytes / 2**30, 2) == log["model_size_gib"]
    assert round(sizes.file_bytes * 8 / 8_030_261_248, 2) == log["bits_per_weight"]


def test_kv_types_and_flash_attention_compute():
    s = LlamaCppGiven(ctx_tokens=8192)
    c = llamacpp_constants()
    f16 = kv_layer_bytes(LLAMA8, s, 8192, 0, c)
    assert f16 == 2 * 8192 * 1024 * 2  # K and V rows of 8 x 128 f16
    q8 = kv_layer_bytes(LLAMA8, replace(s, cache_type_k="q8_0", cache_type_v="q8_0"), 8192, 0, c)
    assert q8 == 2 * 8192 * (1024 // 32) * 34
    q4 = kv_layer_bytes(LLAMA8, replace(s, cache_type_k="q4_0", cache_type_v="q4_0"), 8192, 0, c)
    assert q4 == 2 * 8192 * (1024 // 32) * 18
    # flash attention: no KQ matrix; the peak is the logits [vocab, ubatch] f32 + one [hidden, ubatch] f32
    assert compute_buffer_bytes(LLAMA8, replace(s, flash_attn="on"), 8192, c) == (128256 + 4096) * 512 * 4
    with pytest.raises(InputError, match="--cache-type-k: 'q3_k' is not a KV cache type"):
        kv_layer_bytes(LLAMA8, replace(s, cache_type_k="q3_k"), 8192, 0, c)


def test_sliding_window_layers_keep_the_window():
    gemma = load_model("gemma-2-9b")
    s, c = LlamaCppGiven(ctx_tokens=16384), llamacpp_constants()
    full, sliding = kv_layer_bytes(gemma, s, 16384, 1, c), kv_layer_bytes(gemma, s, 16384, 0, c)
    assert sliding * 16384 == full * (4096 + 512)  # n_swa + n_ubatch cells, padded to 256
    assert kv_layer_bytes(gemma, replace(s, swa_full=True), 16384, 0, c) == full


def test_ngl_split_and_fit_search():
    sizes = gguf_sizes(LLAMA8, "Q4_K_M")
    s = LlamaCppGiven(ctx_tokens=8192)
    # -ngl 32: the output layer first (llama.cpp#18148), then layers 1..31; layer 0 stays on the CPU
    assert gpu_split(LLAMA8, sizes, s, 32).weights_gpu_bytes == sum(sizes.layer_bytes[1:]) + sizes.output_bytes
    assert gpu_split(LLAMA8, sizes, s, 1).weights_gpu_bytes == sizes.output_bytes
    assert gpu_split(LLAMA8, sizes, s, 0).weights_gpu_bytes == 0
    card = load_gpu("t4")
    n = fit_n_gpu_layers(load_model("llama-3.1-70b"), card, s)
    budget = card.memory_bytes - card.overhead.cuda_context_bytes - llamacpp_constants().fit_margin_bytes  # free at load - margin
    big = gguf_sizes(load_model("llama-3.1-70b"), "Q4_K_M")
    assert gpu_split(load_model("llama-3.1-70b"), big, s, n).gpu_bytes <= budget < gpu_split(load_model("llama-3.1-70b"), big, s, n + 1).gpu_bytes


def test_too_many_layers_on_a_small_card_fails_with_the_fix():
    p = predict_llamacpp(load_model("llama-3.1-70b"), load_gpu("rtx-4090"), LlamaCppGiven(ctx_tokens=8192, n_gpu_layers=99))
    assert not p.starts and p.failures[0].startswith("CUDA out of memory: -ngl 81 needs")
    fitted = fit_n_gpu_layers(load_model("llama-3.1-70b"), load_gpu("rtx-4090"), LlamaCppGiven(ctx_tokens=8192))
    assert p.fixes[0] == f"-ngl {fitted}"
    auto = predict_llamacpp(load_model("llama-3.1-70b"), load_gpu("rtx-4090"), LlamaCppGiven(ctx_tokens=8192))
    assert auto.ok and dict(auto.settings)["-ngl"] == str(fitted)  # --fit (default) picks it itself


def test_quantized_v_cache_needs_flash_attention():
    p = predict_llamacpp(LLAMA8, load_gpu("h100"), LlamaCppGiven(cache_type_v="q8_0", flash_attn="off"))
    assert "requires flash attention" in p.failures[0] and "-fa on" in p.fixes


def test_tied_embeddings_are_loaded_twice():
    small = load_model("llama-3.2-1b")
    sizes = gguf_sizes(small, "Q4_K_M")
    assert sizes.output_bytes == sizes.token_embd_bytes + 2048 * 4  # token_embd (as output, Q6_K) + output_norm f32
    assert sizes.total_bytes == sizes.file_bytes + sizes.token_embd_bytes


def test_token_embd_keeps_mllamas_eight_extra_rows():
    """Mllama's embed_tokens has vocab_size + 8 rows (transformers modeling_mllama.py MllamaTextModel); the GGUF's
    token_embd is that tensor, the output (lm_head) vocab_size rows."""
    mllama = load_model("llama-3.2-11b-vision")
    by_name = {t.name: t for t in gguf_tensors(mllama, "F16")}
    assert by_name["token_embd"].num_elems == (128_256 + 8) * 4096
    assert by_name["output"].num_elems == 128_256 * 4096
