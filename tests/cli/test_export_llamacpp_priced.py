"""`export --to llamacpp` writes what oomplan priced, and small flag/refusal wording fixes (session 10 export round).

llama.cpp counts n_layer + 1 offloadable layers and offloads the output layer first (ggml-org/llama.cpp#18148,
src/llama-model.cpp load_tensors: i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0), dev_output =
get_layer_buft_list(n_layer)), so -ngl n_layer leaves the first repeating layer on the CPU; its KV cache type
defaults to f16 (common/common.h cache_type_k).
"""
from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.memory.budget import estimate
from oomplan.profiles import load_gpu, load_model
from oomplan.report.exports import EXPORTERS
from oomplan.specs.plan import Plan, Workload

runner = CliRunner()
L31 = load_model("llama-3.1-8b")  # 32 decoder layers, bf16 checkpoint


def _llamacpp_parts(plan: Plan) -> list[str]:
    est = estimate(L31, load_gpu("h100"), Workload(ctx_tokens=4096, batch_size=1), plan)
    return EXPORTERS["llamacpp"](est).command.split(" \\\n    ")


def test_full_offload_exports_every_layer_and_the_output_layer():
    parts = _llamacpp_parts(Plan(weights="bf16"))
    assert "-ngl 33" in parts and "-ngl 32" not in parts  # 32 repeating layers + the output layer, as priced


def test_kv_auto_exports_llama_cpp_default_f16_not_bf16():
    parts = _llamacpp_parts(Plan(weights="bf16"))  # kv_dtype auto on a bf16 checkpoint
    assert "--cache-type-k f16" in parts and "--cache-type-v f16" in parts
    q8 = _llamacpp_parts(Plan(weights="bf16", kv_dtype="int8"))
    assert "--cache-type-k q8_0" in q8  # an explicit kv_dtype is still what the plan says


def _vet_weights(ngl: int) -> dict:
    cmd = f"llama-server -m Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf -ngl {ngl} -c 4096"
    r = runner.invoke(app, ["vet", "--gpu", "h100", "--json", "--", *shlex.split(cmd)])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_vet_prices_ngl_n_layer_with_the_first_layer_on_the_cpu():
    full, repeating, one = _vet_weights(33), _vet_weights(32), _vet_weights(1)
    assert "32/32 layers + output layer" in json.dumps(full)
    assert "31/32 layers + output layer" in json.dumps(repeating)
    assert "0/32 layers + output layer" in json.dumps(one)  # -ngl 1: the output layer alone


def test_max_gpus_zero_is_oomplans_one_line_error():
    r = runner.invoke(app, ["fit", "llama-3.1-8b", "--gpu", "h100", "--max-gpus", "0"])
    assert r.exit_code == 2
    assert r.stderr.strip() == "error: --max-gpus: 0 is out of range; accepted: 1..65536"
    top = runner.invoke(app, ["fit", "llama-3.1-8b", "--gpu", "h100", "--top", "0"])
    assert top.exit_code == 2 and top.stderr.strip() == "error: --top: 0 is out of range; accepted: 1..10000"


def test_config_without_model_type_is_named_as_such(tmp_path):
    transformers = pytest.importorskip("transformers")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"architectures": ["MambaForCausalLM"], "d_model": 64, "n_layer": 2, "vocab_size": 1000}))
    r = runner.invoke(app, ["estimate", str(path), "--gpu", "h100"])
    assert r.exit_code == 2
    assert "None" not in r.stderr and "model_type ''" not in r.stderr
    assert r.stderr.startswith(f"error: {path}: the config has no model_type and lacks llama-like fields")
    assert r.stderr.strip().endswith(f"transformers {transformers.__version__} cannot build a model from a config without model_type either")
