"""vLLM versions as data: each release range's accounting, hand-computed from the source cited in
oomplan/data/engines/vllm/<X.Y>.yaml (0.19 stays exactly as calibrated: tests/golden/test_vllm_calibration.py)."""
import pytest

from oomplan.engines.vllm.constants import vllm_constants, vllm_versions
from oomplan.engines.vllm.kv import blocks_per_request, page_bytes
from oomplan.engines.vllm.predict import predict_vllm
from oomplan.engines.vllm.profile import sampler_bytes
from oomplan.engines.vllm.settings import VllmGiven, resolve
from oomplan.engines.vllm.stages import predict_stages
from oomplan.errors import InputError
from oomplan.profiles import load_gpu, load_model

LLAMA8, H100 = load_model("llama-3.1-8b"), load_gpu("h100")


def test_version_ranges_and_refusals():
    t = vllm_versions()
    assert t.describe() == "0.19, 0.20, 0.21-0.23, 0.24-0.25, 0.26, 0.27-0.32, 0.33"
    assert [t.range_of(v) for v in ("0.19.1", "0.20.2", "0.23", "0.24.0", "0.25.1", "v0.26.0", "0.27.1", "0.31", "0.33.1", None)] == [
        "0.19", "0.20", "0.21", "0.24", "0.24", "0.26", "0.27", "0.27", "0.33", "0.33"]
    for bad, why in (("0.18", "vLLM 0.18 is not modelled"), ("0.34", "vLLM 0.34 is not modelled"), ("latest", "is not a version")):
        with pytest.raises(InputError, match=why):
            t.range_of(bad)


def test_each_range_names_its_changes_with_sources():
    c19, c20, c33 = vllm_constants("0.19"), vllm_constants("0.20"), vllm_constants("0.33")
    assert (c19.gpu_memory_utilization, c19.cuda_graphs_in_budget) == (0.9, False)
    assert (c20.gpu_memory_utilization, c20.cuda_graphs_in_budget) == (0.92, True)
    assert c20.profile_extra_bytes == c19.profile_extra_bytes  # inherited, with its source
    assert "0.20.0" in c20.sources["cuda_graphs_in_budget"] and "0.19.0" in c20.sources["profile_extra_bytes"]
    assert (c33.model_runner_v2, c33.huge_gpu_min_bytes) == ("all", 160 * 2**30)


def test_020_takes_the_cuda_graph_estimate_from_the_budget():
    """gpu_worker.determine_available_memory 0.20: requested - non_kv - profile_cudagraph_memory()."""
    (s19, (a,)), (s20, (b,)) = (predict_stages(LLAMA8, H100, VllmGiven(engine_version=v)) for v in ("0.19", "0.20"))
    c = vllm_constants("0.20")
    assert (s19.gpu_memory_utilization, s20.gpu_memory_utilization) == (0.9, 0.92)
    assert a.weights_bytes == b.weights_bytes and a.cuda_graph_bytes == 0 and b.cuda_graph_bytes == c.cuda_graph_bytes
    assert b.available_kv_bytes == (int(H100.memory_bytes * 0.92) - b.weights_bytes - b.profile.activation_peak_bytes
                                    - b.non_torch_bytes - c.cuda_graph_bytes)
    assert predict_vllm(LLAMA8, H100, VllmGiven(engine_version="0.20", enforce_eager=True)).items[4].bytes == 0


def test_026_model_runner_v2_for_dense_models_only():
    """config/vllm.py 0.26: V2 for non-MoE models; V2's sampler keeps no fp32 [rows, vocab] tensors and V2
    reports no CUDA-graph estimate; MoE models keep the V1 runner (graphs in the budget)."""
    s, (st,) = predict_stages(LLAMA8, H100, VllmGiven(engine_version="0.26"))
    assert s.model_runner_v2 and st.cuda_graph_bytes == 0
    rows, h, v = 1024, LLAMA8.hidden_size, LLAMA8.vocab_size
    assert st.profile.sampler_bytes == 8192 * h * 2 + rows * h * 2 + rows * v * 2 == sampler_bytes(LLAMA8, 8192, rows, 2, 0, 1)
    moe = load_model("qwen3-30b-a3b")
    s_moe, (st_moe,) = predict_stages(moe, H100, VllmGiven(engine_version="0.26", max_model_len=8192))
    assert not s_moe.model_runner_v2 and st_moe.cuda_graph_bytes == vllm_constants("0.26").cuda_graph_bytes
    s33, (st33,) = predict_stages(moe, H100, VllmGiven(engine_version="0.33", max_model_len=8192))
    assert s33.model_runner_v2 and st33.cuda_graph_bytes == vllm_constants("0.33").cuda_graph_bytes


