"""DeepSeek-V2 / V3 / V3.2, Kimi-K2 and GLM-5 (MLA families).

Sources (transformers 5.24.0): models/deepseek_v2/modeling_deepseek_v2.py, models/deepseek_v3/modeling_deepseek_v3.py,
models/deepseek_v32/{configuration,modeling}_deepseek_v32.py, models/glm_moe_dsa/{configuration,modeling}_glm_moe_dsa.py.

Multi-head latent attention on every layer (the cache keeps the kv_lora_rank latent plus the shared
RoPE key); the first first_k_dense_replace layers dense (or mlp_layer_types), then MoE every
moe_layer_freq layers with n_shared_experts shared experts of moe_intermediate_size each; the
router's e_score_correction_bias is a buffer, not a parameter. DeepSeek-V3.2 and GLM-5 add the DSA
lightning indexer (wq_b, wk, k_norm, weights_proj) whose per-token key [index_head_dim] is cached
besides the latent (cache_utils DynamicIndexedLayer); GLM-5 runs it only on indexer_types 'full'
layers ('shared' layers reuse the previous top-k). Kimi-K2 is DeepSeek-V3's architecture under
model_type kimi_k2 (its model card: change model_type to deepseek_v3 where kimi_k2 is unknown).
MTP layers (num_nextn_predict_layers) ship in these checkpoints but are not built: a note says so.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, moe, require, set_attention
from oomplan.families.config import HfConfig
from oomplan.specs.model import IndexerSpec, LayerAttention, MlaSpec


def _mla(cfg: HfConfig, where: str, f: Fields, indexed: list[bool] | None = None) -> None:
    require(cfg, where, "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
    assert cfg.qk_nope_head_dim is not None and cfg.qk_rope_head_dim is not None
    f["mla"] = MlaSpec(
        q_lora_rank=cfg.q_lora_rank, kv_lora_rank=cfg.kv_lora_rank, qk_nope_head_dim=cfg.qk_nope_head_dim,
        qk_rope_head_dim=cfg.qk_rope_head_dim, v_head_dim=cfg.v_head_dim,
    )
    f.update(head_dim=cfg.qk_nope_head_dim + cfg.qk_rope_head_dim, gguf_arch="deepseek2")
    flags = indexed or [False] * f["num_layers"]
    set_attention(f, lambda i: LayerAttention(kind="mla", indexed=flags[i]))


def _moe_layers(cfg: HfConfig, n: int) -> tuple[int, ...]:
    if cfg.mlp_layer_types:
        return tuple(i for i, t in enumerate(cfg.mlp_layer_types[:n]) if t == "sparse")
    first, freq = cfg.first_k_dense_replace or 0, cfg.moe_layer_freq or 1
    return tuple(i for i in range(n) if i >= first and i % freq == 0)


def _experts(cfg: HfConfig, f: Fields) -> None:
    if cfg.n_routed_experts:
        n_shared = cfg.n_shared_experts or 0
        moe(f, _moe_layers(cfg, f["num_layers"]), num_experts=cfg.n_routed_experts, num_experts_per_token=cfg.num_experts_per_tok or 1,
            expert_intermediate_size=cfg.moe_intermediate_size or f["intermediate_size"],
            num_shared_experts=n_shared, shared_expert_intermediate_size=n_shared * (cfg.moe_intermediate_size or 0),
            # 5.24.0 modeling_deepseek_v2.py:92,483 / modeling_deepseek_v3.py:126,551 (and deepseek_v32 / glm_moe_dsa's
            # TopkRouter): the router weight is made in fp32 and listed in _keep_in_fp32_modules_strict ("gate.weight"),
            # as in DeepSeek's own code; 5.23.0 held it in the model dtype (modeling_deepseek_v3.py:126,550). The memory
            # model follows the pinned transformers (constraints.txt); vLLM/SGLang load it in the model dtype
            # (oomplan/engines/weights.py subtracts it).
            router_fp32=True)


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    _mla(cfg, where, f)
    # 5.24.0 modeling_deepseek_v2.py:317,331,343 / modeling_deepseek_v3.py:376,390,402: attention_bias puts biases on
    # q_a_proj, kv_a_proj_with_mqa and o_proj (q_proj, q_b_proj and kv_b_proj have none)
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias))
    _experts(cfg, f)
    return f


def _dsa(cfg: HfConfig, where: str, indexed: list[bool]) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    require(cfg, where, "index_n_heads", "index_head_dim", "index_topk")
    f["indexer"] = IndexerSpec(num_heads=cfg.index_n_heads, head_dim=cfg.index_head_dim, top_k=cfg.index_topk)
    _mla(cfg, where, f, indexed)
    bias = bool(cfg.attention_bias)  # q_a_proj, kv_a_proj_with_mqa and o_proj
    f.update(qkv_bias=bias, o_bias=bias)
    _experts(cfg, f)
    return f


def build_v32(cfg: HfConfig, where: str) -> Fields:
    return _dsa(cfg, where, [True] * (cfg.num_hidden_layers or 0))


def glm5_indexer_types(cfg: HfConfig) -> list[str]:
    """configuration_glm_moe_dsa.py __post_init__: indexer_types, else index_topk_pattern, else the freq/offset schedule."""
    n = cfg.num_hidden_layers or 0
    if cfg.indexer_types:
        return list(cfg.indexer_types)
    pattern = cfg.index_topk_pattern
    if pattern is not None:
        return [{"F": "full", "S": "shared"}.get(c, c) for c in pattern] if isinstance(pattern, str) else list(pattern)
    freq, offset = max(cfg.index_topk_freq or 1, 1), 2 if cfg.index_skip_topk_offset is None else cfg.index_skip_topk_offset
    return ["full" if (max(i - offset + 1, 0) % freq) == 0 else "shared" for i in range(n)]


def build_glm5(cfg: HfConfig, where: str) -> Fields:
    types = glm5_indexer_types(cfg)
    n = cfg.num_hidden_layers or 0
    return _dsa(cfg, where, [(types[i] if i < len(types) else "full") == "full" for i in range(n)])


# configuration_deepseek_v3.py DeepseekV3Config defaults (DeepSeek-V3); Kimi-K2's config.json states its own values
_V3_DEFAULTS = dict(vocab_size=129280, hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048, num_hidden_layers=61,
                    num_attention_heads=128, num_key_value_heads=128, n_shared_experts=1, n_routed_experts=256, kv_lora_rank=512,
                    q_lora_rank=1536, qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128, num_experts_per_tok=8,
                    max_position_embeddings=4096, first_k_dense_replace=3)
_V32_DEFAULTS = dict(vocab_size=129280, hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048, num_hidden_layers=61,
                     num_attention_heads=128, num_key_value_heads=128, n_shared_experts=1, n_routed_experts=256, kv_lora_rank=512,
                     q_lora_rank=1536, qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128, num_experts_per_tok=8,
                     max_position_embeddings=163840, index_topk=2048, index_head_dim=128, index_n_heads=64, first_k_dense_replace=3)
_GLM5_DEFAULTS = dict(_V32_DEFAULTS, vocab_size=154880, hidden_size=6144, intermediate_size=12288, num_hidden_layers=78,
                      num_attention_heads=64, num_key_value_heads=64, q_lora_rank=2048, v_head_dim=256, qk_nope_head_dim=192,
                      max_position_embeddings=202752, index_n_heads=32)

FAMILY = Family("deepseek", ("deepseek_v2", "deepseek_v3"), build,
                "transformers/models/deepseek_v3/modeling_deepseek_v3.py (5.24.0)")
KIMI_K2 = Family("kimi_k2", ("kimi_k2",), build, "DeepSeek-V3's architecture: transformers/models/deepseek_v3/modeling_deepseek_v3.py (5.24.0)",
                 defaults=_V3_DEFAULTS)
V32 = Family("deepseek_v32", ("deepseek_v32",), build_v32, "transformers/models/deepseek_v32/modeling_deepseek_v32.py (5.24.0)",
             defaults=_V32_DEFAULTS)
GLM5 = Family("glm_moe_dsa", ("glm_moe_dsa",), build_glm5, "transformers/models/glm_moe_dsa/modeling_glm_moe_dsa.py (5.24.0)",
              defaults=_GLM5_DEFAULTS)
