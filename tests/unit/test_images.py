"""--images / --image-tokens: tokens per image, where they go, and what the tower costs, computed by hand."""
from __future__ import annotations

import pytest

from oomplan.errors import FieldError
from oomplan.memory.budget import estimate, stage_budget, with_cross_kv
from oomplan.memory.images import image_load
from oomplan.memory.kv_cache import kv_budget
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.vision_activations import siglip_encoder_peak_bytes, vision_activations
from oomplan.memory.vision_kv import cross_kv_bytes
from oomplan.planner.evaluate import Evaluator
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

GEMMA3 = load_model("gemma-3-12b-it")  # SigLIP: 1152 / 4304, 27 layers, 896 px / 14 = 64 x 64 patches; 256 tokens per image
MLLAMA = load_model("llama-3.2-11b-vision")  # 8 cross-attention layers, 8 KV heads x 128; 4 tiles x 1601 tokens per image
QWEN3_VL = load_model("qwen3-vl-4b-instruct")
H100 = load_gpu("h100")


def _w(**kw) -> Workload:
    return Workload(**({"ctx_tokens": 4096} | kw))


def test_tokens_per_image_from_the_config_or_the_flag():
    g = image_load(GEMMA3, _w(num_images=3))
    assert g is not None and (g.tokens_per_image, g.source, g.cross_attention, g.context_tokens) == (256, "mm_tokens_per_image", False, 768)
    m = image_load(MLLAMA, _w(num_images=2))
    assert m is not None and m.tokens_per_image == 4 * (40 * 40 + 1) and m.cross_attention
    assert m.context_tokens == 2  # one <|image|> token each; the vision tokens go to the cross-attention K/V
    q = image_load(QWEN3_VL, _w(num_images=2, image_tokens=1024))
    assert q is not None and (q.tokens_per_image, q.source, q.context_tokens) == (1024, "--image-tokens", 2048)
    assert image_load(GEMMA3, _w()) is None
    assert image_load(GEMMA3, _w(num_images=1, image_tokens=256)) is not None  # the config's own count may be given


@pytest.mark.parametrize("model, kw, field, words", [
    (load_model("llama-3-8b"), {"num_images": 1}, "num_images", "text-only model"),
    (QWEN3_VL, {"num_images": 1}, "image_tokens", "depends on its size"),
    (GEMMA3, {"num_images": 1, "image_tokens": 300}, "image_tokens", "gives every image 256 tokens"),
    (GEMMA3, {"image_tokens": 256}, "image_tokens", "but no images"),
    (GEMMA3, {"num_images": 17}, "num_images", "17 images x 256 tokens = 4352 tokens, more than the context of 4096"),
])
def test_refused_naming_the_field(model, kw, field, words):
    with pytest.raises(FieldError) as e:
        image_load(model, _w(**kw))
    assert e.value.field == field and words in e.value.detail


def test_siglip_tower_peak_by_hand():
    v = GEMMA3.vision
    # the MLP moment of a layer past the first: 4 x [4096, 1152] + 2 x [4096, 4304], bf16, per image
    assert siglip_encoder_peak_bytes(v, 1, 2) == 4096 * (4 * 1152 + 2 * 4304) * 2 == 108_265_472
    assert siglip_encoder_peak_bytes(v, 3, 2) == 3 * 108_265_472


def test_gemma3_vision_activations_by_hand():
    images = image_load(GEMMA3, _w(num_images=2))
    va = vision_activations(GEMMA3, Plan(), images, 1, 4096, 2)
    pixels = 2 * 3 * 896 * 896 * 2
    assert va.num_images == 2
    assert va.encoder_bytes == pixels + 2 * 108_265_472 + 4096 * (3840 * 2 + 2 * 8)  # + inputs_embeds, input_ids, token_type_ids
    outputs = 2 * (4096 * 1152 + 256 * 3840) * 2  # last_hidden_state and the pooled features, in the model output
    assert va.output_held_bytes == pixels + outputs + 8 * 4096  # + token_type_ids [1, 4096], an input
    # + the bool placeholder mask [1, 4096], the block ids (int64 [1, 4096]), and bool masks [1, 1, 4096, 4096] for full and
    # sliding layers in place of the text-only sliding one
    assert va.prefill_held_bytes == va.output_held_bytes + 4096 + 8 * 4096 + 2 * 4096 * 4096 - 4096 * 4096