def test_model_runner_v2_by_architecture_list_in_024_and_beside_dense_in_026():
    """config/vllm.py 0.24.0: V2 only for DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES (Llama, Mistral, Qwen3 dense, and the
    Qwen2-MoE/DeepSeek-V2/GraniteMoE MoE families); 0.26.0: every non-MoE model, plus that file's MoE list."""
    cases = {"llama-3.1-8b": (True, True), "qwen3-8b": (True, True), "qwen2.5-7b": (False, True),
             "gemma-2-9b": (False, True), "qwen3-30b-a3b": (False, False), "deepseek-v2-lite": (True, True),
             "mixtral-8x7b": (False, False)}
    for name, (v24, v26) in cases.items():
        model = load_model(name)
        got = tuple(resolve(model, H100, VllmGiven(engine_version=v, max_model_len=4096)).model_runner_v2 for v in ("0.24", "0.26"))
        assert got == (v24, v26), name
    assert not resolve(LLAMA8, H100, VllmGiven(engine_version="0.21", max_model_len=4096)).model_runner_v2


def test_033_large_cards_default_to_16384_batched_tokens():
    b200 = load_gpu("b200")
    assert b200.memory_bytes >= 160 * 2**30
    assert resolve(LLAMA8, b200, VllmGiven(engine_version="0.33")).max_num_batched_tokens == 16384
    assert resolve(LLAMA8, b200, VllmGiven(engine_version="0.26")).max_num_batched_tokens == 8192
    assert resolve(LLAMA8, H100, VllmGiven(engine_version="0.33")).max_num_batched_tokens == 8192


def test_sliding_windows_count_in_flight_batches_and_the_log_counts_concurrency():
    """Gemma 2 (window 4096, 21 sliding + 21 full layers), max_model_len 8192, 8192 batched tokens:
    0.19 reserves window - 1 + one chunk; 0.26 (V2, async scheduling, pp 1) window - 1 + 2 chunks, capped at
    max_model_len. From 0.21 'GPU KV cache size' = int(concurrency x max_model_len)."""
    gemma = load_model("gemma-2-9b")
    given = dict(max_model_len=8192, max_num_batched_tokens=8192)
    s19, (a,) = predict_stages(gemma, H100, VllmGiven(engine_version="0.19", **given))
    s26, (b,) = predict_stages(gemma, H100, VllmGiven(engine_version="0.26", **given))
    assert (s19.max_in_flight_tokens, s26.max_in_flight_tokens) == (8192, 2 * 8192)
    p19 = predict_vllm(gemma, H100, VllmGiven(engine_version="0.19", **given))
    p26 = predict_vllm(gemma, H100, VllmGiven(engine_version="0.26", **given))
    assert p19.kv_cache_tokens == p19.num_kv_blocks // b.layout.num_groups * 16  # num_blocks // groups x block size
    per_request = blocks_per_request(b.layout, 8192, 2 * 8192)
    assert p26.kv_cache_tokens == int(p26.num_kv_blocks / per_request * 8192)


def test_per_token_head_kv_modes_and_unmodelled_ones():
    """TritonAttentionBackend.customize_spec: (head_k + head_v) x 1 byte + 2 fp32 scales per token per head."""
    assert page_bytes(LLAMA8, 1, 1.0, 16, 8) == 16 * 8 * (2 * 128 + 8)
    p = predict_vllm(LLAMA8, H100, VllmGiven(engine_version="0.26", kv_cache_dtype="int8_per_token_head", max_model_len=8192))
    _, (st,) = predict_stages(LLAMA8, H100, VllmGiven(engine_version="0.26", kv_cache_dtype="int8_per_token_head", max_model_len=8192))
    assert st.layout.page_bytes == 16 * 8 * (2 * 128 + 8) and p.num_kv_blocks == st.available_kv_bytes // st.layout.page_bytes // 32
    with pytest.raises(InputError, match="'int4_per_token_head' is not accepted by vLLM 0.20"):
        predict_stages(LLAMA8, H100, VllmGiven(engine_version="0.20", kv_cache_dtype="int4_per_token_head"))
    with pytest.raises(InputError, match="'fp8_ds_mla' is the sparse-MLA format of DeepSeek-V3.2 / GLM-5"):
        predict_stages(LLAMA8, H100, VllmGiven(kv_cache_dtype="fp8_ds_mla"))  # a dense model: no sparse-MLA backend
    with pytest.raises(InputError, match="'turboquant_k8v4' is accepted by vLLM 0.33 but its packed layout is not modelled"):
        predict_stages(LLAMA8, H100, VllmGiven(kv_cache_dtype="turboquant_k8v4"))


