"""gpt-oss's MXFP4 experts as vLLM loads them: below SM90 the MARLIN MoE backend pads intermediate_size_per_partition
to 128 and hidden_size to 256 (oomplan/data/engines/vllm/0.19.yaml mxfp4_moe_padding); on Hopper the TRITON backend
pads the intermediate size to 64 and its weight swizzle pads again (mxfp4_triton_layout, per release).

Logged (A100): `Model loading took 13.72 GiB memory`, gpt-oss-20b, one A100 80GB, `vllm serve openai/gpt-oss-20b
--max-model-len 131072 --gpu-memory-utilization 0.65`, https://myoceane.fr/index.php/ai-vllm-a100-gemma-4/
(2026-04-18; vLLM 0.19.0 as docs/engines.md reads it).
Logged (H100): tests/fixtures/engines/vllm-0.19-gpt-oss-h100.yaml, lines quoted from
llm-d-incubation/llm-d-planner@d3121e059da88662db39a926a3ead964be97359b:accuracy/results/v0.19.0/logs/
openai-gpt-oss-20b--h100-80gb--tp{2,1}pp1dp1--8192[.FAILED].log. Done means weights within 0.5%, as every weights
golden, and KV tokens within 2%.
"""
from pathlib import Path

import pytest
import yaml

from oomplan.engines.vllm.constants import vllm_constants
from oomplan.engines.vllm.kv import kv_tokens
from oomplan.engines.vllm.settings import VllmGiven
from oomplan.engines.vllm.stages import busiest, fp32_rope_extra_bytes, mxfp4_padding_bytes, predict_stages
from oomplan.engines.weights import served_plan
from oomplan.profiles import load_gpu, load_model

GIB = 2**30
H100_RUNS = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "engines" / "vllm-0.19-gpt-oss-h100.yaml")
                           .read_text())["runs"]


def test_gpt_oss_20b_a100_weights_match_the_logged_model_loading():
    given = VllmGiven(engine_version="0.19", max_model_len=131072, gpu_memory_utilization=0.65)
    _, stages = predict_stages(load_model("openai/gpt-oss-20b"), load_gpu("a100-80g-sxm"), given)
    predicted = stages[0].weights_bytes / GIB
    assert abs(predicted / 13.72 - 1) < 0.005, predicted


def _h100(run):
    given = VllmGiven(engine_version="0.19", max_model_len=run["max_model_len"], tensor_parallel=run["tensor_parallel"],
                      gpu_memory_utilization=run["gpu_memory_utilization"], enable_prefix_caching=False)
    return predict_stages(load_model(run["model"]), load_gpu("h100-sxm"), given)[1]


@pytest.mark.parametrize("run", H100_RUNS, ids=[r["id"] for r in H100_RUNS])
def test_gpt_oss_20b_h100_weights_match_the_logged_model_loading(run):
    predicted = _h100(run)[0].weights_bytes / GIB
    assert abs(predicted / run["measured"]["weights_gib"] - 1) < 0.005, predicted


@pytest.mark.parametrize("run", [r for r in H100_RUNS if "kv_tokens" in r["measured"]], ids=lambda r: r["id"])
def test_gpt_oss_20b_h100_kv_pool_matches_the_log(run):
    st = busiest(_h100(run))
    assert abs(st.available_kv_bytes / GIB - run["measured"]["available_kv_gib"]) < 0.1
    assert abs(kv_tokens(st.layout, st.num_blocks) / run["measured"]["kv_tokens"] - 1) < 0.02


def test_marlin_padding_by_hand():
    """hidden 2880 -> 3072, intermediate 2880 -> 2944 (TP 1), 32 experts, bf16 biases, 24 MoE layers:
    w13 32*5888*(1536+96+2) - 32*5760*(1440+90+2), w2 32*3072*(1472+92+2) - 32*2880*(1440+90+2) per layer.
    TP 2: intermediate 1440 -> 1536."""
    m, c = load_model("openai/gpt-oss-20b"), vllm_constants("0.19")
    a100 = load_gpu("a100-80g-sxm")
    per_layer = (32 * 5888 * 1634 - 32 * 5760 * 1532) + (32 * 3072 * 1566 - 32 * 2880 * 1532)
    assert mxfp4_padding_bytes(m, a100, served_plan(m, "auto", None, 1, 1), 0, c) == 24 * per_layer == 917_962_752
    per_layer_tp2 = ((32 * 3072 * (1536 + 96 + 2) - 32 * 2880 * (1440 + 90 + 2))
                     + (32 * 3072 * (768 + 48 + 2) - 32 * 2880 * (720 + 45 + 2)))
    assert mxfp4_padding_bytes(m, a100, served_plan(m, "auto", None, 2, 1), 0, c) == 24 * per_layer_tp2
    # a bf16 re-quantised model has no MXFP4 experts
    assert mxfp4_padding_bytes(m, a100, served_plan(m, "bfloat16", None, 1, 1), 0, c) == 0


