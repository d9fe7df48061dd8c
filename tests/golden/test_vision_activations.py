"""Gemma 3's SigLIP tower with images (`--images`), against transformers 5.24 on the meta device (issue 13 part 5).

The tower's peak: our siglip_encoder_peak_bytes == the live bytes of get_image_features at two image counts (beyond
pixel_values), for an MLP-bound tower (the published SigLIP: 1152 / 4304) and an attention-bound one, 1 and 3 layers.
The whole prefill forward of Gemma3ForConditionalGeneration (input_ids with pixel_values and the processor's
token_type_ids, into a DynamicCache): with the tower's moment the peak, our activations equal the measured peak
byte for byte (nothing is cached yet); with a decoder moment the peak, what the images add (measured with images
minus measured without) equals what our activations add. gemma-3-12b-it's published config, its decoder cut to a few
layers to keep the meta run short. One change to transformers' code: get_placeholder_mask's token-count check calls
.item() (data-dependent, refused on meta); the stand-in returns the same mask without the check.
"""
from __future__ import annotations

import json
import warnings

import pytest
from conftest import FIXTURES

from oomplan.families import parse_hf_config
from oomplan.memory.budget import stage_budget
from oomplan.memory.images import image_load
from oomplan.memory.params import num_params
from oomplan.memory.vision_activations import siglip_encoder_peak_bytes
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload
from oomplan.specs.vision import SiglipVisionTower

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from meta_peak import peak  # noqa: E402  (imports torch)

GEMMA3_12B = json.loads((FIXTURES / "configs" / "families" / "gemma-3-12b-it.json").read_text())
TEXT = dict(hidden_size=80, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64, vocab_size=100,
            head_dim=16)


def _build(vision: dict, text: dict, **top):
    from oomplan.probe.meta_run import _torch_dtype

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.Gemma3Config(vision_config=vision, text_config=text, **top)
        with torch.device("meta"):
            model = transformers.Gemma3ForConditionalGeneration._from_config(cfg, dtype=_torch_dtype("bf16"), attn_implementation="sdpa")
    model.eval()
    image_token = cfg.image_token_id
    model.model.get_placeholder_mask = lambda input_ids, inputs_embeds, image_features: (input_ids == image_token).unsqueeze(-1)
    return model


@pytest.mark.parametrize("h, ffn, layers, image_size", [(1152, 4304, 3, 896), (1152, 4304, 1, 896), (1024, 256, 3, 224), (1024, 256, 1, 224)])
def test_siglip_tower_peak_equals_meta(h, ffn, layers, image_size):
    vision = dict(hidden_size=h, intermediate_size=ffn, num_hidden_layers=layers, num_attention_heads=16, image_size=image_size,
                  patch_size=14, vision_use_head=False)
    model = _build(vision, TEXT, mm_tokens_per_image=16)
    tower = SiglipVisionTower(hidden_size=h, intermediate_size=ffn, num_layers=layers, num_heads=16, patch_size=14,
                              image_size=image_size, text_hidden_size=80, tokens_per_image=16)
    for n in (1, 3):
        def pixels(n=n):
            return {"pixel_values": torch.zeros(n, 3, image_size, image_size, dtype=torch.bfloat16, device="meta")}
        measured = peak(model, pixels, model.model.get_image_features) - n * 3 * image_size**2 * 2
        assert measured == siglip_encoder_peak_bytes(tower, n, 2)


def _prefillpeak(num_layers: int, batch: int, images: int, ctx: int) -> int:
    raw = json.loads(json.dumps(GEMMA3_12B))
    raw["text_config"]["num_hidden_layers"] = num_layers
    vision = {k: v for k, v in raw["vision_config"].items() if k != "model_type"}
    model = _build(vision, raw["text_config"], mm_tokens_per_image=256, image_token_index=262144)
    cache = transformers.DynamicCache(config=model.config)

    def inputs():
        d = {"input_ids": torch.zeros(batch, ctx, dtype=torch.long, device="meta")}
        if images:
            d["pixel_values"] = torch.zeros(batch * images, 3, 896, 896, dtype=torch.bfloat16, device="meta")
            d["token_type_ids"] = torch.zeros(batch, ctx, dtype=torch.long, device="meta")
        return d
    return peak(model, inputs, lambda **k: model(**k, cache=cache, use_cache=True, logits_to_keep=1))


def _ours(num_layers: int, batch: int, images: int, ctx: int) -> tuple[int, int, bool]:
    """(activations, KV, whether the tower's moment is the peak) of stage 0, unpaged (the cache holds exactly ctx)."""
    raw = json.loads(json.dumps(GEMMA3_12B))
    raw["text_config"]["num_hidden_layers"] = num_layers
    spec = parse_hf_config(raw, "gemma-3-12b-cut", "test")
    s = stage_budget(spec, load_gpu("h100"), Workload(ctx_tokens=ctx, batch_size=batch, num_images=images), Plan(paged=False), 0)
    return s.activation_bytes, s.kv_cache_bytes, images > 0 and s.activation_bytes == s.vision.encoder_bytes


@pytest.mark.parametrize("batch, images, ctx", [(1, 4, 1024), (2, 2, 600)])
def test_tower_moment_is_the_measuredpeak(batch, images, ctx):
    acts, _, tower_moment = _ours(2, batch, images, ctx)
    assert tower_moment
    assert _prefillpeak(2, batch, images, ctx) == acts


