"""`oomplan vet` on hybrid (Mamba / GDN) and DSA models: the serve flags that shape their pools are read, the
hybrid manager's block raise is stated, and the pools an engine's model does not price are refused with exit 2.
Hand-computed values: tests/unit/test_engine_vllm_hybrid.py (same configs, tests/fixtures/configs/SOURCES.md)."""
import json
import shlex
from pathlib import Path

from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"


def vet(gpu: str, config: str, command: str, *options: str):
    return runner.invoke(app, ["vet", "--gpu", gpu, "--model-profile", str(CONFIGS / config), *options, "--",
                               *shlex.split(command)])


def test_vllm_reads_the_mamba_flags_and_states_the_raised_block():
    # fp32 recurrent state at TP 4: 3 x 2,048 x 2 + 8 x 128 x 128 x 4 = 536,576 bytes -> 16 x cdiv(536,576, 16 x 1,024) = 528
    cmd = ("vllm serve Qwen/Qwen3-Next-80B-A3B-Instruct -tp 4 --max-model-len 32768 --mamba-ssm-cache-dtype float32 "
           "--no-enable-prefix-caching")
    r = vet("h100", "qwen3-next-80b-a3b.json", cmd, "--engine-version", "0.26", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["ignored_flags"] == [] and data["unmodelled_flags"] == []
    assert data["engine"]["settings"]["--block-size"] == "528"
    text = vet("h100", "qwen3-next-80b-a3b.json", cmd, "--engine-version", "0.26").stdout
    assert "attention block raised to 528 tokens" in text and "conv bfloat16, ssm float32" in text
    assert "prefix caching off: one state per request" in text and "per-request capacity" in text


def test_vllm_dsa_prices_fp8_ds_mla_on_026_and_refuses_033():
    cmd = "vllm serve deepseek-ai/DeepSeek-V3.2 -tp 8 --max-model-len 32768 --kv-cache-dtype fp8_ds_mla"
    r = vet("h200", "deepseek-v3.2.json", cmd, "--engine-version", "0.26")
    assert r.exit_code == 0 and "656 bytes (fp8_ds_mla)" in r.stdout and "132 bytes" in r.stdout
    r = vet("h200", "deepseek-v3.2.json", cmd)
    assert r.exit_code == 2 and "vLLM 0.33's sparse-MLA (DSA) pool layout is not modelled" in r.stderr


def test_sglang_prices_the_hybrid_pool_with_its_flags():
    # priced since SGLang 0.5.23's hybrid pools are modelled (tests/unit/test_engine_sglang_pools.py)
    r = vet("h200", "qwen3.5-27b.json", "python -m sglang.launch_server --model-path Qwen/Qwen3.5-27B --max-mamba-cache-size 64",
            "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["unmodelled_flags"] == [] and data["ignored_flags"] == []
    assert "max_mamba_cache_size: 64" in " ".join(data["engine"]["notes"])
