"""`oomplan estimate` through typer's CliRunner: real output, exit codes, JSON schema."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

GPU = str(Path(__file__).resolve().parents[1] / "fixtures" / "a100-40g-fixture.yaml")
runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_fits_exit_0_and_table():
    r = run("estimate", "llama-3-8b", "--gpu", GPU, "--ctx", "8k")
    assert r.exit_code == 0, r.output
    assert "weights" in r.stdout and "KV cache" in r.stdout and "headroom" in r.stdout
    assert "14.96 GiB" in r.stdout  # 8,030,261,248 x 2 B
    assert "1.00 GiB" in r.stdout  # 128 KiB/token x 8192 tokens
    assert r.stdout.strip().splitlines()[-1].startswith("fits: ")


def test_does_not_fit_exit_1():
    r = run("estimate", "llama-3-70b", "--gpu", GPU, "--ctx", "8k")
    assert r.exit_code == 1
    assert "does not fit: needs" in r.stdout
    assert "131.42 GiB" in r.stdout  # 70,553,706,496 x 2 B


def test_json_schema_fields():
    r = run("estimate", "llama-3-8b", "--gpu", GPU, "--ctx", "32k", "--batch", "2", "--kv-dtype", "fp8", "--json")
    data = json.loads(r.stdout)
    assert data["schema_version"] == 1
    assert data["model"]["num_params"] == 8_030_261_248
    assert data["gpu"]["memory_bytes"] == 40 * 2**30
    assert data["kv_cache_bytes_per_token"] == 65_536
    per = data["per_gpu"]
    assert per["kv_cache_bytes"] == 65_536 * 32768 * 2
    assert per["weights_bytes"] == 8_030_261_248 * 2
    assert per["total_bytes"] == per["weights_bytes"] + per["kv_cache_bytes"] + per["activation_bytes"] + per["overhead_bytes"]
    assert data["fits"] is (per["total_bytes"] <= 40 * 2**30)
    assert r.exit_code == (0 if data["fits"] else 1)


def test_json_tp_kv_replication():
    data = json.loads(run("estimate", "llama-3-70b", "--gpu", GPU, "--tp", "8", "--json").stdout)
    assert data["kv_cache_bytes_per_token"] == 327_680 // 8
    assert data["per_gpu"]["overhead"]["nccl_bytes"] == 2**30


@pytest.mark.parametrize("args,fragment", [
    (["--ctx", "32q"], "--ctx: '32q' is not a count"),
    (["--ctx", "0"], "--ctx: 0 is out of range"),
    (["--batch", "-1"], "--batch: -1 is out of range; accepted: 1..1048576"),
    (["--tp", "3"], "tensor_parallel (3) must divide num_attention_heads (32)"),
    (["--weights", "int3"], "--weights: 'int3' is not accepted; use one of auto"),
    (["--kv-dtype", "fp4"], "--kv-dtype: 'fp4' is not accepted; use one of auto"),
    (["--offload-gib", "40 GiBs"], "--offload-gib: '40 GiBs' is not a size"),
    (["--dms", "0.5"], "--dms: 0.5 is out of range; accepted: 1..64"),
])
def test_bad_flags_exit_2_one_line(args, fragment):
    r = run("estimate", "llama-3-8b", "--gpu", GPU, *args)
    assert r.exit_code == 2
    assert fragment in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output


def test_unknown_gpu_and_model():
    r = run("estimate", "llama-3-8b", "--gpu", "a100-40")
    assert r.exit_code == 2 and "--gpu: no GPU named 'a100-40'" in r.stderr
    r = run("estimate", "lama-3-8b", "--gpu", GPU)
    assert r.exit_code == 2 and "did you mean: llama-3-8b" in r.stderr


def test_ctx_beyond_max_position_warns_and_strict_errors():
    r = run("estimate", "llama-3-8b", "--gpu", GPU, "--ctx", "16k")
    assert "warning: --ctx 16384 exceeds llama-3-8b's max_position_embeddings (8192)" in r.stderr
    r = run("estimate", "llama-3-8b", "--gpu", GPU, "--ctx", "16k", "--strict")
    assert r.exit_code == 2 and "(--strict)" in r.stderr


def test_attention_free_model_has_no_position_limit_to_warn_of():
    # Mamba-Codestral's config has no max_position_embeddings (a Mamba-2 has no positions): the 2,048 stand-in
    # must not warn, nor fail --strict; an attention model past its window still does (test above)
    codestral = str(Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "families" / "mamba-codestral-7b-v0.1.json")
    r = run("estimate", codestral, "--gpu", GPU, "--ctx", "8k", "--strict")
    assert r.exit_code in (0, 1) and "max_position_embeddings" not in r.stderr, r.stderr


def test_dms_note_says_checkpoint_needed():
    r = run("estimate", "llama-3-8b", "--gpu", GPU, "--dms", "8")
    assert "needs a DMS-retrofitted checkpoint" in r.stdout


def test_debug_shows_traceback():
    r = run("--debug", "estimate", "llama-3-8b", "--gpu", GPU, "--tp", "3")
    assert r.exit_code != 0 and r.exception is not None


@pytest.mark.parametrize("args,code,fragment", [
    (["fit", "llama-3-8b", "--gpu", "h100", "--top", "0"], 2, "error: --top: 0 is out of range; accepted: 1..10000"),
    (["estimate", "llama-3-8b"], 2, "error: Missing option '--gpu'"),
    (["estimate", "llama-3-8b", "--gpu", "h100", "--nope"], 2, "error: No such option: --nope"),
    (["bogus"], 2, "error: No such command 'bogus'"),
    (["estimate", "llama-3-70b", "--gpu", GPU], 1, ""),
    (["estimate", "llama-3-8b", "--gpu", GPU], 0, ""),
])
def test_console_script_exit_codes_and_one_line_usage_errors(args, code, fragment):
    """The real entry point (not CliRunner): click's usage errors are one line too."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "oomplan", *args], capture_output=True, text=True)
    assert out.returncode == code
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 1


def test_raw_capacity_24gib():
    r = run("estimate", "llama-3-8b", "--gpu", "24GiB", "--ctx", "8k", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["gpu"]["memory_bytes"] == 24 * 2**30 and data["gpu"]["num_gpus"] == 1
    o = data["per_gpu"]["overhead"]
    assert o["cuda_context_bytes"] == 512 * 2**20 and o["cublas_workspace_bytes"] == 32 * 2**20 and o["nccl_bytes"] == 0
    assert "a raw capacity with default overheads" in r.stderr


def test_raw_capacity_2x80gib_plans_tp2():
    r = run("estimate", "llama-3-70b", "--gpu", "2x80GiB", "--ctx", "8k", "--json")
    data = json.loads(r.stdout)
    assert data["plan"]["tensor_parallel"] == 2 and data["gpu"]["num_gpus"] == 2
    assert data["per_gpu"]["overhead"]["nccl_bytes"] == 1_932_735_283
    assert data["per_gpu"]["capacity_bytes"] == 80 * 2**30
    assert "planning tensor parallel 2" in r.stderr