@pytest.mark.parametrize("batch, images, ctx", [(1, 1, 8192), (2, 2, 4096)])
def test_what_images_add_to_a_decoder_peak_equals_meta(batch, images, ctx):
    with_images, kv, tower_moment = _ours(7, batch, images, ctx)
    text_only, kv_text, _ = _ours(7, batch, 0, ctx)
    assert not tower_moment and kv == kv_text  # the image tokens are context tokens: the same cache
    assert _prefillpeak(7, batch, images, ctx) - _prefillpeak(7, batch, 0, ctx) == with_images - text_only


def test_gemma_3_12b_profile_equals_the_meta_built_model():
    spec = load_model("gemma-3-12b-it")
    assert spec.hf_config == {k: v for k, v in GEMMA3_12B.items() if k not in ("eos_token_id", "initializer_range")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {k: v for k, v in GEMMA3_12B.items() if k not in ("model_type", "torch_dtype", "architectures")}
        with torch.device("meta"):
            model = transformers.Gemma3ForConditionalGeneration(transformers.Gemma3Config(**kw))
    assert num_params(spec) == sum(p.numel() for p in model.parameters()) == 12_187_325_040
    images = image_load(spec, Workload(ctx_tokens=4096, num_images=3))
    assert images is not None and images.tokens_per_image == 256 and images.context_tokens == 768


# --- Llama 3.2 Vision (Mllama): the tiled tower, the cross-attention mask, the cross-attention layers -------------------
MLLAMA_11B = json.loads((FIXTURES / "configs" / "families" / "llama-3.2-11b-vision.json").read_text())
TINY_TOWER = {"image_size": 56, "num_hidden_layers": 2, "num_global_layers": 1, "intermediate_layers_indices": [0],
              "vision_output_dim": 2560}  # 4 x 4 patches a tile: a tower small enough for a cross-attention layer to be the peak


def _mllama(text: dict, vision: dict):
    from oomplan.probe.meta_run import _torch_dtype

    raw = json.loads(json.dumps(MLLAMA_11B))
    raw["text_config"].update(text)
    raw["vision_config"].update(vision)
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype", "architectures")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.MllamaConfig(**kw)
        with torch.device("meta"):
            model = transformers.MllamaForConditionalGeneration._from_config(cfg, dtype=_torch_dtype("bf16"), attn_implementation="sdpa")
    model.eval()
    return model, parse_hf_config(raw, "mllama-cut", "test")


def _image_inputs(model, batch: int, images: int) -> dict:
    v = model.config.vision_config
    tiles, size = v.max_num_tiles, v.image_size
    return {"pixel_values": torch.zeros(batch, images, tiles, 3, size, size, dtype=torch.bfloat16, device="meta"),
            "aspect_ratio_ids": torch.zeros(batch, images, dtype=torch.long, device="meta"),
            "aspect_ratio_mask": torch.ones(batch, images, tiles, dtype=torch.long, device="meta")}


@pytest.mark.parametrize("vision", [{}, {"intermediate_size": 10240}, dict(TINY_TOWER, num_global_layers=0)])
def test_mllama_tower_peak_equals_meta(vision):
    """The final cat (the published tower), the last layer's MLP (a wider MLP), a tower without global layers."""
    from oomplan.memory.vision_activations import mllama_tower_peak_bytes

    model, spec = _mllama({"num_hidden_layers": 2, "cross_attention_layers": [1]}, vision)
    pixels = lambda b: b * spec.vision.max_num_tiles * 3 * spec.vision.image_size**2 * 2 + b * 8 * (1 + spec.vision.max_num_tiles)  # noqa: E731
    for batch in (1, 2):
        measured = peak(model, lambda batch=batch: _image_inputs(model, batch, 1), model.model.vision_model) - pixels(batch)
        assert measured == mllama_tower_peak_bytes(spec.vision, batch, 2)


@pytest.mark.parametrize("batch, images, ctx, text, vision, moment", [
    (1, 1, 2048, {}, {}, "tower"),
    (1, 1, 8192, {}, {}, "decoder"),
    (1, 2, 16384, {}, {}, "mask"),
    (2, 8, 256, {"intermediate_size": 512}, TINY_TOWER, "cross"),
])
def test_mllama_prefill_peak_equals_meta(batch, images, ctx, text, vision, moment):
    """The whole prefill forward (pixel_values, aspect ratios, cross_attention_mask, into a DynamicCache): our activations
    plus the KV cache (self-attention and the images' cross-attention K/V) == the measured peak, with each moment the peak."""
    model, spec = _mllama(dict(text, num_hidden_layers=4, cross_attention_layers=[1, 3]), vision)
    s = stage_budget(spec, load_gpu("h100"), Workload(ctx_tokens=ctx, batch_size=batch, num_images=images), Plan(paged=False), 0)
    v, a = s.vision, s.activations
    which = {"tower": v.encoder_bytes, "mask": v.encoder_bytes, "decoder": a.prefill_bytes + v.prefill_held_bytes,
             "cross": v.cross_prefill_bytes + v.prefill_held_bytes}
    assert s.activation_bytes == which[moment]
    cache = transformers.DynamicCache(config=model.config)
    tiles = model.config.vision_config.max_num_tiles

    def inputs():
        return {"input_ids": torch.zeros(batch, ctx, dtype=torch.long, device="meta"), **_image_inputs(model, batch, images),
                "cross_attention_mask": torch.ones(batch, ctx, images, tiles, dtype=torch.long, device="meta")}
    measured = peak(model, inputs, lambda **k: model(**k, cache=cache, use_cache=True, logits_to_keep=1))
    kv = s.kv_cache_bytes if moment in ("decoder", "cross") else 0  # nothing is cached before the decoder's layers
    assert measured == s.activation_bytes + kv
