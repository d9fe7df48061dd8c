"""--kv-policy through CliRunner: estimate, fit -o, check, export, curve; exact figures and exit codes.

Hand-computed figures (tests/unit/test_kv_policy.py): llama-3-8b keeps 131,072 B per token (32 layers x 4,096 B);
window 4096 + 4 sinks with 2,048-token chunks keeps 4,100 tokens, paged to 4,112.
"""
import json

import yaml
from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()
L8 = ["llama-3-8b", "--gpu", "h100", "--ctx", "8k"]


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "80"})


def estimate_json(*extra):
    r = run("estimate", *L8, "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_estimate_json_carries_the_policy_and_its_bytes():
    data = estimate_json("--kv-policy", "window:4096,sinks:4", "--prefill-chunk", "2048")
    assert data["per_gpu"]["kv_cache_bytes"] == 4112 * 131072 == 538_968_064
    assert data["plan"]["kv_policy"] == {"kind": "window", "window_tokens": 4096, "sink_tokens": 4}
    assert data["per_gpu"]["kv_cache"]["prefill_transient_bytes"] == 0
    budget = estimate_json("--kv-policy", "budget:2048")
    # 32 layers x 2,048 tokens + one layer's (8,192 - 2,048) tokens while it compresses, x 4,096 B
    assert budget["per_gpu"]["kv_cache"]["prefill_transient_bytes"] == 6144 * 4096 == 25_165_824
    assert budget["per_gpu"]["kv_cache_bytes"] == 2048 * 131072 + 25_165_824
    assert budget["notes"][0] == "KV policy budget 2048 tokens (docs/kv-policies.md): lossy, priced per layer as the KV kept at its peak"


def test_a_policy_that_keeps_the_whole_context_is_called_lossless():
    # window 8192 + 4 sinks keeps 8,196 tokens >= the 8,192-token context: nothing is evicted, the same KV as no policy
    whole = estimate_json("--kv-policy", "window:8192")
    assert whole["per_gpu"]["kv_cache_bytes"] == estimate_json()["per_gpu"]["kv_cache_bytes"] == 8192 * 131072
    assert whole["notes"][0] == ("KV policy window 8192 + 4 sinks (docs/kv-policies.md): lossless here, a no-op: it keeps "
                                 "8,196 tokens per layer and the context is 8,192, so nothing is evicted and the KV cache "
                                 "is the full context's")
    assert not any("lossy" in n for n in whole["notes"])
    assert estimate_json("--kv-policy", "budget:8192")["notes"][0].startswith("KV policy budget 8192 tokens (docs/kv-policies.md): lossless here")
    # one token short of the context (8,187 + 4 = 8,191) is lossy again
    assert "lossy" in estimate_json("--kv-policy", "window:8187")["notes"][0]
    r = run("estimate", *L8, "--kv-policy", "window:8192")
    shown = " ".join(r.stdout.split())  # the table wraps notes at 80 columns
    assert r.exit_code == 0 and "lossless here, a no-op: it keeps 8,196 tokens" in shown and "lossy" not in shown


def test_dms_policy_is_the_same_as_the_dms_flags():
    assert estimate_json("--kv-policy", "dms:4,window:256")["per_gpu"] == estimate_json("--dms", "4", "--dms-window", "256")["per_gpu"]
    assert estimate_json("--kv-policy", "none")["per_gpu"] == estimate_json()["per_gpu"]


def test_estimate_table_row_and_notes():
    r = run("estimate", *L8, "--kv-policy", "window:4096,sinks:4")
    assert r.exit_code == 0, r.output
    lines = [line.rstrip() for line in r.stdout.splitlines()]
    assert "│ KV cache    │  1.00 GiB │    1.3% │ 128.0 KiB/token x 8192 tokens x 1        │" in lines
    assert "│             │           │         │ (window 4096 + 4 sinks)                  │" in lines
    assert "bf16 weights, bf16 KV, window 4096 + 4 sinks, paged/16, sdpa" in lines
    assert "note: window: one forward pass writes the whole prompt into every layer before" in lines


def test_fit_writes_the_policy_and_check_and_export_read_it(tmp_path):
    path = tmp_path / "plan.yaml"
    r = run("fit", "llama-3.1-8b", "--gpu", "l4", "--ctx", "128k", "--weights", "bf16", "--kv-dtype", "bf16", "--no-dms",
            "--host-mem", "0", "--max-gpus", "1", "--kv-policy", "window:4096,sinks:4", "-o", str(path))
    assert r.exit_code == 0, r.output
    plan = yaml.safe_load(path.read_text())["plan"]
    assert plan["kv_policy"] == {"kind": "window", "window_tokens": 4096, "sink_tokens": 4}
    assert plan["prefill_chunk_tokens"] == 2048
    checked = run("check", str(path))
    assert checked.exit_code == 0, checked.output
    assert "PASS: 16.52 GiB of 22.05 GiB per GPU on l4" in checked.stdout  # the last chunk attends the 4,100 kept tokens, not 128k
    cmd = run("export", str(path), "--to", "llamacpp")
    assert cmd.exit_code == 0, cmd.output
    assert cmd.stdout.splitlines()[1:7] == ["llama-server -m llama-3.1-8b-BF16.gguf \\", "    -c 4100 \\", "    -np 1 \\",
                                           "    -ngl 33 \\", "    --context-shift \\", "    --keep 4 \\"]
    vllm = run("export", str(path), "--to", "vllm")
    assert "# NOT REALISED by vllm: --kv-policy window:4096,sinks:4 (vLLM has no attention-sink eviction" in vllm.stdout
    engine = run("check", str(path), "--engine", "vllm")
    assert engine.exit_code == 2
    assert engine.stderr.strip() == (
        f"error: {path}: plan.kv_policy window:4096,sinks:4: not realised by vLLM (vLLM has no attention-sink eviction (StreamingLLM) "
        "and keeps a sliding window only where the model's config declares one; its KV pool keeps every token); price the policy "
        "without --engine, and see `oomplan export` for what each engine runs")
    # llama.cpp realises the window: check --engine llamacpp prices its pool of 4 + 4096 tokens per slot (-c padded to 4352)
    shifted = run("check", str(path), "--engine", "llamacpp", "--gguf-type", "Q4_K_M")
    assert shifted.exit_code == 0, shifted.output
    assert "fits: 1 x 131,072 tokens by context shift, 4,352 held per sequence, in a pool of 4,352 tokens" in shifted.stdout


LLAMACPP_WINDOW = ("estimate", "llama-3.1-8b", "--gpu", "rtx-4090", "--ctx", "128k", "--engine", "llamacpp", "--gguf-type", "Q4_K_M")


def test_llamacpp_realises_a_window_policy_by_context_shift():
    r = run(*LLAMACPP_WINDOW, "--kv-policy", "window:4096,sinks:4")
    assert r.exit_code == 0, r.output
    # -c = sinks + window = 4,100, padded by llama.cpp to a multiple of 256 (4,352): 32 layers x 2 x 8 heads x 128 x 2 B
    # = 128 KiB a cell, 4,352 cells = 544 MiB; the full 128k context would need 16 GiB
    data = json.loads(run(*LLAMACPP_WINDOW, "--kv-policy", "window:4096,sinks:4", "--json").stdout)["engine"]
    assert data["kv_cache_bytes"] == 4352 * 32 * 2 * 8 * 128 * 2 == 570_425_344
    assert data["settings"]["--keep"] == "4" and "--context-shift" in data["settings"] and data["shifts_context"]
    lines = r.stdout.splitlines()
    assert lines[-1] == "fits: 1 x 131,072 tokens by context shift, 4,352 held per sequence, in a pool of 4,352 tokens"
    assert ("note: context shift: each slot holds 4,352 tokens; when one fills while generating, llama.cpp keeps the first 4 (--keep) "
            "and discards half of the rest, so a sequence runs past 4,352 tokens with 4,352 held; a prompt of 4,352 tokens or more "
            "is refused (HTTP 400)") in lines
    full = json.loads(run(*LLAMACPP_WINDOW, "--json").stdout)["engine"]
    assert full["kv_cache_bytes"] == 131072 * 32 * 2 * 8 * 128 * 2 and "--context-shift" not in full["settings"]


def test_llamacpp_names_the_policies_it_does_not_realise():
    r = run(*LLAMACPP_WINDOW, "--kv-policy", "budget:4096")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == ("error: --kv-policy budget:4096: not realised by llama.cpp (llama.cpp has no score-based eviction (H2O / SnapKV "
                        "patch transformers' attention in their reference code); its KV pool keeps every token); price the policy "
                        "without --engine, and see `oomplan export` for what each engine runs\n")


def test_vet_reads_context_shift_and_says_what_it_does():
    r = run("vet", "--gpu", "rtx-4090", "--", "llama-server", "-m", "llama-3.1-8b-Q4_K_M.gguf", "-c", "4100", "--context-shift", "--keep", "4")
    assert r.exit_code == 0, r.output
    assert any(line.startswith("note: context shift: each slot holds 4,352 tokens; when one fills while generating, llama.cpp keeps "
                               "the first 4 (--keep)") for line in r.stdout.splitlines())


def test_fit_without_the_flag_searches_no_policy():
    r = run("fit", "llama-3.1-8b", "--gpu", "l4", "--ctx", "128k", "--weights", "bf16", "--kv-dtype", "bf16", "--no-dms",
            "--host-mem", "0", "--max-gpus", "1")
    assert r.exit_code == 1, r.output  # nothing lossy allowed: no plan fits


def test_curve_compare_takes_a_policy():
    r = run("curve", "llama-3.1-8b", "--gpu", "l4", "--points", "6", "--json",
            "--compare", "kv-policy=window:4096,sinks:4,prefill-chunk=2048")
    assert r.exit_code == 0, r.output
    curves = json.loads(r.stdout)["curves"]
    assert curves[1]["plan"]["kv_policy"] == {"kind": "window", "window_tokens": 4096, "sink_tokens": 4}
    assert curves[1]["plan"]["prefill_chunk_tokens"] == 2048


def test_a_training_estimate_refuses_the_policy():
    r = run("estimate", *L8, "--train", "lora", "--kv-policy", "budget:512")
    assert r.exit_code == 2
    assert r.stderr.strip().endswith("--kv-policy: not used with --train (full and lora train bf16 weights; qlora's base is nf4)")


def test_fit_with_an_engine_does_not_drop_a_policy():
    r = run("fit", "llama-3.1-8b", "--gpu", "rtx-4090", "--engine", "llamacpp", "--kv-policy", "window:4096,sinks:4")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == ("error: --kv-policy: fit --engine llamacpp does not search KV policies; price one with "
                        "oomplan estimate --engine llamacpp --kv-policy SPEC\n")
