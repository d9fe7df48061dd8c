"""SGLang 0.5.23's pipeline stages, hand-computed from python/sglang/srt/distributed/utils.py get_pp_indices (sglang 0.5.23):
base = num_layers // pp layers per rank, the LAST num_layers % pp ranks one more (vLLM gives the extra layers to the ranks
before the last); utils/common.py make_layers builds those layers on the rank, models/qwen2.py puts the embedding on the
first rank and the lm_head on the last (its own ParallelLMHead under PP). The token pool is the smallest stage's
(kv_cache_configurator.py _apply_token_constraints: all_reduce MIN across the PP ranks)."""
from oomplan.engines.sglang.pools import sglang_pp_layers, sglang_stages
from oomplan.engines.sglang.predict import predict_sglang, predict_stage
from oomplan.engines.sglang.settings import SglangGiven, resolve
from oomplan.engines.weights import served_plan
from oomplan.memory.layout import pipeline_stages
from oomplan.profiles import load_gpu, load_model

QWEN = load_model("qwen2.5-7b")  # 28 layers, hidden 3584, 28 heads / 4 KV heads x 128, MLP 18944, vocab 152064, untied
H100 = load_gpu("h100")
# one decoder layer in bf16: q 3584 x 3584 + 3584 bias, k and v 3584 x 512 + 512 each, o 3584 x 3584, gate/up/down
# 3 x 3584 x 18944, two norms of 3584: 233,057,792 parameters
LAYER_BYTES = 2 * (3584 * 3584 + 3584 + 2 * (3584 * 512 + 512) + 3584 * 3584 + 3 * 3584 * 18944 + 2 * 3584)
HEAD_BYTES = 2 * (152064 * 3584 + 3584)  # lm_head (152,064 rows: a multiple of 64, no vocab padding) + the final norm
ROPE_BYTES = 131072 * 128 * 2  # cos_sin_cache [max_position_embeddings, head_dim], bf16, on every rank


def test_the_extra_layers_go_to_the_last_ranks():
    assert [len(st.layer_indices) for st in sglang_stages(28, 3)] == [9, 9, 10]
    assert [len(st.layer_indices) for st in pipeline_stages(28, 3)] == [9, 10, 9]  # vLLM: the rank before the last
    assert [list(sglang_pp_layers(10, 4, r)) for r in range(4)] == [[0, 1], [2, 3], [4, 5, 6], [7, 8, 9]]
    assert [(st.is_first, st.is_last) for st in sglang_stages(28, 3)] == [(True, False), (False, False), (False, True)]


def test_each_stage_is_priced_with_its_own_layers():
    s = resolve(QWEN, H100, SglangGiven(pp_size=3))
    plan = served_plan(QWEN, s.dtype, s.quantization, 1, 3)
    stages = [predict_stage(QWEN, H100, s, plan, i) for i in range(3)]
    assert LAYER_BYTES == 466_115_584
    embed = 2 * 152064 * 3584
    assert [st.weights_bytes for st in stages] == [embed + 9 * LAYER_BYTES + ROPE_BYTES, 9 * LAYER_BYTES + ROPE_BYTES,
                                                  10 * LAYER_BYTES + HEAD_BYTES + ROPE_BYTES]
    assert stages[2].weights_bytes == 5_784_712_192
    # cell: 4 KV heads x 128 x (K + V) x 2 B per layer: 9, 9 and 10 layers
    assert [st.cell_bytes for st in stages] == [9 * 2048, 9 * 2048, 10 * 2048]
    last = stages[2]
    assert last.pool_tokens == (last.static_bytes - last.weights_bytes) // (10 * 2048)  # one-token pages
    p = predict_sglang(QWEN, H100, SglangGiven(pp_size=3))
    assert p.kv_cache_tokens == last.pool_tokens == min(st.pool_tokens for st in stages)
    assert p.items[0].bytes == 5_784_712_192


def test_a_hybrid_pool_follows_sglangs_stages():
    """Qwen3-Next (48 layers, full attention at every 4th, 3, 7, ...) over 5 ranks: 9, 9, 10, 10, 10 layers. Rank 3
    (layers 28-37: full at 31 and 35) holds the most GDN layers, 8: _handle_max_mamba_cache charges every rank that
    share (pp_layer_scale 8 / 36). Rank 4 (38-47: full at 39, 43, 47) has 3 attention layers of 2 KV heads x 256."""
    m = load_model("qwen3-next-80b-a3b")
    assert [st.layer_indices[0] for st in sglang_stages(48, 5)] == [0, 9, 18, 28, 38]
    s = resolve(m, H100, SglangGiven(pp_size=5))
    plan = served_plan(m, s.dtype, s.quantization, 1, 5)
    last = predict_stage(m, H100, s, plan, 4)
    # GDN state per layer at TP 1: conv (2 x 16 x 128 + 32 x 128) x 3 x 2 B + ssm 32 x 128 x 128 x 4 B
    assert last.pool.state_bytes_per_slot == 8 * (8_192 * 3 * 2 + 32 * 128 * 128 * 4)
    assert last.cell_bytes == 3 * 2 * 256 * 2 * 2
