"""`oomplan vet -- <engine command>` through CliRunner: real command lines, exact output fragments, exit codes."""
import json
import shlex

from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()


def vet(gpu: str, command: str, *options: str):
    return runner.invoke(app, ["vet", "--gpu", gpu, *options, "--", *shlex.split(command)])


def test_vllm_calibration_command_starts():
    r = vet("h100", "vllm serve meta-llama/Llama-3.1-8B-Instruct --gpu-memory-utilization 0.95 --max-model-len 8192 --port 8000",
            "--engine-version", "0.19")
    assert r.exit_code == 0, r.output
    assert "llama-3.1-8b on NVIDIA H100 80GB SXM5 · vLLM" in r.stdout
    assert "KV pool 58.09 GiB = 29,744 blocks: 475,904 tokens; max concurrency at 8,192 tokens per request: 58.09x" in r.stdout
    assert "starts: vLLM holds" in r.stdout
    assert "not memory-relevant, read past: --port" in r.stdout


def test_vllm_refuses_max_model_len_larger_than_the_pool():
    r = vet("h100", "vllm serve meta-llama/Llama-3.1-70B-Instruct --tensor-parallel-size 2", "--engine-version", "0.19")
    assert r.exit_code == 1
    assert "llama-3.1-70b on 2 x NVIDIA H100 80GB SXM5 · vLLM" in r.stdout
    assert ("will not start: max_model_len 131072 needs 20.00 GiB of KV cache for one request, larger than the available "
            "KV cache memory (1.49 GiB)") in r.stdout
    assert "fix: --max-model-len 9728 | --tensor-parallel-size 4 | --quantization fp8" in r.stdout
    ok = vet("h100", "vllm serve meta-llama/Llama-3.1-70B-Instruct --tensor-parallel-size 2 --max-model-len 9728", "--engine-version", "0.19")
    assert ok.exit_code == 0, ok.output


def test_vllm_033_pool_has_graphs_inside_the_budget_and_the_092_default():
    """The README example under vLLM 0.33 (the default): 0.92 x 79.19 GiB - weights - activations - non-torch
    - the CUDA-graph estimate - V2's penalty state (0.27+: 1024 sequences x (128,256 + 4,008) x 4 bytes); the pool
    is larger than 0.19's 1.48 GiB (the 0.92 default outweighs the graphs and the state)."""
    r = vet("h100", "vllm serve meta-llama/Llama-3.1-70B-Instruct --tensor-parallel-size 2")
    assert r.exit_code == 1
    assert "note: vLLM 0.33 accounting, the newest modelled" in r.stdout
    assert "--gpu-memory-utilization 0.92" in r.stdout and "inside the budget" in r.stdout
    data = json.loads(vet("h100", "vllm serve meta-llama/Llama-3.1-70B-Instruct --tensor-parallel-size 2", "--json").stdout)["engine"]
    items = {i["name"]: i["bytes"] for i in data["per_gpu"]}
    assert items["sampler state"] == 1024 * (128256 + 4008) * 4
    available = (int(85029158912 * 0.92) - items["weights"] - items["activation peak"] - items["non-torch"] - items["CUDA graphs"]
                 - items["sampler state"])
    page = 16 * 8 // 2 * 128 * 2 * 2 * 80  # one block of every layer: 16 tokens x 4 KV heads per GPU x 128 x K,V x bf16 x 80 layers
    assert data["version"] == "0.33" and data["num_kv_blocks"] == available // page == 1125
    assert data["kv_cache_tokens"] == int(1125 / 8192 * 131072) == 18000  # 0.21+: concurrency x max_model_len
    assert vet("h100", "vllm serve meta-llama/Llama-3.1-70B-Instruct -tp 2", "--engine-version", "0.34").exit_code == 2


def test_vllm_json_engine_object():
    r = vet("h100", "python -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-3.1-70B-Instruct -tp 2", "--json",
            "--engine-version", "0.19")
    data = json.loads(r.stdout)
    assert r.exit_code == 1 and data["ok"] is False
    e = data["engine"]
    assert (e["name"], e["kv_cache_tokens"], e["num_kv_blocks"], e["starts"]) == ("vllm", 9728, 608, False)
    assert e["settings"]["--max-model-len"] == "131072" and e["fixes"][0] == "--max-model-len 9728"
    assert [i["name"] for i in e["per_gpu"]][:4] == ["weights", "activation peak", "non-torch", "KV pool"]


