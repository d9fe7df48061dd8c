"""`vet -- llama-server` on several GPUs through CliRunner: -ts/-sm/-mg read, a box of different cards, bad input."""
import json
import shlex

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()
LLAMA70 = "llama-server -m Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf -c 16384"


def vet(gpu: str, command: str, *options: str):
    return runner.invoke(app, ["vet", "--gpu", gpu, *options, "--", *shlex.split(command)], env={"COLUMNS": "80"})


def error_lines(r) -> list[str]:
    """The error lines of a run (the GGUF-by-name note may come first)."""
    return [line for line in r.stderr.splitlines() if line.startswith("error: ")]


def test_a_box_of_two_cards_prices_each_gpu():
    r = vet("rtx-5090+rtx-4090", LLAMA70)
    assert r.exit_code == 0, r.output
    # 81 layers (80 + output) by free memory 33,131,986,944 : 24,849,481,728 -> il/81 < 0.5714 for il <= 46
    assert "note: GPU 0 rtx-5090: layers 0-46 (47/80), weights 22.38 GiB, KV 2.94 GiB, compute 208.0 MiB" in r.stdout
    assert "note: GPU 1 rtx-4090: layers 47-79 (33/80) + output layer, weights 16.66 GiB, KV 2.06 GiB, compute 266.5 MiB" in r.stdout
    assert "starts: llama.cpp holds 19.49 GiB of 23.64 GiB per GPU" in r.stdout  # the fullest GPU, the 4090
    data = json.loads(vet("rtx-5090+rtx-4090", LLAMA70 + " -ts 1,3 -ngl 81", "--json").stdout)
    assert data["unmodelled_flags"] == [] and data["engine"]["num_gpus"] == 2 and data["engine"]["settings"]["-ts"] == "1,3"
    assert vet("rtx-5090+rtx-4090", LLAMA70 + " -ts 1,3 -ngl 81").exit_code == 1  # 3/4 of 40 GiB does not fit a 4090


def test_one_card_kind_with_shares_is_that_many_cards():
    r = vet("rtx-4090", "llama-server -m Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf -c 8192 -ts 3,1 -sm layer -mg 0")
    assert r.exit_code == 0, r.output
    # 33 layers 3:1 -> il/33 < 0.75 for il <= 24; KV 32 MiB a layer at 8,192 cells
    assert "note: GPU 0 rtx-4090: layers 0-24 (25/32), weights 3.02 GiB, KV 800.0 MiB, compute 104.0 MiB" in r.stdout
    assert "note: GPU 1 rtx-4090: layers 25-31 (7/32) + output layer, weights 1.28 GiB, KV 224.0 MiB, compute 258.5 MiB" in r.stdout
    none = vet("rtx-5090+rtx-4090", "llama-server -m Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf -c 8192 -sm none -mg 1")
    assert "llama-3.1-8b on NVIDIA GeForce RTX 4090 · llama.cpp" in none.stdout


@pytest.mark.parametrize(("gpu", "flags", "message"), [
    ("rtx-5090+rtx-4090", "-ts 1,1,1", "error: --tensor-split: 3 shares for 2 GPUs (rtx-5090+rtx-4090); accepted: one share per GPU, e.g. 1,1"),
    ("rtx-4090", "-ts 1,-2", "error: -ts: '-2' is out of range; accepted: 0..1000000000000"),
    ("rtx-4090", "-ts 0,0", "error: --tensor-split: 0,0 sums to 0; accepted: shares >= 0 with a positive sum"),
    ("rtx-5090+rtx-4090", "-sm none -mg 2", "error: --main-gpu: 2 is out of range for 2 GPU(s); accepted: 0..1"),
    ("rtx-4090", "-sm diagonal", "error: -sm: 'diagonal' is not accepted; use one of none, layer, row"),
    ("rtx-5090+rtx-9999", "", "error: --gpu: no GPU named 'rtx-9999'"),
    ("rtx-5090+", "", "error: --gpu: 'rtx-5090+' has an empty item; give the box's cards joined by '+' (rtx-4090+rtx-3090)"),
])
def test_bad_placements_are_one_line_exit_2(gpu, flags, message):
    r = vet(gpu, f"{LLAMA70} {flags}")
    errors = [line for line in r.stderr.splitlines() if not line.startswith("note: ")]  # the GGUF-by-name note may come first
    assert r.exit_code == 2 and len(errors) == 1 and errors[0].startswith(message), r.stderr


