"""The vision tower's prefill activations (`--images N`): the tower's moment, and what the images keep alive.

transformers runs the tower once, in the prefill forward, on every image of the batch at once. What follows, on the
first pipeline stage (transformers 5.24; each formula checked against the live bytes of a meta-device run,
tests/golden/test_vision_activations.py):
  * the encoder moments, before the decoder's layers: pixel_values and the inputs, the tower's own peak, and what is
    already made (Gemma 3, the Qwen VLs: the text embeddings; Mllama: its cross-attention mask's preparation, after the
    tower; the Qwen VLs: masked_scatter; tests/golden/test_qwen25_vl_images.py, test_qwen3_vl_images.py);
  * what stays alive through the decoder's prefill (`prefill_held_bytes`): pixel_values, the tower's outputs, masks;
  * what stays alive through the logits and the first decode step (`output_held_bytes`): pixel_values (generate()
    keeps them in model_kwargs), the inputs, and the tower's outputs that the model output carries
    (Gemma3ModelOutputWithPast.image_hidden_states, MultimodalBaseModelOutputWithPast.image_outputs); past the first
    decode step generate() drops the outputs, so this is exact there and an upper bound later;
  * Mllama: a cross-attention layer's prefill moment, attending to the images' tokens (in a decode step
    sdpa_attention_forward packs the single query per KV head, pack_gqa, so the cached K/V is not repeated).
pixel_values are priced in the activation dtype (the processor's fp32 tensor is cast when moved to the model).
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.errors import FieldError
from oomplan.memory.activations import ActivationBudget, dims, forward_bytes, mask_bytes
from oomplan.memory.images import ImageLoad, PixtralGrid, tower_name
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.specs.vision import (Llama4VisionTower, MllamaVisionTower, PixtralVisionTower, Qwen3VisionTower, Qwen25VisionTower,
                                  SiglipVisionTower, VisionTower)
from oomplan.units import FP32, INT32, INT64


@dataclass(frozen=True)
class VisionActivations:
    num_images: int  # in the batch: batch x images per sequence
    encoder_bytes: int  # the largest moment before the decoder's layers (the tower's, or Mllama's mask preparation)
    prefill_held_bytes: int  # added to the decoder's prefill moment
    output_held_bytes: int  # added to the logits moment and the decode step
    cross_prefill_bytes: int = 0  # Mllama: the prefill moment of a cross-attention layer (its place in the max)

    def peak(self, acts: ActivationBudget) -> int:
        """The first stage's activation peak: an encoder moment, or a decoder moment with what the images (or, text
        only, the Qwen VLs' generate() inputs) keep alive."""
        if self == NO_VISION:
            return acts.peak_bytes
        prefill = max(acts.prefill_bytes, self.cross_prefill_bytes) + self.prefill_held_bytes
        after = max(acts.logits_bytes, acts.decode_step_bytes) + self.output_held_bytes
        return max(self.encoder_bytes, prefill, after)


NO_VISION = VisionActivations(0, 0, 0, 0)


def siglip_encoder_peak_bytes(v: SiglipVisionTower, num_images: int, b: float) -> int:
    """SiglipEncoder (models/siglip/modeling_siglip.py, 5.24) on `num_images` images of num_patches tokens each, beyond
    pixel_values. MLP moment of a layer past the first: the embeddings (SiglipVisionTransformer holds them), the layer
    input (the encoder loop's variable), the post-attention residual and its LayerNorm [S, h], fc1 and gelu [S, ffn]
    (a one-layer tower has no separate input: 3 x [S, h]). Attention moment: embeddings, input, norm, q, k, v, the
    fused kernel's output and its transposed copy, 8 x [S, h]."""
    s, h, ffn = num_images * v.num_patches, v.hidden_size, v.intermediate_size
    stream = 4 if v.num_layers > 1 else 3
    mlp = s * (2 * ffn + stream * h)
    attention = s * (stream + 4) * h
    return int(max(mlp, attention) * b)


