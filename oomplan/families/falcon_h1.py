"""Falcon-H1: transformers/models/falcon_h1/configuration_falcon_h1.py, modeling_falcon_h1.py (5.24.0).

A parallel hybrid: every layer runs attention and a Mamba-2 mixer side by side (so every layer keeps
both a KV cache and a fixed state), then a gated MLP; two RMSNorms per layer. The mixer's width is
mamba_d_ssm (else mamba_expand x hidden_size); its gated RMSNorm exists only with mamba_rms_norm;
in_proj's bias is mamba_proj_bias, out_proj's projectors_bias. The mup multipliers hold no parameters.
"""
from __future__ import annotations

from pydantic import Field

from oomplan.errors import InputError
from oomplan.families.base import Family, Fields, base_fields, set_attention
from oomplan.families.config import HfConfig
from oomplan.specs.model import LayerAttention
from oomplan.specs.state import Mamba2Mixer


class FalconH1Config(HfConfig):
    """Keys Falcon-H1 adds, with FalconH1Config's defaults."""

    mamba_d_ssm: int | None = 1024
    mamba_n_heads: int = 128
    mamba_d_head: int | str = "auto"
    mamba_n_groups: int = 1
    mamba_d_state: int = 256
    mamba_d_conv: int = 4
    mamba_expand: int = 2
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False
    mamba_chunk_size: int | None = Field(default=256, ge=1, le=2**31)
    mamba_rms_norm: bool = False
    mamba_norm_before_gate: bool | None = True
    projectors_bias: bool = False


def mixer(cfg: FalconH1Config, where: str) -> Mamba2Mixer:
    assert cfg.hidden_size is not None
    inner = cfg.mamba_expand * cfg.hidden_size if cfg.mamba_d_ssm is None else cfg.mamba_d_ssm
    head_dim = inner // cfg.mamba_n_heads if cfg.mamba_d_head == "auto" else int(cfg.mamba_d_head)
    if head_dim * cfg.mamba_n_heads != inner:  # FalconH1Config.validate_architecture
        raise InputError(f"{where}: mamba_d_head x mamba_n_heads ({head_dim * cfg.mamba_n_heads}) must equal the mamba width ({inner})")
    return Mamba2Mixer(num_heads=cfg.mamba_n_heads, head_dim=head_dim, num_groups=cfg.mamba_n_groups, state_size=cfg.mamba_d_state,
                       conv_kernel=cfg.mamba_d_conv, conv_bias=cfg.mamba_conv_bias, proj_bias=cfg.mamba_proj_bias,
                       out_proj_bias=cfg.projectors_bias, gated_norm=cfg.mamba_rms_norm, chunk_size=cfg.mamba_chunk_size or 256,
                       mup=True, norm_before_gate=cfg.mamba_norm_before_gate is not False)


def build(cfg: FalconH1Config, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    m = mixer(cfg, where)
    set_attention(f, lambda i: LayerAttention(kind="full", state=m))
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), mlp_bias=bool(cfg.mlp_bias), gguf_arch="falcon-h1")
    return f


FAMILY = Family("falcon_h1", ("falcon_h1",), build, "transformers/models/falcon_h1/modeling_falcon_h1.py (5.24.0)",
                config=FalconH1Config)
