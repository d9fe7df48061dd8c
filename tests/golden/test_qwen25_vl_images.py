"""Qwen2.5-VL with images (`--images N --image-tokens T`), against transformers 5.24 on the meta device (issue 13 part 5).

The probe builds what the processor and generate() hand the model: pixel_values [S, 3 x 2 x 14 x 14] (S = tokens x 4
patches an image), image_grid_thw (int64 [images, 3]), mm_token_type_ids (int64 [B, ctx]) and the 4-row M-RoPE
position_ids (int64 [4, B, ctx], which generate() builds with get_rope_index before the forward; get_rope_index reads
token values, which meta tensors do not have, so the probe passes them as generate() does). The tower's grid helpers
(transformers/vision_utils.py) read grid_thw values too: the probe keeps image_grid_thw on the CPU, so cu_seqlens and
cu_window_seqlens are CPU tensors in the probe (on a GPU they are int32 device tensors, 4 x (images + 1) and
4 x (windows + 1) bytes, which our figure prices; the windows at their bound of one per token) and the (h, w) position
ids are moved to meta where the tower computes them, as on a GPU. The window index is a CPU tensor in transformers too.
get_placeholder_mask's token-count check is data-dependent (refused on meta): the stand-in returns the same two masks.

Asserted: the tower's peak (ours == measured beyond pixel_values) for a rotary-bound tower (the published 7B one, cut to
4 blocks), an MLP-bound and a merger-bound one, on square, oblong and several images (the peak does not depend on the
grid's shape); the whole prefill forward with the tower's moment the peak (ours == measured, byte for byte); with a
decoder moment the peak, what the images add (measured with images minus measured without) == what ours adds.
"""
from __future__ import annotations

import contextlib
import json
import warnings

import pytest
from conftest import FIXTURES

from oomplan.families import parse_hf_config
from oomplan.memory.budget import stage_budget
from oomplan.memory.vision_activations import qwen25_tower_peak_bytes
from oomplan.profiles import load_gpu
from oomplan.specs.plan import Plan, Workload

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

QWEN25_VL_7B = json.loads((FIXTURES / "configs" / "qwen2.5-vl-7b-instruct.json").read_text())
PATCH_VALUES = 3 * 2 * 14 * 14  # in_channels x temporal_patch_size x patch_size**2 per patch


def _raw(vision: dict, text: dict) -> dict:
    raw = json.loads(json.dumps(QWEN25_VL_7B))
    raw.update({"num_hidden_layers": 1} | text)
    raw["vision_config"].update({"depth": 4, "fullatt_block_indexes": [1]} | vision)
    return raw


def _build(raw: dict):
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype", "architectures")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.Qwen2_5_VLConfig(**kw)
        with torch.device("meta"):
            model = transformers.Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    image, video = cfg.image_token_id, cfg.video_token_id
    model.model.get_placeholder_mask = lambda input_ids, inputs_embeds, image_features=None, video_features=None: (
        (input_ids == image).unsqueeze(-1), (input_ids == video).unsqueeze(-1))
    return model


@contextlib.contextmanager
def _position_ids_on_meta():
    """The tower's (h, w) position ids, computed from the CPU grid and moved to meta inside the tower's forward."""
    import transformers.models.qwen2_5_vl.modeling_qwen2_5_vl as modeling

    original = modeling.get_vision_position_ids
    modeling.get_vision_position_ids = lambda grid, merge, **kw: original(grid.cpu(), merge).to("meta")
    try:
        yield
    finally:
        modeling.get_vision_position_ids = original


def _peak(model, make_inputs, call) -> int:
    """Live bytes at the peak of `call(**inputs)`, weights excluded, the inputs included (made under tracking)."""
    from oomplan.probe.gpu_kernels import GpuKernelMode
    from oomplan.probe.tracker import StorageTracker

    tracker = StorageTracker(device_type="meta")
    tracker.register_existing([*model.parameters(), *model.buffers()])
    with torch.no_grad(), tracker, GpuKernelMode(), _position_ids_on_meta():
        inputs = make_inputs()
        tracker.reset_peak()
        out = call(**inputs)
        del out
        return tracker.peak_bytes - tracker.preexisting_bytes