def gemma3_mask_extra_bytes(model: ModelSpec, plan: Plan, batch_size: int, ctx_tokens: int) -> int:
    """Gemma 3 with images: the processor's token_type_ids make Gemma3Model.forward build its masks with
    create_masks_for_vision_model (image tokens attend bidirectionally within their image): an or-mask, so SDPA's
    is_causal skip is off and each attention kind (full, sliding) gets a bool [B, 1, q, kv] mask, batch-materialised,
    in place of the text-only ones (memory/activations.py mask_bytes); plus the block ids (int64 [B, ctx]).
    Fused attention only; eager already materialises a [B, 1, q, kv] mask per kind."""
    q_len = min(ctx_tokens, plan.prefill_chunk_tokens or ctx_tokens)
    ids = INT64 * batch_size * ctx_tokens
    if plan.attention == "eager":
        return ids
    kinds = int(model.num_sliding_layers < model.num_layers) + int(bool(model.num_sliding_layers))
    return ids + kinds * batch_size * q_len * ctx_tokens - mask_bytes(model, plan, dims(model, plan, 1), batch_size, q_len, ctx_tokens)


def gemma3_activations(model: ModelSpec, plan: Plan, v: SiglipVisionTower, images: ImageLoad, batch_size: int, ctx_tokens: int,
                       b: float) -> VisionActivations:
    """Gemma3Model.forward (models/gemma3/modeling_gemma3.py): inputs_embeds, then the tower, then masked_scatter; the
    model output keeps the tower's last_hidden_state [n, patches, h] and pooled features [n, tokens, text h]."""
    n = batch_size * images.num_images
    pixels = int(n * v.num_channels * v.image_size**2 * b)
    type_ids = INT64 * batch_size * ctx_tokens  # the processor's token_type_ids, an input
    text = int(batch_size * ctx_tokens * (model.hidden_size * b + INT64)) + type_ids  # inputs_embeds, input_ids
    outputs = int(n * (v.num_patches * v.hidden_size + images.tokens_per_image * v.text_hidden_size) * b)
    after = pixels + outputs + type_ids
    # during the language model's call Gemma3Model.forward also holds the bool special_image_mask [B, ctx] and its masks
    prefill = after + batch_size * ctx_tokens + gemma3_mask_extra_bytes(model, plan, batch_size, ctx_tokens)
    return VisionActivations(n, pixels + siglip_encoder_peak_bytes(v, n, b) + text, prefill, after)


def mllama_tower_peak_bytes(v: MllamaVisionTower, num_images: int, b: float) -> int:
    """MllamaVisionModel.forward (models/mllama/modeling_mllama.py, 5.24) on `num_images` images, beyond pixel_values:
    every image is max_num_tiles tiles of num_patches tokens (class token included), padded to a multiple of 8 for the
    attention; both encoders keep every layer's output (MllamaVisionEncoder's encoder_states), alive to the end. Fixed
    through it: the [S, S] aspect-ratio attention mask (model dtype) and the patch embedding's output. The larger of:
    the final cat (all num_layers + num_global_layers outputs, the stacked intermediate layers [S, h, k] and the output
    [tiles, patches, (k + 1) h], k = vision_output_dim / h - 1 intermediate layers) and the last layer's MLP (the
    earlier outputs, the encoder's input, residual and LayerNorm [S, h], fc1 and gelu [S, ffn])."""
    tiles, p, h, ffn = v.max_num_tiles, v.num_patches, v.hidden_size, v.intermediate_size
    s = tiles * (p + (8 - p % 8) % 8)
    k = v.vision_output_dim // h - 1
    layers = v.num_layers + v.num_global_layers
    fixed = s * s + tiles * (p - 1) * h
    final = layers * s * h + s * h * k + tiles * p * v.vision_output_dim
    mlp = (layers + 2) * s * h + 2 * s * ffn
    return int(num_images * (fixed + max(final, mlp)) * b)