# The checkpoint layout per layer and GPU: w13 [E, 2I, H/2] + scale [E, 2I, H/32], w2 [E, H, I/2] + scale
# [E, H, I/32] (uint8), bf16 biases [E, 2I] + [E, H]; H = 2880 for both gpt-oss models.
def _checkpoint(e, i, h=2880):
    return e * (2 * i * (h // 2 + h // 32 + 2) + h * (i // 2 + i // 32 + 2))


def test_triton_swizzle_by_hand_per_release():
    """gpt-oss-20b (E 32, I 2880, 24 layers) on Hopper. TP 1: I stays 2880 (a multiple of 64).
    0.19-0.21: the values pre-padded to 64 in both byte dims (H/2 = I/2 = 1440 -> 1472), the swizzled scales
    rows to 256 (2I 5760 -> 5888, H 2880 -> 3072), groups 90 (even); the checkpoint scales stay; fp32 biases.
    0.24: no pre-pad (1440 is a multiple of 32, 5760 and 2880 of 16). 0.26+: groups 90 -> 92, checkpoint scales freed.
    TP 2: I 1440 -> 1472 first (2I 2944, I/2 736, I/32 46)."""
    m, h100 = load_model("openai/gpt-oss-20b"), load_gpu("h100-sxm")
    fp32_biases = 4 * 32 * (2 * 2880 + 2880)
    kept_scales = 32 * (5760 * 90 + 2880 * 90)
    v019 = 32 * (5760 * 1472 + 5888 * 90 + 1472 * 2880 + 3072 * 90) + kept_scales + fp32_biases
    v024 = 32 * (5760 * 1440 + 5888 * 90 + 1440 * 2880 + 3072 * 90) + kept_scales + fp32_biases
    v026 = 32 * (5760 * 1440 + 5888 * 92 + 1440 * 2880 + 3072 * 92) + fp32_biases
    tp1 = served_plan(m, "auto", None, 1, 1)
    for version, stored in (("0.19", v019), ("0.21", v019), ("0.24", v024), ("0.26", v026), ("0.33", v026)):
        assert mxfp4_padding_bytes(m, h100, tp1, 0, vllm_constants(version)) == 24 * (stored - _checkpoint(32, 2880))
    v019_tp2 = (32 * (2944 * 1472 + 3072 * 90 + 768 * 2880 + 3072 * 46) + 32 * (2944 * 90 + 2880 * 46)
                + 4 * 32 * (2944 + 2880))
    assert mxfp4_padding_bytes(m, h100, served_plan(m, "auto", None, 2, 1), 0, vllm_constants("0.19")) \
        == 24 * (v019_tp2 - _checkpoint(32, 1440)) == 585_842_688


def test_triton_swizzle_gpt_oss_120b_by_hand():
    """gpt-oss-120b: the same layers with E 128 and 36 of them; TP 4: I 720 -> 768 (2I 1536, I/2 384, I/32 24).
    0.19: values (1536, 1440 -> 1472) and (2880, 384); scales (1536, 90) and (2880 -> 3072, 24); kept scales."""
    m, h100, c = load_model("openai/gpt-oss-120b"), load_gpu("h100-sxm"), vllm_constants("0.19")
    stored = (128 * (1536 * 1472 + 1536 * 90 + 2880 * 384 + 3072 * 24) + 128 * (1536 * 90 + 2880 * 24)
              + 4 * 128 * (1536 + 2880))
    assert mxfp4_padding_bytes(m, h100, served_plan(m, "auto", None, 4, 1), 0, c) == 36 * (stored - _checkpoint(128, 720))


def test_fp32_rope_cache_of_gpt_oss():
    """gpt_oss.py builds its YaRN cos/sin cache [131072, 64] in fp32: 16 MiB more than the bf16 cache priced."""
    m = load_model("openai/gpt-oss-20b")
    plan = served_plan(m, "auto", None, 1, 1)
    assert fp32_rope_extra_bytes(m, plan, vllm_constants("0.33")) == 131072 * 64 * 2
    llama = load_model("meta-llama/Llama-3.1-8B-Instruct")
    assert fp32_rope_extra_bytes(llama, served_plan(llama, "auto", None, 1, 1), vllm_constants("0.33")) == 0


def test_the_output_says_which_mxfp4_layout_is_priced():
    from oomplan.engines.vllm.predict import predict_vllm

    m = load_model("openai/gpt-oss-20b")
    for gpu, says in (("h100-sxm", "TRITON MoE backend's weight swizzle"), ("a100-80g-sxm", "MARLIN MoE backend's padding"),
                      ("b200", "is not modelled; priced as the checkpoint's tensors")):
        notes = predict_vllm(m, load_gpu(gpu), VllmGiven(engine_version="0.19", max_model_len=8192)).notes
        assert sum(says in n for n in notes) == 1, notes
    llama = predict_vllm(load_model("meta-llama/Llama-3.1-8B-Instruct"), load_gpu("h100-sxm"), VllmGiven(max_model_len=8192))
    assert not any("MXFP4" in n for n in llama.notes)
