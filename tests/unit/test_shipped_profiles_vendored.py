"""Shipped profiles vendored from a real config.json (tests/fixtures/configs/, sources in SOURCES.md there).

A profile's config block is that file with the keys that do not describe the architecture left out (token ids,
initializer_range, transformers_version, use_cache, auto_map: model_profiles/README.md); every kept value is
the file's own. So the golden tests on the fixture and the profile's count test check the same model.
"""
import json

import pytest
from conftest import FIXTURES

from oomplan.memory.weights import weights_budget
from oomplan.profiles import load_model
from oomplan.specs.plan import Plan

VENDORED = ("gpt-oss-120b", "kimi-k2-instruct", "deepseek-v3.2", "glm-5", "glm-5-fp8", "minimax-m2.7", "qwen3.5-27b",
            "qwen3.5-35b-a3b", "qwen3.5-397b-a17b", "nemotron-h-56b-base-8k")
NOT_ARCHITECTURE = {"auto_map", "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "transformers_version",
                    "use_cache", "image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"}


@pytest.mark.parametrize("name", VENDORED)
def test_profile_config_is_the_vendored_config_json(name):
    raw = json.loads((FIXTURES / "configs" / f"{name}.json").read_text())
    profile = load_model(name).hf_config
    assert set(raw) - set(profile) <= NOT_ARCHITECTURE
    assert set(profile) <= set(raw)
    assert {k: raw[k] for k in profile} == profile


def test_gpt_oss_120b_priced_as_its_published_checkpoint():
    """MXFP4 experts, the rest bf16: equal to metadata.total_size = 65,248,815,744 in
    https://huggingface.co/openai/gpt-oss-120b/blob/main/model.safetensors.index.json"""
    m = load_model("openai/gpt-oss-120b")
    assert m.declared_weights.component_weights == {"experts": "mxfp4"}
    assert weights_budget(m, Plan()).resident_bytes == 65_248_815_744


@pytest.mark.parametrize("name", ["kimi-k2-instruct", "deepseek-v3.2", "glm-5-fp8", "minimax-m2.7"])
def test_fp8_block_checkpoints_priced_as_shipped(name):
    """FP8 e4m3 128x128 blocks for attention, dense MLP and experts; router and lm_head 16-bit (MiniMax lists its
    router gate and correction bias in modules_to_not_convert; a bias names no matrix)."""
    m = load_model(name)
    assert m.declared_weights.component_weights == {"attention": "fp8-block", "mlp": "fp8-block", "experts": "fp8-block"}
    shipped, bf16 = weights_budget(m, Plan()), weights_budget(m, Plan(weights="bf16"))
    assert (shipped.by_component.router, shipped.by_component.lm_head) == (bf16.by_component.router, bf16.by_component.lm_head)
    assert shipped.resident_bytes < 0.51 * bf16.resident_bytes


@pytest.mark.parametrize("name", VENDORED)
def test_cli_shows_and_estimates_each_vendored_profile(name):
    """`models show` and `estimate --json` on each (exit 1 is "does not fit": GLM-5 on one H100); the JSON's
    weights are the declared-format budget, the KV cache the budget's, nothing rounded away."""
    from typer.testing import CliRunner

    from oomplan.cli.app import app
    from oomplan.memory.budget import estimate
    from oomplan.profiles import load_gpu
    from oomplan.specs.plan import Workload

    runner = CliRunner()
    shown = runner.invoke(app, ["models", "show", name])
    assert shown.exit_code == 0 and name in shown.output
    r = runner.invoke(app, ["estimate", name, "--gpu", "h100-80g", "--ctx", "8k", "--json"])
    assert r.exit_code in (0, 1), r.output
    per_gpu = json.loads(r.stdout)["per_gpu"]
    m = load_model(name)
    assert per_gpu["weights_bytes"] == weights_budget(m, Plan()).resident_bytes
    ours = estimate(m, load_gpu("h100-80g"), Workload(ctx_tokens=8192, batch_size=1), Plan()).per_gpu
    assert (per_gpu["kv_cache_bytes"], per_gpu["state_bytes"]) == (ours.kv_cache_bytes, ours.state_bytes)
    assert (per_gpu["state_bytes"] > 0) == bool(m.state_layer_indices)
