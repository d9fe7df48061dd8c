"""Images of a workload (`--images N`, `--image-tokens T`): how many tokens each image brings, and where they go.

Where the count is fixed by the config it is read from there; where the processor decides it per image (its size,
its tiles) the user gives it, and nothing is guessed:
  * Gemma 3 (SigLIP): mm_tokens_per_image decoder tokens per image (Gemma3MultiModalProjector pools the
    (image_size / patch_size)**2 patches to that many; transformers 5.24 models/gemma3/modeling_gemma3.py).
  * Llama 3.2 Vision (Mllama): no decoder tokens but one <|image|>; its cross-attention layers read
    max_num_tiles x ((image_size // patch_size)**2 + 1) vision tokens per image (memory/vision_kv.py).
  * Mistral 3 / Pixtral: the image's size (--image-size WxH) fixes its patch grid, as PixtralImageProcessor resizes
    it (pixtral_grid), and the tokens: rows x columns of merged patches plus one [IMG_BREAK] / [IMG_END] per row;
  * Qwen2.5-VL, Qwen3-VL, Qwen3.5 (pixels / (patch_size x spatial_merge_size)**2 tokens), Llama 4 (a dynamic number
    of tiles): --image-tokens.
The decoder tokens of the images are part of the context (`--ctx` counts the prompt with its image tokens, as
input_ids and vLLM's max_model_len do), so the KV cache and the decoder's prefill are priced at ctx_tokens already.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from oomplan.errors import FieldError
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Workload
from oomplan.specs.vision import Llama4VisionTower, MllamaVisionTower, PixtralVisionTower, SiglipVisionTower, VisionTower

# Towers whose per-image token count the processor decides (image size, tiles): `--image-tokens` names it.
DYNAMIC_TOKENS = {
    "qwen2_5_vl": "ceil(height / 28) x ceil(width / 28) after the processor's resize (patch 14 x merge 2)",
    "qwen3_vl": "ceil(height / 32) x ceil(width / 32) after the processor's resize (patch 16 x merge 2)",
    "llama4": "tiles x (image_size / patch_size)**2 x pixel_shuffle_ratio**2, plus the global tile's when tiled",
}


@dataclass(frozen=True)
class PixtralGrid:
    """One image after PixtralImageProcessor's resize: its patch rows and columns (before the spatial merge)."""

    height_pixels: int
    width_pixels: int
    patch_rows: int
    patch_cols: int
    merged_rows: int
    merged_cols: int

    @property
    def num_patches(self) -> int:
        return self.patch_rows * self.patch_cols

    @property
    def num_merged(self) -> int:
        """The projector's output rows: one per merged patch ([IMG] tokens)."""
        return self.merged_rows * self.merged_cols

    @property
    def num_tokens(self) -> int:
        """Decoder tokens: the [IMG] tokens plus one [IMG_BREAK] (the last: [IMG_END]) per row."""
        return self.merged_rows * (self.merged_cols + 1)


def pixtral_grid(v: PixtralVisionTower, width: int, height: int) -> PixtralGrid:
    """PixtralImageProcessor.resize (models/pixtral/image_processing_pixtral.py get_resize_output_image_size, 5.24.0)
    with longest_edge = vision_config.image_size and the processor's patch size patch_size x spatial_merge_size
    (PixtralProcessor._process_images): scaled down (floor) to fit the longest edge, then each side up to whole merged
    patches; PixtralProcessor.replace_image_token's rows of [IMG] x columns + [IMG_BREAK]. A FieldError on image_size
    where a side would have no patch left."""
    edge, p = v.image_size, v.patch_size * v.spatial_merge_size
    ratio = max(height / edge, width / edge)
    if ratio > 1:
        height, width = int(math.floor(height / ratio)), int(math.floor(width / ratio))
    rows, cols = (height - 1) // p + 1, (width - 1) // p + 1
    if rows < 1 or cols < 1:
        raise FieldError("image_size", f"the image resized to fit {edge} pixels is {width}x{height}: a side has no patch "
                         "left; give a less elongated image")
    m = v.spatial_merge_size
    return PixtralGrid(rows * p, cols * p, rows * m, cols * m, rows, cols)


@dataclass(frozen=True)
class ImageLoad:
    """The images of one sequence."""

    num_images: int
    tokens_per_image: int  # decoder tokens per image; Mllama: the vision tokens its cross-attention layers cache
    source: str  # where tokens_per_image comes from, for the output
    cross_attention: bool  # Mllama: the tokens go to the cross-attention K/V, not the context
    pixtral: PixtralGrid | None = None  # Pixtral: every image's resized grid (--image-size)

    @property
    def context_tokens(self) -> int:
        """Tokens of one sequence's context taken by its images (Mllama: one <|image|> token each)."""
        return self.num_images * (1 if self.cross_attention else self.tokens_per_image)


def tower_name(v: VisionTower) -> str:
    return {"siglip": "SigLIP", "mllama": "Mllama", "llama4": "Llama 4", "pixtral": "Pixtral", "qwen2_5_vl": "Qwen2.5-VL",
            "qwen3_vl": "Qwen3-VL"}[v.kind]


