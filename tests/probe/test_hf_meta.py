"""The transformers path (issue 13 part 7): architectures oomplan has no family for, counted on the meta device.

Configs: tests/fixtures/configs/transformers/ (tiny configs of real transformers 5.24.0 architectures that
oomplan has no family for: cohere2 (3 sliding layers of 4, tied embeddings; models/cohere2/modeling_cohere2.py),
olmoe (64 -> 8 experts, q/k norms over all heads; models/olmoe/modeling_olmoe.py), mamba (conv + SSM state;
models/mamba/modeling_mamba.py)). Expected numbers are computed by hand from those files; the cache bytes
are also checked against the storages a forward at two other context lengths leaves (run_meta_probe).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from oomplan.cli.app import app  # noqa: E402
from oomplan.probe.hf_meta import derived_cache_bytes, measure_model  # noqa: E402
from oomplan.probe.meta_run import run_meta_probe  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "transformers"
COHERE2 = json.loads((CONFIGS / "cohere2-tiny.json").read_text())
OLMOE = json.loads((CONFIGS / "olmoe-tiny.json").read_text())
MAMBA = {"model_type": "mamba", "architectures": ["MambaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 1000,
         "state_size": 8, "conv_kernel": 4, "expand": 2, "torch_dtype": "bfloat16"}
BF16 = 2
runner = CliRunner()


def _measure(raw, ctx=1000, batch=2):
    return measure_model(raw, name="t", source="test", config_sha256="0", ctx_tokens=ctx, batch_size=batch)


@pytest.fixture(scope="module")
def cohere2():
    return _measure(COHERE2)


def test_cohere2_params_by_component_by_hand(cohere2):
    h, V, L, inter, H, K, d = 256, 8192, 4, 768, 4, 2, 64
    assert cohere2.architecture == "Cohere2ForCausalLM" and cohere2.counted_by.startswith("transformers ")
    # tied lm_head (Cohere2Config.tie_word_embeddings defaults to True): counted once, as the embedding
    assert cohere2.params_by_component == {
        "embedding": V * h,
        "attention": L * (h * H * d + 2 * h * K * d + H * d * h),  # q, k, v, o; no biases
        "mlp": L * 3 * h * inter,  # gate, up, down
        "norm": (L + 1) * h,  # Cohere2LayerNorm: one per layer (parallel block) + the final one, weight only
    }
    assert cohere2.weights_bytes == BF16 * cohere2.num_params + cohere2.buffer_bytes


def test_cohere2_kv_per_layer_and_window(cohere2):
    per_token = 2 * 2 * 64 * BF16  # K and V, 2 KV heads of 64
    assert [(c.bytes_per_token, c.window_tokens, c.per_sequence_bytes) for c in cohere2.cache_layers] == \
        [(per_token, 512, 0)] * 3 + [(per_token, None, 0)]
    # the sliding layers' int64 window size (cache_utils.py DynamicSlidingWindowLayer._sliding_window_tensor), once per batch
    assert [c.shared_bytes for c in cohere2.cache_layers] == [8, 8, 8, 0]
    assert cohere2.activations.kv_and_state_bytes_final == 2 * per_token * (3 * 512 + 1000) + 3 * 8


@pytest.mark.parametrize("ctx,batch", [(300, 1), (900, 3)])
def test_derived_cache_equals_cache_tensors_at_other_shapes(cohere2, ctx, batch):
    measured = run_meta_probe(COHERE2, ctx_tokens=ctx, batch_size=batch, attention="sdpa", num_decode_steps=1).kv_cache_bytes_final
    assert derived_cache_bytes(cohere2.cache_layers, ctx, batch) == measured


def test_olmoe_experts_router_and_untied_head():
    m = _measure(OLMOE, ctx=64, batch=1)
    h, V, L, inter, E = 256, 8192, 2, 128, 8
    assert m.params_by_component == {
        "embedding": V * h, "lm_head": V * h,
        "attention": L * 4 * h * h,
        "experts": L * E * 3 * h * inter,  # fused gate_up [E, 2I, h] and down [E, h, I]
        "router": L * E * h,
        "norm": L * (2 * h + 2 * h) + h,  # two layer norms, q_norm and k_norm over all heads (4 x 64), the final norm
    }
    assert [c.bytes_per_token for c in m.cache_layers] == [2 * 4 * 64 * BF16] * L


def test_mamba_state_is_fixed_per_sequence():
    m = _measure(MAMBA, ctx=50, batch=3)
    inner = 2 * 64
    per_layer = inner * 4 * BF16 + inner * 8 * 4  # conv [inner, conv_kernel] in bf16 + ssm [inner, state_size] in fp32
    assert [(c.bytes_per_token, c.per_sequence_bytes) for c in m.cache_layers] == [(0, per_layer)] * 2
    assert m.activations.kv_and_state_bytes_final == 3 * 2 * per_layer


def _cli(*args):
    return runner.invoke(app, list(args))


def test_cli_estimate_counts_with_transformers():
    r = _cli("estimate", str(CONFIGS / "cohere2-tiny.json"), "--gpu", "h100", "--ctx", "1000", "--batch", "2", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["counted_by"].startswith("transformers ") and out["model"]["architecture"] == "Cohere2ForCausalLM"
    per_token = 2 * 2 * 64 * BF16
    # paged (the default, blocks of 16): the full layer's 1000 tokens take 1008; the 512-token windows are whole blocks
    assert out["per_gpu"]["kv_cache_bytes"] == 2 * per_token * (3 * 512 + 1008) + 3 * 8
    assert out["per_gpu"]["state_bytes"] == 0
    assert out["model"]["num_params"] == 8192 * 256 + 4 * (2 * 256 * 256 + 2 * 256 * 128) + 4 * 3 * 256 * 768 + 5 * 256
    p = out["per_gpu"]
    assert p["total_bytes"] == p["weights_bytes"] + p["kv_cache_bytes"] + p["activation_bytes"] + p["overhead_bytes"]


def test_cli_table_says_counted_by_transformers():
    r = _cli("estimate", str(CONFIGS / "olmoe-tiny.json"), "--gpu", "24GiB", "--ctx", "256")
    assert r.exit_code == 0, r.output
    assert "counted by transformers" in r.stdout and r.stdout.strip().splitlines()[-1].startswith("fits: ")


def test_cli_fit_one_plan_and_refusals():
    r = _cli("fit", str(CONFIGS / "olmoe-tiny.json"), "--gpu", "h100", "--ctx", "256")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("1 plan priced: one GPU")
    for args in (("fit", "--ctx", "max"), ("estimate", "--tp", "2"), ("estimate", "--weights", "int4"), ("estimate", "--train", "lora")):
        r = _cli(args[0], str(CONFIGS / "olmoe-tiny.json"), "--gpu", "h100", *args[1:])
        assert r.exit_code == 2, (args, r.output)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: {args[1]}"), r.stderr


def test_unknown_to_transformers_too_is_refused_in_one_line():
    r = _cli("estimate", str(CONFIGS.parent / "mystery-llama.json"), "--gpu", "h100")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "transformers" in r.stderr and "does not know model_type 'mystery' either" in r.stderr


def test_quantised_config_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(OLMOE | {"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}))
    r = _cli("estimate", str(path), "--gpu", "h100", "--ctx", "256")
    assert r.exit_code == 2 and "quantization_config" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("declared", [
    {"text_config": {"quantization_config": {"quant_method": "compressed-tensors"}}},  # Kimi-K2.5: int4 experts nested
    {"quantization": {"group_size": 64, "bits": 4}},  # MLX
    {"compression_config": {"quant_method": "compressed-tensors"}},  # compressed-tensors before the rename
])
def test_quantisation_declared_elsewhere_refused(tmp_path, declared):
    """A declaration the meta model would not hold, wherever the config puts it, is refused naming its dotted path."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(OLMOE | declared))
    r = _cli("estimate", str(path), "--gpu", "h100", "--ctx", "256")
    key = next(iter(declared))
    field = f"{key}.quantization_config" if key == "text_config" else key
    assert r.exit_code == 2 and f"'{field}'" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_without_transformers_the_refusal_names_it(monkeypatch):
    import oomplan.probe.hf_meta as hf_meta

    monkeypatch.setattr(hf_meta, "transformers_version", lambda: None)
    r = _cli("estimate", str(CONFIGS / "olmoe-tiny.json"), "--gpu", "h100")
    assert r.exit_code == 2
    assert "not a known family" in r.stderr and "install transformers" in r.stderr and r.stderr.count("\n") == 1


