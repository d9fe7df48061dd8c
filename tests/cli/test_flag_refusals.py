"""Flags refused before any output (exit 2, one line naming the flag, the value and what is accepted):
`--pick` beyond what fits, and engine knobs no engine reads (no --engine, or an engine that does not read them)."""
import json

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "100"})


@pytest.mark.parametrize("args", [
    ("fit", "llama-3-8b", "--gpu", "h100", "--ctx", "8k"),
    ("fit", "llama-3-8b", "--gpu", "h100", "--ctx", "max", "--no-dms", "--weights", "bf16"),
    ("fit", "llama-3.1-8b", "--gpu", "h100", "--ctx", "8k", "--batch", "4", "--engine", "vllm"),
    ("fit", "llama-3.1-8b", "--gpu", "h100", "--train", "lora", "--seq", "4k", "--global-batch", "8", "--gpus", "1"),
])
def test_pick_beyond_the_plans_that_fit_is_refused_before_printing(tmp_path, args):
    every = json.loads(run(*args, "--top", "10000", "--json").stdout)["plans"]
    n = len(every)
    assert n > 1
    out = tmp_path / "plan.yaml"
    r = run(*args, "--pick", str(n + 1), "-o", str(out))
    assert r.exit_code == 2 and r.stdout == "" and not out.exists()
    assert r.stderr == f"error: --pick {n + 1}: only {n} plans fit; give --pick 1 to {n}\n"
    r = run(*args, "--pick", str(n), "-o", str(out))  # the last one is accepted
    assert r.exit_code == 0 and out.exists(), r.output


def test_pick_with_one_plan_names_the_only_value(tmp_path):
    args = ("fit", "llama-3-8b", "--gpu", "h100", "--ctx", "8k", "--weights", "bf16", "--kv-dtype", "bf16", "--no-dms", "--gpus", "1",
            "--host-mem", "0")
    assert len(json.loads(run(*args, "--json").stdout)["plans"]) == 1
    r = run(*args, "--pick", "2")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr == "error: --pick 2: only 1 plan fits; give --pick 1\n"


NO_ENGINE = "without --engine nothing reads it"
KNOBS = [  # (flag, value, who reads it, the --engine values that do)
    ("--gpu-memory-utilization", "0.8", "vLLM", "--engine vllm"),
    ("--max-model-len", "8k", "vLLM/SGLang", "--engine vllm or --engine sglang"),
    ("--max-num-seqs", "8", "vLLM/SGLang", "--engine vllm or --engine sglang"),
    ("--max-num-batched-tokens", "4096", "vLLM/SGLang", "--engine vllm or --engine sglang"),
    ("--mem-fraction-static", "0.8", "SGLang", "--engine sglang"),
    ("--gguf-type", "Q4_K_M", "llama.cpp", "--engine llamacpp"),
    ("--n-gpu-layers", "10", "llama.cpp", "--engine llamacpp"),
]


@pytest.mark.parametrize("flag,value,owner,needed", KNOBS)
def test_estimate_refuses_an_engine_knob_without_engine(flag, value, owner, needed):
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", flag, value)
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == f"error: {flag}: an engine setting read only by {owner}; it needs {needed} ({NO_ENGINE})\n"


@pytest.mark.parametrize("flag,value,owner,needed", [k for k in KNOBS if k[0] in (
    "--gpu-memory-utilization", "--max-num-seqs", "--max-num-batched-tokens", "--mem-fraction-static")])
def test_fit_refuses_an_engine_knob_without_engine(flag, value, owner, needed):
    r = run("fit", "llama-3.1-8b", "--gpu", "h100", flag, value)
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == f"error: {flag}: an engine setting read only by {owner}; it needs {needed} ({NO_ENGINE})\n"


def test_a_knob_of_another_engine_is_refused():
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--engine", "vllm", "--mem-fraction-static", "0.8")
    assert r.exit_code == 2
    assert r.stderr == ("error: --mem-fraction-static: an engine setting read only by SGLang; it needs --engine sglang "
                        "(--engine vllm does not read it)\n")
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--engine", "sglang", "--max-model-len", "8k")
    assert r.exit_code == 0, r.output  # SGLang reads it (--context-length)


def test_check_refuses_a_knob_the_plans_engine_does_not_read(tmp_path):
    plan = tmp_path / "plan.yaml"
    assert run("fit", "llama-3.1-8b", "--gpu", "h100", "--ctx", "8k", "-o", str(plan)).exit_code == 0  # an hf plan
    r = run("check", str(plan), "--gpu-memory-utilization", "0.8")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == f"error: --gpu-memory-utilization: an engine setting read only by vLLM; it needs --engine vllm ({NO_ENGINE})\n"
    r = run("check", str(plan), str(plan), "--engine", "hf", "--n-gpu-layers", "4")
    assert r.exit_code == 2
    assert r.stderr == f"error: --n-gpu-layers: an engine setting read only by llama.cpp; it needs --engine llamacpp ({NO_ENGINE})\n"
    assert run("check", str(plan), "--engine", "vllm", "--gpu-memory-utilization", "0.8").exit_code in (0, 1)
