"""Launch-command parsing (vet) and SGLang's mem_fraction_static accounting."""
import shlex

import pytest

from oomplan.engines.cmdline import parse_int, parse_launch, resolve_model
from oomplan.engines.llamacpp.flags import gguf_model_stem, gguf_type_from_name
from oomplan.engines.sglang.constants import sglang_constants
from oomplan.engines.llamacpp.gguf import gguf_sizes
from oomplan.engines.sglang.predict import cell_bytes, predict_sglang
from oomplan.engines.sglang.settings import SglangGiven, default_mem_fraction, prefill_graph_sizes, resolve
from oomplan.errors import InputError
from oomplan.profiles import load_gpu, load_model


def launch(command: str, **kw):
    return parse_launch(shlex.split(command), **kw)


def test_vllm_int_suffixes_are_vllms():
    assert (parse_int("32k", "x"), parse_int("32K", "x"), parse_int("8192", "x")) == (32_000, 32_768, 8192)
    with pytest.raises(InputError, match="--max-model-len: 'lots' is not an integer"):
        parse_int("lots", "--max-model-len")


def test_vllm_serve_command():
    ln = launch("CUDA_VISIBLE_DEVICES=0,1 vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size=2 "
               "--max-model-len 32K --gpu-memory-utilization 0.95 --kv-cache-dtype fp8 --port 8000 --trust-remote-code --enforce-eager")
    s = ln.settings
    assert (ln.engine, ln.model_ref) == ("vllm", "meta-llama/Llama-3.1-8B-Instruct")
    assert (s.tensor_parallel, s.max_model_len, s.gpu_memory_utilization, s.kv_cache_dtype, s.enforce_eager) == (2, 32768, 0.95, "fp8", True)
    assert ln.ignored_flags == ("--port", "--trust-remote-code")
    api = launch("python -m vllm.entrypoints.openai.api_server --model Qwen/Qwen2.5-7B-Instruct -tp 4 -q fp8")
    assert (api.engine, api.model_ref, api.settings.tensor_parallel, api.settings.quantization) == ("vllm", "Qwen/Qwen2.5-7B-Instruct", 4, "fp8")


def test_sglang_and_llama_server_commands():
    s = launch("python3 -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B-Instruct --tp 2 --mem-fraction-static 0.85 --context-length 65536")
    assert (s.engine, s.settings.tp_size, s.settings.mem_fraction_static, s.settings.context_length) == ("sglang", 2, 0.85, 65536)
    ln = launch("./build/bin/llama-server -m /models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf -ngl 99 -c 16384 -fa -np 4 -ctk q8_0 -ctv q8_0")
    ls = ln.settings
    assert (ln.engine, ls.gguf_type, ls.n_gpu_layers, ls.ctx_tokens, ls.flash_attn, ls.n_parallel, ls.cache_type_k) == (
        "llamacpp", "Q4_K_M", 99, 16384, "on", 4, "q8_0")
    hf = launch("llama-server -hf bartowski/gemma-2-9b-it-GGUF:Q5_K_M -fa off -ngl all")
    assert (hf.settings.gguf_type, hf.settings.flash_attn, hf.settings.n_gpu_layers) == ("Q5_K_M", "off", 999)


