"""`fit --engine X --ctx max / --batch max` through CliRunner: each configuration at its largest context or batch,
exact to the token (llama.cpp: to its 256-cell padding), checked against hand-computed budgets."""
import json

from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.engines.llamacpp.predict import predict_llamacpp
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.planner.engine_search import largest_served
from oomplan.profiles import load_gpu, load_model

runner = CliRunner()


def fit(*args: str):
    return runner.invoke(app, ["fit", *args], env={"COLUMNS": "100"})


def test_llamacpp_ctx_max_is_the_last_256_cells_that_keep_fits_margin():
    # RTX 4090 25,386,352,640 B - its 512 MiB CUDA context (free at load) - --fit's 1 GiB = 23,775,739,904 for weights
    # + KV + compute (every layer on the GPU). Llama 3.1 8B BF16: 32 layers x 436,240,384 B + output 1,050,689,536 B =
    # 15,010,381,824 B; compute = the logits, (128,256 + 4,096) x 512 x 4 = 271,056,896 B; KV 32 x 1024 x 2 x 2 =
    # 131,072 B a token: (23,775,739,904 - 15,010,381,824 - 271,056,896) / 131,072 = 64,806.6 -> 253 x 256 = 64,768 cells
    r = fit("llama-3.1-8b", "--gpu", "rtx-4090", "--engine", "llamacpp", "--ctx", "max", "--weights", "bf16", "--kv-dtype", "bf16")
    assert r.exit_code == 0, r.output
    assert "llama-3.1-8b on rtx-4090 · llama.cpp · max ctx x 1 · by quality" in r.stdout
    assert "│ 1 │ BF16 · KV bf16 · ngl 33/33 │    1 │  64,768 │   7.91G │    64,768 │  1.0x │ lossless │" in r.stdout
    model, gpu = load_model("llama-3.1-8b"), load_gpu("rtx-4090")
    at = predict_llamacpp(model, gpu, LlamaCppGiven(gguf_type="BF16", ctx_tokens=64_768, cache_type_k="bf16", cache_type_v="bf16"))
    past = predict_llamacpp(model, gpu, LlamaCppGiven(gguf_type="BF16", ctx_tokens=64_769, cache_type_k="bf16", cache_type_v="bf16"))
    assert dict(at.settings)["-ngl"] == "33" and dict(past.settings)["-ngl"] == "32"  # one token more: --fit drops a layer
    data = json.loads(fit("llama-3.1-8b", "--gpu", "rtx-4090", "--engine", "llamacpp", "--ctx", "max", "--weights", "bf16",
                          "--kv-dtype", "bf16", "--json").stdout)
    assert {k: data["plans"][0]["workload"][k] for k in ("ctx_tokens", "batch_size", "engine")} == {
        "ctx_tokens": 64_768, "batch_size": 1, "engine": "llamacpp"}


def test_vllm_batch_max_is_the_pool_over_the_context():
    # the same search's plan at 8,192 tokens holds 454,176 tokens of KV (vLLM 0.33, the V2 sampler state in the budget):
    # 454,176 / 8,192 = 55.4 -> 55 sequences
    r = fit("llama-3.1-8b", "--gpu", "h100", "--engine", "vllm", "--batch", "max", "--ctx", "8k", "--weights", "bf16",
            "--kv-dtype", "bf16", "--max-gpus", "1")
    assert r.exit_code == 0, r.output
    assert "llama-3.1-8b on h100-sxm · vLLM · 8,192 x max batch · by quality" in r.stdout
    assert "│ 1 │ bf16 · KV bf16     │    1 │        55 │  55.44G │   454,176 │ 55.4x │ lossless │" in r.stdout


def test_sglang_ctx_max_answers_and_nothing_fits_is_exit_1():
    assert fit("llama-3.1-8b", "--gpu", "h100", "--engine", "sglang", "--ctx", "max", "--max-gpus", "1").exit_code == 0
    r = fit("llama-3.1-70b", "--gpu", "rtx-4090", "--engine", "llamacpp", "--ctx", "max", "--weights", "bf16")
    assert r.exit_code == 1
    assert "nothing fits with llama.cpp: none of 3 configurations serves 1 sequence(s) with every layer on the GPU" in r.stdout


def test_largest_served_bisects_a_monotone_answer():
    probes: list[int] = []

    def serves(n: int):
        probes.append(n)
        return "ok" if n <= 1000 else None
    assert largest_served(serves, 4096) == (1000, "ok")  # type: ignore[arg-type]
    assert len(probes) <= 2 + 12  # the ends, then log2(4096) halvings
    assert largest_served(lambda n: None, 10) == (0, None)
    assert largest_served(lambda n: "ok", 10) == (10, "ok")  # type: ignore[arg-type]
