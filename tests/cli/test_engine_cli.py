"""estimate / fit / check with --engine through CliRunner."""
import json

from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_estimate_engine_vllm_json():
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--ctx", "8k", "--batch", "32", "--engine", "vllm",
            "--gpu-memory-utilization", "0.95", "--engine-version", "0.19", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    e = data["engine"]
    assert data["fits"] is True and data["workload"]["engine"] == "vllm"
    assert (e["kv_cache_tokens"], e["context_tokens"], e["max_running_requests"]) == (475_904, 8192, 1024)
    assert e["max_concurrency"] == round(29_744 / 512, 4)
    assert data["per_gpu"]["weights_bytes"] > 0  # the transformers budget stays, for comparison


def test_estimate_engine_verdicts_and_exit_codes():
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--ctx", "8k", "--batch", "64", "--engine", "vllm", "--engine-version", "0.19")
    assert r.exit_code == 1
    assert "does not fit: batch 64 of 8,192 tokens, the pool holds 54.13 at once (at most 54 run)" in r.stdout
    r = run("estimate", "llama-3.1-70b", "--gpu", "rtx-4090", "--ctx", "8k", "--engine", "llamacpp", "--weights", "awq")
    assert r.exit_code == 0 and "Q4_K_M: 41/80 layers + output layer" in r.stdout  # --fit: -ngl 42, the output layer first
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--engine", "llamacpp", "--gguf-type", "Q5_K_M", "-ngl", "33")
    assert r.exit_code == 0 and "-m llama-3.1-8b Q5_K_M (5.33 GiB) -ngl 33" in r.stdout
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--ctx", "32k", "--batch", "8", "--engine", "sglang")
    assert r.exit_code == 0 and "fits: 8 x 32,768 tokens in a pool of" in r.stdout


def test_estimate_engine_bad_input():
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--engine", "tgi")
    assert r.exit_code == 2 and "--engine: 'tgi' is not accepted" in r.stderr
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--engine", "vllm", "--kv-dtype", "int4")
    assert r.exit_code == 2 and "--kv-dtype: 'int4' is not available in vLLM" in r.stderr
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--engine", "vllm", "--gpu-memory-utilization", "1.5")
    assert r.exit_code == 2 and "--gpu-memory-utilization" in r.stderr


def test_fit_engine_ranks_and_writes_a_plan_check_reads(tmp_path):
    path = tmp_path / "plan.yaml"
    r = run("fit", "llama-3.1-70b", "--gpu", "h100", "--ctx", "32k", "--batch", "16", "--engine", "vllm", "--top", "3", "-o", str(path))
    assert r.exit_code == 0, r.output
    assert "llama-3.1-70b on h100-sxm · vLLM · 32,768 x 16 · by quality" in r.stdout
    assert "48 vLLM configurations considered, 26 serve the workload" in r.stdout
    data = json.loads(run("fit", "llama-3.1-70b", "--gpu", "h100", "--ctx", "32k", "--batch", "16", "--engine", "vllm", "--json").stdout)
    assert data["plans"][0]["plan"]["tensor_parallel"] == 8 and data["plans"][0]["engine"]["ok"] is True
    r = run("check", str(path))  # the plan file remembers workload.engine: vllm
    assert r.exit_code == 0 and "PASS: fits: 16 x 32,768 tokens" in r.stdout
    r = run("check", str(path), "--batch", "64")
    assert r.exit_code == 1 and "FAIL: does not fit" in r.stdout
    r = run("check", str(path), "--engine", "hf", "--json")
    assert r.exit_code in (0, 1) and "engine" not in json.loads(r.stdout)


def test_fit_engine_nothing_fits_says_why():
    r = run("fit", "llama-3.1-405b", "--gpu", "l4", "--ctx", "32k", "--batch", "16", "--engine", "vllm", "--max-gpus", "2")
    assert r.exit_code == 1
    assert "nothing fits with vLLM: none of 24 configurations serves 16 x 32,768 tokens" in r.stdout
    assert "closest: nf4 · KV bf16 · TP2 on 2 GPU(s): no memory left for the KV cache" in r.stdout
