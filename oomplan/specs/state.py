"""Recurrent-state mixers: layers that keep a fixed state per sequence instead of a KV cache.

A mixer describes one kind of linear-attention / state-space layer by its dimensions; the memory
model derives its parameters (oomplan.memory.params) and its per-sequence state
(oomplan.memory.state) from them. Shapes follow transformers 5.24 (file cited per class).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from oomplan.specs.base import Strict

# The recurrent (SSM / DeltaNet) state's dtype. transformers 5.24 keeps it fp32 (mamba2_chunk_scan,
# torch_chunk_gated_delta_rule and Jamba's scan compute it in float32; so do the fused kernels' final
# states); a config's mamba_ssm_dtype / mamba_ssm_cache_dtype, when present, is what the family records.
StateDtype = Literal["fp32", "bf16", "fp16"]


class Mamba2Mixer(Strict):
    """Mamba-2 (SSD). transformers 5.24 models/mamba2/modeling_mamba2.py (Mamba2Mixer), the same
    mixer in nemotron_h, granitemoehybrid and falcon_h1:
      conv state      [B, conv_dim, conv_kernel], conv_dim = num_heads*head_dim + 2*num_groups*state_size
      recurrent state [B, num_heads, head_dim, state_size]
    """

    kind: Literal["mamba2"] = "mamba2"
    state_dtype: StateDtype = "fp32"
    num_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    num_groups: int = Field(ge=1)
    state_size: int = Field(ge=1)
    conv_kernel: int = Field(ge=1)
    conv_bias: bool = True
    proj_bias: bool = False  # in_proj (and out_proj, unless out_proj_bias says otherwise)
    out_proj_bias: bool | None = None  # Falcon-H1: projectors_bias; None: as proj_bias
    gated_norm: bool = True  # MambaRMSNormGated over the inner width (Falcon-H1: only with mamba_rms_norm)
    chunk_size: int = Field(default=256, ge=1)  # the chunked scan's chunk length (prefill activations only)
    residual_in_fp32: bool = False  # Mamba2Block keeps its residual in fp32 (mamba2's residual_in_fp32, default True)
    mup: bool = False  # Falcon-H1: the input times ssm_in_multiplier, the projection times mup_vector
    norm_before_gate: bool = True  # Falcon-H1's gated norm (mamba_norm_before_gate); the Mamba-2 norm gates first

    @property
    def inner_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        return self.inner_size + 2 * self.num_groups * self.state_size


class Mamba1Mixer(Strict):
    """Mamba (S6), as in Jamba. transformers 5.24 models/jamba/modeling_jamba.py (JambaMambaMixer):
      conv state      [B, inner_size, conv_kernel]
      recurrent state [B, inner_size, state_size]
    """

    kind: Literal["mamba"] = "mamba"
    state_dtype: StateDtype = "fp32"
    inner_size: int = Field(ge=1)
    state_size: int = Field(ge=1)
    conv_kernel: int = Field(ge=1)
    dt_rank: int = Field(ge=1)
    conv_bias: bool = True
    proj_bias: bool = False
    dt_layernorms: bool = True  # Jamba: RMSNorms on dt, B and C


class GatedDeltaNetMixer(Strict):
    """Gated DeltaNet. transformers 5.24 models/qwen3_next/modeling_qwen3_next.py (Qwen3NextGatedDeltaNet),
    models/qwen3_5/modeling_qwen3_5.py (split projections):
      conv state      [B, 2*num_key_heads*key_head_dim + num_value_heads*value_head_dim, conv_kernel]
      recurrent state [B, num_value_heads, key_head_dim, value_head_dim]
    """

    kind: Literal["gated_deltanet"] = "gated_deltanet"
    state_dtype: StateDtype = "fp32"
    num_key_heads: int = Field(ge=1)
    num_value_heads: int = Field(ge=1)
    key_head_dim: int = Field(ge=1)
    value_head_dim: int = Field(ge=1)
    conv_kernel: int = Field(ge=1)
    fused_projections: bool = True  # Qwen3-Next: in_proj_qkvz + in_proj_ba; Qwen3.5: four projections (same counts)

    @property
    def key_dim(self) -> int:
        return self.num_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        return self.num_value_heads * self.value_head_dim

    @property
    def conv_dim(self) -> int:
        return 2 * self.key_dim + self.value_dim



Mixer = Annotated[Mamba2Mixer | Mamba1Mixer | GatedDeltaNetMixer, Field(discriminator="kind")]
