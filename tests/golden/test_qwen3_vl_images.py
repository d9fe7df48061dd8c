"""Qwen3-VL (DeepStack) and Qwen3.5 (a Qwen3-VL-style ViT before a Gated DeltaNet hybrid) with images
(`--images N --image-tokens T`), against transformers 5.24 on the meta device (issue 13 part 5).

The probe (tests/qwen_vision_probe.py) feeds what the processor and generate() hand the model, M-RoPE position ids
included. Asserted: the tower's peak (ours == measured beyond pixel_values; cu_seqlens, a CPU tensor in the probe,
added back) for rotary-bound towers with DeepStack mergers before and at the last block, an MLP-bound and a
merger-bound one, on square and several oblong images; the whole prefill forward with the tower's moment the peak
(ours == measured, byte for byte); with a decoder moment the peak, what the images add (measured with images minus
measured without) == what ours adds, Qwen3-VL's DeepStack copies and the loop's extra hidden state included.
Configs: qwen3-vl-4b-instruct, Qwen3-VL-30B-A3B (MoE decoder) and Qwen3.5-27B (tests/fixtures/configs), tower and decoder cut to a few layers.
"""
from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from oomplan.families import parse_hf_config
from oomplan.memory.vision_activations import qwen3_tower_peak_bytes

pytest.importorskip("torch")
pytest.importorskip("transformers")

from qwen_vision_probe import build, on_gpu_only, ours, prefill_peak, tower_peak  # noqa: E402  (imports torch)

QWEN3_VL_4B = json.loads((FIXTURES / "configs" / "families" / "qwen3-vl-4b-instruct.json").read_text())
QWEN3_VL_30B_A3B = json.loads((FIXTURES / "configs" / "qwen3-vl-30b-a3b-instruct.json").read_text())
QWEN3_5_27B = json.loads((FIXTURES / "configs" / "qwen3.5-27b.json").read_text())
VL = ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "transformers.models.qwen3_vl.modeling_qwen3_vl")
VL_MOE = ("Qwen3VLMoeConfig", "Qwen3VLMoeForConditionalGeneration", "transformers.models.qwen3_vl_moe.modeling_qwen3_vl_moe")
Q35 = ("Qwen3_5Config", "Qwen3_5ForConditionalGeneration", "transformers.models.qwen3_5.modeling_qwen3_5")


def _raw(base: dict, vision: dict, text: dict) -> dict:
    raw = json.loads(json.dumps(base))
    raw["vision_config"].update(vision)
    t = raw["text_config"]
    t.update(text)
    if "layer_types" in t:
        t["layer_types"] = t["layer_types"][:t["num_hidden_layers"]]
    return raw


@pytest.mark.parametrize("vision", [
    {"depth": 4, "deepstack_visual_indexes": [1]},
    {"depth": 4, "deepstack_visual_indexes": [0, 3]},  # a DeepStack merger after the last block
    {"depth": 3, "deepstack_visual_indexes": [0, 1], "intermediate_size": 16384},  # MLP-bound
    {"depth": 2, "deepstack_visual_indexes": [0], "hidden_size": 128, "num_heads": 2, "intermediate_size": 256,
     "out_hidden_size": 8192},  # merger-bound
])
def test_qwen3_vl_tower_peak_equals_meta(vision):
    raw = _raw(QWEN3_VL_4B, vision, {"num_hidden_layers": 1})
    model, spec = build(raw, *VL), parse_hf_config(raw, "qwen3-vl-cut", "test")
    for grids in ([[1, 16, 16]], [[1, 8, 12]] * 3):
        n, tokens = len(grids), grids[0][1] * grids[0][2] // 4
        measured = tower_peak(model, grids) + on_gpu_only(n) - 8 * 3 * n  # image_grid_thw is get_image_features' input
        assert measured == qwen3_tower_peak_bytes(spec.vision, n, tokens, spec.vision.num_deepstack_in_last_block)


