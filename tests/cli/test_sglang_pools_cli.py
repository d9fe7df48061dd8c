"""`oomplan estimate --engine sglang` and `oomplan vet -- python -m sglang.launch_server` on hybrid SWA, Mamba / GDN and
DSA models: SGLang 0.5.23's pools are priced, their flags read, what is not modelled refused with exit 2.
Hand-computed pool formulas: tests/unit/test_engine_sglang_pools.py."""
import json
import shlex

from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()


def vet(gpu: str, command: str, *options: str):
    return runner.invoke(app, ["vet", "--gpu", gpu, *options, "--", *shlex.split(command)])


def test_estimate_gpt_oss_states_both_pools():
    r = runner.invoke(app, ["estimate", "gpt-oss-20b", "--gpu", "h100", "--engine", "sglang"])
    assert r.exit_code == 0, r.output
    assert "SWA pool" in r.stdout and "window 128" in r.stdout
    assert "Use sliding window memory pool. full_layer_tokens=" in " ".join(r.stdout.split())


def test_vet_reads_the_swa_flags():
    cmd = "python -m sglang.launch_server --model-path openai/gpt-oss-120b --tp 2 --swa-full-tokens-ratio 0.5"
    r = vet("h100", cmd, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["unmodelled_flags"] == [] and data["ignored_flags"] == []
    notes = " ".join(data["engine"]["notes"])
    full = data["engine"]["kv_cache_tokens"]
    assert f"full_layer_tokens={full}, swa_layer_tokens={full // 2}" in notes  # int(full x 0.5), one-token pages
    off = json.loads(vet("h100", cmd + " --disable-hybrid-swa-memory", "--json").stdout)
    assert off["engine"]["kv_cache_tokens"] < full and "sliding window memory pool" not in " ".join(off["engine"]["notes"])


def test_vet_refuses_an_out_of_range_ratio():
    r = vet("h100", "python -m sglang.launch_server --model-path openai/gpt-oss-20b --swa-full-tokens-ratio 0")
    assert r.exit_code == 2
    assert "--swa-full-tokens-ratio: 0 is out of range; SGLang 0.5.23 accepts a ratio in (0, 1]" in r.stderr
    assert "Traceback" not in r.output


def test_vet_prices_the_mamba_state_and_its_dtype():
    cmd = ("python -m sglang.launch_server --model-path nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16 --mamba-ssm-dtype bfloat16 "
           "--mamba-full-memory-ratio 0.5 --disable-overlap-schedule")
    r = vet("h100", cmd, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["unmodelled_flags"] == [] and data["ignored_flags"] == []
    notes = " ".join(data["engine"]["notes"])
    assert "Mamba Cache is allocated. max_mamba_cache_size:" in notes
    assert "each running request holds 3 state slot(s)" in notes  # no_buffer without the overlap schedule
    per_gpu = {i["name"]: i for i in data["engine"]["per_gpu"]}
    # bf16 ssm: 23 x (36,864 + 64 x 64 x 128 x 2) = 24,965,120 B per slot
    assert per_gpu["Mamba state"]["bytes"] % 24_965_120 == 0


def test_vet_dsa_on_blackwell_and_hopper():
    r = vet("b200", "python -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3.2 --tp 8", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["engine"]["kv_cache_tokens"] % 64 == 0  # DSA pages of 64
    kv = next(i for i in data["engine"]["per_gpu"] if i["name"] == "KV pool")
    assert kv["bytes"] == data["engine"]["kv_cache_tokens"] * 43_188  # 61 x (576 fp8 raw + 132 indexer)
    r = vet("h200", "python -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3.2 --tp 8 --kv-cache-dtype fp8_e4m3 "
                    "--dsa-decode-backend flashmla_kv", "--json")
    kv = next(i for i in json.loads(r.stdout)["engine"]["per_gpu"] if i["name"] == "KV pool")
    assert kv["bytes"] % (61 * (656 + 132)) == 0


def test_vet_glm5_on_blackwell_needs_its_backends():
    r = vet("b200", "python -m sglang.launch_server --model-path zai-org/GLM-5 --tp 8")
    assert r.exit_code == 2 and "pass --dsa-prefill-backend and --dsa-decode-backend" in r.stderr
    r = vet("b200", "python -m sglang.launch_server --model-path zai-org/GLM-5 --tp 8 --dsa-prefill-backend trtllm "
                    "--dsa-decode-backend trtllm")
    assert r.exit_code in (0, 1), r.output  # priced (starts or not), not refused
    r = vet("b200", "python -m sglang.launch_server --model-path zai-org/GLM-5 --dsa-decode-backend fast")
    assert r.exit_code == 2 and "--dsa-decode-backend: 'fast' is not accepted" in r.stderr


def test_llama4_stays_refused():
    r = runner.invoke(app, ["estimate", "llama-4-scout-17b-16e", "--gpu", "h100", "--engine", "sglang", "--tp", "8"])
    assert r.exit_code == 2, r.output
    assert "Llama4ForConditionalGeneration with multimodal off" in r.stderr
