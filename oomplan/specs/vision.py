"""Vision towers of multimodal decoder LMs (*ForConditionalGeneration): the encoder and its projector.

Their weights sit on the GPU next to the text model (on the first pipeline stage); `--images N`
adds the encoder's prefill activations. Dimensions follow transformers 5.24 (file cited per class).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from oomplan.specs.base import Strict


class _QwenViT(Strict):
    """What Qwen's ViTs share: 3D patches (temporal x spatial), `depth` blocks, a spatial-merge projector."""

    hidden_size: int = Field(ge=1)
    intermediate_size: int = Field(ge=1)
    depth: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    in_channels: int = Field(default=3, ge=1)
    patch_size: int = Field(ge=1)
    temporal_patch_size: int = Field(ge=1)
    spatial_merge_size: int = Field(ge=1)
    out_hidden_size: int = Field(ge=1)


class Qwen25VisionTower(_QwenViT):
    """Qwen2.5-VL's ViT (models/qwen2_5_vl/modeling_qwen2_5_vl.py): Conv3d patch embed without bias,
    `depth` blocks (two RMSNorms, qkv + proj with bias, gated MLP with bias), PatchMerger (RMSNorm,
    two linears over spatial_merge_size**2 patches). Images have a dynamic token count: --image-tokens."""

    kind: Literal["qwen2_5_vl"] = "qwen2_5_vl"


class Qwen3VisionTower(_QwenViT):
    """Qwen3-VL's and Qwen3.5's ViT (models/qwen3_vl/modeling_qwen3_vl.py, models/qwen3_5/modeling_qwen3_5.py):
    Conv3d patch embed with bias, a learned position table (num_position_embeddings), `depth` blocks
    (two LayerNorms, qkv + proj and a plain fc1/fc2 MLP, all with bias), a PatchMerger (LayerNorm over
    one patch, fc1 + fc2) and, in Qwen3-VL, one DeepStack merger per deepstack_visual_indexes entry
    (LayerNorm after the spatial shuffle). Dynamic token count per image: --image-tokens."""

    kind: Literal["qwen3_vl"] = "qwen3_vl"
    num_position_embeddings: int = Field(ge=1)
    num_deepstack_mergers: int = Field(default=0, ge=0)
    num_deepstack_in_last_block: int = Field(default=0, ge=0, description="DeepStack mergers whose block comes before the "
                                             "last one (deepstack_visual_indexes below depth - 1): their outputs are alive in it")


class _Tower(Strict):
    """What the ViTs of Pixtral, SigLIP, Llama 4 and Mllama share: their width, MLP, layers, heads, input channels and
    patch size, and the text decoder's width the projector maps into."""

    hidden_size: int = Field(ge=1)
    intermediate_size: int = Field(ge=1)
    num_layers: int = Field(ge=0)
    num_heads: int = Field(ge=1)
    num_channels: int = Field(default=3, ge=1)
    patch_size: int = Field(ge=1)
    text_hidden_size: int = Field(ge=1)


