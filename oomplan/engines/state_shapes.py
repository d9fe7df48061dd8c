"""The recurrent state of one Mamba / Gated DeltaNet layer on one tensor-parallel rank, as vLLM and SGLang shape it.

Both engines carry the same MambaStateShapeCalculator; the element counts here are theirs, and where they differ the
difference is a field of `ShapeRules`:

  vLLM 0.19.0 - 0.33.0 (the same in every release modelled), vllm/model_executor/layers/mamba/mamba_utils.py
  MambaStateShapeCalculator:
    mamba2_state_shape     conv (conv_kernel - 1, (inner + 2 * groups' * state) / tp), ssm (heads / tp, head_dim, state)
    gated_delta_net_state_shape  conv (conv_kernel - 1, (2 * k_heads * k_dim + v_heads * v_dim) / tp),
                           ssm (v_heads / tp, v_dim, k_dim): the key heads are NOT widened
    mamba1_state_shape     conv (conv_kernel - 1, inner / tp), ssm (inner / tp, state)
    groups' = groups + extra_groups_for_head_shards(groups, tp) (tp - groups when tp does not divide them);
    every '/' is vllm/distributed/utils.py divide(), which asserts the split is exact.

  SGLang 0.5.23, python/sglang/srt/configs/mamba_utils.py Mamba2StateShape.create (and its extra_groups_for_head_shards):
    the same Mamba-2 shapes; Gated DeltaNet goes through the same create (configs/qwen3_next.py mamba2_cache_params:
    value heads as heads, value dim as inner, key heads as groups, the key head dim as the state), so the key heads ARE
    widened to tp when tp does not divide them; divide() is sglang/srt/distributed/utils.py's (asserts as well).
    Mamba-1 (create_full_rank) is not priced by oomplan's SGLang pool: refused.

vLLM and SGLang keep conv_kernel - 1 inputs (transformers keeps conv_kernel: oomplan/memory/state.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from oomplan.errors import InputError
from oomplan.specs.model import ModelSpec
from oomplan.specs.state import GatedDeltaNetMixer, Mamba1Mixer, Mamba2Mixer, Mixer

# The state dtypes both engines accept -> bytes: vLLM vllm/utils/torch_utils.py STR_DTYPE_TO_TORCH_DTYPE (the
# --mamba-cache-dtype / --mamba-ssm-cache-dtype values), SGLang configs/mamba_utils.py mamba2_state_dtype dtype_map.
STATE_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class ShapeRules:
    """What one engine's MambaStateShapeCalculator does differently, and how its refusals name things."""

    engine: str  # in refusals: "vLLM", "SGLang 0.5.23"
    tp_flag: str  # the engine's tensor-parallel flag
    widen_gdn_key_heads: bool  # GDN key heads widened like Mamba-2 groups (SGLang: GDN through Mamba2StateShape.create)
    mamba1: bool  # Mamba-1 (S6) shapes priced
    fallback: str  # what the refusal of an unpriced layout suggests


VLLM_RULES = ShapeRules("vLLM", "--tensor-parallel-size", widen_gdn_key_heads=False, mamba1=True,
                        fallback="--engine hf prices this model")
SGLANG_RULES = ShapeRules("SGLang 0.5.23", "--tp-size", widen_gdn_key_heads=True, mamba1=False,
                          fallback="--engine vllm or --engine hf prices this model")


@dataclass(frozen=True)
class StateElements:
    """One state of one layer on one GPU, in elements."""

    conv_elements: int
    ssm_elements: int

    def bytes(self, conv_dtype_bytes: int, ssm_dtype_bytes: int) -> int:
        return self.conv_elements * conv_dtype_bytes + self.ssm_elements * ssm_dtype_bytes


def widened_groups(num_groups: int, tp: int) -> int:
    """groups + extra_groups_for_head_shards(groups, tp): tp - groups extra when tp does not divide them (both engines)."""
    return num_groups if num_groups % tp == 0 else tp


def _divide(units: int, tp: int, what: str, model: ModelSpec, rules: ShapeRules) -> int:
    """distributed/utils.py divide(): both engines assert the split is exact."""
    if units % tp:
        raise InputError(f"{model.name}: {rules.tp_flag} {tp} does not divide the {what} ({units}); {rules.engine} "
                         f"refuses it (mamba_utils.py divide); use a {rules.tp_flag} that divides it")
    return units // tp


def state_elements(m: Mixer, tp: int, model: ModelSpec, rules: ShapeRules) -> StateElements:
    """(conv, ssm) elements of one state of one layer on one GPU under `rules` (see the module docstring)."""
    if isinstance(m, Mamba2Mixer):
        inner, groups, heads, head_dim, state = m.inner_size, m.num_groups, m.num_heads, m.head_dim, m.state_size
        what = "Mamba"
    elif isinstance(m, GatedDeltaNetMixer):
        inner, groups, heads = m.value_dim, m.num_key_heads, m.num_value_heads
        head_dim, state, what = m.value_head_dim, m.key_head_dim, "GDN"
    else:
        assert isinstance(m, Mamba1Mixer)
        if not rules.mamba1:
            raise InputError(f"{model.name}: {rules.engine}'s state pool is priced for Mamba-2 and Gated DeltaNet "
                             f"layers, not Mamba-1; {rules.fallback}")
        inner = _divide(m.inner_size, tp, "Mamba inner size", model, rules)
        return StateElements((m.conv_kernel - 1) * inner, inner * m.state_size)
    if isinstance(m, Mamba2Mixer) or rules.widen_gdn_key_heads:
        groups = widened_groups(groups, tp)
    conv_dim = inner + 2 * groups * state
    conv = (m.conv_kernel - 1) * _divide(conv_dim, tp, f"{what} conv width", model, rules)
    return StateElements(conv, _divide(heads, tp, f"{what} heads", model, rules) * head_dim * state)


def uniform_state_elements(model: ModelSpec, mixers: Iterable[Mixer], tp: int, rules: ShapeRules) -> StateElements:
    """The one state shape of every state layer: both engines build one state spec (vLLM one MambaSpec, SGLang one
    Mamba2StateShape) for the model; a model mixing state shapes is refused."""
    shapes = {state_elements(m, tp, model, rules) for m in mixers}
    if len(shapes) != 1:
        raise InputError(f"{model.name}: its state layers have {len(shapes)} different state shapes; {rules.engine}'s "
                         f"layout of that is not modelled; {rules.fallback}")
    return shapes.pop()