def test_budget_adds_the_tower_on_the_first_stage_only():
    text = estimate(GEMMA3, H100, _w(), Plan(pipeline_parallel=2))
    est = estimate(GEMMA3, H100, _w(num_images=2), Plan(pipeline_parallel=2))
    first, last = est.stages
    assert first.vision.num_images == 2 and last.vision.num_images == 0
    assert last.activation_bytes == text.stages[1].activation_bytes
    a = first.activations
    v = first.vision
    assert first.activation_bytes == max(v.encoder_bytes, a.prefill_bytes + v.prefill_held_bytes,
                                         max(a.logits_bytes, a.decode_step_bytes) + v.output_held_bytes)
    assert est.stages[0].kv_cache_bytes == text.stages[0].kv_cache_bytes  # image tokens are context tokens
    assert any(n.startswith("images: 2 per sequence x 256 tokens (mm_tokens_per_image) = 512 of the 4,096") for n in est.notes)


@pytest.mark.parametrize("pp", [1, 2])
def test_evaluator_equals_estimate_with_images(pp):
    w, plan = _w(num_images=3, batch_size=2), Plan(pipeline_parallel=pp)
    est = estimate(GEMMA3, H100, w, plan)
    ev = Evaluator(GEMMA3, H100, w.num_images, w.image_tokens)
    totals = ev.all_stages(plan, w)
    assert [t.total_bytes for t in totals] == [s.total_bytes for s in est.stages]
    assert [t.activation_bytes for t in totals] == [s.activation_bytes for s in est.stages]
    assert ev.worst_total_at(plan, w.ctx_tokens, w.batch_size) == max(s.peak_bytes for s in est.stages)


def test_mllama_cross_kv_by_hand():
    stage = pipeline_stages(MLLAMA.num_layers, 1)[0]
    # 8 cross-attention layers x K and V x 8 KV heads x 128 x bf16 = 32 KiB per vision token; 6404 tokens per image
    assert cross_kv_bytes(MLLAMA, Plan(), 2, 3, stage) == 3 * 2 * 6404 * 8 * 2 * 8 * 128 * 2 == 1_259_077_632
    assert cross_kv_bytes(MLLAMA, Plan(tensor_parallel=2), 2, 3, stage) == 1_259_077_632 // 2  # KV heads split by TP
    assert cross_kv_bytes(MLLAMA, Plan(kv_dtype="fp8"), 1, 1, stage) == 6404 * 8 * 2 * 8 * 128
    second = pipeline_stages(MLLAMA.num_layers, 2)[1]  # layers 20..39: cross-attention layers 23, 28, 33, 38
    assert cross_kv_bytes(MLLAMA, Plan(pipeline_parallel=2), 1, 1, second) == 6404 * 4 * 2 * 8 * 128 * 2
    kv = kv_budget(MLLAMA, Plan(), 4096, 1, stage)
    folded = with_cross_kv(kv, 123)
    assert (folded.bytes, folded.cross_bytes, folded.bytes_per_token) == (kv.bytes + 123, 123, kv.bytes_per_token)


