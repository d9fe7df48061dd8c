"""Parameters of the recurrent-state mixers (Mamba, Mamba-2, Gated DeltaNet), as TensorGroups.

Each function lists the tensors transformers 5.24 builds for one layer's mixer (the class named in
oomplan.specs.state); the golden test compares the totals with sum(p.numel()) of the meta model.
TP: projections split by heads (vLLM MambaMixer2 / Qwen3NextGatedDeltaNet shard heads).
"""
from __future__ import annotations

from oomplan.memory.params import TensorGroup, linear_group
from oomplan.specs.state import GatedDeltaNetMixer, Mamba1Mixer, Mamba2Mixer, Mixer


def _vector(name: str, size: int, units: int) -> TensorGroup:
    """A per-head or per-channel parameter vector, split with its heads."""
    return TensorGroup(name, "attention", size, 1, 1, "column", units)


def mamba2_tensors(m: Mamba2Mixer, hidden: int) -> list[TensorGroup]:
    """Mamba2Mixer: in_proj -> [gate z (inner), x B C (conv_dim), dt (heads)], depthwise conv1d over
    conv_dim, dt_bias / A_log / D per head, the gated RMSNorm over the inner width, out_proj."""
    H = m.num_heads
    g = linear_group("in_proj", "attention", m.inner_size + m.conv_dim + H, hidden, "column", H, m.proj_bias)
    g.append(_vector("conv1d", m.conv_dim * m.conv_kernel, H))
    if m.conv_bias:
        g.append(_vector("conv1d.bias", m.conv_dim, H))
    g += [_vector("dt_bias", H, H), _vector("A_log", H, H), _vector("D", H, H)]
    if m.gated_norm:
        g.append(TensorGroup("mixer_norm", "norm", m.inner_size, 1, 1, "column", H))
    out_bias = m.proj_bias if m.out_proj_bias is None else m.out_proj_bias
    g += linear_group("out_proj", "attention", hidden, m.inner_size, "row", H, out_bias)
    return g


def mamba1_tensors(m: Mamba1Mixer, hidden: int) -> list[TensorGroup]:
    """JambaMambaMixer: in_proj [2*inner], conv1d, x_proj [dt_rank + 2*state], dt_proj (with bias),
    A_log [inner, state], D, out_proj; Jamba's dt/B/C RMSNorms."""
    E, N, R = m.inner_size, m.state_size, m.dt_rank
    g = linear_group("in_proj", "attention", 2 * E, hidden, "column", E, m.proj_bias)
    g.append(_vector("conv1d", E * m.conv_kernel, E))
    if m.conv_bias:
        g.append(_vector("conv1d.bias", E, E))
    g += linear_group("x_proj", "attention", R + 2 * N, E, "row", E, False)
    g += linear_group("dt_proj", "attention", E, R, "column", E, True)
    g += [_vector("A_log", E * N, E), _vector("D", E, E)]
    g += linear_group("out_proj", "attention", hidden, E, "row", E, m.proj_bias)
    if m.dt_layernorms:
        g.append(TensorGroup("dt_b_c_norms", "norm", R + 2 * N, 1))
    return g


def gated_deltanet_tensors(m: GatedDeltaNetMixer, hidden: int) -> list[TensorGroup]:
    """Qwen3NextGatedDeltaNet: in_proj_qkvz [2*key_dim + 2*value_dim], in_proj_ba [2*v_heads]
    (Qwen3.5 splits them into in_proj_qkv [2*key_dim + value_dim] / in_proj_z [value_dim] / in_proj_b / in_proj_a
    [v_heads each]: same counts, four matrices; transformers 5.24 models/qwen3_5/modeling_qwen3_5.py Qwen3_5GatedDeltaNet), a depthwise conv1d without bias,
    dt_bias and A_log per value head, the gated RMSNorm over one value head, out_proj."""
    K, Hv = m.num_key_heads, m.num_value_heads
    if m.fused_projections:
        g = linear_group("in_proj_qkvz", "attention", 2 * m.key_dim + 2 * m.value_dim, hidden, "column", K, False)
        g += linear_group("in_proj_ba", "attention", 2 * Hv, hidden, "column", K, False)
    else:  # Qwen3_5GatedDeltaNet: four nn.Linear, each a module of its own a checkpoint's quantisation can name
        g = linear_group("in_proj_qkv", "attention", 2 * m.key_dim + m.value_dim, hidden, "column", K, False)
        g += linear_group("in_proj_z", "attention", m.value_dim, hidden, "column", K, False)
        g += linear_group("in_proj_b", "attention", Hv, hidden, "column", K, False)
        g += linear_group("in_proj_a", "attention", Hv, hidden, "column", K, False)
    g.append(_vector("conv1d", m.conv_dim * m.conv_kernel, K))
    g += [_vector("dt_bias", Hv, Hv), _vector("A_log", Hv, Hv)]
    g.append(TensorGroup("mixer_norm", "norm", m.value_head_dim, 1))
    g += linear_group("out_proj", "attention", hidden, m.value_dim, "row", K, False)
    return g


def mixer_tensors(m: Mixer, hidden: int) -> list[TensorGroup]:
    if isinstance(m, Mamba2Mixer):
        return mamba2_tensors(m, hidden)
    if isinstance(m, Mamba1Mixer):
        return mamba1_tensors(m, hidden)
    return gated_deltanet_tensors(m, hidden)
