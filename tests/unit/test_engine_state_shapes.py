"""The shared MambaStateShapeCalculator (oomplan/engines/state_shapes.py), by hand from the engines' source:
vLLM 0.19.0-0.33.0 vllm/model_executor/layers/mamba/mamba_utils.py and SGLang 0.5.23 python/sglang/srt/configs/mamba_utils.py
Mamba2StateShape.create (GDN through configs/qwen3_next.py mamba2_cache_params)."""
import pytest

from oomplan.engines.state_shapes import SGLANG_RULES, VLLM_RULES, StateElements, state_elements, uniform_state_elements, widened_groups
from oomplan.errors import InputError
from oomplan.profiles import load_model
from oomplan.specs.state import GatedDeltaNetMixer, Mamba1Mixer

QWEN3_NEXT = load_model("qwen3-next-80b-a3b")  # GDN: 16 key heads, 32 value heads, both 128 wide, conv kernel 4
GDN = QWEN3_NEXT.layers[QWEN3_NEXT.state_layer_indices[0]].attention.state
NEMOTRON = load_model("nemotron-3-nano-30b-a3b")  # Mamba-2: 64 heads x 64, 8 groups, state 128, conv kernel 4
MAMBA2 = NEMOTRON.layers[NEMOTRON.state_layer_indices[0]].attention.state


def test_extra_groups_for_head_shards():
    # ngroups % tp == 0 -> 0 extra; else tp - ngroups extra (so the groups become tp, also when they exceed it)
    assert [widened_groups(8, tp) for tp in (1, 2, 8, 16, 3)] == [8, 8, 8, 16, 3]


def test_gdn_key_heads_widen_in_sglang_only():
    assert isinstance(GDN, GatedDeltaNetMixer)
    # TP 4 divides the 16 key heads: both engines agree. conv (2 x 16 x 128 + 32 x 128) / 4 = 2,048 x (4 - 1);
    # ssm 32 / 4 x 128 x 128
    both = StateElements(3 * 2_048, 8 * 128 * 128)
    assert state_elements(GDN, 4, QWEN3_NEXT, VLLM_RULES) == state_elements(GDN, 4, QWEN3_NEXT, SGLANG_RULES) == both
    # TP 32 > 16 key heads. vLLM gated_delta_net_state_shape: conv 8,192 / 32 = 256 x 3. SGLang Mamba2StateShape.create:
    # groups 16 -> 32, conv 4,096 + 2 x 32 x 128 = 12,288, / 32 = 384 x 3. The ssm is 1 x 128 x 128 in both.
    assert state_elements(GDN, 32, QWEN3_NEXT, VLLM_RULES) == StateElements(768, 16_384)
    assert state_elements(GDN, 32, QWEN3_NEXT, SGLANG_RULES) == StateElements(1_152, 16_384)


def test_mamba2_groups_widen_in_both():
    # TP 16 > 8 groups: 16 groups, conv (4,096 + 2 x 16 x 128) / 16 = 512 x 3; ssm 64 / 16 x 64 x 128
    want = StateElements(1_536, 4 * 64 * 128)
    assert state_elements(MAMBA2, 16, NEMOTRON, VLLM_RULES) == state_elements(MAMBA2, 16, NEMOTRON, SGLANG_RULES) == want
    assert want.bytes(2, 4) == 1_536 * 2 + 32_768 * 4


def test_inexact_splits_and_mamba1_are_refused_by_each_engine_by_name():
    with pytest.raises(InputError, match="--tensor-parallel-size 3 does not divide the Mamba conv width .4864.; vLLM refuses"):
        state_elements(MAMBA2, 3, NEMOTRON, VLLM_RULES)  # groups 8 -> 3: 4,096 + 2 x 3 x 128 = 4,864, not a multiple of 3
    with pytest.raises(InputError, match="--tp-size 3 does not divide the GDN conv width .4864.; SGLang 0.5.23 refuses"):
        state_elements(GDN, 3, QWEN3_NEXT, SGLANG_RULES)  # key heads 16 -> 3: 4,096 + 2 x 3 x 128
    with pytest.raises(InputError, match="--tensor-parallel-size 3 does not divide the GDN conv width .8192."):
        state_elements(GDN, 3, QWEN3_NEXT, VLLM_RULES)
    mamba1 = Mamba1Mixer(inner_size=8_192, state_size=16, conv_kernel=4, dt_rank=256)
    # vLLM mamba1_state_shape: conv (4 - 1, 8,192 / 2), ssm (8,192 / 2, 16)
    assert state_elements(mamba1, 2, NEMOTRON, VLLM_RULES) == StateElements(3 * 4_096, 4_096 * 16)
    with pytest.raises(InputError, match="SGLang 0.5.23's state pool is priced for Mamba-2 and Gated DeltaNet"):
        state_elements(mamba1, 2, NEMOTRON, SGLANG_RULES)
    with pytest.raises(InputError, match="2 different state shapes; vLLM's layout of that is not modelled"):
        uniform_state_elements(NEMOTRON, [MAMBA2, mamba1], 1, VLLM_RULES)