def test_mllama_tower_and_mask_by_hand():
    from oomplan.memory.vision_activations import mllama_tower_peak_bytes

    # 4 tiles x (1600 + 1) tokens, padded to 1608: S = 6432; h 1280; 32 + 8 layers; 5 intermediate layers (7680 / 1280 - 1)
    s, h = 4 * 1608, 1280
    final = 40 * s * h + s * h * 5 + 4 * 1601 * 7680  # every layer's output, the stack, the concatenated output
    fixed = s * s + 4 * 1600 * h  # the aspect-ratio attention mask, the patch embedding's output
    assert mllama_tower_peak_bytes(MLLAMA.vision, 1, 2) == (final + fixed) * 2 == 938_457_088
    images = image_load(MLLAMA, _w(num_images=2, ctx_tokens=8192))
    va = vision_activations(MLLAMA, Plan(), images, 1, 8192, 2)
    pixels, inputs = 2 * 4 * 3 * 560 * 560 * 2, 8 * (8192 * 2 * 4 + 2 + 2 * 4)
    outputs, states, v = 2 * 6404 * 7680 * 2, 2 * 6404 * 4096 * 2, 2 * 6404
    tower = pixels + inputs + 8 * 8192 + 2 * 938_457_088
    mask = pixels + inputs + 8 * 8192 + outputs + states + 8192 * v * (8 + 4 + 2)  # int64, fp32 and bf16 [1, 1, 8192, V]
    assert va.encoder_bytes == max(tower, mask) == tower
    assert va.output_held_bytes == pixels + inputs + outputs
    assert va.prefill_held_bytes == pixels + inputs + outputs + states + 8192 * v * 2 + 8192 * 2  # the cast mask, the row mask


def test_towers_not_priced_yet_are_refused():
    for model, kw in ((load_model("llama-4-scout-17b-16e"), {"image_tokens": 144}),):
        with pytest.raises(FieldError) as e:
            stage_budget(model, H100, _w(num_images=1, **kw), Plan(), 0)
        assert e.value.field == "num_images" and "not priced yet" in e.value.detail


@pytest.mark.parametrize("plan, field", [(Plan(attention="eager"), "attention"), (Plan(prefill_chunk_tokens=1024), "prefill_chunk_tokens")])
def test_images_refuse_eager_and_chunked_prefill(plan, field):
    """The tower runs the model's attention (eager scores are not priced); generate() refuses to chunk raw pixel_values."""
    with pytest.raises(FieldError) as e:
        estimate(GEMMA3, H100, _w(num_images=1), plan)
    assert e.value.field == field
    assert estimate(GEMMA3, H100, _w(num_images=1), Plan(prefill_chunk_tokens=4096)).fits  # one chunk is the whole prompt


def test_search_skips_prefill_chunks_when_told():
    from oomplan.planner.search import knob_sets
    from oomplan.planner.space import SearchLimits

    chunks = {k[-1] for k in knob_sets(H100, SearchLimits(max_gpus=1))}
    assert chunks == {None, 2048}
    assert {k[-1] for k in knob_sets(H100, SearchLimits(max_gpus=1, allow_prefill_chunks=False))} == {None}


def test_qwen25_vl_tower_and_held_bytes_by_hand():
    """qwen2.5-vl-7b-instruct: ViT 1280 wide (16 heads of 80), ffn 3420, out 3584, merge 2; 2 images x 1024 tokens =
    8192 patches. The rotary moment (block input, norm1, qkv 3h in bf16; six fp32 [S, h]) beats the MLP (3h + 3 ffn)."""
    from oomplan.families import parse_hf_config
    from oomplan.memory.vision_activations import qwen25_tower_peak_bytes

    from conftest import FIXTURES

    raw = __import__("json").loads((FIXTURES / "configs" / "qwen2.5-vl-7b-instruct.json").read_text())
    spec = parse_hf_config(raw, "qwen2.5-vl-7b-instruct", "test")
    s = 8192
    fixed = s * (2 * 8 + 2 * 4 * 80) + 4 * 3 + 4 * (2048 + 1)  # (h, w) ids, fp32 cos/sin, cu_seqlens, cu_window_seqlens bound
    rotary = s * (5 * 1280 * 2 + 6 * 4 * 1280)
    assert rotary > s * 2 * (3 * 1280 + 3 * 3420)
    assert qwen25_tower_peak_bytes(spec.vision, 2, 1024) == fixed + rotary == 361_898_000
    images = image_load(spec, _w(num_images=2, image_tokens=1024, ctx_tokens=8192))
    va = vision_activations(spec, Plan(), images, 1, 8192, 2)
    pixels, grid, extra = s * 1176 * 2, 2 * 3 * 8, 8192 * (8 + 32)  # + mm_token_type_ids, the 4-row M-RoPE position ids
    assert va.encoder_bytes == pixels + grid + 8192 * (3584 * 2 + 8) + extra + 361_898_000 == 440_279_104
    outputs = s * 1280 * 2 + 2048 * 3584 * 2  # last_hidden_state, pooler_output in the model output
    assert va.output_held_bytes == pixels + grid + outputs + extra
    # + image_embeds (cat), the image and video masks (bool [1, 8192]), less the text model's own arange (int64 [8192])
    assert va.prefill_held_bytes == va.output_held_bytes + 2048 * 3584 * 2 + 2 * 8192 - 8 * 8192 == 69_877_808