@pytest.mark.parametrize("base, classes, vision, text, batch, grid, images, ctx", [
    (QWEN3_VL_4B, VL, {"depth": 4, "deepstack_visual_indexes": [1, 2]}, {"num_hidden_layers": 1, "intermediate_size": 2560},
     1, [1, 64, 64], 1, 1200),
    (QWEN3_VL_4B, VL, {"depth": 4, "deepstack_visual_indexes": [1, 2]}, {"num_hidden_layers": 1, "intermediate_size": 2560},
     2, [1, 32, 48], 2, 1600),
    (QWEN3_5_27B, Q35, {"depth": 3}, {"num_hidden_layers": 1, "intermediate_size": 2048, "layer_types": ["full_attention"]},
     1, [1, 64, 64], 1, 1200),
])
def test_tower_moment_is_the_measured_peak(base, classes, vision, text, batch, grid, images, ctx):
    raw = _raw(base, vision, text)
    tokens, n = grid[1] * grid[2] // 4, batch * images
    s = ours(raw, batch, images, tokens, ctx)
    assert s.activation_bytes == s.vision.encoder_bytes  # nothing is cached before the decoder's layers
    assert prefill_peak(build(raw, *classes), batch, grid, images, ctx) + on_gpu_only(n) == s.activation_bytes


@pytest.mark.parametrize("base, classes, vision, text, batch, grid, ctx", [
    (QWEN3_VL_4B, VL, {"depth": 4, "deepstack_visual_indexes": [1, 2]}, {"num_hidden_layers": 3}, 1, [1, 16, 16], 16384),
    (QWEN3_VL_4B, VL, {"depth": 4, "deepstack_visual_indexes": [1, 2]}, {"num_hidden_layers": 3}, 2, [1, 16, 24], 8192),
    (QWEN3_VL_30B_A3B, VL_MOE, {"depth": 4, "deepstack_visual_indexes": [1, 2]}, {"num_hidden_layers": 3}, 1, [1, 16, 16], 8192),
    (QWEN3_5_27B, Q35, {"depth": 3}, {"num_hidden_layers": 4}, 1, [1, 16, 16], 8192),
    (QWEN3_5_27B, Q35, {"depth": 3}, {"num_hidden_layers": 4}, 2, [1, 16, 24], 4096),
])
def test_what_images_add_to_a_decoder_peak_equals_meta(base, classes, vision, text, batch, grid, ctx):
    raw = _raw(base, vision, text)
    tokens = grid[1] * grid[2] // 4
    with_images, text_only = ours(raw, batch, 1, tokens, ctx), ours(raw, batch, 0, None, ctx)
    assert with_images.activation_bytes != with_images.vision.encoder_bytes
    assert with_images.kv_cache_bytes == text_only.kv_cache_bytes  # the image tokens are context tokens
    model = build(raw, *classes)
    added = prefill_peak(model, batch, grid, 1, ctx) - prefill_peak(model, batch, grid, 0, ctx)
    assert added + 8 * 3 * batch == with_images.activation_bytes - text_only.activation_bytes  # + image_grid_thw


@pytest.mark.parametrize("base, classes, text, batch, ctx", [
    (QWEN3_VL_4B, VL, {"num_hidden_layers": 2}, 1, 8192),
    (QWEN3_5_27B, Q35, {"num_hidden_layers": 4}, 2, 4096),
])
def test_text_only_generate_inputs_equal_meta(base, classes, text, batch, ctx):
    """Without images generate() still passes mm_token_type_ids and the 4-row position ids (40 bytes a token), and
    the text model makes no arange: measured as generate() calls it minus measured with input_ids alone == ours."""
    raw = _raw(base, {"depth": 2, "deepstack_visual_indexes": [0]} if classes is VL else {"depth": 2}, text)
    s, model = ours(raw, batch, 0, None, ctx), build(raw, *classes)
    added = prefill_peak(model, batch, [1, 16, 16], 0, ctx) - prefill_peak(model, batch, [1, 16, 16], 0, ctx, generate_inputs=False)
    assert added == s.activation_bytes - s.activations.peak_bytes == 40 * batch * ctx - 8 * ctx
