"""Nemotron-H and Nemotron 3: transformers/models/nemotron_h/configuration_nemotron_h.py, modeling_nemotron_h.py (5.24.0).

Each block is one RMSNorm and one mixer, chosen per layer by layers_block_type (or the legacy
hybrid_override_pattern: M Mamba-2, * attention, - MLP, E MoE); num_hidden_layers follows the pattern.
Attention has no biases; MLPs are plain up/down with relu2 (mlp_hidden_act); MoE experts are plain too,
with one shared expert of moe_shared_expert_intermediate_size, an fp32 router and, with moe_latent_size,
the experts run in a latent width between fc1/fc2 latent projections. The Mamba-2 state is
conv [conv_dim, conv_kernel] + SSM [mamba_num_heads, mamba_head_dim, ssm_state_size], the SSM part in
mamba_ssm_cache_dtype (default float32, what transformers keeps). MTP layers (num_nextn_predict_layers)
are not instantiated by transformers and are not counted.
"""
from __future__ import annotations

from pydantic import Field

from oomplan.errors import InputError
from oomplan.families.base import Family, Fields, base_fields, dtype_name, moe
from oomplan.families.config import HfConfig
from oomplan.families.hybrid import layer_kinds_from_types
from oomplan.specs.model import LayerAttention, LayerMlp, LayerSpec
from oomplan.specs.state import Mamba2Mixer

_PATTERN = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}


class NemotronHConfig(HfConfig):
    """Keys Nemotron-H adds (and the aliases its config class pops), with NemotronHConfig's defaults."""

    layers_block_type: list[str] | None = None
    hybrid_override_pattern: str | None = None
    head_dim: int | None = 128
    intermediate_size: int | None = 21504
    mlp_bias: bool | None = False
    ssm_state_size: int = 128
    mamba_num_heads: int = 128
    mamba_head_dim: int = 64
    n_groups: int | None = None
    mamba_n_groups: int | None = None
    conv_kernel: int | None = None
    mamba_d_conv: int | None = None
    use_conv_bias: bool | None = None
    mamba_conv_bias: bool | None = None
    use_bias: bool = False
    mamba_ssm_cache_dtype: str = "float32"
    chunk_size: int | None = Field(default=128, ge=1, le=2**31)
    mamba_chunk_size: int | None = Field(default=None, ge=1, le=2**31)
    n_routed_experts: int | None = 8
    num_experts_per_tok: int | None = 2
    moe_intermediate_size: int | None = 7688
    moe_shared_expert_intermediate_size: int = 7688
    moe_latent_size: int | None = None


def mixer(cfg: NemotronHConfig) -> Mamba2Mixer:
    # NemotronHConfig.__post_init__: mamba_n_groups / mamba_d_conv / mamba_conv_bias override the short names
    groups = cfg.mamba_n_groups if cfg.mamba_n_groups is not None else (cfg.n_groups or 8)
    kernel = cfg.mamba_d_conv if cfg.mamba_d_conv is not None else (cfg.conv_kernel or 4)
    conv_bias = cfg.mamba_conv_bias if cfg.mamba_conv_bias is not None else (cfg.use_conv_bias is not False)
    return Mamba2Mixer(num_heads=cfg.mamba_num_heads, head_dim=cfg.mamba_head_dim, num_groups=groups,
                       state_size=cfg.ssm_state_size, conv_kernel=kernel, conv_bias=conv_bias, proj_bias=cfg.use_bias,
                       state_dtype=dtype_name(cfg.mamba_ssm_cache_dtype, "fp32"),
                       chunk_size=cfg.mamba_chunk_size or cfg.chunk_size or 128)


def block_types(cfg: NemotronHConfig, where: str) -> list[str]:
    if cfg.layers_block_type:
        return layer_kinds_from_types(cfg.layers_block_type, None, where, "layers_block_type")
    if cfg.hybrid_override_pattern:
        bad = sorted(set(cfg.hybrid_override_pattern) - set(_PATTERN))
        if bad:
            raise InputError(f"{where}: hybrid_override_pattern holds {', '.join(map(repr, bad))}; accepted: M * - E")
        return layer_kinds_from_types([_PATTERN[c] for c in cfg.hybrid_override_pattern], None, where)
    raise InputError(f"{where}: nemotron_h needs layers_block_type or hybrid_override_pattern (the per-layer block kinds)")


def build(cfg: NemotronHConfig, where: str) -> Fields:
    kinds = block_types(cfg, where)
    cfg = cfg.model_copy(update={"num_hidden_layers": len(kinds)})  # the pattern decides (NemotronHConfig.num_hidden_layers)
    f = base_fields(cfg, where, tie_default=False)
    m, width = mixer(cfg), cfg.intermediate_size or 21504
    # NemotronHAttention applies no rotary embedding (modeling_nemotron_h.py: NemotronHModel has no rotary_emb)
    attn = {"linear": LayerAttention(kind="linear", state=m), "full": LayerAttention(kind="full", rope=False)}
    none_attn, none_mlp = LayerAttention(kind="none"), LayerMlp(kind="none")
    layers = []
    for k in kinds:
        if k in attn:
            layers.append(LayerSpec(attention=attn[k], mlp=none_mlp))
        else:
            layers.append(LayerSpec(attention=none_attn, mlp=LayerMlp(kind="moe") if k == "moe" else LayerMlp(kind="plain", intermediate_size=width)))
    f.update(layers=tuple(layers), intermediate_size=width, mlp_kind="plain", mlp_bias=bool(cfg.mlp_bias), num_norms_per_layer=1,
             gguf_arch="nemotron_h")
    moe_layers = tuple(i for i, k in enumerate(kinds) if k == "moe")
    if moe_layers:
        f["layers"] = tuple(layers)
        moe(f, moe_layers, num_experts=cfg.n_routed_experts, num_experts_per_token=cfg.num_experts_per_tok,
            expert_intermediate_size=cfg.moe_intermediate_size, num_shared_experts=1,
            shared_expert_intermediate_size=cfg.moe_shared_expert_intermediate_size, latent_size=cfg.moe_latent_size,
            router_fp32=True)  # NemotronHTopkRouter: weight created in float32
    return f


FAMILY = Family("nemotron_h", ("nemotron_h",), build, "transformers/models/nemotron_h/modeling_nemotron_h.py (5.24.0)",
                config=NemotronHConfig)