def test_qwen3_vl_tower_and_held_bytes_by_hand():
    """qwen3-vl-4b-instruct: ViT 1024 wide (16 heads of 64), ffn 4096, out 2560, merge 2, 24 blocks, DeepStack after
    blocks 5, 11, 17 (all three alive in the last block); 1 image x 1024 tokens = 4096 patches."""
    from oomplan.memory.vision_activations import qwen3_tower_peak_bytes

    s, merged = 4096, 1024 * 2560 * 2  # one merger output [1024, 2560]
    fixed = s * (4 * 8 + 4 * 4 + 2 * 8 + 2 * 4 * 64) + 4 * 2  # table taps, weights, (h, w) ids, fp32 cos/sin, cu_seqlens
    table = s * (1024 * 2 + 4 * 1024 * 2 + 4 * 1024 * 4)  # patch embedding, gathered taps, their fp32 product
    rotary = s * (5 * 1024 * 2 + 6 * 4 * 1024)
    assert rotary > s * 2 * (3 * 1024 + 2 * 4096)  # the MLP
    peak = fixed + s * 4 * 1024 + 3 * merged + rotary  # + pos_embeds (fp32 [S, h]) and the 3 DeepStack outputs
    assert peak > fixed + table
    assert qwen3_tower_peak_bytes(QWEN3_VL.vision, 1, 1024, 3) == peak == 177_471_496
    va = vision_activations(QWEN3_VL, Plan(), image_load(QWEN3_VL, _w(num_images=1, image_tokens=1024, ctx_tokens=8192)), 1, 8192, 2)
    pixels, extra = s * 1536 * 2, 8192 * (8 + 32)
    assert va.encoder_bytes == pixels + 24 + 8192 * (2560 * 2 + 8) + extra + peak == 232_390_688
    outputs = s * 1024 * 2 + 4 * merged  # last_hidden_state, pooler_output and the 3 DeepStack features
    assert va.output_held_bytes == pixels + 24 + outputs + extra == 42_270_744
    # + image_embeds and the 3 concatenated DeepStack embeds, the masks, less the text-only arange, + the loop's second
    # hidden state in the layers after a DeepStack add (bf16 [1, 8192, 2560])
    assert va.prefill_held_bytes == va.output_held_bytes + 4 * merged + 2 * 8192 - 8 * 8192 + 8192 * 2560 * 2 == 105_136_152