def fixed_tokens_per_image(v: VisionTower) -> tuple[int, str] | None:
    """(tokens, where they come from) for towers whose count the config fixes; None where it is dynamic."""
    if isinstance(v, SiglipVisionTower):
        return v.tokens_per_image, "mm_tokens_per_image"
    if isinstance(v, MllamaVisionTower):
        return v.tokens_per_image, f"max_num_tiles {v.max_num_tiles} x {v.num_patches} patches"
    return None


def llama4_tile_tokens(v: Llama4VisionTower) -> int:
    """Decoder tokens of one Llama 4 tile: (image_size / patch_size)**2 patches, pixel-shuffled (modeling_llama4.py
    Llama4VisionPixelShuffleMLP: each side x pixel_shuffle_ratio)."""
    return round(v.num_patches * v.pixel_shuffle_ratio**2)


def image_load(model: ModelSpec, workload: Workload, check_context: bool = True) -> ImageLoad | None:
    """The workload's images for this model; None without images. A FieldError (num_images / image_tokens) where
    the model has no tower, where its count is dynamic and not given, where a given count contradicts the config, or
    (check_context) where the images need more tokens than the context has; the searches probe shorter contexts."""
    n, given, size = workload.num_images, workload.image_tokens, workload.image_width_height
    if not n:
        if given is not None:
            raise FieldError("image_tokens", f"{given} tokens per image, but no images: give the number of images too")
        if size is not None:
            raise FieldError("image_size", f"{size[0]}x{size[1]}, but no images: give the number of images too")
        return None
    v = model.vision
    if v is None:
        raise FieldError("num_images", f"{n}: {model.name} is a text-only model (no vision tower in its config); "
                         "images cannot be priced for it")
    if isinstance(v, PixtralVisionTower):
        return _checked(workload, _pixtral_load(model.name, v, n, given, size), check_context)
    if size is not None:  # Qwen's smart_resize reads min_pixels / max_pixels from preprocessor_config.json, not config.json
        raise FieldError("image_size", f"{size[0]}x{size[1]}: the image size is read for Pixtral (Mistral 3) only; "
                         f"{model.name}'s {tower_name(v)} tower is priced by "
                         + ("its fixed count per image; leave it out" if fixed_tokens_per_image(v) else
                            "--image-tokens (the decoder tokens per image); give that instead"
                            + (" (its processor's resize bounds, min_pixels / max_pixels, are in preprocessor_config.json, "
                               "not in config.json)" if v.kind in ("qwen2_5_vl", "qwen3_vl") else "")))
    fixed = fixed_tokens_per_image(v)
    if fixed is not None:
        tokens, source = fixed
        if given is not None and given != tokens:
            raise FieldError("image_tokens", f"{given}: {model.name}'s {tower_name(v)} tower gives every image {tokens} tokens "
                             f"({source}); leave the count out")
        return _checked(workload, ImageLoad(n, tokens, source, isinstance(v, MllamaVisionTower)), check_context)
    if given is None:
        hint = DYNAMIC_TOKENS[v.kind]
        if isinstance(v, Llama4VisionTower):
            hint = f"{hint}; one tile is {llama4_tile_tokens(v)} tokens"
        raise FieldError("image_tokens", f"{model.name}'s {tower_name(v)} tower gives each image a number of tokens that "
                         f"depends on its size ({hint}): give the decoder tokens per image")
    return _checked(workload, ImageLoad(n, given, "--image-tokens", False), check_context)


def _pixtral_load(name: str, v: PixtralVisionTower, n: int, given: int | None, size: tuple[int, int] | None) -> ImageLoad:
    """Pixtral's images: the patch grid from --image-size (the token count alone does not fix it)."""
    if size is None:
        hint = f"; {given} tokens fit several grids" if given is not None else ""
        raise FieldError("image_size", f"none given: {name}'s Pixtral tower runs on a patch grid that follows each image's "
                         f"width and height (rows x columns of merged patches + one [IMG_BREAK] per row are its tokens{hint}): "
                         "give --image-size WIDTHxHEIGHT (plan files: workload.image_size)")
    grid = pixtral_grid(v, *size)
    if given is not None and given != grid.num_tokens:
        raise FieldError("image_tokens", f"{given}: a {size[0]}x{size[1]} image is {grid.num_tokens} tokens for {name} "
                         f"({grid.merged_rows} rows x ({grid.merged_cols} + 1)); leave the count out")
    source = (f"{size[0]}x{size[1]} resized to {grid.width_pixels}x{grid.height_pixels} (longest edge {v.image_size}): "
              f"{grid.merged_rows} rows x ({grid.merged_cols} + 1)")
    return ImageLoad(n, grid.num_tokens, source, False, grid)


def _checked(workload: Workload, load: ImageLoad, check_context: bool) -> ImageLoad:
    if check_context and load.context_tokens > workload.ctx_tokens:
        raise FieldError("num_images", f"{load.num_images} images x {load.tokens_per_image if not load.cross_attention else 1} "
                         f"tokens = {load.context_tokens} tokens, more than the context of {workload.ctx_tokens} tokens that "
                         "holds them (the context counts the prompt with its image tokens)")
    return load


def refuse_images_with_engine(workload: Workload) -> None:
    """The engines' own budgets (--engine) are text-only: images are priced with transformers (--engine hf)."""
    if workload.num_images and workload.engine != "hf":
        raise FieldError("num_images", f"{workload.num_images}: images are priced for transformers (--engine hf) only; "
                         f"the {workload.engine} engine's encoder cache and profiling run are not modelled")

