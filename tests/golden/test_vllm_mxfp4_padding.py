"""gpt-oss-20b's MXFP4 experts as vLLM loads them on a card below SM90 (the MARLIN MoE backend pads
intermediate_size_per_partition to 128 and hidden_size to 256: oomplan/data/engines/vllm/0.19.yaml mxfp4_moe_padding).

Logged: `Model loading took 13.72 GiB memory`, gpt-oss-20b, one A100 80GB, `vllm serve openai/gpt-oss-20b
--max-model-len 131072 --gpu-memory-utilization 0.65`, https://myoceane.fr/index.php/ai-vllm-a100-gemma-4/
(2026-04-18; vLLM 0.19.0 as docs/engines.md reads it). Done means weights within 0.5%, as every weights golden.
"""
from oomplan.engines.vllm.constants import vllm_constants
from oomplan.engines.vllm.settings import VllmGiven
from oomplan.engines.vllm.stages import mxfp4_padding_bytes, predict_stages
from oomplan.engines.weights import served_plan
from oomplan.profiles import load_gpu, load_model

GIB = 2**30


def test_gpt_oss_20b_a100_weights_match_the_logged_model_loading():
    given = VllmGiven(engine_version="0.19", max_model_len=131072, gpu_memory_utilization=0.65)
    _, stages = predict_stages(load_model("openai/gpt-oss-20b"), load_gpu("a100-80g-sxm"), given)
    predicted = stages[0].weights_bytes / GIB
    assert abs(predicted / 13.72 - 1) < 0.005, predicted


def test_marlin_padding_by_hand():
    """hidden 2880 -> 3072, intermediate 2880 -> 2944 (TP 1), 32 experts, bf16 biases, 24 MoE layers:
    w13 32*5888*(1536+96+2) - 32*5760*(1440+90+2), w2 32*3072*(1472+92+2) - 32*2880*(1440+90+2) per layer.
    TP 2: intermediate 1440 -> 1536."""
    m, c = load_model("openai/gpt-oss-20b"), vllm_constants("0.19")
    a100, h100 = load_gpu("a100-80g-sxm"), load_gpu("h100-sxm")
    per_layer = (32 * 5888 * 1634 - 32 * 5760 * 1532) + (32 * 3072 * 1566 - 32 * 2880 * 1532)
    assert mxfp4_padding_bytes(m, a100, served_plan(m, "auto", None, 1, 1), 0, c) == 24 * per_layer == 917_962_752
    per_layer_tp2 = ((32 * 3072 * (1536 + 96 + 2) - 32 * 2880 * (1440 + 90 + 2))
                     + (32 * 3072 * (768 + 48 + 2) - 32 * 2880 * (720 + 45 + 2)))
    assert mxfp4_padding_bytes(m, a100, served_plan(m, "auto", None, 2, 1), 0, c) == 24 * per_layer_tp2
    # Hopper runs the OAI Triton kernels, not priced (0.19.yaml sources); a bf16 re-quantised model has no MXFP4
    assert mxfp4_padding_bytes(m, h100, served_plan(m, "auto", None, 1, 1), 0, c) == 0
    assert mxfp4_padding_bytes(m, a100, served_plan(m, "bfloat16", None, 1, 1), 0, c) == 0
