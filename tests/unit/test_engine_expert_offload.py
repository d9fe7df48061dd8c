"""MoE expert offload in llama.cpp (--n-cpu-moe N, --cpu-moe, -ot exps=CPU): priced from the GGUF tensors,
searched by fit --engine llamacpp, exported and re-checked."""
import shlex
from dataclasses import replace

import pytest
import yaml
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.engines.cmdline import parse_launch
from oomplan.engines.llamacpp.constants import llamacpp_constants
from oomplan.engines.llamacpp.gguf import gguf_sizes, gguf_tensors, tensor_bytes
from oomplan.engines.llamacpp.predict import predict_llamacpp
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.engines.llamacpp.split import decode_tokens_per_s, fit_n_cpu_moe, gpu_split
from oomplan.errors import InputError
from oomplan.profiles import load_gpu, load_model

MIXTRAL, RTX4090 = load_model("mixtral-8x7b"), load_gpu("rtx-4090")


def test_expert_bytes_are_the_exps_tensors_of_each_layer():
    sizes = gguf_sizes(MIXTRAL, "Q4_K_M")
    layer0 = sum(tensor_bytes(t) for t in gguf_tensors(MIXTRAL, "Q4_K_M") if t.layer == 0 and t.name.endswith("_exps"))
    assert sizes.expert_bytes[0] == layer0 > 0.9 * sizes.layer_bytes[0]  # experts are nearly all of a Mixtral layer
    assert gguf_sizes(load_model("llama-3.1-8b"), "Q4_K_M").expert_bytes == (0,) * 32


def test_n_cpu_moe_moves_the_first_n_layers_experts_to_the_host():
    """common/arg.cpp: llm_ffn_exps_block_regex(i) for i < N -> CPU buffer; attention, router stay on the GPU."""
    sizes, s = gguf_sizes(MIXTRAL, "Q4_K_M"), LlamaCppGiven(gguf_type="Q4_K_M", ctx_tokens=8192, n_cpu_moe=10)
    full = gpu_split(MIXTRAL, sizes, replace(s, n_cpu_moe=0), 33)
    off = gpu_split(MIXTRAL, sizes, s, 33)
    assert off.experts_host_bytes == sum(sizes.expert_bytes[:10])
    assert off.weights_gpu_bytes == full.weights_gpu_bytes - sum(sizes.expert_bytes[:10])
    assert off.weights_host_bytes == full.weights_host_bytes + sum(sizes.expert_bytes[:10])
    assert off.kv_gpu_bytes == full.kv_gpu_bytes  # the KV cache stays with its layer
    # layers -ngl already leaves on the CPU are not counted twice
    part = gpu_split(MIXTRAL, sizes, s, 20)  # layers 12..31 on the GPU
    assert part.experts_host_bytes == 0
    with pytest.raises(InputError, match="--n-cpu-moe: 40 is more than mixtral-8x7b's 32 layers"):
        gpu_split(MIXTRAL, sizes, replace(s, n_cpu_moe=40), 33)


def test_fit_n_cpu_moe_is_the_fewest_layers_that_fit():
    s = LlamaCppGiven(gguf_type="Q4_K_M", ctx_tokens=8192)
    sizes, c = gguf_sizes(MIXTRAL, "Q4_K_M"), llamacpp_constants()
    n = fit_n_cpu_moe(MIXTRAL, RTX4090, s, sizes)
    budget = RTX4090.memory_bytes - c.fit_margin_bytes
    assert gpu_split(MIXTRAL, sizes, replace(s, n_cpu_moe=n), 33).gpu_bytes <= budget
    assert gpu_split(MIXTRAL, sizes, replace(s, n_cpu_moe=n - 1), 33).gpu_bytes > budget
    assert fit_n_cpu_moe(load_model("llama-3.1-8b"), RTX4090, s) is None  # no experts