def test_a_box_is_llamacpp_only():
    r = vet("rtx-5090+rtx-4090", "vllm serve meta-llama/Llama-3.1-8B-Instruct")
    assert r.exit_code == 2
    assert r.stderr == ("error: --gpu: rtx-5090+rtx-4090 is a box of different cards, priced for llama.cpp only (its "
                        "--tensor-split); give one card kind\n")


def test_fit_on_a_box_writes_the_split_it_priced_and_check_export_read_it(tmp_path):
    plan = tmp_path / "plan.yaml"
    r = runner.invoke(app, ["fit", "llama-3.1-70b", "--gpu", "rtx-5090+rtx-4090", "--engine", "llamacpp", "--ctx", "16k",
                            "--weights", "int4", "--kv-dtype", "fp16", "-o", str(plan)], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    assert "llama-3.1-70b on rtx-5090+rtx-4090 · llama.cpp · 16,384 x 1 · by quality" in r.stdout
    # the whole box (every layer on a GPU) before GPU 0 alone with 26 layers on the CPU; llama.cpp's default split
    # written out: free 33,131,986,944 B = 30.86 GiB and 24,849,481,728 B = 23.14 GiB
    assert "│ 1 │ Q4_K_M · KV f16 · layer split 30.86,23.14 · ngl 81/81 │    2 │" in r.stdout
    assert "│ 2 │ Q4_K_M · KV f16 · ngl 54/81                           │    1 │" in r.stdout
    text = plan.read_text()
    assert "  ref: rtx-5090+rtx-4090\n  num_gpus: 2\n" in text and "  tensor_split:\n  - 30.86\n  - 23.14\n" in text
    c = runner.invoke(app, ["check", str(plan)], env={"COLUMNS": "80"})
    assert c.exit_code == 0, c.output
    assert "│ weights        │ 16.66 GiB │   70.5% │ Q4_K_M: GPU 1 of 2, layers 47-79      │" in c.stdout  # the fullest GPU
    assert "PASS: fits: 1 x 16,384 tokens in a pool of 16,384 tokens; llama.cpp holds 19.49 GiB of 23.64 GiB per GPU" in c.stdout
    e = runner.invoke(app, ["export", str(plan), "--to", "llamacpp"])
    assert e.exit_code == 0 and "--split-mode layer \\\n    --tensor-split 30.86,23.14" in e.stdout
    h = runner.invoke(app, ["check", str(plan), "--engine", "hf"])
    assert h.exit_code == 2 and h.stderr.endswith("gpu.ref rtx-5090+rtx-4090 is a box of different cards; the transformers "
                                                  "estimate prices one card kind: check it with --engine llamacpp\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  - 23.14\n", "  - 23.14\n  - 1.0\n"))
    b = runner.invoke(app, ["check", str(bad)])
    assert b.exit_code == 2 and "tensor_split has 3 shares for 2 GPU(s); give one share per GPU" in b.stderr


def test_a_box_is_refused_outside_llamacpp_fit():
    r = runner.invoke(app, ["fit", "llama-3.1-8b", "--gpu", "rtx-5090+rtx-4090"])
    assert r.exit_code == 2 and r.stderr == (
        "error: --gpu: rtx-5090+rtx-4090 is a box of different cards, priced with --engine llamacpp (its --tensor-split); "
        "give one card kind for the transformers or training search\n")
    v = runner.invoke(app, ["fit", "llama-3.1-8b", "--gpu", "rtx-5090+rtx-4090", "--engine", "vllm"])
    assert v.exit_code == 2 and "is a box of different cards, priced for llama.cpp only" in v.stderr


