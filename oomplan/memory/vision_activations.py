"""The vision tower's prefill activations (`--images N`): the encoder moment, and what it leaves alive.

transformers runs the tower once, in the prefill forward, on every image of the batch at once
(Gemma3Model.forward: inputs_embeds = embed_tokens(ids), then get_image_features(pixel_values), then
masked_scatter into inputs_embeds; transformers 5.24 models/gemma3/modeling_gemma3.py). Two things follow:
  * the encoder moment: pixel_values, the tower's own peak, and the text embeddings [B, ctx, h] already made
    (with input_ids and the processor's token_type_ids), on the first pipeline stage;
  * what stays alive through the decoder's prefill, the logits and the first decode step: pixel_values
    (generate() keeps them in model_kwargs), the tower's outputs (the model output carries them:
    Gemma3ModelOutputWithPast.image_hidden_states) and the placeholder mask, added to every decoder moment
    of the first stage (an upper bound past the first decode step, when generate() has dropped the outputs).
pixel_values are priced in the activation dtype (the processor's fp32 tensor is cast when moved to the model).
Each formula is checked against the live bytes of a meta-device run of the tower (tests/golden/test_vision_activations.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.errors import FieldError
from oomplan.memory.activations import ActivationBudget, dims, mask_bytes
from oomplan.memory.images import ImageLoad, tower_name
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.specs.vision import SiglipVisionTower, VisionTower
from oomplan.units import INT64


@dataclass(frozen=True)
class VisionActivations:
    num_images: int  # in the batch: batch x images per sequence
    encoder_bytes: int  # the tower's moment: pixels + its own peak + the text embeddings already made
    held_bytes: int  # alive through the decoder prefill, logits and first decode step: pixels + the tower's outputs
    prefill_extra_bytes: int = 0  # the decoder's prefill only: masks and ids the images add (Gemma 3's token_type_ids)

    def peak(self, acts: ActivationBudget) -> int:
        """The first stage's activation peak: the encoder moment, or a decoder moment with what the images keep alive."""
        if not self.num_images:
            return acts.peak_bytes
        decoder = max(acts.prefill_bytes + self.prefill_extra_bytes, acts.logits_bytes, acts.decode_step_bytes)
        return max(decoder + self.held_bytes, self.encoder_bytes)


NO_VISION = VisionActivations(0, 0, 0)


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


def _pixels_bytes(v: SiglipVisionTower, num_images: int, b: float) -> int:
    return int(num_images * v.num_channels * v.image_size**2 * b)


def gemma3_mask_extra_bytes(model: ModelSpec, plan: Plan, batch_size: int, ctx_tokens: int) -> int:
    """Gemma 3 with images: the processor's token_type_ids make Gemma3Model.forward build its masks with
    create_masks_for_vision_model (image tokens attend bidirectionally within their image): an or-mask, so SDPA's
    is_causal skip is off and each attention kind (full, sliding) gets a bool [B, 1, q, kv] mask, batch-materialised,
    in place of the text-only ones (memory/activations.py mask_bytes); plus token_type_ids and the block ids (int64
    [B, ctx] each). Fused attention only; eager already materialises a [B, 1, q, kv] mask per kind."""
    q_len = min(ctx_tokens, plan.prefill_chunk_tokens or ctx_tokens)
    ids = 2 * INT64 * batch_size * ctx_tokens
    if plan.attention == "eager":
        return ids
    kinds = int(model.num_sliding_layers < model.num_layers) + int(bool(model.num_sliding_layers))
    return ids + kinds * batch_size * q_len * ctx_tokens - mask_bytes(model, plan, dims(model, plan, 1), batch_size, q_len, ctx_tokens)


def vision_activations(model: ModelSpec, plan: Plan, images: ImageLoad | None, batch_size: int, ctx_tokens: int,
                       b: float) -> VisionActivations:
    """The tower's moment and held bytes for `batch_size` sequences of `images`; NO_VISION without images.
    A tower whose run is not priced yet is refused (FieldError on num_images), never guessed."""
    if images is None:
        return NO_VISION
    v: VisionTower | None = model.vision
    n = batch_size * images.num_images
    if not isinstance(v, SiglipVisionTower):
        name = tower_name(v) if v is not None else "no"
        raise FieldError("num_images", f"{images.num_images}: the {name} tower's prefill activations are not priced yet "
                         "(Gemma 3's SigLIP is); drop the images to price text-only use")
    pixels = _pixels_bytes(v, n, b)
    text = int(batch_size * ctx_tokens * (model.hidden_size * b + 2 * INT64))  # inputs_embeds, input_ids and token_type_ids
    # the tower's last_hidden_state [n, patches, h] and pooled features [n, tokens, text h] (mm_encoder_outputs), and the
    # bool special_image_mask [B, ctx] (Gemma3Model.forward keeps both locals through the language model's call)
    outputs = int(n * (v.num_patches * v.hidden_size + images.tokens_per_image * v.text_hidden_size) * b) + batch_size * ctx_tokens
    return VisionActivations(n, pixels + siglip_encoder_peak_bytes(v, n, b) + text, pixels + outputs,
                             gemma3_mask_extra_bytes(model, plan, batch_size, ctx_tokens))