def test_sglang_starts_and_sglang_capped_context():
    r = vet("h100", "python -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --tp 2 --host 0.0.0.0")
    assert r.exit_code == 0, r.output
    assert "qwen2.5-7b on 2 x NVIDIA H100 80GB SXM5 · SGLang" in r.stdout
    # SGLang 0.5.23's default: (81090 - (512 + 8192 x 1.5 + 256 x 2 + 2/8 x 1024 + 58 x 8)) / 81090 MiB = 0.827
    assert "--mem-fraction-static 0.827" in r.stdout and "starts: SGLang holds" in r.stdout
    r = vet("h100", "python -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --mem-fraction-static 0.2 --context-length 131072")
    assert r.exit_code == 1
    assert "starts, but will not serve: the token pool holds 28,488 tokens: a request is capped at 28,487" in r.stdout
    assert "fix: --context-length 28487 | --mem-fraction-static 0.27 | --tp-size 2" in r.stdout


def test_llama_server_too_many_layers_on_a_small_card():
    r = vet("rtx-4090", "llama-server -m /models/Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf -ngl 99 -c 8192 --port 8080")
    assert r.exit_code == 1
    assert "will not start: CUDA out of memory: -ngl 81 needs 42.30 GiB on the GPU" in r.stdout
    assert "the card has 23.64 GiB" in r.stdout and "fix: -ngl 42" in r.stdout
    fixed = vet("rtx-4090", "llama-server -m /models/Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf -ngl 43 -c 8192")
    assert fixed.exit_code == 0, fixed.output
    # -ngl 43: the output layer first, then the last 42 repeating layers (llama.cpp#18148)
    assert "Q4_K_M: 42/80 layers + output layer" in fixed.stdout and "partial offload: 38 of 81 layers run on the CPU" in fixed.stdout


def test_llama_server_fits_and_reads_the_gguf_type():
    r = vet("rtx-4090", "llama-server -m Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf -ngl 99 -c 16384 -np 4 -fa on")
    assert r.exit_code == 0, r.output
    assert "note: GGUF Q4_K_M: 4.58 GiB (4.89 bits per weight)" in r.stdout
    assert "KV pool 2.00 GiB: 16,384 tokens; max concurrency at 4,096 tokens per request: 4.00x" in r.stdout


def test_invalid_input_exits_2_with_one_line():
    r = vet("h100", "vllm serve meta-llama/Llama-3.1-8B-Instruct --kv-cache-dtype fp7")
    assert r.exit_code == 2
    assert "error: --kv-cache-dtype: 'fp7' is not accepted; use one of auto, float16, bfloat16, fp8" in r.stderr
    r = vet("rtx-4090", "llama-server -m my-finetune-Q4_K_M.gguf")
    assert r.exit_code == 2 and "cannot tell the model from GGUF 'my-finetune-Q4_K_M.gguf'" in r.stderr
    assert vet("rtx-4090", "llama-server -m my-finetune-Q4_K_M.gguf -c 4096", "--model-profile", "llama-3.1-8b").exit_code == 0
    r = vet("h100", "ollama run llama3")
    assert r.exit_code == 2 and "is not a known engine command" in r.stderr
    assert runner.invoke(app, ["vet", "--gpu", "h100"]).exit_code == 2


def test_memory_relevant_flags_are_read_or_named_as_not_modelled():
    """vLLM 0.33 / SGLang 0.5.23 flags that change memory: read (--num-gpu-blocks-override, --performance-mode,
    --no-async-scheduling) or named in a warning; --strict fails on the named ones."""
    cmd = ("vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 8192 --enable-lora --max-lora-rank 64 --port 8000 "
           "--performance-mode throughput --num-gpu-blocks-override 1000 -dp 2 --load-format fastsafetensors")
    r = vet("h100", cmd, "--json")
    data = json.loads(r.stdout)
    assert r.exit_code == 0 and data["ignored_flags"] == ["--port"]
    assert data["unmodelled_flags"] == ["--enable-lora", "--max-lora-rank", "-dp", "--load-format"]
    e = data["engine"]  # throughput mode doubles get_batch_defaults (8192 -> 16384, 1024 -> 2048); the override is the pool
    assert (e["num_kv_blocks"], e["settings"]["--max-num-batched-tokens"], e["settings"]["--max-num-seqs"]) == (1000, "16384", "2048")
    assert "memory-relevant but not modelled" in vet("h100", cmd).stdout
    assert vet("h100", cmd, "--strict").exit_code == 1
    s = vet("h100", "python -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --dp-size 2 --enable-hierarchical-cache", "--json")
    assert json.loads(s.stdout)["unmodelled_flags"] == ["--dp-size", "--enable-hierarchical-cache"]
    # llama.cpp's device selection by name is named, not called irrelevant (-ts/-sm/-mg are read: test_llamacpp_multi_gpu_cli.py)
    cmd = "llama-server -m Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf -ngl 99 --device CUDA0 --port 8080"
    data = json.loads(vet("rtx-4090", cmd, "--json").stdout)
    assert data["unmodelled_flags"] == ["--device"] and data["ignored_flags"] == ["--port"]
    assert data["engine"]["settings"]["-ngl"] == "33"  # the values were consumed with their flags, not read as the model
    assert vet("rtx-4090", cmd, "--strict").exit_code == 1