def test_estimate_on_a_box_is_the_whole_box_by_default():
    r = runner.invoke(app, ["estimate", "llama-3.1-70b", "--gpu", "rtx-5090+rtx-4090", "--engine", "llamacpp", "--weights", "int4",
                            "--ctx", "16k"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert "note: GPU 0 rtx-5090: layers 0-46 (47/80), weights 22.38 GiB, KV 2.94 GiB, compute 208.0 MiB" in r.stdout
    h = runner.invoke(app, ["estimate", "llama-3.1-70b", "--gpu", "rtx-5090+rtx-4090"])
    assert h.exit_code == 2 and "is a box of different cards, priced with --engine llamacpp" in h.stderr


def test_fit_re_plans_the_layers_over_the_box():
    # 70B at 32k does not fit two 4090s as given; common/fit.cpp fills GPU 1 then GPU 0 (tests/unit/test_llamacpp_devices.py)
    r = vet("rtx-4090+rtx-4090", "llama-server -m Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf -c 32768")
    assert r.exit_code == 0, r.output
    assert "-m llama-3.1-70b Q4_K_M (39.59 GiB) -ngl 71 -sm layer -ts 36,35 -c 32768" in r.stdout
    assert "note: GPU 0 rtx-4090: layers 10-45 (36/80), weights 16.86 GiB, KV 4.50 GiB" in r.stdout
    assert "note: GPU 1 rtx-4090: layers 46-79 (34/80) + output layer, weights 17.11 GiB, KV 4.25 GiB" in r.stdout
    assert "note: --fit (on by default) set -ngl 71 --tensor-split 36,35: it fills the GPUs back to front" in r.stdout
    given = vet("rtx-4090+rtx-4090", "llama-server -m Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf -c 32768 -ngl 81")
    assert given.exit_code == 1
    assert ("will not start: --fit leaves the flags as given: -ngl 81 was set (fit.cpp: 'n_gpu_layers already set by "
            "user, abort')") in given.stdout
    moe = vet("rtx-4090+rtx-4090", "llama-server -m Mixtral-8x7B-Instruct-v0.1-Q4_K_M.gguf -c 131072")
    assert moe.exit_code == 2 and error_lines(moe) == [
        "error: --fit on 2 GPUs: mixtral-8x7b is a MoE model, for which llama.cpp moves the experts of single layers to the "
        "CPU or the next GPU (common/fit.cpp steps 3-4); oomplan does not model that: pass -ngl N --tensor-split A,B (and "
        "--n-cpu-moe N) to price a placement, or --fit off"]
    # --fit off: priced as given (it starts, with less than --fit's 1 GiB left on a GPU)
    assert vet("rtx-4090+rtx-4090", "llama-server -m Mixtral-8x7B-Instruct-v0.1-Q4_K_M.gguf -c 131072 --fit off").exit_code == 0


def test_row_split_prices_the_rounded_rows():
    r = vet("rtx-4090", "llama-server -m Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf -c 8192 -ts 3,1 -sm row")
    assert r.exit_code == 0, r.output
    # 3/4 of every matrix, 96,128 (not 96,192) of the 128,256 output rows at 3,360 bytes, 25 layers' norms
    assert "note: GPU 0 rtx-4090: layers 0-24 (25/32), weights 3.23 GiB, KV 800.0 MiB" in r.stdout
    assert "note: GPU 1 rtx-4090: layers 25-31 (7/32) + output layer, weights 1.08 GiB, KV 224.0 MiB" in r.stdout
    assert "rounded down to a multiple of the kernels' row tile (128 rows)" in " ".join(r.stdout.split())


def test_fit_on_one_gpu_refuses_a_moe_re_plan_and_keeps_expert_overrides():
    r = vet("rtx-4090", "llama-server -m Mixtral-8x7B-Instruct-v0.1-Q4_K_M.gguf -c 8192")
    assert r.exit_code == 2 and error_lines(r) == [
        "error: --fit on one GPU: mixtral-8x7b is a MoE model, for which llama.cpp moves the experts of single layers to "
        "the CPU (common/fit.cpp steps 3-4); oomplan does not model that: pass -ngl N (and --n-cpu-moe N) to price a "
        "placement, or --fit off"]
    given = vet("rtx-4090", "llama-server -m Mixtral-8x7B-Instruct-v0.1-Q4_K_M.gguf -c 8192 --n-cpu-moe 16")
    assert given.exit_code == 0, given.output  # fit.cpp gives up (tensor overrides set): every layer, experts of 16 on the CPU
    assert "-ngl 33" in given.stdout and "--n-cpu-moe 16" in given.stdout