class _SizedTower(_Tower):
    """A ViT whose images (or tiles) are resized to one image_size."""

    image_size: int = Field(ge=1)

    @property
    def num_patches(self) -> int:
        """Patches of one image or tile."""
        return (self.image_size // self.patch_size) ** 2


class PixtralVisionTower(_Tower):
    """Pixtral (models/pixtral/modeling_pixtral.py PixtralVisionModel: Conv2d without bias, ln_pre, blocks of
    two RMSNorms, bias-free q/k/v/o and a gated MLP) with Mistral 3's projector (models/mistral3/modeling_mistral3.py:
    RMSNorm, PatchMerger over spatial_merge_size**2 patches, linear_1 + linear_2). The patch grid follows each image's
    size (--image-size): rows x columns of merged patches, plus one [IMG_BREAK] / [IMG_END] per row, decoder tokens."""

    kind: Literal["pixtral"] = "pixtral"
    num_layers: int = Field(ge=1)
    spatial_merge_size: int = Field(ge=1)
    num_feature_layers: int = Field(default=1, ge=1)
    feature_layer: int = Field(default=-1, description="vision_feature_layer where it is one index (-1: the last layer's output)")
    projector_bias: bool = False
    image_size: int = Field(default=1024, ge=1, description="vision_config.image_size: the longest edge the rotary table "
                            "covers, which the published processors resize to (preprocessor_config.json size.longest_edge)")


class SiglipVisionTower(_SizedTower):
    """SigLIP (models/siglip/modeling_siglip.py SiglipVisionModel) with Gemma 3's projector
    (models/gemma3/modeling_gemma3.py Gemma3MultiModalProjector: RMSNorm + [vision, text] matrix).
    A fixed `tokens_per_image` (mm_tokens_per_image) per image."""

    kind: Literal["siglip"] = "siglip"
    num_layers: int = Field(ge=1)
    use_head: bool = False  # SigLIP's attention-pooling head (vision_use_head; Gemma 3 ships without)
    tokens_per_image: int = Field(ge=1)


class Llama4VisionTower(_SizedTower):
    """Llama 4 (models/llama4/modeling_llama4.py Llama4VisionModel): an unfold + bias-free linear patch embedding, a
    class token and a learned position table ((image_size // patch_size)**2 + 1 rows), LayerNorms before and after,
    `num_layers` blocks (two LayerNorms, q/k/v/o with bias, fc1/fc2 with bias), the pixel-shuffle adapter
    (Llama4VisionMLP2: fc1 [projector_input_dim, intermediate_size], fc2 [projector_output_dim]**2, no biases) and
    Llama4MultiModalProjector (linear_1 [text hidden, vision_output_dim]). Images are tiled by the processor: a
    dynamic number of tiles per image, so --image-tokens."""

    kind: Literal["llama4"] = "llama4"
    vision_output_dim: int = Field(ge=1)
    projector_input_dim: int = Field(ge=1)
    projector_output_dim: int = Field(ge=1)
    pixel_shuffle_ratio: float = Field(gt=0, le=1)


class MllamaVisionTower(_SizedTower):
    """Llama 3.2 Vision (models/mllama/modeling_mllama.py MllamaVisionModel): Conv2d patch embedding without bias, a
    class token, a gated position embedding ([num_patches + 1, h] plus a tile table of max_num_tiles x (num_patches + 1)
    x h per aspect ratio), gated pre/post tile embeddings (max_num_tiles x h per aspect ratio), LayerNorms before and
    after, `num_layers` local blocks and `num_global_layers` gated global blocks (two LayerNorms, bias-free q/k/v/o,
    fc1/fc2 with bias; two gates each), and MllamaModel's projector (nn.Linear(vision_output_dim, text hidden), bias).
    Every image is padded to max_num_tiles tiles: a fixed tokens_per_image for the cross-attention K/V."""

    kind: Literal["mllama"] = "mllama"
    num_global_layers: int = Field(ge=0)
    vision_output_dim: int = Field(ge=1)
    max_num_tiles: int = Field(ge=1)
    num_aspect_ratios: int = Field(ge=1, description="len(supported_aspect_ratios): the tile embeddings have one more row")

    @property
    def num_patches(self) -> int:
        """Tokens of one tile, the class token included."""
        return (self.image_size // self.patch_size) ** 2 + 1

    @property
    def tokens_per_image(self) -> int:
        """Cross-attention tokens per image (MllamaForConditionalGeneration._prepare_static_cache)."""
        return self.max_num_tiles * self.num_patches


VisionTower = Annotated[Qwen25VisionTower | Qwen3VisionTower | PixtralVisionTower | SiglipVisionTower | Llama4VisionTower
                        | MllamaVisionTower,
                        Field(discriminator="kind")]
