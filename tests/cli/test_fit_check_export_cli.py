"""fit / check / export through CliRunner: output, files, exit codes, round trips."""
import json

import yaml
from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_headline_fit_prints_ranked_plans():
    r = run("fit", "llama-3-70b", "--gpu", "a100-40g", "--ctx", "32k")
    assert r.exit_code == 0, r.output
    assert "by quality" in r.stdout
    assert "lossless" in r.stdout
    assert "searched 116,640 candidate plans" in r.stdout


def test_fit_json_plans_match_estimate():
    data = json.loads(run("fit", "llama-3-8b", "--gpu", "a100-40g", "--ctx", "8k", "--json", "--top", "3").stdout)
    assert data["schema_version"] == 1 and len(data["plans"]) == 3
    for p in data["plans"]:
        knobs = p["plan"]
        args = ["estimate", "llama-3-8b", "--gpu", "a100-40g", "--ctx", "8k", "--json", "--tp", str(knobs["tensor_parallel"]),
                "--weights", knobs["weights"], "--kv-dtype", knobs["kv_dtype"], "--dms", str(knobs["dms_ratio"]),
                "--block-size", str(knobs["block_size"]), "--offload-gib", f"{knobs['offload_bytes']}B"]
        args += ["--paged"] if knobs["paged"] else ["--no-paged"]
        if knobs["prefill_chunk_tokens"]:
            args += ["--prefill-chunk", str(knobs["prefill_chunk_tokens"])]
        est = json.loads(run(*args).stdout)
        assert est["per_gpu"]["total_bytes"] == p["per_gpu"]["total_bytes"]


def test_ctx_max_and_batch_max():
    r = run("fit", "llama-3-8b", "--gpu", "a100-40g", "--ctx", "max", "--json")
    plans = json.loads(r.stdout)["plans"]
    assert plans[0]["workload"]["ctx_tokens"] == 8192  # the model's max_position_embeddings
    r = run("fit", "llama-3-8b", "--gpu", "a100-40g", "--ctx", "8k", "--batch", "max", "--no-dms", "--json")
    assert json.loads(r.stdout)["plans"][0]["workload"]["batch_size"] > 1


def test_nothing_fits_exit_1_with_diagnosis():
    r = run("fit", "llama-3.1-405b", "--gpu", "rtx-4090", "--ctx", "8k", "--host-mem", "0", "--no-dms")
    assert r.exit_code == 1
    assert "nothing fits." in r.stdout
    assert "over (weights" in r.stdout
    assert "more GPUs:" in r.stdout or "a larger card:" in r.stdout


def _write_plan(tmp_path, *extra):
    path = tmp_path / "plan.yaml"
    r = run("fit", "llama-3-8b", "--gpu", "a100-40g", "--ctx", "8k", "-o", str(path), *extra)
    assert r.exit_code == 0, r.output
    return path


def test_plan_file_round_trip_and_check(tmp_path):
    path = _write_plan(tmp_path)
    data = yaml.safe_load(path.read_text())
    assert data["schema_version"] == 1 and data["model"]["ref"] == "llama-3-8b" and len(data["model"]["config_sha256"]) == 64
    r = run("check", str(path), "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["per_gpu"]["total_bytes"] == data["predicted"]["total_bytes"]
    assert "PASS" in run("check", str(path)).stdout


def test_check_exit_codes(tmp_path):
    path = _write_plan(tmp_path)
    assert run("check", str(path), "--margin", "100%").exit_code == 2  # out of the accepted range 0..0.99
    assert run("check", str(path), "--margin", "90%").exit_code == 1
    assert run("check", str(path), "--gpu", "t4").exit_code == 1
    assert run("check", str(path), "--ctx", "1k").exit_code == 0
    assert run("check", str(tmp_path / "missing.yaml")).exit_code == 2


def test_refuses_overwrite_without_force(tmp_path):
    path = _write_plan(tmp_path)
    r = run("fit", "llama-3-8b", "--gpu", "a100-40g", "--ctx", "8k", "-o", str(path))
    assert r.exit_code == 2 and "exists; pass --force" in r.stderr
    assert run("fit", "llama-3-8b", "--gpu", "a100-40g", "--ctx", "8k", "-o", str(path), "--force").exit_code == 0


def test_check_rejects_bad_plan_files(tmp_path):
    path = _write_plan(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["plan"]["tensor_paralel"] = 2
    path.write_text(yaml.safe_dump(data))
    r = run("check", str(path))
    assert r.exit_code == 2 and "unknown field 'plan.tensor_paralel'" in r.stderr and "did you mean: tensor_parallel" in r.stderr
    data["plan"].pop("tensor_paralel")
    data["schema_version"] = 7
    path.write_text(yaml.safe_dump(data))
    r = run("check", str(path))
    assert r.exit_code == 2 and "schema_version 7 is newer" in r.stderr


def test_export_vllm(tmp_path):
    path = tmp_path / "p.yaml"
    assert run("fit", "llama-3-70b", "--gpu", "h100", "--ctx", "8k", "--weights", "fp8", "--kv-dtype", "fp8", "--no-dms", "-o", str(path)).exit_code == 0
    out = run("export", str(path), "--to", "vllm").stdout
    assert "vllm serve meta-llama/Meta-Llama-3-70B" in out
    assert "--quantization fp8" in out and "--kv-cache-dtype fp8" in out and "--max-model-len 8192" in out


def test_export_says_what_engine_cannot_do(tmp_path):
    path = tmp_path / "p.yaml"
    # one 40 GB card without offload needs int4 weights, a compressed KV and DMS at 8k
    r = run("fit", "llama-3-70b", "--gpu", "a100-40g", "--ctx", "8k", "--gpus", "1", "--host-mem", "0", "-o", str(path))
    assert r.exit_code == 0
    out = run("export", str(path), "--to", "vllm").stdout
    assert "# NOT REALISED by vllm: DMS" in out
    for engine, fragment in [("sglang", "python -m sglang.launch_server"), ("llamacpp", "llama-server -m llama-3-70b-Q4_K_M.gguf"), ("hf", "AutoModelForCausalLM.from_pretrained(")]:
        assert fragment in run("export", str(path), "--to", engine).stdout
    assert run("export", str(path), "--to", "trt").exit_code == 2