def test_decode_speed_reads_active_experts_from_host_ram():
    """tokens/s = 1 / (GPU bytes read / GPU bandwidth + host bytes read / host RAM bandwidth); experts are read
    in the ratio active/total (2 of 8 for Mixtral)."""
    sizes, c = gguf_sizes(MIXTRAL, "Q4_K_M"), llamacpp_constants()
    split = gpu_split(MIXTRAL, sizes, LlamaCppGiven(gguf_type="Q4_K_M", ctx_tokens=8192, n_cpu_moe=32), 33)
    experts = sum(sizes.expert_bytes)
    gpu_read = split.weights_gpu_bytes  # no experts left on the GPU
    host_read = split.weights_host_bytes - sizes.token_embd_bytes - experts * (1 - 2 / 8)
    expected = 1 / (gpu_read / RTX4090.memory_bandwidth_bytes_per_s + host_read / c.host_memory_bandwidth_bytes_per_s)
    assert decode_tokens_per_s(MIXTRAL, RTX4090, sizes, split, c) == pytest.approx(expected)
    assert 10 < expected < 40


def test_launch_flags_and_the_prediction():
    def launch(cmd):
        return parse_launch(shlex.split(cmd)).settings
    assert launch("llama-server -m Mixtral-8x7B-Q4_K_M.gguf --n-cpu-moe 12").n_cpu_moe == 12
    assert launch("llama-server -m Mixtral-8x7B-Q4_K_M.gguf -ncmoe 3").n_cpu_moe == 3
    assert launch("llama-server -m Mixtral-8x7B-Q4_K_M.gguf --cpu-moe -c 4096").n_cpu_moe == -1
    assert launch("llama-server -m Mixtral-8x7B-Q4_K_M.gguf -ot exps=CPU").n_cpu_moe == -1
    with pytest.raises(InputError, match=r"-ot: 'blk\.1\.ffn=CUDA0' is not modelled"):
        launch("llama-server -m Mixtral-8x7B-Q4_K_M.gguf -ot blk.1.ffn=CUDA0")
    whole = predict_llamacpp(MIXTRAL, RTX4090, LlamaCppGiven(gguf_type="Q4_K_M", ctx_tokens=8192, n_gpu_layers=99))
    assert not whole.ok and any(f.startswith("-ngl all --n-cpu-moe ") for f in whole.fixes)
    p = predict_llamacpp(MIXTRAL, RTX4090, LlamaCppGiven(gguf_type="Q4_K_M", ctx_tokens=8192, n_gpu_layers=99, n_cpu_moe=-1))
    assert p.ok and dict(p.settings)["--n-cpu-moe"] == "32" and "expert offload: the routed experts of 32 layers" in p.notes[-1]


def test_fit_searches_exports_and_check_rechecks_the_offload(tmp_path):
    runner, path = CliRunner(), tmp_path / "plan.yaml"
    r = runner.invoke(app, ["fit", "mixtral-8x7b", "--gpu", "rtx-4090", "--ctx", "8k", "--engine", "llamacpp", "--weights", "awq",
                            "-o", str(path)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "Q4_K_M · KV f16 · cpu-moe" in r.stdout
    plan = yaml.safe_load(path.read_text())["plan"]
    n = fit_n_cpu_moe(MIXTRAL, RTX4090, LlamaCppGiven(gguf_type="Q4_K_M", ctx_tokens=8192))
    assert plan["moe_layers_on_cpu"] == n
    exported = runner.invoke(app, ["export", str(path), "--to", "llamacpp"])
    assert exported.exit_code == 0 and f"--n-cpu-moe {n}" in exported.stdout
    checked = runner.invoke(app, ["check", str(path)], env={"COLUMNS": "200"})
    assert checked.exit_code == 0, checked.output
    assert f"--n-cpu-moe {n}" in checked.stdout and "PASS" in checked.stdout
    vllm = runner.invoke(app, ["check", str(path), "--engine", "vllm"])
    assert vllm.exit_code == 2 and "vLLM has no expert offload" in vllm.output
