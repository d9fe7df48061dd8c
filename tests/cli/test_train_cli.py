"""`estimate --train`, `fit --train`, and `check` of a training plan file, through typer's CliRunner."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()
COMPONENTS = ("weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes", "gradient_bytes", "optimizer_bytes")


def run(*args):
    return runner.invoke(app, list(args))


def test_full_finetune_json_itemises_gradients_and_optimizer():
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--train", "full", "--seq", "4k", "--json")
    assert r.exit_code == 1, r.output  # 16 B/param x 8B params > 80 GB
    data = json.loads(r.stdout)
    g = data["per_gpu"]
    assert g["kv_cache_bytes"] == 0
    assert g["total_bytes"] == sum(g[k] for k in COMPONENTS)
    assert g["gradient_bytes"] == 2 * data["model"]["num_params"]
    assert g["optimizer_bytes"] == 8 * data["model"]["num_params"]
    assert g["weights"]["master_bytes"] == 4 * data["model"]["num_params"]
    assert data["training"]["mode"] == "full" and data["fits"] is False
    assert g["activations"]["peak_phase"] == "loss backward"


def test_zero3_on_8_gpus_fits_and_table():
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--train", "full", "--seq", "4k", "--dp", "8", "--zero", "3",
            "--recompute", "full")
    assert r.exit_code == 0, r.output
    assert "gradients" in r.stdout and "optimizer" in r.stdout and "ZeRO-3" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("fits: ")


def test_qlora_and_offload_host_memory():
    r = run("estimate", "llama-3.1-70b", "--gpu", "h100", "--train", "qlora", "--seq", "2k", "--recompute", "full", "--json")
    assert r.exit_code == 0, r.output
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", "--train", "full", "--seq", "2k", "--zero", "2", "--offload-optimizer",
            "--recompute", "full", "--host-mem", "64GiB")
    assert r.exit_code == 1 and "CPU memory" in r.stdout and "--host-mem allows" in r.stdout


@pytest.mark.parametrize("args,flag", [
    (("--zero", "2"), "--zero"),
    (("--recompute", "full"), "--recompute"),
])
def test_training_flags_need_train(args, flag):
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", *args)
    assert r.exit_code == 2
    assert r.output.startswith(f"error: {flag}: only used with --train")


@pytest.mark.parametrize("args,message", [
    (("--train", "half"), "--train: 'half' is not accepted; use one of full, lora, qlora"),
    (("--train", "full", "--optimizer", "lion"), "--optimizer: 'lion' is not accepted; use one of adamw, adamw8bit, adafactor, sgd"),
    (("--train", "full", "--zero", "4"), "--zero: '4' is not accepted; use 0, 1, 2 or 3"),
    (("--train", "full", "--zero", "2", "--fsdp", "full"), "--zero/--fsdp: zero_stage 2 and fsdp 'full' both shard; give one of them"),
    (("--train", "full", "--offload-params"), "--zero/--fsdp/--offload-params: offload_params needs ZeRO-3 or FSDP"),
    (("--train", "lora", "--lora-targets", "qkv"), "--lora-targets: 'qkv' is not a linear layer of llama-3.1-8b"),
    (("--train", "full", "--weights", "nf4"), "--weights: not used with --train"),
    (("--train", "full", "--tp", "3"), "--tp: tensor_parallel (3) must divide num_attention_heads (32)"),
])
def test_bad_training_input_is_one_line_exit_2(args, message):
    r = run("estimate", "llama-3.1-8b", "--gpu", "h100", *args)
    assert r.exit_code == 2
    assert r.output.startswith(f"error: {message}"), r.output
    assert len(r.output.strip().splitlines()) == 1


def test_fit_train_ranks_by_throughput_and_writes_a_checkable_plan(tmp_path: Path):
    r = run("fit", "llama-3.1-8b", "--gpu", "h100", "--train", "full", "--seq", "4k", "--global-batch", "64", "--json", "--top", "3")
    assert r.exit_code == 0, r.output
    plans = json.loads(r.stdout)["plans"]
    speeds = [p["training"]["tokens_per_s"] for p in plans]
    assert speeds == sorted(speeds, reverse=True)
    assert all(p["training"]["global_batch_size"] == 64 and p["fits"] for p in plans)
    out = tmp_path / "train.yaml"
    r = run("fit", "llama-3.1-8b", "--gpu", "h100", "--train", "lora", "--seq", "4k", "--global-batch", "8", "--gpus", "1", "-o", str(out))
    assert r.exit_code == 0 and out.exists()
    r = run("check", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["check"]["pass"] is True
    assert run("check", str(out), "--gpu", "t4").exit_code == 1
    r = run("export", str(out), "--to", "vllm")
    assert r.exit_code == 2 and "a training plan" in r.output


def test_fit_train_nothing_fits_says_what_would():
    r = run("fit", "llama-3.1-70b", "--gpu", "h100", "--train", "full", "--seq", "4k", "--gpus", "1")
    assert r.exit_code == 1
    assert "nothing fits." in r.stdout and "nearest:" in r.stdout and "what would fit" in r.stdout


def test_train_nofit_blames_host_memory_when_the_gpus_hold_it():
    """The nearest plan fits on the GPU (4 GiB of 24) but its offloaded states overflow --host-mem: say so."""
    from typer.testing import CliRunner

    from oomplan.cli.app import app

    r = CliRunner().invoke(app, ["fit", "llama-3.1-8b", "--gpu", "rtx-4090", "--train", "full", "--seq", "2k",
                                 "--global-batch", "8", "--max-gpus", "1", "--host-mem", "1GiB"])
    assert r.exit_code == 1
    line = next(x for x in r.stdout.splitlines() if x.startswith("nearest:"))
    assert "fits on the GPUs" in line and "of CPU memory per node, 1.00 GiB allowed (--host-mem)" in line


def test_training_json_model_object_is_the_inference_one():
    """The `model` object is the model's (report/estimate_json.py model_json takes a ModelSpec, not an Estimate):
    the same for a training step as for inference, parameters counted without adapters (those are
    training.num_trainable_params)."""
    inference = json.loads(run("estimate", "llama-3.1-8b", "--gpu", "h100", "--json").stdout)["model"]
    training = json.loads(run("estimate", "llama-3.1-8b", "--gpu", "h100", "--train", "lora", "--json").stdout)
    assert training["model"] == inference
    assert inference["num_params"] == 8_030_261_248  # Llama-3.1-8B (meta-llama/Llama-3.1-8B model card: 8.03B)
    assert 0 < training["training"]["num_trainable_params"] < inference["num_params"] // 100
