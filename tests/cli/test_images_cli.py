"""--images / --image-tokens through CliRunner: estimate (table, JSON), fit -o, check, export, curve, models show;
exact figures and exit codes."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.memory.budget import estimate
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload
from oomplan.units import format_bytes

runner = CliRunner()
GEMMA3 = "gemma-3-12b-it"


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"}, terminal_width=200)


def test_estimate_table_note_and_rows():
    r = run("estimate", GEMMA3, "--gpu", "l40s", "--ctx", "8k", "--images", "16")
    assert r.exit_code == 0, r.output
    est = estimate(load_model(GEMMA3), load_gpu("l40s"), Workload(ctx_tokens=8192, num_images=16), Plan())
    s = est.per_gpu
    note = (f"note: images: 16 per sequence x 256 tokens (mm_tokens_per_image) = 4,096 of the 8,192 context tokens (priced as "
            f"context in the KV cache and the decoder's prefill); SigLIP tower on 16 images: {format_bytes(s.vision.encoder_bytes)} "
            f"at its prefill moment, {format_bytes(s.vision.prefill_held_bytes)} kept through the decoder's prefill (stage 0's activations)")
    assert note in " ".join(r.stdout.split())  # the note wraps at the terminal's width
    assert f"│ activations │  {format_bytes(s.activation_bytes)} │" in r.stdout
    assert f"prefill peak + {format_bytes(s.vision.prefill_held_bytes)} images, tower outputs and masks kept" in " ".join(r.stdout.split())
    text = run("estimate", GEMMA3, "--gpu", "l40s", "--ctx", "8k")
    assert "note: images" not in text.stdout and "tower outputs" not in text.stdout


def test_estimate_json_fields():
    r = run("estimate", GEMMA3, "--gpu", "h100", "--ctx", "4k", "--images", "2", "--batch", "3", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["workload"] | {} == {"ctx_tokens": 4096, "batch_size": 3, "engine": "hf", "num_images": 2, "image_tokens": None,
                                 "image_size": None}
    assert d["images"] == {"num_images": 2, "tokens_per_image": 256, "source": "mm_tokens_per_image", "cross_attention": False,
                           "context_tokens": 512, "pixtral": None}
    v = d["per_gpu"]["vision"]
    assert v["num_images"] == 6 and v["encoder_bytes"] > 0 and v["prefill_held_bytes"] > v["output_held_bytes"] > 0
    assert d["per_gpu"]["cross_kv_bytes"] == 0 == d["per_gpu"]["kv_cache"]["cross_kv_bytes"]
    text = json.loads(run("estimate", GEMMA3, "--gpu", "h100", "--ctx", "4k", "--batch", "3", "--json").stdout)
    assert text["images"] is None and text["per_gpu"]["vision"] == {
        "num_images": 0, "encoder_bytes": 0, "prefill_held_bytes": 0, "output_held_bytes": 0, "cross_prefill_bytes": 0}
    assert d["per_gpu"]["kv_cache_bytes"] == text["per_gpu"]["kv_cache_bytes"]  # image tokens are context tokens
    assert d["per_gpu"]["activation_bytes"] > text["per_gpu"]["activation_bytes"]


@pytest.mark.parametrize("args, message", [
    (["llama-3-8b", "--images", "1"], "--images: 1: llama-3-8b is a text-only model (no vision tower in its config)"),
    (["qwen3-vl-4b-instruct", "--images", "1"], "--image-tokens: qwen3-vl-4b-instruct's Qwen3-VL tower gives each image a number"),
    (["llama-4-scout", "--images", "1", "--image-tokens", "144"], "--images: 1: the Llama 4 tower's prefill activations are not priced yet"),
    ([GEMMA3, "--images", "2", "--image-tokens", "300"], "--image-tokens: 300: gemma-3-12b-it's SigLIP tower gives every image 256 tokens"),
    ([GEMMA3, "--image-tokens", "256"], "--image-tokens: 256 tokens per image, but no images"),
    ([GEMMA3, "--images", "17", "--ctx", "4k"], "--images: 17 images x 256 tokens = 4352 tokens, more than the context of 4096"),
    ([GEMMA3, "--images", "1", "--engine", "vllm"], "--images: 1: images are priced for transformers (--engine hf) only"),
    ([GEMMA3, "--images", "1", "--train", "lora"], "--images: not used with --train"),
    ([GEMMA3, "--images", "1", "--attention", "eager"], "--attention: eager: with images the vision tower runs eager attention"),
    ([GEMMA3, "--images", "1", "--prefill-chunk", "1k"], "--prefill-chunk: 1024: transformers' generate() cannot chunk a prompt"),
])
def test_estimate_refusals_name_the_flag(args, message):
    r = run("estimate", *args, "--gpu", "h100")
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_mllama_cross_kv_row_and_note():
    r = run("estimate", "llama-3.2-11b-vision", "--gpu", "l40s", "--ctx", "8k", "--images", "2", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    cross = 2 * 6404 * 8 * 2 * 8 * 128 * 2  # images x tokens x cross-attention layers x K, V x KV heads x head_dim x bf16
    assert d["per_gpu"]["cross_kv_bytes"] == cross == 419_692_544
    text = json.loads(run("estimate", "llama-3.2-11b-vision", "--gpu", "l40s", "--ctx", "8k", "--json").stdout)
    assert d["per_gpu"]["kv_cache_bytes"] == text["per_gpu"]["kv_cache_bytes"] + cross
    assert d["images"]["cross_attention"] and d["images"]["context_tokens"] == 2
    table = run("estimate", "llama-3.2-11b-vision", "--gpu", "l40s", "--ctx", "8k", "--images", "2")
    assert "+ 400.2 MiB cross-attention K/V of the images" in " ".join(table.stdout.split())


def test_fit_writes_images_and_check_export_read_them(tmp_path):
    plan = tmp_path / "plan.yaml"
    r = run("fit", GEMMA3, "--gpu", "l40s", "--ctx", "8k", "--images", "4", "-o", str(plan))
    assert r.exit_code == 0, r.output
    assert "num_images: 4" in plan.read_text()
    checked = run("check", str(plan), "--json")
    assert checked.exit_code == 0, checked.output
    d = json.loads(checked.stdout)
    assert d["workload"]["num_images"] == 4 and d["per_gpu"]["vision"]["num_images"] == 4
    assert not any("prediction changed" in w for w in d.get("warnings", []))
    too_short = run("check", str(plan), "--ctx", "512")
    assert too_short.exit_code == 2 and "4 images x 256 tokens = 1024 tokens, more than the context of 512" in too_short.output
    vllm = run("export", str(plan), "--to", "vllm")
    assert vllm.exit_code == 0 and "--limit-mm-per-prompt '{\"image\": 4}'" in vllm.stdout
    hf = run("export", str(plan), "--to", "hf")
    assert "AutoModelForImageTextToText.from_pretrained" in hf.stdout and "with 4 image(s) each" in hf.stdout


def test_fit_ctx_max_keeps_the_images():
    r = run("fit", GEMMA3, "--gpu", "l40s", "--ctx", "max", "--images", "4", "--json")
    assert r.exit_code == 0, r.output
    best = json.loads(r.stdout)["plans"][0]
    with_images = best["workload"]["ctx_tokens"]
    text = json.loads(run("fit", GEMMA3, "--gpu", "l40s", "--ctx", "max", "--json").stdout)["plans"][0]["workload"]["ctx_tokens"]
    assert best["workload"]["num_images"] == 4 and 1024 <= with_images <= text
    plans = json.loads(run("fit", GEMMA3, "--gpu", "l40s", "--images", "4", "--json").stdout)["plans"]
    assert plans and {p["plan"]["prefill_chunk_tokens"] for p in plans} == {None}  # generate() cannot chunk pixel_values


def test_curve_with_images_and_its_cliff():
    r = run("curve", GEMMA3, "--gpu", "l40s", "--images", "4", "--from", "2k", "--to", "64k", "--points", "4", "--json")
    assert r.exit_code == 0, r.output
    curve = json.loads(r.stdout)["curves"][0]
    for p in curve["points"]:
        est = estimate(load_model(GEMMA3), load_gpu("l40s"), Workload(ctx_tokens=p["x"], num_images=4), Plan())
        assert p["activation_bytes"] == est.per_gpu.activation_bytes
    text = json.loads(run("curve", GEMMA3, "--gpu", "l40s", "--from", "2k", "--to", "64k", "--points", "4", "--json").stdout)
    assert curve["cliff"]["last_fit"] <= text["curves"][0]["cliff"]["last_fit"]


def test_models_show_state_and_vision_rows():
    state = run("models", "show", "nemotron-3-nano-30b-a3b")
    assert "│ recurrent state per sequence │ 49,364,992 B (47.1 MiB) in 23 mamba2 layers, any context" in state.stdout
    vision = run("models", "show", GEMMA3)
    assert "SigLIP, 421,290,864 params; 256 tokens per image (mm_tokens_per_image)" in vision.stdout
    dynamic = run("models", "show", "qwen3-vl-4b-instruct")
    assert "tokens per image set by the processor (--image-tokens)" in dynamic.stdout


def test_qwen25_vl_images_priced_from_a_config_file():
    from conftest import FIXTURES

    cfg = str(FIXTURES / "configs" / "qwen2.5-vl-7b-instruct.json")
    r = run("estimate", cfg, "--gpu", "h100", "--ctx", "8k", "--images", "2", "--image-tokens", "1k", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["images"] == {"num_images": 2, "tokens_per_image": 1024, "source": "--image-tokens", "cross_attention": False,
                           "context_tokens": 2048, "pixtral": None}
    v = d["per_gpu"]["vision"]
    assert (v["num_images"], v["encoder_bytes"], v["prefill_held_bytes"]) == (2, 440_279_104, 69_877_808)  # tests/unit/test_images.py
    table = run("estimate", cfg, "--gpu", "h100", "--ctx", "8k", "--images", "2", "--image-tokens", "1k")
    assert "Qwen2.5-VL tower on 2 images: 419.9 MiB at its prefill moment, 66.6 MiB kept" in " ".join(table.stdout.split())
    missing = run("estimate", cfg, "--gpu", "h100", "--images", "2")
    assert missing.exit_code == 2 and "--image-tokens: qwen2.5-vl-7b-instruct's Qwen2.5-VL tower gives each image" in missing.output
    fp32 = run("estimate", cfg, "--gpu", "h100", "--images", "1", "--image-tokens", "256", "--weights", "fp32")
    assert fp32.exit_code == 2 and "--weights: fp32: the Qwen vision towers are priced in bf16" in fp32.output


def test_qwen3_vl_images_priced():
    r = run("estimate", "qwen3-vl-4b-instruct", "--gpu", "l40s", "--ctx", "8k", "--images", "1", "--image-tokens", "1k", "--json")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)["per_gpu"]["vision"]
    assert (v["encoder_bytes"], v["prefill_held_bytes"], v["output_held_bytes"]) == (232_390_688, 105_136_152, 42_270_744)  # by hand: tests/unit/test_images.py
    table = run("estimate", "qwen3-vl-4b-instruct", "--gpu", "l40s", "--ctx", "8k", "--images", "1", "--image-tokens", "1k")
    assert "Qwen3-VL tower on 1 image: 221.6 MiB at its prefill moment, 100.3 MiB kept" in " ".join(table.stdout.split())


DEVSTRAL = "tests/fixtures/configs/devstral-small-2-24b-instruct.json"


def test_pixtral_images_priced_from_the_image_size():
    """Devstral Small 2 (Pixtral, patch 14 x merge 2, longest edge 1540): a 1024x768 image is resized up to whole merged
    patches, 1036x784: 28 rows x 37 columns of [IMG] + 28 [IMG_BREAK] / [IMG_END] = 1,064 tokens."""
    r = run("estimate", DEVSTRAL, "--gpu", "h100", "--ctx", "8k", "--images", "2", "--image-size", "1024x768", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["workload"]["image_size"] == "1024x768"
    assert d["images"]["tokens_per_image"] == 1064 and d["images"]["context_tokens"] == 2128
    assert d["images"]["pixtral"] == {"height_pixels": 784, "width_pixels": 1036, "patch_rows": 56, "patch_cols": 74,
                                      "merged_rows": 28, "merged_cols": 37}
    assert d["per_gpu"]["vision"]["num_images"] == 2
    table = run("estimate", DEVSTRAL, "--gpu", "h100", "--ctx", "8k", "--images", "2", "--image-size", "1024x768")
    assert "images: 2 per sequence x 1,064 tokens (1024x768 resized to 1036x784 (longest edge 1540): 28 rows x (37 + 1)) = 2,128 of the 8,192" in " ".join(table.stdout.split())


@pytest.mark.parametrize("args, message", [
    (["--images", "1"], "--image-size: none given: devstral-small-2-24b-instruct's Pixtral tower runs on a patch grid"),
    (["--images", "1", "--image-tokens", "500"], "500 tokens fit several grids): give --image-size WIDTHxHEIGHT"),
    (["--images", "1", "--image-size", "0x768"], "--image-size: '0x768' is invalid: 0x768 is out of range; accepted: 1..65536 pixels a side"),
    (["--images", "1", "--image-size", "-5x768"], "--image-size: '-5x768' is invalid: not WIDTHxHEIGHT in pixels"),
    (["--images", "1", "--image-size", "1024"], "--image-size: '1024' is invalid: not WIDTHxHEIGHT in pixels"),
    (["--images", "1", "--image-size", "\uff11\uff10\uff12\uff14x768"], "is invalid: not WIDTHxHEIGHT in pixels"),
    (["--images", "1", "--image-size", "70000x70000"], "70000x70000 is out of range; accepted: 1..65536 pixels a side"),
    (["--images", "1", "--image-size", "1x65536"], "--image-size: the image resized to fit 1540 pixels is 0x1540: a side has no patch"),
    (["--image-size", "1024x768"], "--image-size: 1024x768, but no images"),
    (["--images", "1", "--image-size", "1024x768", "--image-tokens", "7"], "--image-tokens: 7: a 1024x768 image is 1064 tokens"),
    (["--images", "8", "--image-size", "1540x1540", "--ctx", "8k"], "--images: 8 images x 3080 tokens = 24640 tokens, more than the context"),
])
def test_pixtral_refusals_name_the_flag(args, message):
    r = run("estimate", DEVSTRAL, "--gpu", "h100", *args)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split()) and "Traceback" not in r.output


@pytest.mark.parametrize("model, message", [
    ("qwen3-vl-4b-instruct", "--image-size: 100x100: the image size is read for Pixtral (Mistral 3) only; qwen3-vl-4b-instruct's "
                             "Qwen3-VL tower is priced by --image-tokens (the decoder tokens per image); give that instead (its "
                             "processor's resize bounds, min_pixels / max_pixels, are in preprocessor_config.json"),
    (GEMMA3, "--image-size: 100x100: the image size is read for Pixtral (Mistral 3) only; gemma-3-12b-it's SigLIP tower is "
             "priced by its fixed count per image; leave it out"),
])
def test_image_size_refused_where_not_read(model, message):
    r = run("estimate", model, "--gpu", "h100", "--images", "1", "--image-size", "100x100")
    assert r.exit_code == 2 and message in " ".join(r.output.split())


def test_pixtral_fit_writes_the_image_size_and_check_curve_export_read_it(tmp_path):
    plan = tmp_path / "plan.yaml"
    r = run("fit", DEVSTRAL, "--gpu", "h100", "--ctx", "8k", "--images", "2", "--image-size", "1024x768", "-o", str(plan))
    assert r.exit_code == 0, r.output
    assert "image_size: 1024x768" in plan.read_text()
    checked = run("check", str(plan), "--json")
    assert checked.exit_code == 0, checked.output
    d = json.loads(checked.stdout)
    est = json.loads(run("estimate", DEVSTRAL, "--gpu", "h100", "--ctx", "8k", "--images", "2", "--image-size", "1024x768",
                          "--json").stdout)
    assert d["per_gpu"]["activation_bytes"] == est["per_gpu"]["activation_bytes"]
    assert d["images"]["tokens_per_image"] == 1064
    hf = run("export", str(plan), "--to", "hf")
    assert hf.exit_code == 0 and "with 2 image(s) each of 1024x768 pixels" in hf.stdout
    curve = run("curve", "--plan", str(plan), "--from", "4k", "--to", "16k", "--points", "3", "--json")
    assert curve.exit_code == 0, curve.output
    points = json.loads(curve.stdout)["curves"][0]["points"]
    at_8k = [p for p in points if p["x"] == 8192]
    bad = plan.read_text().replace("image_size: 1024x768", "image_size: 1024 by 768")
    plan.write_text(bad)
    refused = run("check", str(plan))
    assert refused.exit_code == 2 and "image_size" in refused.output and "not WIDTHxHEIGHT" in refused.output
    assert not at_8k or at_8k[0]["activation_bytes"] == est["per_gpu"]["activation_bytes"]


def test_models_show_pixtral_names_the_image_size():
    r = runner.invoke(app, ["models", "show", DEVSTRAL], env={"COLUMNS": "240"}, terminal_width=240)
    assert r.exit_code == 0, r.output
    assert "patch grid and tokens follow each image's size (--image-size WxH; longest edge 1540)" in " ".join(r.stdout.split())
