"""Qwen2.5-VL with images (`--images N --image-tokens T`), against transformers 5.24 on the meta device (issue 13 part 5).

The probe (tests/qwen_vision_probe.py) feeds what the processor and generate() hand the model, M-RoPE position ids
included. Asserted: the tower's peak (ours == measured beyond pixel_values; cu_seqlens and cu_window_seqlens, CPU
tensors in the probe, added back, the latter at our bound of one window per token) for a rotary-bound tower (the
published 7B one, cut to 4 blocks), an MLP-bound and a merger-bound one, on square, oblong and several images (the
peak does not depend on the grid's shape); the whole prefill forward with the tower's moment the peak (ours ==
measured, byte for byte); with a decoder moment the peak, what the images add (measured with images minus measured
without) == what ours adds.
"""
from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from oomplan.families import parse_hf_config
from oomplan.memory.vision_activations import qwen25_tower_peak_bytes

pytest.importorskip("torch")
pytest.importorskip("transformers")

from qwen_vision_probe import build, on_gpu_only, ours, prefill_peak, tower_peak  # noqa: E402  (imports torch)

QWEN25_VL_7B = json.loads((FIXTURES / "configs" / "qwen2.5-vl-7b-instruct.json").read_text())
MODULE = "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl"


def _raw(vision: dict, text: dict) -> dict:
    raw = json.loads(json.dumps(QWEN25_VL_7B))
    raw.update({"num_hidden_layers": 1} | text)
    raw["vision_config"].update({"depth": 4, "fullatt_block_indexes": [1]} | vision)
    return raw


def _build(raw: dict):
    return build(raw, "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", MODULE)


@pytest.mark.parametrize("vision", [{}, {"intermediate_size": 8000},
                                    {"hidden_size": 128, "num_heads": 2, "intermediate_size": 256, "out_hidden_size": 8192}])
def test_tower_peak_equals_meta(vision):
    raw = _raw(vision, {})
    model, spec = _build(raw), parse_hf_config(raw, "qwen2.5-vl-cut", "test")
    for grids in ([[1, 16, 16]], [[1, 8, 32]], [[1, 12, 20]] * 3):
        n, tokens = len(grids), grids[0][1] * grids[0][2] // 4
        measured = tower_peak(model, grids) + on_gpu_only(n, n * tokens) - 8 * 3 * n  # image_grid_thw is get_image_features' input
        assert measured == qwen25_tower_peak_bytes(spec.vision, n, tokens)


@pytest.mark.parametrize("vision, batch, grid, images, ctx", [
    ({}, 1, [1, 64, 64], 1, 1200),
    ({"intermediate_size": 8000}, 2, [1, 32, 48], 2, 1600),
])
def test_tower_moment_is_the_measured_peak(vision, batch, grid, images, ctx):
    raw = _raw(vision, {"intermediate_size": 2048})
    tokens, n = grid[1] * grid[2] // 4, batch * images
    s = ours(raw, batch, images, tokens, ctx)
    assert s.activation_bytes == s.vision.encoder_bytes  # nothing is cached before the decoder's layers
    assert prefill_peak(_build(raw), batch, grid, images, ctx) + on_gpu_only(n, n * tokens) == s.activation_bytes


@pytest.mark.parametrize("batch, grid, images, ctx", [(1, [1, 16, 16], 1, 16384), (2, [1, 16, 24], 1, 8192)])
def test_what_images_add_to_a_decoder_peak_equals_meta(batch, grid, images, ctx):
    raw = _raw({}, {})
    tokens = grid[1] * grid[2] // 4
    with_images, text_only = ours(raw, batch, images, tokens, ctx), ours(raw, batch, 0, None, ctx)
    assert with_images.activation_bytes != with_images.vision.encoder_bytes
    assert with_images.kv_cache_bytes == text_only.kv_cache_bytes  # the image tokens are context tokens
    model = _build(raw)
    added = prefill_peak(model, batch, grid, images, ctx) - prefill_peak(model, batch, grid, 0, ctx)
    assert added + 8 * 3 * batch * images == with_images.activation_bytes - text_only.activation_bytes  # + image_grid_thw


@pytest.mark.parametrize("batch, ctx", [(1, 16384), (2, 8192)])
def test_text_only_generate_inputs_equal_meta(batch, ctx):
    """Without images generate() still passes mm_token_type_ids and the 4-row position ids (40 bytes a token) and the
    text model makes no arange: measured as generate() calls it minus measured with input_ids alone == what ours adds
    to the text decoder's peak (524,288 bytes at 1 x 16,384: 40 x 16,384 - 8 x 16,384)."""
    raw = _raw({}, {})
    s, model = ours(raw, batch, 0, None, ctx), _build(raw)
    added = prefill_peak(model, batch, [1, 16, 16], 0, ctx) - prefill_peak(model, batch, [1, 16, 16], 0, ctx, generate_inputs=False)
    assert added == s.activation_bytes - s.activations.peak_bytes == 40 * batch * ctx - 8 * ctx