def _on_gpu_only(num_images: int, tokens: int) -> int:
    """What the probe keeps on the CPU and a GPU holds: image_grid_thw, cu_seqlens, cu_window_seqlens at its bound."""
    return 8 * 3 * num_images + 4 * (num_images + 1) + 4 * (num_images * tokens + 1)


@pytest.mark.parametrize("vision", [{}, {"intermediate_size": 8000},
                                    {"hidden_size": 128, "num_heads": 2, "intermediate_size": 256, "out_hidden_size": 8192}])
def test_tower_peak_equals_meta(vision):
    raw = _raw(vision, {})
    model, spec = _build(raw), parse_hf_config(raw, "qwen2.5-vl-cut", "test")
    for grids in ([[1, 16, 16]], [[1, 8, 32]], [[1, 12, 20]] * 3):
        n, tokens = len(grids), grids[0][1] * grids[0][2] // 4
        s = n * tokens * 4

        def inputs(s=s, grids=grids):
            return {"pixel_values": torch.zeros(s, PATCH_VALUES, dtype=torch.bfloat16, device="meta"), "image_grid_thw": torch.tensor(grids)}
        measured = _peak(model, inputs, model.model.get_image_features) - s * PATCH_VALUES * 2
        assert measured + _on_gpu_only(n, tokens) - 8 * 3 * n == qwen25_tower_peak_bytes(spec.vision, n, tokens)


def _prefill(model, batch: int, grid: list[int], images: int, ctx: int) -> int:
    cache = transformers.DynamicCache(config=model.config)
    s = batch * images * grid[1] * grid[2]

    def inputs():
        d = {"input_ids": torch.zeros(batch, ctx, dtype=torch.long, device="meta")}
        if images:
            d |= {"pixel_values": torch.zeros(s, PATCH_VALUES, dtype=torch.bfloat16, device="meta"),
                  "image_grid_thw": torch.tensor([grid] * batch * images),
                  "mm_token_type_ids": torch.zeros(batch, ctx, dtype=torch.long, device="meta"),
                  "position_ids": torch.zeros(4, batch, ctx, dtype=torch.long, device="meta")}
        return d
    return _peak(model, inputs, lambda **k: model(**k, cache=cache, use_cache=True, logits_to_keep=1))


def _ours(raw: dict, batch: int, images: int, tokens: int | None, ctx: int):
    spec = parse_hf_config(raw, "qwen2.5-vl-cut", "test")
    return stage_budget(spec, load_gpu("h100"), Workload(ctx_tokens=ctx, batch_size=batch, num_images=images, image_tokens=tokens),
                        Plan(paged=False), 0)


@pytest.mark.parametrize("vision, batch, grid, images, ctx", [
    ({}, 1, [1, 64, 64], 1, 1200),
    ({"intermediate_size": 8000}, 2, [1, 32, 48], 2, 1600),
])
def test_tower_moment_is_the_measured_peak(vision, batch, grid, images, ctx):
    raw = _raw(vision, {"intermediate_size": 2048})
    tokens = grid[1] * grid[2] // 4
    s = _ours(raw, batch, images, tokens, ctx)
    assert s.activation_bytes == s.vision.encoder_bytes  # nothing is cached before the decoder's layers
    assert _prefill(_build(raw), batch, grid, images, ctx) + _on_gpu_only(batch * images, tokens) == s.activation_bytes


@pytest.mark.parametrize("batch, grid, images, ctx", [(1, [1, 16, 16], 1, 16384), (2, [1, 16, 24], 1, 8192)])
def test_what_images_add_to_a_decoder_peak_equals_meta(batch, grid, images, ctx):
    raw = _raw({}, {})
    tokens = grid[1] * grid[2] // 4
    with_images, text_only = _ours(raw, batch, images, tokens, ctx), _ours(raw, batch, 0, None, ctx)
    assert with_images.activation_bytes != with_images.vision.encoder_bytes
    assert with_images.kv_cache_bytes == text_only.kv_cache_bytes  # the image tokens are context tokens
    model = _build(raw)
    added = _prefill(model, batch, grid, images, ctx) - _prefill(model, batch, grid, 0, ctx)
    assert added + 8 * 3 * batch * images == with_images.activation_bytes - text_only.activation_bytes
