"""Parameters of the vision towers (encoder + projector), as TensorGroups of the `vision` component.

Listed as transformers 5.24 builds them (classes named in oomplan.specs.vision); the golden test
compares the totals with sum(p.numel()) of the meta-built *ForConditionalGeneration model.
Replicated on every GPU of the first stage, in the dense dtype unless a declared quantisation quantises the tower
(DeclaredWeights.vision_weights: its nn.Linear weights, marked `linear`, in that format; Qwen2.5-VL and Qwen3-VL / Qwen3.5
towers, whose every linear is a group of its own here).
"""
from __future__ import annotations

from oomplan.memory.params import TensorGroup
from oomplan.specs.vision import Llama4VisionTower, MllamaVisionTower, PixtralVisionTower, Qwen3VisionTower, Qwen25VisionTower, SiglipVisionTower, VisionTower


def _t(name: str, rows: int, cols: int = 1, count: int = 1) -> TensorGroup:
    return TensorGroup(name, "vision", rows, cols, count)


def _linear(name: str, out: int, inp: int, bias: bool = True, count: int = 1) -> list[TensorGroup]:
    return [_t(name, out, inp, count)] + ([_t(name + ".bias", out, 1, count)] if bias else [])


def _nn_linear(name: str, out: int, inp: int, bias: bool = True, count: int = 1) -> list[TensorGroup]:
    """One nn.Linear module per count (its weight marked `linear`: a declared method that quantises the tower prices it)."""
    return [TensorGroup(name, "vision", out, inp, count, linear=True)] + ([_t(name + ".bias", out, 1, count)] if bias else [])


def qwen2_5_vl_tensors(v: Qwen25VisionTower) -> list[TensorGroup]:
    h, ffn, n = v.hidden_size, v.intermediate_size, v.depth
    g = [_t("patch_embed", h, v.in_channels * v.temporal_patch_size * v.patch_size**2)]
    g.append(_t("blocks.norms", h, 1, 2 * n))
    # Qwen2_5_VLVisionBlock: attn.qkv, attn.proj, mlp.gate_proj / up_proj / down_proj, each an nn.Linear with a bias; the
    # merger's mlp.0 and mlp.2 too (transformers 5.24 models/qwen2_5_vl/modeling_qwen2_5_vl.py); patch_embed is a Conv3d
    g += _nn_linear("blocks.attn.qkv", 3 * h, h, count=n) + _nn_linear("blocks.attn.proj", h, h, count=n)
    g += _nn_linear("blocks.mlp.gate_proj", ffn, h, count=n) + _nn_linear("blocks.mlp.up_proj", ffn, h, count=n)
    g += _nn_linear("blocks.mlp.down_proj", h, ffn, count=n)
    merged = h * v.spatial_merge_size**2
    g.append(_t("merger.ln_q", h))
    g += _nn_linear("merger.mlp.0", merged, merged) + _nn_linear("merger.mlp.2", v.out_hidden_size, merged)
    return g


def qwen3_vl_tensors(v: Qwen3VisionTower) -> list[TensorGroup]:
    h, ffn, n = v.hidden_size, v.intermediate_size, v.depth
    g = _linear("patch_embed", h, v.in_channels * v.temporal_patch_size * v.patch_size**2)
    g.append(_t("pos_embed", v.num_position_embeddings, h))
    g.append(_t("blocks.norms", h, 1, 4 * n))  # two LayerNorms, weight + bias each
    # Qwen3VLVisionBlock / Qwen3_5VisionBlock: attn.qkv, attn.proj, mlp.linear_fc1 / linear_fc2, and the (DeepStack) mergers'
    # linear_fc1 / linear_fc2, each an nn.Linear (transformers 5.24 models/qwen3_vl/modeling_qwen3_vl.py,
    # models/qwen3_5/modeling_qwen3_5.py); patch_embed is a Conv3d and pos_embed an nn.Embedding
    g += _nn_linear("blocks.attn.qkv", 3 * h, h, count=n) + _nn_linear("blocks.attn.proj", h, h, count=n)
    g += _nn_linear("blocks.mlp.linear_fc1", ffn, h, count=n) + _nn_linear("blocks.mlp.linear_fc2", h, ffn, count=n)
    merged, k = h * v.spatial_merge_size**2, v.num_deepstack_mergers
    g.append(_t("merger.norm", h, 1, 2))
    g += _nn_linear("merger.linear_fc1", merged, merged) + _nn_linear("merger.linear_fc2", v.out_hidden_size, merged)
    if k:
        g.append(_t("deepstack_merger.norm", merged, 1, 2 * k))
        g += _nn_linear("deepstack_merger.linear_fc1", merged, merged, count=k)
        g += _nn_linear("deepstack_merger.linear_fc2", v.out_hidden_size, merged, count=k)
    return g