@pytest.mark.parametrize("plan", [Plan(), Plan(pipeline_parallel=2), Plan(prefill_chunk_tokens=2048)])
def test_qwen_vl_text_only_prices_generate_inputs(plan):
    """Text only, a Qwen VL still gets generate()'s mm_token_type_ids (int64 [B, ctx]) and 4-row position ids (int64
    [4, B, ctx]): 40 bytes a token through the logits and the decode steps; in the prefill less the text model's own
    arange (int64 [q_len], the chunk's), which it makes only without position_ids. First stage only; the evaluator agrees."""
    w = _w(batch_size=2, ctx_tokens=8192)
    est = estimate(QWEN3_VL, H100, w, plan)
    v = est.stages[0].vision
    q_len = plan.prefill_chunk_tokens or 8192
    assert (v.num_images, v.encoder_bytes, v.output_held_bytes) == (0, 0, 40 * 2 * 8192) == (0, 0, 655_360)
    assert v.prefill_held_bytes == 655_360 - 8 * q_len
    a = est.stages[0].activations
    assert est.stages[0].activation_bytes == max(a.prefill_bytes + v.prefill_held_bytes, a.logits_bytes + 655_360,
                                                 a.decode_step_bytes + 655_360)
    assert all(s.activation_bytes == s.activations.peak_bytes for s in est.stages[1:])
    ev = Evaluator(QWEN3_VL, H100, 0, None)
    assert [t.total_bytes for t in ev.all_stages(plan, w)] == [s.total_bytes for s in est.stages]
    assert ev.worst_total_at(plan, w.ctx_tokens, w.batch_size) == max(s.peak_bytes for s in est.stages)
    assert estimate(GEMMA3, H100, w, plan).stages[0].vision.output_held_bytes == 0  # Gemma 3: no such inputs


def test_pixtral_grid_and_tower_by_hand():
    """Devstral Small 2's Pixtral tower (1024 wide, 16 heads of 64, ffn 4096, 24 layers, patch 14, merge 2, longest edge
    1540; text hidden 5120). A 1024x768 image fits the edge, so each side goes up to whole merged patches (28 px):
    1036x784, 37 x 28 merged patches, 74 x 56 = 4,144 patches, 28 x (37 + 1) = 1,064 tokens. A 3000x1000 one is scaled
    by 3000 / 1540 first (floor): 1540x513, then 1540x532."""
    from oomplan.families import parse_hf_config
    from oomplan.memory.images import pixtral_grid
    from oomplan.memory.vision_activations import pixtral_tower_peak_bytes

    from conftest import FIXTURES

    raw = __import__("json").loads((FIXTURES / "configs" / "devstral-small-2-24b-instruct.json").read_text())
    spec = parse_hf_config(raw, "devstral-small-2-24b-instruct", "test")
    v = spec.vision
    g = pixtral_grid(v, 1024, 768)
    assert (g.width_pixels, g.height_pixels, g.patch_cols, g.patch_rows, g.num_merged, g.num_tokens) == (1036, 784, 74, 56, 1036, 1064)
    big = pixtral_grid(v, 3000, 1000)
    assert (big.width_pixels, big.height_pixels, big.num_tokens) == (1540, 532, 19 * 56)
    s = 4144
    fixed = s * 1024 * 2 + 16 * s + 2 * s * 64 * 2 + s * s * 2 + 8 * (56 + 74)  # conv out, (h, w) ids, cos/sin, [S, S] mask, aranges
    mlp = s * 2 * (4 * 1024 + 3 * 4096)  # ln_pre out, input, residual, ffn_norm; silu(gate), up, product
    assert mlp > 10 * s * 1024 * 2  # the attention moment
    assert s * 1024 * 2 + 1036 * 1024 * 2 + 2 * 1036 * 5120 * 2 < fixed + mlp  # the projector's
    assert pixtral_tower_peak_bytes(v, g, 1) == fixed + mlp == 179_751_184
    images = image_load(spec, _w(num_images=1, image_size="1024x768", ctx_tokens=8192))
    assert images is not None and images.pixtral == g and images.tokens_per_image == 1064
    va = vision_activations(spec, Plan(), images, 1, 8192, 2)
    pixels, sizes, text = 3 * 784 * 1036 * 2, 16, 8192 * (5120 * 2 + 8)
    assert va.encoder_bytes == pixels + sizes + text + 179_751_184
    outputs = s * 1024 * 2 + 1036 * 5120 * 2  # the tower's last_hidden_state, the projector's output (pooler_output)
    assert va.output_held_bytes == pixels + sizes + outputs
    assert va.prefill_held_bytes == va.output_held_bytes + 1036 * 5120 * 2 + 8192  # image_features (cat), the bool mask
