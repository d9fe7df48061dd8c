"""Recurrent state per GPU: the fixed per-sequence state of Mamba / Mamba-2 / Gated DeltaNet layers.

Unlike the KV cache it does not grow with context: each sequence keeps, per state layer, a conv
state (the last `conv_kernel` inputs of the causal conv1d) and a recurrent (SSM) state. It scales
with batch size. Shapes and dtypes are those transformers 5.24 allocates (cache_utils.py
LinearAttentionLayer, checked by a meta forward in tests/golden/test_hybrid_families.py):
  * conv state: the dtype of the conv input, i.e. the activation dtype;
  * recurrent state: the mixer's state_dtype, fp32 unless the config declares otherwise --
    mamba2_chunk_scan / torch_chunk_gated_delta_rule / Jamba's slow scan compute it in float32, and so
    do the fused kernels' final states (mamba_ssm, fla).
transformers keeps conv_kernel inputs in the conv state; vLLM's mamba cache keeps conv_kernel - 1.
Tensor parallelism (vLLM's MambaMixer2 / Qwen3NextGatedDeltaNet shard heads): each GPU keeps
ceil(units / tp) of each tensor's units (heads, groups or channels; groups replicate when fewer).
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.memory.layout import Stage
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.specs.state import GatedDeltaNetMixer, Mamba1Mixer, Mamba2Mixer, Mixer
from oomplan.units import DTYPE_BYTES, ceil_div


@dataclass(frozen=True)
class StateTensor:
    """One per-sequence state tensor of one layer: `num_units` units (split by TP) of `elements_per_unit`."""

    name: str
    num_units: int
    elements_per_unit: int
    dtype: str

    def bytes_per_gpu(self, tensor_parallel: int) -> int:
        return int(ceil_div(self.num_units, tensor_parallel) * self.elements_per_unit * DTYPE_BYTES[self.dtype])


def state_tensors(m: Mixer, activation_dtype: str) -> tuple[StateTensor, ...]:
    """The state one sequence keeps in one layer running mixer `m` (conv parts split like the projections feeding them)."""
    conv, ssm = activation_dtype, m.state_dtype
    if isinstance(m, Mamba2Mixer):
        k = m.conv_kernel
        return (
            StateTensor("conv x", m.num_heads, m.head_dim * k, conv),
            StateTensor("conv B, C", m.num_groups, 2 * m.state_size * k, conv),
            StateTensor("ssm", m.num_heads, m.head_dim * m.state_size, ssm),
        )
    if isinstance(m, Mamba1Mixer):
        return (
            StateTensor("conv", m.inner_size, m.conv_kernel, conv),
            StateTensor("ssm", m.inner_size, m.state_size, ssm),
        )
    assert isinstance(m, GatedDeltaNetMixer)
    k = m.conv_kernel
    return (
        StateTensor("conv q, k", m.num_key_heads, 2 * m.key_head_dim * k, conv),
        StateTensor("conv v", m.num_value_heads, m.value_head_dim * k, conv),
        StateTensor("recurrent", m.num_value_heads, m.key_head_dim * m.value_head_dim, ssm),
    )


def state_bytes_per_sequence_per_layer(m: Mixer, plan: Plan, activation_dtype: str) -> int:
    """One sequence in one layer running mixer `m`, on one GPU."""
    return sum(t.bytes_per_gpu(plan.tensor_parallel) for t in state_tensors(m, activation_dtype))


@dataclass(frozen=True)
class StateBudget:
    bytes: int
    bytes_per_sequence: int  # every state layer on this GPU, one sequence
    num_layers: int  # state layers on this GPU's stage
    kind: str | None  # the mixer kind ("mamba2", "gated_deltanet", "mamba"), None without state layers


def state_budget(model: ModelSpec, plan: Plan, batch_size: int, stage: Stage, activation_dtype: str) -> StateBudget:
    """Recurrent state of `batch_size` sequences for the state layers of one stage; independent of context."""
    mixers = [m for i in stage.layer_indices if (m := model.layers[i].attention.state) is not None]
    if not mixers:
        return StateBudget(0, 0, 0, None)
    per_sequence = sum(state_bytes_per_sequence_per_layer(m, plan, activation_dtype) for m in mixers)
    kinds = sorted({m.kind for m in mixers})
    return StateBudget(per_sequence * batch_size, per_sequence, len(mixers), "+".join(kinds))