def pixtral_tensors(v: PixtralVisionTower) -> list[TensorGroup]:
    h, ffn, n, t = v.hidden_size, v.intermediate_size, v.num_layers, v.text_hidden_size
    g = [_t("patch_conv", h, v.num_channels * v.patch_size**2), _t("ln_pre", h), _t("layers.norms", h, 1, 2 * n)]
    g += _linear("layers.attention.qkvo", 4 * h, h, bias=False, count=n)
    g += _linear("layers.feed_forward.gate_up", 2 * ffn, h, bias=False, count=n) + _linear("layers.feed_forward.down", h, ffn, bias=False, count=n)
    g += [_t("multi_modal_projector.norm", h), _t("multi_modal_projector.patch_merger", h, h * v.spatial_merge_size**2)]
    g += _linear("multi_modal_projector.linear_1", t, h * v.num_feature_layers, v.projector_bias)
    g += _linear("multi_modal_projector.linear_2", t, t, v.projector_bias)
    return g


def siglip_tensors(v: SiglipVisionTower) -> list[TensorGroup]:
    h, ffn, n = v.hidden_size, v.intermediate_size, v.num_layers
    g = _linear("embeddings.patch_embedding", h, v.num_channels * v.patch_size**2)
    g.append(_t("embeddings.position_embedding", v.num_patches, h))
    g.append(_t("encoder.layer_norms", h, 1, 4 * n))  # two LayerNorms, weight + bias each
    g += _linear("encoder.attn.qkv", 3 * h, h, count=n) + _linear("encoder.attn.out_proj", h, h, count=n)
    g += _linear("encoder.mlp.fc1", ffn, h, count=n) + _linear("encoder.mlp.fc2", h, ffn, count=n)
    g.append(_t("post_layernorm", h, 1, 2))
    if v.use_head:  # probe, nn.MultiheadAttention (in_proj + out_proj, with bias), LayerNorm, MLP
        g += [_t("head.probe", h)] + _linear("head.attention.in_proj", 3 * h, h) + _linear("head.attention.out_proj", h, h)
        g += [_t("head.layernorm", h, 1, 2)] + _linear("head.mlp.fc1", ffn, h) + _linear("head.mlp.fc2", h, ffn)
    g += [_t("multi_modal_projector.mm_soft_emb_norm", h), _t("multi_modal_projector.mm_input_projection", h, v.text_hidden_size)]
    return g


def llama4_tensors(v: Llama4VisionTower) -> list[TensorGroup]:
    h, ffn, n = v.hidden_size, v.intermediate_size, v.num_layers
    g = [_t("patch_embedding.linear", h, v.num_channels * v.patch_size**2), _t("class_embedding", h)]
    g.append(_t("positional_embedding_vlm", v.num_patches + 1, h))
    g.append(_t("layernorm_pre_post", h, 1, 4))  # two LayerNorms, weight + bias each
    if n:
        g.append(_t("layers.layer_norms", h, 1, 4 * n))
        g += _linear("layers.self_attn.qkvo", h, h, count=4 * n)
        g += _linear("layers.mlp.fc1", ffn, h, count=n) + _linear("layers.mlp.fc2", h, ffn, count=n)
    g += _linear("vision_adapter.mlp.fc1", v.projector_input_dim, ffn, bias=False)
    g += _linear("vision_adapter.mlp.fc2", v.projector_output_dim, v.projector_output_dim, bias=False)
    g += _linear("multi_modal_projector.linear_1", v.text_hidden_size, v.vision_output_dim, bias=False)
    return g


def mllama_tensors(v: MllamaVisionTower) -> list[TensorGroup]:
    h, ffn, p, tiles, ratios = v.hidden_size, v.intermediate_size, v.num_patches, v.max_num_tiles, v.num_aspect_ratios + 1
    g = [_t("patch_embedding", h, v.num_channels * v.patch_size**2), _t("class_embedding", h)]
    g += [_t("gated_positional_embedding.embedding", p, h), _t("gated_positional_embedding.tile_embedding", ratios, tiles * p * h)]
    g += [_t("pre_post_tile_positional_embedding.embedding", ratios, tiles * h, 2), _t("gates", 1, 1, 3)]
    g.append(_t("layernorm_pre_post", h, 1, 4))
    n = v.num_layers + v.num_global_layers
    if n:
        g.append(_t("layers.layer_norms", h, 1, 4 * n))
        g += _linear("layers.self_attn.qkvo", h, h, bias=False, count=4 * n)
        g += _linear("layers.mlp.fc1", ffn, h, count=n) + _linear("layers.mlp.fc2", h, ffn, count=n)
    if v.num_global_layers:
        g.append(_t("global_transformer.layers.gate_attn_ffn", 1, 1, 2 * v.num_global_layers))
    g += _linear("multi_modal_projector", v.text_hidden_size, v.vision_output_dim)
    return g


def vision_tensors(v: VisionTower | None) -> list[TensorGroup]:
    if v is None:
        return []
    if isinstance(v, Qwen25VisionTower):
        return qwen2_5_vl_tensors(v)
    if isinstance(v, Qwen3VisionTower):
        return qwen3_vl_tensors(v)
    if isinstance(v, PixtralVisionTower):
        return pixtral_tensors(v)
    if isinstance(v, Llama4VisionTower):
        return llama4_tensors(v)
    if isinstance(v, MllamaVisionTower):
        return mllama_tensors(v)
    return siglip_tensors(v)
