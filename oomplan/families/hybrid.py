"""What the hybrid (attention + Mamba / linear-attention) families share: layer kinds from the config's
per-layer type names, and the Mamba-2 mixer of transformers 5.24 (models/mamba2/modeling_mamba2.py,
the same mixer in nemotron_h, granitemoehybrid, falcon_h1)."""
from __future__ import annotations

from pydantic import Field

from oomplan.errors import InputError
from oomplan.families.config import HfConfig
from oomplan.specs.state import Mamba2Mixer

# configuration_utils._LEGACY_LAYER_TYPE_REMAP (5.24.0): "mamba" -> linear_attention, "attention" -> full_attention
_LAYER_TYPES = {
    "linear_attention": "linear", "mamba": "linear",
    "full_attention": "full", "attention": "full",
    "mlp": "mlp", "moe": "moe",
}


def layer_kinds_from_types(types: list[str], num_layers: int | None, where: str, field: str = "layer_types") -> list[str]:
    """Each layer's kind ('linear', 'full', 'mlp', 'moe'); unknown names are refused, naming them."""
    unknown = sorted({t for t in types if t not in _LAYER_TYPES})
    if unknown:
        raise InputError(f"{where}: {field} holds {', '.join(map(repr, unknown))}; accepted: {', '.join(_LAYER_TYPES)}")
    if num_layers is not None and len(types) < num_layers:
        raise InputError(f"{where}: {field} has {len(types)} entries for {num_layers} layers (num_hidden_layers)")
    return [_LAYER_TYPES[t] for t in types[: num_layers or len(types)]]


class MambaPrefixedConfig(HfConfig):
    """The mamba_* keys of the Mamba-2 mixer that granitemoehybrid and bamba share, with their config classes' defaults
    (GraniteMoeHybridConfig and BambaConfig agree on every one, 5.24.0)."""

    mamba_n_heads: int = Field(default=128, ge=1, le=2**16)
    mamba_n_groups: int = Field(default=1, ge=1, le=2**16)
    mamba_d_state: int = Field(default=256, ge=1, le=2**16)
    mamba_d_head: int | str = "auto"
    mamba_d_conv: int = Field(default=4, ge=1, le=2**10)
    mamba_expand: int = Field(default=2, ge=1, le=2**10)
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False
    mamba_chunk_size: int | None = Field(default=256, ge=1, le=2**31)


def prefixed_mixer(cfg: MambaPrefixedConfig, where: str) -> Mamba2Mixer:
    """GraniteMoeHybridMambaLayer / BambaMixer (the same code): mamba_expand x hidden_size wide, mamba_d_head 'auto' is
    that width / mamba_n_heads; in_proj and out_proj both take mamba_proj_bias; a gated RMSNorm over the width."""
    assert cfg.hidden_size is not None
    inner = cfg.mamba_expand * cfg.hidden_size
    head_dim = inner // cfg.mamba_n_heads if cfg.mamba_d_head == "auto" else int(cfg.mamba_d_head)
    if head_dim * cfg.mamba_n_heads != inner:  # GraniteMoeHybridConfig / BambaConfig.validate_architecture
        raise InputError(f"{where}: mamba_d_head x mamba_n_heads ({head_dim * cfg.mamba_n_heads}) must equal mamba_expand x hidden_size ({inner})")
    return Mamba2Mixer(num_heads=cfg.mamba_n_heads, head_dim=head_dim, num_groups=cfg.mamba_n_groups, state_size=cfg.mamba_d_state,
                       conv_kernel=cfg.mamba_d_conv, conv_bias=cfg.mamba_conv_bias, proj_bias=cfg.mamba_proj_bias,
                       chunk_size=cfg.mamba_chunk_size or 256)