def mllama_activations(model: ModelSpec, plan: Plan, v: MllamaVisionTower, images: ImageLoad, batch_size: int, ctx_tokens: int,
                       b: float) -> VisionActivations:
    """MllamaModel.forward: the tower, the projector ([B, images x tokens, text h]), then _prepare_cross_attention_mask
    (int64 repeat_interleave, fp32 `1 - mask`, its cast: [B, 1, ctx, V] each, V = images x tokens; it keeps the cast
    mask and [B, 1, ctx, 1]), then the language model. Inputs alive throughout: input_ids, cross_attention_mask
    [B, ctx, images, tiles], aspect_ratio_ids [B, images] and aspect_ratio_mask [B, images, tiles] (int64)."""
    n, tokens, h = batch_size * images.num_images, images.tokens_per_image, model.hidden_size
    vision = batch_size * images.num_images * tokens  # V per sequence, times the batch
    pixels = int(n * v.max_num_tiles * v.num_channels * v.image_size**2 * b)
    inputs = INT64 * (batch_size * ctx_tokens * images.num_images * v.max_num_tiles + n + n * v.max_num_tiles)
    ids = INT64 * batch_size * ctx_tokens  # in forward_bytes once the decoder runs
    outputs = int(n * tokens * v.vision_output_dim * b)  # MllamaVisionModel's last_hidden_state, in the model output
    states = int(n * tokens * h * b)  # the projected cross_attention_states
    tower = pixels + inputs + ids + mllama_tower_peak_bytes(v, n, b)
    mask_moment = pixels + inputs + ids + outputs + states + int(ctx_tokens * vision * (INT64 + FP32 + b))
    after = pixels + inputs + outputs
    prefill = after + states + int(ctx_tokens * vision * b + batch_size * ctx_tokens * b)
    # a cross-attention layer in the prefill: the residual stream (3 x [T, h]), q after q_norm, the kernel's output and
    # its transposed copy (sdpa_attention_forward's .contiguous()) [T, heads x head_dim], K and V repeated to every head
    # (the mask turns off SDPA's GQA path: repeat_kv); the cached K/V is the KV cache's
    d = dims(model, plan, b)
    q_len = min(ctx_tokens, plan.prefill_chunk_tokens or ctx_tokens)
    heads_dim = d.heads * model.head_dim
    repeat = 2 * vision * heads_dim * b
    cross = forward_bytes(model, plan, d, batch_size, q_len, ctx_tokens) + int(batch_size * q_len * (3 * h + 3 * heads_dim) * b + repeat)
    return VisionActivations(n, max(tower, mask_moment), prefill, after, cross)