def test_the_prediction_states_its_version_and_how_it_was_chosen():
    default = predict_vllm(LLAMA8, H100, VllmGiven(max_model_len=8192))
    assert default.notes[0].startswith("vLLM 0.33 accounting, the newest modelled (--engine-version X.Y picks another:")
    assert predict_vllm(LLAMA8, H100, VllmGiven(max_model_len=8192, engine_version="0.26.0")).notes[0].startswith(
        "vLLM 0.26 accounting, --engine-version 0.26.0")


def test_every_constant_of_every_range_names_its_source_release():
    import re
    from oomplan.engines.sglang.constants import sglang_constants, sglang_versions
    consts = [vllm_constants(r) for r in vllm_versions().ranges] + [sglang_constants(r) for r in sglang_versions().ranges]
    for c in consts:
        fields = set(type(c).model_fields) - {"schema_version", "engine", "engine_version", "first_release", "releases_read", "sources"}
        assert fields <= set(c.sources), f"{c.engine} {c.engine_version}: no source for {sorted(fields - set(c.sources))}"
        for key, text in c.sources.items():
            assert re.search(r"\b0\.\d+\.\d+\b", text), f"{c.engine} {c.engine_version} {key}: the source names no release"


def test_sliding_window_pool_reports_its_real_per_request_capacity():
    """Gemma 2 9B on an L40S under 0.33: 21 sliding (window 4096) + 21 full layers, two groups of 21 sharing the
    blocks. One request of L tokens takes ceil(L/16) full-group blocks and, from the window group,
    ceil(min(4096 - 1 + in-flight, L)/16) + 1 (SlidingWindowSpec.max_admission_blocks_per_request 0.33.0; in flight:
    Model Runner V2, async scheduling, pp 1 -> 2 batches x 2048 tokens = 4096)."""
    p = predict_vllm(load_model("gemma-2-9b"), load_gpu("l40s"), VllmGiven(max_model_len=8192))
    window_blocks = -(-(4096 - 1 + 2 * 2048) // 16) + 1  # 513
    longest = (p.num_kv_blocks - window_blocks) * 16
    assert f"per-request capacity: the pool holds one request of up to {longest:,} tokens" in " ".join(p.notes)
    assert longest > p.kv_cache_tokens  # the logged figure (concurrency x max_model_len) understates one request
    dense = predict_vllm(LLAMA8, H100, VllmGiven(max_model_len=8192))
    assert not any("per-request capacity" in n for n in dense.notes)  # full attention: the logged figure is it


def test_027_counts_the_v2_penalty_state_on_the_last_stage():
    """utils/mem_utils.py 0.27.1 memory_profiling measures non-KV memory from mem_get_info, so V2's
    PenaltiesState (sample/penalties.py: output_bin_counts [max_num_reqs, vocab] int32 and prompt_bin_mask
    [max_num_reqs, cdiv(vocab, 32)] int32) takes budget from 0.27; 0.26.0's sum (weights + torch peak increase +
    non-torch increase) does not see it. Llama 3.1 8B on an H100 (vllm serve: max_num_seqs 1024, vocab 128,256):
    1024 x (128,256 + 4,008) x 4 = 541,753,344 bytes; the first of two pipeline stages has no sampler."""
    given = {"max_model_len": 8192}
    _, (st26,) = predict_stages(LLAMA8, H100, VllmGiven(engine_version="0.26", **given))
    s27, (st27,) = predict_stages(LLAMA8, H100, VllmGiven(engine_version="0.27", **given))
    assert s27.model_runner_v2 and st26.persistent_bytes == 0
    assert st27.persistent_bytes == 1024 * (128256 + 4008) * 4 == 541_753_344
    assert st26.available_kv_bytes - st27.available_kv_bytes == 541_753_344
    _, (first, last) = predict_stages(LLAMA8, H100, VllmGiven(engine_version="0.33", pipeline_parallel=2, **given))
    assert (first.persistent_bytes, last.persistent_bytes) == (0, 541_753_344)
    _, (v1,) = predict_stages(LLAMA8, H100, VllmGiven(engine_version="0.19", **given))
    assert v1.persistent_bytes == 0