@pytest.mark.parametrize("command,message", [
    ("vllm serve m --kv-cache-dtype fp7", "--kv-cache-dtype: 'fp7' is not accepted"),
    ("vllm serve m --gpu-memory-utilization lots", "--gpu-memory-utilization: 'lots' is not a number"),
    ("vllm serve --max-model-len 4096", "vllm: no model in the command"),
    ("llama-server -m model.gguf", "cannot tell the GGUF type from 'model.gguf'"),
    ("llama-server -m x-Q4_K_M.gguf -ctk q3", "-ctk: 'q3' is not accepted"),
    ("ollama run llama3", "is not a known engine command"),
])
def test_bad_commands_name_the_flag(command, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        launch(command)


def test_gguf_names():
    assert gguf_type_from_name("llama-3.1-8b-instruct.Q8_0.gguf") == "Q8_0"
    assert gguf_type_from_name("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf") == "Q4_K_M"
    assert gguf_model_stem("Meta-Llama-3.1-8B-Instruct-IQ4_XS.gguf") == "Meta-Llama-3.1-8B-Instruct"
    assert gguf_model_stem("bartowski/gemma-2-9b-it-GGUF:Q5_K_M") == "gemma-2-9b-it"


def test_resolve_model_from_gguf_name_or_profile():
    assert resolve_model(launch("llama-server -m /m/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"), None).name == "llama-3.1-8b"
    with pytest.raises(InputError, match="cannot tell the model from GGUF"):
        resolve_model(launch("llama-server -m my-finetune-Q4_K_M.gguf"), None)
    assert resolve_model(launch("llama-server -m my-finetune-Q4_K_M.gguf"), "llama-3.1-8b").name == "llama-3.1-8b"


def test_sglang_default_mem_fraction_on_h100():
    # SGLang 0.5.23 memory_hook.py: 81090 MiB; reserve 512 + 8192 x 1.5 + 256 x 2 (decode graphs) + 1/8 x 1024
    # + 58 prefill graph sizes up to 8192 tokens x 8 MiB = 13904 MiB (above the 10 GiB floor)
    gpu, c = load_gpu("h100"), sglang_constants("0.5.23")
    assert len(prefill_graph_sizes(8192, c)) == 8 + 14 + 8 + 8 + 12 + 8
    assert default_mem_fraction(gpu, 8192, 256, 1, c, 58 * 8) == round((81090 - 13904) / 81090, 3) == 0.829
    s = resolve(load_model("llama-3.1-8b"), gpu, SglangGiven())
    assert (s.chunked_prefill_size, s.cuda_graph_max_bs, s.cuda_graph_max_bs_prefill, s.mem_fraction_static, s.context_length) == (
        8192, 256, 8192, 0.829, 131072)


def test_sglang_0523_small_card_fraction():
    """A 24 GiB card: chunk 4096, decode graphs 48, 50 prefill sizes up to 4096 (400 MiB), no 10 GiB floor."""
    gpu = load_gpu("rtx-4090")
    mib = gpu.memory_bytes / 2**20
    reserve = 512 + 4096 * 1.5 + 48 * 2 + 1024 / 8 + 50 * 8
    s = resolve(load_model("llama-3.1-8b"), gpu, SglangGiven())
    assert (s.chunked_prefill_size, s.cuda_graph_max_bs, s.mem_fraction_static) == (4096, 48, round((mib - reserve) / mib, 3))
    assert 0.69 < s.mem_fraction_static < 0.72
    capped = resolve(load_model("llama-3.1-8b"), gpu, SglangGiven(max_running_requests=16, disable_prefill_cuda_graph=True))
    assert (capped.cuda_graph_max_bs, capped.cuda_graph_max_bs_prefill) == (16, 0)
    assert capped.mem_fraction_static == round((mib - (512 + 6144 + 32 + 128)) / mib, 3)
    with pytest.raises(InputError, match="SGLang 0.5.0 is not modelled; modelled: 0.5.23"):
        resolve(load_model("llama-3.1-8b"), gpu, SglangGiven(engine_version="0.5.0"))


def test_sglang_token_pool():
    model, gpu = load_model("llama-3.1-8b"), load_gpu("h100")
    assert cell_bytes(model, 32, 1, 2) == 8 * 128 * 32 * 2 * 2
    p = predict_sglang(model, gpu, SglangGiven(mem_fraction_static=0.8, context_length=8192))
    static = int((gpu.memory_bytes - gpu.overhead.cuda_context_bytes) * 0.8)
    weights = p.items[0].bytes
    assert p.kv_cache_tokens == (static - weights) // 131072
    assert p.ok and p.max_concurrency == pytest.approx(p.kv_cache_tokens / 8192)


def test_sglang_small_fraction_fails_with_fixes():
    p = predict_sglang(load_model("llama-3.1-8b"), load_gpu("h100"), SglangGiven(mem_fraction_static=0.15))
    assert not p.starts and "not enough memory for the KV pool" in p.failures[0]
    p = predict_sglang(load_model("llama-3.1-8b"), load_gpu("h100"), SglangGiven(mem_fraction_static=0.3))
    assert p.starts and not p.ok and "a request is capped at" in p.failures[0]
    assert p.fixes[0] == f"--context-length {p.kv_cache_tokens - 1}"


def test_switches_do_not_swallow_the_model():
    ln = launch("vllm serve --trust-remote-code --enable-prefix-caching meta-llama/Llama-3.1-8B-Instruct --max-model-len 4096")
    assert (ln.model_ref, ln.settings.max_model_len) == ("meta-llama/Llama-3.1-8B-Instruct", 4096)
    with pytest.raises(InputError, match="--gguf-type: 'Q9_K' .* is not modelled"):
        gguf_sizes(load_model("llama-3.1-8b"), "Q9_K")
