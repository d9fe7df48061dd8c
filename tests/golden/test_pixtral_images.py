"""Mistral 3 (Pixtral tower + Mistral3MultiModalProjector) with images (`--images N --image-size WxH`), against
transformers 5.24 on the meta device (issue 13 part 5).

The probe (tests/pixtral_vision_probe.py) feeds what the Pixtral processor hands the model: pixel_values at the
resized size and image_sizes. Asserted: the resize and token count equal transformers' own
get_resize_output_image_size and PixtralProcessor's rows x (columns + 1); the tower's peak (ours == measured beyond
pixel_values) for the published Devstral Small 2 tower cut to 2 layers and to 1 (MLP-bound), an attention-bound one
(ffn 256) and a projector-bound one (text hidden 65,536), on small, oblong, several and a resized 3000x1000 image; the
whole prefill forward with the tower's moment the peak (ours == measured, image_sizes added back); with a decoder
moment the peak, what the images add (measured with images minus measured without) == what ours adds.
Config: devstral-small-2-24b-instruct (tests/fixtures/configs; mistralai/Devstral-Small-2-24B-Instruct-2512).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FIXTURES

from oomplan.families import parse_hf_config
from oomplan.memory.images import pixtral_grid
from oomplan.memory.vision_activations import pixtral_tower_peak_bytes

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pixtral_vision_probe import build, on_gpu_only, ours, prefill_peak, tower_peak  # noqa: E402  (imports torch)

DEVSTRAL_SMALL_2 = json.loads((FIXTURES / "configs" / "devstral-small-2-24b-instruct.json").read_text())


def _raw(vision: dict, text: dict) -> dict:
    raw = json.loads(json.dumps(DEVSTRAL_SMALL_2))
    raw["text_config"].update({"num_hidden_layers": 1} | text)
    raw["vision_config"].update({"num_hidden_layers": 2} | vision)
    return raw


@pytest.mark.parametrize("width, height", [(224, 168), (1540, 1540), (3000, 1000), (1000, 3000), (1, 1), (29, 57),
                                           (1541, 1539), (4000, 3), (800, 600), (1920, 1080)])
def test_grid_equals_the_processor(width, height):
    """transformers' get_resize_output_image_size (the PIL processor's copy: the torchvision one needs torchvision)
    with longest_edge = image_size 1540 and patch 14 x merge 2; PixtralProcessor.replace_image_token's count."""
    from transformers.models.pixtral.image_processing_pil_pixtral import get_resize_output_image_size

    v = parse_hf_config(json.loads(json.dumps(DEVSTRAL_SMALL_2)), "devstral", "test").vision
    g = pixtral_grid(v, width, height)
    h, w = get_resize_output_image_size(np.zeros((height, width, 3)), size=(1540, 1540), patch_size=(28, 28),
                                        input_data_format="channels_last")
    assert (g.height_pixels, g.width_pixels) == (h, w)
    assert (g.patch_rows, g.patch_cols, g.merged_rows, g.merged_cols) == (h // 14, w // 14, h // 28, w // 28)
    assert g.num_tokens == (w // 28 + 1) * (h // 28)


@pytest.mark.parametrize("vision, text", [
    ({}, {}),  # MLP-bound
    ({"num_hidden_layers": 1}, {}),  # one layer: its input is ln_pre's output
    ({"intermediate_size": 256}, {}),  # attention-bound
    ({"num_hidden_layers": 1, "intermediate_size": 256}, {}),
    ({"intermediate_size": 256}, {"hidden_size": 65536}),  # projector-bound
])
def test_tower_peak_equals_meta(vision, text):
    raw = _raw(vision, text)
    model, spec = build(raw), parse_hf_config(raw, "devstral-cut", "test")
    for n, width, height in ((1, 224, 168), (2, 224, 168), (1, 112, 280), (1, 3000, 1000)):
        g = pixtral_grid(spec.vision, width, height)
        assert tower_peak(model, n, g.height_pixels, g.width_pixels) == pixtral_tower_peak_bytes(spec.vision, g, n)


@pytest.mark.parametrize("vision, batch, size, images, ctx", [
    ({}, 1, "1540x1100", 1, 2400),
    ({"intermediate_size": 256}, 2, "900x600", 2, 1600),
])
def test_tower_moment_is_the_measured_peak(vision, batch, size, images, ctx):
    raw = _raw(vision, {"intermediate_size": 2048})
    s = ours(raw, batch, images, size, ctx)
    assert s.activation_bytes == s.vision.encoder_bytes  # nothing is cached before the decoder's layers
    g = pixtral_grid(parse_hf_config(raw, "devstral-cut", "test").vision, *map(int, size.split("x")))
    measured = prefill_peak(build(raw), batch, images, g.height_pixels, g.width_pixels, ctx)
    assert measured + on_gpu_only(batch * images) == s.activation_bytes


@pytest.mark.parametrize("batch, size, images, ctx", [(1, "448x336", 1, 16384), (2, "224x168", 2, 8192)])
def test_what_images_add_to_a_decoder_peak_equals_meta(batch, size, images, ctx):
    raw = _raw({}, {})
    with_images, text_only = ours(raw, batch, images, size, ctx), ours(raw, batch, 0, None, ctx)
    assert with_images.activation_bytes != with_images.vision.encoder_bytes
    assert with_images.kv_cache_bytes == text_only.kv_cache_bytes  # the image tokens are context tokens
    g = pixtral_grid(parse_hf_config(raw, "devstral-cut", "test").vision, *map(int, size.split("x")))
    model = build(raw)
    added = prefill_peak(model, batch, images, g.height_pixels, g.width_pixels, ctx) - prefill_peak(model, batch, 0, 0, 0, ctx)
    assert added + on_gpu_only(batch * images) == with_images.activation_bytes - text_only.activation_bytes