def qwen25_tower_peak_bytes(v: Qwen25VisionTower, num_images: int, tokens_per_image: int) -> int:
    """Qwen2_5_VisionTransformerPretrainedModel.forward (models/qwen2_5_vl/modeling_qwen2_5_vl.py, transformers 5.24) on
    `num_images` images of tokens_per_image decoder tokens, S = tokens x spatial_merge_size**2 patches each, in bf16 /
    fp16, beyond pixel_values. Alive throughout (vision_utils.py): the patches' (h, w) position ids (int64 [S, 2]), the
    rotary cos and sin (fp32 [S, head_dim] each, after the window permutation), cu_seqlens (int32 [images + 1]) and
    cu_window_seqlens (int32; priced at its bound, one window per decoder token + 1: the real count is at most that,
    so this is over by at most 4 bytes a token); the window index is a CPU tensor. The larger of, over S patches:
      * a block's rotary moment (apply_rotary_pos_emb_vision on k): the block input, norm1, qkv [S, 3h], and six fp32
        [S, h]: q and k cast to fp32, q_embed, k * cos, rotate_half(k) and its product with sin;
      * a block's MLP: input, post-attention residual, norm2 [S, h], silu(gate), up and their product [S, ffn];
      * norm2's fp32 moment (RMSNorm: input, residual, the fp32 copy and its square or its normalised copy);
      * the PatchMerger (last block's output kept): ln_q's fp32 moment; the normed states, fc1 and GELU [S / m**2, m**2 h];
        the GELU and fc2 [S / m**2, out]; fc2 and its un-permuted copy.
    Window attention and full attention allocate alike per patch here (the fused kernel's output per window or image,
    concatenated): the peak does not depend on the images' shapes."""
    s = num_images * tokens_per_image * v.spatial_merge_size**2
    h, ffn, b = v.hidden_size, v.intermediate_size, 2
    merged_out = s // v.spatial_merge_size**2 * v.out_hidden_size * b
    fixed = s * (2 * INT64 + 2 * FP32 * (h // v.num_heads)) + INT32 * (num_images + 1) + INT32 * (num_images * tokens_per_image + 1)
    rotary = s * (5 * h * b + 6 * FP32 * h)
    mlp = s * b * (3 * h + 3 * ffn)
    norm = s * (2 * h * b + 2 * FP32 * h)
    merger = max(s * (h * b + 2 * FP32 * h), 4 * s * h * b, 3 * s * h * b + merged_out, s * h * b + 2 * merged_out)
    return fixed + max(rotary, mlp, norm, merger)


def qwen3_tower_peak_bytes(v: Qwen3VisionTower, num_images: int, tokens_per_image: int, num_deepstack_in_last_block: int) -> int:
    """Qwen3VLVisionModel.forward (models/qwen3_vl/modeling_qwen3_vl.py) and Qwen3_5VisionModel.forward
    (models/qwen3_5/modeling_qwen3_5.py), transformers 5.24, on `num_images` images of tokens_per_image decoder tokens
    (S = tokens x spatial_merge_size**2 patches each), bf16 / fp16, beyond pixel_values. Alive throughout
    (vision_utils.py): the bilinear position-table taps and weights (int64 and fp32 [S, 4]), the (h, w) position ids
    (int64 [S, 2]), the rotary cos and sin (fp32 [S, head_dim] each), cu_seqlens (int32 [images + 1]); each DeepStack
    merger's output [S / m**2, out] from its block on. The larger of, over S patches:
      * the position table's moment: the patch embedding, the gathered taps (bf16 [S, 4, h]) and their product with
        the fp32 weights (fp32 [S, 4, h]); their sum, pos_embeds (fp32 [S, h]), stays alive to the end;
      * a block's rotary moment (apply_rotary_pos_emb_vision on k): block input, norm1, qkv [S, 3h], six fp32 [S, h];
      * a block's MLP: input, post-attention residual, norm2 [S, h], fc1 and its GELU [S, ffn];
      * a LayerNorm (input, residual, output; fp32 mean and rstd [S, 1]);
      * a patch merger (the final one, and DeepStack's with its post-shuffle norm, allocate alike): the block output,
        the normed states, fc1 and GELU [S / m**2, m**2 h]; or the GELU and fc2 [S / m**2, out].
    num_deepstack_in_last_block: DeepStack outputs already made when the last block runs (Qwen3-VL's
    deepstack_visual_indexes below depth - 1); the final merger runs with all of them."""
    m2 = v.spatial_merge_size**2
    s = num_images * tokens_per_image * m2
    h, ffn, b = v.hidden_size, v.intermediate_size, 2
    merged_out = s // m2 * v.out_hidden_size * b
    fixed = s * (4 * INT64 + 4 * FP32 + 2 * INT64 + 2 * FP32 * (h // v.num_heads)) + INT32 * (num_images + 1)
    table = s * (h * b + 4 * h * b + 4 * h * FP32)
    fixed_after = fixed + s * FP32 * h  # pos_embeds (fp32 [S, h]): forward's local, alive from the table on
    rotary = s * (5 * h * b + 6 * FP32 * h)
    mlp = s * b * (3 * h + 2 * ffn)
    norm = s * (3 * h * b + 2 * FP32)
    merger = max(4 * s * h * b, 3 * s * h * b + merged_out)
    k, last = v.num_deepstack_mergers, num_deepstack_in_last_block
    return max(fixed + table, fixed_after + max(last * merged_out + max(rotary, mlp, norm),
                                                (k - 1) * merged_out + merger if k > last else 0, k * merged_out + merger))


def qwen_activations(model: ModelSpec, v: Qwen25VisionTower | Qwen3VisionTower, images: ImageLoad, batch_size: int,
                     ctx_tokens: int, b: float, tower_peak_bytes: int) -> VisionActivations:
    """Qwen2_5_VLModel.forward, Qwen3VLModel.forward, Qwen3_5Model.forward (transformers 5.24) as generate() calls them
    with the processor's inputs: input_ids, mm_token_type_ids (int64 [B, ctx]; the processor's return_mm_token_type_ids),
    image_grid_thw (int64 [images, 3]), pixel_values ([S, in_channels x temporal_patch_size x patch_size**2]) and the
    4-row M-RoPE position_ids (int64 [4, B, ctx], GenerationMixin via _prepare_position_ids_for_generation /
    get_rope_index), so the text model makes no arange of its own (int64 [ctx], which the text-only pricing has).
    Embeddings first, then the tower; its outputs (last_hidden_state [S, h], pooler_output [S / m**2, out], Qwen3-VL's
    DeepStack features, k x [S / m**2, out]) stay in the model output, and the concatenated image_embeds (and Qwen3-VL's
    k concatenated deepstack_visual_embeds) and the image and video placeholder masks (bool [B, ctx]) stay alive
    through the language model; masked_scatter makes new inputs_embeds (both alive at that moment). Past the language
    model the image_embeds, the masks (and the text-only arange) are gone.
    Qwen3-VL adds each DeepStack feature to the hidden states after one of the first k decoder layers
    (Qwen3VLTextModel._deepstack_process: a clone of the residual stream and two [images x tokens, hidden]), a moment
    below a layer's MLP (the residual stream, its norm and the MLP's [ctx, intermediate] tensors) whenever
    intermediate_size >= hidden_size (the caller refuses a model where it is not); layers 1..k then run with one more
    [B, ctx, hidden] alive (the loop's layer_outputs), added to the decoder's prefill moment: exact where those layers
    are the stage's largest (every layer alike), over by at most that where a later layer is larger."""
    n, tokens = batch_size * images.num_images, images.tokens_per_image
    s = n * tokens * v.spatial_merge_size**2
    k = v.num_deepstack_mergers if isinstance(v, Qwen3VisionTower) else 0
    pixels = int(s * v.in_channels * v.temporal_patch_size * v.patch_size**2 * b)
    extra = qwen_generate_inputs_bytes(batch_size, ctx_tokens)  # mm_token_type_ids, the 4-row position ids
    grid = INT64 * 3 * n
    embeds = int(batch_size * ctx_tokens * model.hidden_size * b)
    text = embeds + INT64 * batch_size * ctx_tokens + extra  # inputs_embeds, input_ids
    merged = int(n * tokens * v.out_hidden_size * b)
    outputs = int(s * v.hidden_size * b) + (1 + k) * merged
    masks = 2 * batch_size * ctx_tokens
    after = pixels + grid + outputs + extra
    tower = pixels + grid + text + tower_peak_bytes
    scatter = pixels + grid + text + outputs + merged + masks + embeds
    # Qwen3-VL: in the layers after a DeepStack add, the loop's layer_outputs still holds the previous layer's output
    # besides the added copy that is the layer's input (one more [B, ctx, hidden])
    deepstack_stream = embeds if k and model.num_layers > 1 else 0
    prefill = after + (1 + k) * merged + masks - INT64 * ctx_tokens + deepstack_stream
    return VisionActivations(n, max(tower, scatter), prefill, after)

def pixtral_tower_peak_bytes(v: PixtralVisionTower, grid: PixtralGrid, num_images: int) -> int:
    """Mistral3Model.get_image_features (models/mistral3/modeling_mistral3.py) over PixtralVisionModel.forward
    (models/pixtral/modeling_pixtral.py), transformers 5.24, on `num_images` images of one resized size (S = images x
    rows x columns patches), bf16 / fp16, beyond pixel_values. Alive through the encoder (forward's locals): the patch
    convolution's output (patch_embeds_list holds views of it, [images, h, rows, cols]), ln_pre's output (the encoder's
    input), the (h, w) position ids (int64 [S, 2]), the rotary cos and sin ([S, head_dim] each, head_dim = h / heads),
    generate_block_attention_mask's [S, S] mask in the model dtype (every image of the batch in one sequence, blocks
    on the diagonal) and the last image's two meshgrid aranges (int64 rows + columns). The larger of:
      * a layer's attention moment: 10 x [S, h] past the first layer, 9 in it (the input is ln_pre's output);
      * a layer's MLP: ln_pre's output, the input, the post-attention residual, ffn_norm [S, h] (one fewer in the first
        layer), silu(gate), up and their product [S, ffn];
      * the projector, after the encoder's locals are gone: the tower's last_hidden_state [S, h], the patch merger's
        output [M, h] (M = S / spatial_merge_size**2), linear_1 and its activation [M, text hidden] (or the
        activation and linear_2).
    Measured on meta (tests/golden/test_pixtral_images.py)."""
    s, h, ffn, b = num_images * grid.num_patches, v.hidden_size, v.intermediate_size, 2
    merged = num_images * grid.num_merged
    fixed = s * h * b + INT64 * 2 * s + 2 * s * (h // v.num_heads) * b + s * s * b + INT64 * (grid.patch_rows + grid.patch_cols)
    later = v.num_layers >= 2
    attention = (10 if later else 9) * s * h * b
    mlp = s * b * ((4 if later else 3) * h + 3 * ffn)
    projector = s * h * b + merged * h * b + 2 * merged * v.text_hidden_size * b
    return max(fixed + max(attention, mlp), projector)


def mistral3_activations(model: ModelSpec, v: PixtralVisionTower, images: ImageLoad, batch_size: int, ctx_tokens: int,
                         b: float) -> VisionActivations:
    """Mistral3Model.forward (models/mistral3/modeling_mistral3.py, 5.24) with the Pixtral processor's inputs:
    pixel_values [n, channels, H, W] at the resized size (one size: no padding), image_sizes (int64 [n, 2]),
    input_ids. Embeddings first, then the tower (get_image_features); the model output keeps its last_hidden_state
    [S, h] and the projector's output [M, text hidden] (pooler_output's split views); the concatenated image_features
    [M, text hidden] and the bool placeholder mask [B, ctx] stay alive through the language model; masked_scatter makes
    new inputs_embeds (both alive at that moment). Past the language model the image_features and mask are gone."""
    grid = images.pixtral
    assert grid is not None
    n = batch_size * images.num_images
    s, merged = n * grid.num_patches, n * grid.num_merged
    pixels = int(n * v.num_channels * grid.height_pixels * grid.width_pixels * b)
    sizes = INT64 * 2 * n
    embeds = int(batch_size * ctx_tokens * model.hidden_size * b)
    text = embeds + INT64 * batch_size * ctx_tokens  # inputs_embeds, input_ids
    features = int(merged * v.text_hidden_size * b)
    outputs = int(s * v.hidden_size * b) + features
    mask = batch_size * ctx_tokens
    after = pixels + sizes + outputs
    tower = pixels + sizes + text + pixtral_tower_peak_bytes(v, grid, n)
    scatter = pixels + sizes + text + outputs + features + mask + embeds
    return VisionActivations(n, max(tower, scatter), after + features + mask, after)


def qwen_generate_inputs_bytes(batch_size: int, ctx_tokens: int) -> int:
    """What generate() hands a Qwen VL besides input_ids, with or without images: the processor's mm_token_type_ids
    (int64 [B, ctx]; Qwen2_5_VLProcessor.return_mm_token_type_ids = True, processing_utils.py ProcessorMixin.__call__
    makes them for text alone too) and the 4-row position ids (int64 [4, B, ctx]:
    Qwen2_5_VLForConditionalGeneration._prepare_position_ids_for_generation, and Qwen3-VL's, Qwen3.5's, concatenate
    the text positions with three copies, get_rope_index's with images): 40 bytes a token."""
    return (INT64 + 4 * INT64) * batch_size * ctx_tokens


def qwen_text_only(v: VisionTower | None, batch_size: int, q_len: int, ctx_tokens: int) -> VisionActivations:
    """A Qwen VL without images, as generate() runs it (transformers 5.24): the 40 bytes a token of
    qwen_generate_inputs_bytes are alive through the prefill, the logits and the decode steps (generate()'s
    model_kwargs), and the text model makes no arange of its own (int64 [q_len], the prefill's forward or chunk, in the
    text-only pricing of memory/activations.py forward_bytes) since position_ids are given. NO_VISION for every other
    model."""
    if not isinstance(v, Qwen25VisionTower | Qwen3VisionTower):
        return NO_VISION
    extra = qwen_generate_inputs_bytes(batch_size, ctx_tokens)
    return VisionActivations(0, 0, extra - INT64 * q_len, extra)


def llama4_tower_peak_bytes(v: Llama4VisionTower, num_tiles: int) -> int:
    """Llama4VisionModel.forward (models/llama4/modeling_llama4.py, transformers 5.24) on `num_tiles` tiles of
    p = (image_size / patch_size)**2 + 1 tokens (the class token), bf16 / fp16, beyond pixel_values; checked on meta
    (tests/golden/test_llama4_vision.py). The model's layernorm_pre output stays alive through the encoder (its
    `hidden_state`), so a layer past the first holds it besides its own input. The larger of, per tile:
      * a layer's rotary moment (vision_apply_rotary_emb): embeddings, input, input_layernorm, q, k, v, the q and k
        fp32 copies, their complex64 products with freqs_ci and the two bf16 results, over p tokens;
      * a layer's MLP: embeddings, input, residual, post_attention_layernorm, fc1 and GELU [p, ffn] (or GELU and fc2);
      * the pixel-shuffle adapter after the encoder: its output and layernorm_post [p, h], the two contiguous shuffle
        copies [P, h], then fc1 / GELU [P r**2, projector_input_dim] and fc2 / GELU [P r**2, projector_output_dim]."""
    h, ffn, b = v.hidden_size, v.intermediate_size, 2
    big_p = v.num_patches
    p, q = big_p + 1, round(big_p * v.pixel_shuffle_ratio**2)
    pin, pout = v.projector_input_dim, v.projector_output_dim
    s = 1 if v.num_layers >= 2 else 0  # the embeddings besides a layer's input
    rotary = p * h * ((7 + s) * b + 4 * FP32)
    mlp = p * b * max((3 + s) * h + 2 * ffn, (4 + s) * h + ffn)
    adapter = b * (2 * p * h + max(2 * big_p * h, big_p * h + q * max(2 * pin, pin + pout, pin + 2 * pout)))
    return num_tiles * max(rotary, mlp, adapter) if v.num_layers else num_tiles * adapter


# Why a tower is still refused (transformers 5.24).
_NOT_YET = {
    "llama4": "transformers 5.24.0's Llama4ForConditionalGeneration.forward raises AttributeError before it returns, on "
              "every device (it reads outputs.image_outputs from the language model's MoeCausalLMOutputWithPast, "
              "transformers/models/llama4/modeling_llama4.py:1318; a CPU run with real weights fails alike), so "
              "generate() does not run; the tower alone is priced (memory/vision_activations.py llama4_tower_peak_bytes)",
}


def vision_activations(model: ModelSpec, plan: Plan, images: ImageLoad | None, batch_size: int, ctx_tokens: int,
                       b: float) -> VisionActivations:
    """The tower's moments and held bytes for `batch_size` sequences of `images`; NO_VISION without images.
    A tower whose run is not priced yet is refused (FieldError on num_images), never guessed."""
    if images is None:
        return qwen_text_only(model.vision, batch_size, min(ctx_tokens, plan.prefill_chunk_tokens or ctx_tokens), ctx_tokens)
    if plan.attention == "eager":  # the tower takes the model's attention implementation: eager [n, heads, S, S] scores
        raise FieldError("attention", "eager: with images the vision tower runs eager attention too, whose scores are not "
                         "priced yet; use sdpa")
    if plan.prefill_chunk_tokens is not None and plan.prefill_chunk_tokens < ctx_tokens:
        raise FieldError("prefill_chunk_tokens", f"{plan.prefill_chunk_tokens}: transformers' generate() cannot chunk a "
                         "prompt with raw pixel_values (generation/utils.py _prefill: 'Chunked prefill cannot split the raw "
                         "multimodal inputs'); give the whole prompt in one forward pass")
    v: VisionTower | None = model.vision
    n = batch_size * images.num_images
    if isinstance(v, SiglipVisionTower):
        return gemma3_activations(model, plan, v, images, batch_size, ctx_tokens, b)
    if isinstance(v, MllamaVisionTower):
        return mllama_activations(model, plan, v, images, batch_size, ctx_tokens, b)
    if isinstance(v, PixtralVisionTower):
        if b != 2:
            raise FieldError("weights", "fp32: the Pixtral tower is priced in bf16 / fp16 (its RMSNorms' fp32 copies are "
                             "not made in a fp32 run); serve it in bf16")
        if v.num_feature_layers != 1 or v.feature_layer != -1:
            raise FieldError("num_images", f"{images.num_images}: {model.name} takes the Pixtral tower's features from "
                             "another layer than the last (vision_feature_layer), which keeps that layer's output alive; "
                             "priced for vision_feature_layer -1 only")
        return mistral3_activations(model, v, images, batch_size, ctx_tokens, b)
    if isinstance(v, Qwen25VisionTower | Qwen3VisionTower) and b != 2:
        raise FieldError("weights", "fp32: the Qwen vision towers are priced in bf16 / fp16 (their rotary casts to fp32 "
                         "add copies a fp32 run does not make); serve them in bf16")
    if isinstance(v, Qwen25VisionTower):
        return qwen_activations(model, v, images, batch_size, ctx_tokens, b, qwen25_tower_peak_bytes(v, n, images.tokens_per_image))
    if isinstance(v, Qwen3VisionTower):
        if v.num_deepstack_mergers and model.intermediate_size < model.hidden_size:
            raise FieldError("num_images", f"{images.num_images}: Qwen3-VL's DeepStack add into the decoder's hidden states "
                             f"is priced below a layer's MLP moment, which holds for intermediate_size >= hidden_size only "
                             f"({model.intermediate_size} < {model.hidden_size} here)")
        peak = qwen3_tower_peak_bytes(v, n, images.tokens_per_image, v.num_deepstack_in_last_block)
        return qwen_activations(model, v, images, batch_size, ctx_tokens, b, peak)
    name = tower_name(v) if v is not None else "no"
    raise FieldError("num_images", f"{images.num_images}: the {name} tower's prefill activations are not priced yet "
                     f"({_NOT_YET.get(v.kind if v is not None else '', 'not checked against transformers on meta')}; Gemma 3's "
                     "SigLIP, Mllama's, Pixtral and the Qwen ViTs are priced); drop the images to price text-only use")
