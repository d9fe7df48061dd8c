"""Mamba-2: transformers/models/mamba2/configuration_mamba2.py, modeling_mamba2.py (5.24.0).

No attention and no MLP: each block is one RMSNorm and a Mamba-2 mixer (no KV cache; a fixed conv +
SSM state per sequence). hidden_size * expand must equal num_heads * head_dim (Mamba2Config checks it).
"""
from __future__ import annotations

from pydantic import Field

from oomplan.errors import InputError
from oomplan.families.base import Family, Fields, base_fields
from oomplan.families.config import HfConfig
from oomplan.specs.model import LayerAttention, LayerMlp, LayerSpec
from oomplan.specs.state import Mamba2Mixer


class Mamba2Config(HfConfig):
    """Keys Mamba-2 uses, with Mamba2Config's defaults."""

    num_heads: int = 128
    head_dim: int | None = 64
    state_size: int = 128
    expand: int = 2
    conv_kernel: int = 4
    n_groups: int = 8
    use_bias: bool = False
    use_conv_bias: bool = True
    chunk_size: int | None = Field(default=256, ge=1, le=2**31)
    residual_in_fp32: bool | None = True


def build(cfg: Mamba2Config, where: str) -> Fields:
    if cfg.hidden_size is not None and cfg.hidden_size * cfg.expand != cfg.num_heads * (cfg.head_dim or 64):
        raise InputError(f"{where}: hidden_size x expand ({cfg.hidden_size * cfg.expand}) must equal num_heads x head_dim "
                         f"({cfg.num_heads * (cfg.head_dim or 64)}) for model_type 'mamba2'")
    # ModelSpec's attention fields are unused here (no attention layer): the mixer's heads stand in
    cfg = cfg.model_copy(update={"num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_heads})
    f = base_fields(cfg, where, tie_default=False)
    mixer = Mamba2Mixer(num_heads=cfg.num_heads, head_dim=cfg.head_dim or 64, num_groups=cfg.n_groups, state_size=cfg.state_size,
                        conv_kernel=cfg.conv_kernel, conv_bias=cfg.use_conv_bias, proj_bias=cfg.use_bias,
                        chunk_size=cfg.chunk_size or 256, residual_in_fp32=cfg.residual_in_fp32 is not False)
    layer = LayerSpec(attention=LayerAttention(kind="linear", state=mixer), mlp=LayerMlp(kind="none"))
    f.update(layers=(layer,) * f["num_layers"], num_norms_per_layer=1, gguf_arch="mamba2")
    return f


FAMILY = Family("mamba2", ("mamba2",), build, "transformers/models/mamba2/modeling_mamba2.py (5.24.0)", config=Mamba2Config)