# Kimi-Linear (transformers 5.24.0 models/kimi_linear/configuration_kimi_linear.py: MLA full-attention layers beside KDA
# linear-attention state layers; vLLM's KimiLinearForCausalLM) is one of the two real architectures that pair MLA with
# state layers (the other, BailingMoeV2_5 / bailing_hybrid, pairs MLA with lightning linear attention). oomplan has no
# family for either, so an engine refuses it rather than guess vLLM's MLA + state page unification.
KIMI_LINEAR_TINY = {"model_type": "kimi_linear", "architectures": ["KimiLinearForCausalLM"], "hidden_size": 256,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1000,
                    "kv_lora_rank": 64, "q_lora_rank": None, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16,
                    "v_head_dim": 32, "intermediate_size": 512, "moe_intermediate_size": 128, "num_experts": 4,
                    "num_experts_per_token": 2, "linear_attn_config": {"full_attn_layers": [2], "kda_layers": [1],
                                                                       "head_dim": 32, "num_heads": 4,
                                                                       "short_conv_kernel_size": 4},
                    "torch_dtype": "bfloat16"}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_mla_beside_state_layers_is_refused_by_the_engines(tmp_path, engine):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(KIMI_LINEAR_TINY))
    r = _cli("estimate", str(path), "--gpu", "h100", "--engine", engine)
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and "engines are priced only by a family" in r.stderr, r.stderr


def test_model_dtype_on_the_transformers_path(tmp_path):
    """No dtype: counted in bf16 with the note saying so; float64 (a torch dtype, no model dtype): exit 2, never bf16."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in MAMBA.items() if k != "torch_dtype"}))
    r = _cli("estimate", str(path), "--gpu", "h100", "--ctx", "64", "--json")
    assert r.exit_code == 0, r.output
    assert any("declares no torch_dtype" in n for n in json.loads(r.stdout)["notes"])
    assert not any("torch_dtype" in n for n in _measure(MAMBA).notes)
    path.write_text(json.dumps({**MAMBA, "torch_dtype": "float64"}))
    r = _cli("estimate", str(path), "--gpu", "h100")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "field 'torch_dtype': 'float64' is a torch dtype" in r.stderr, r.output
