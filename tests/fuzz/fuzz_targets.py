"""Fuzz targets and input strategies, shared by the CI-sized tests and benchmarks/fuzz_long.py.

Each target must end in success or a clean oomplan error (an OomplanError, or a CLI exit code
0-3 with no traceback); anything else is a bug.
"""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import strategies as st
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.errors import OomplanError
from oomplan.memory.budget import estimate
from oomplan.planfile import load_plan_file
from oomplan.profiles import load_gpu
from oomplan.families import parse_hf_config
from oomplan.specs.plan import Plan, Workload

BASE_CONFIG = dict(
    model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=32000, hidden_size=512, intermediate_size=1024,
    num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=4096, torch_dtype="bfloat16",
)
MODEL_TYPES = ["llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma2", "phi3", "falcon",
               "deepseek_v2", "deepseek_v3", "bert", "t5", "mystery", ""]
EXTRA_KEYS = ["num_local_experts", "num_experts", "num_experts_per_tok", "moe_intermediate_size", "n_routed_experts",
              "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "sliding_window",
              "layer_types", "head_dim", "tie_word_embeddings", "first_k_dense_replace", "n_head", "num_kv_heads",
              "new_decoder_architecture", "use_sliding_window", "mlp_only_layers", "decoder_sparse_step", "torch_dtype"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from([0, 1, 2, 7, 64, 128, 4096, -1, 2**31, 10**15]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)
configs = st.one_of(
    st.builds(lambda base, mt, upd, drop: {k: v for k, v in {**base, "model_type": mt, **upd}.items() if k not in drop},
              st.just(BASE_CONFIG), st.sampled_from(MODEL_TYPES),
              st.dictionaries(st.sampled_from(list(BASE_CONFIG) + EXTRA_KEYS), values, max_size=5),
              st.sets(st.sampled_from(list(BASE_CONFIG)), max_size=3)),
    st.dictionaries(st.text(max_size=10), values, max_size=6),
    values,
)


def config_target(raw) -> None:
    """config.json -> ModelSpec -> estimate: each stage either works or raises OomplanError."""
    try:
        spec = parse_hf_config(raw, "fuzz", "fuzz.json")
        estimate(spec, load_gpu("h100"), Workload(ctx_tokens=4096), Plan())
    except OomplanError:
        pass


PLAN_TEMPLATE = {
    "schema_version": 1, "oomplan_version": "0.1.0",
    "model": {"ref": "llama-3-8b", "name": "llama-3-8b", "config_sha256": "0" * 64},
    "gpu": {"ref": "h100", "num_gpus": 1},
    "workload": {"ctx_tokens": 4096, "batch_size": 1, "engine": "hf"},
    "plan": {"weights": "auto", "kv_dtype": "auto", "tensor_parallel": 1},
    "predicted": {"weights_bytes": 1, "kv_cache_bytes": 1, "activation_bytes": 1, "overhead_bytes": 1, "total_bytes": 4,
                  "capacity_bytes": 5, "headroom_bytes": 1, "quality_risk": "lossless", "decode_tokens_per_s": 1.0},
}


def _mutate(template: dict, path: tuple[str, ...], value):
    data = json.loads(json.dumps(template))
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node
    if isinstance(node, dict):
        node[path[-1]] = value
    return data


plan_paths = st.sampled_from([("schema_version",), ("model", "ref"), ("gpu", "ref"), ("workload", "ctx_tokens"),
                              ("workload", "batch_size"), ("plan", "weights"), ("plan", "tensor_parallel"),
                              ("plan", "dms_ratio"), ("plan", "typo_field"), ("predicted",), ("extra",)])
plan_texts = st.one_of(
    st.builds(lambda p, v: json.dumps(_mutate(PLAN_TEMPLATE, p, v)), plan_paths, values),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


def plan_target(text: str) -> None:
    """A plan file: load it and estimate it, or raise OomplanError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            pf = load_plan_file(path)
            from oomplan.planner.recheck import recheck

            recheck(str(path))
            assert pf.schema_version <= 1
        except OomplanError:
            pass


FLAG_VALUES = {
    "--ctx": ["32k", "0", "-1", "32q", "1e9", "max", "999999999999", "", "nan"],
    "--batch": ["1", "0", "-3", "max", "x"], "--tp": ["1", "2", "3", "0", "1024", "-1"], "--pp": ["1", "2", "999"],
    "--weights": ["awq", "int3", "nf4", "fp8", ""], "--kv-dtype": ["fp8", "fp4", "int4"], "--dms": ["1", "8", "0.5", "nan", "inf"],
    "--block-size": ["16", "0", "7"], "--offload-gib": ["10", "-5", "40 GiBs", "1TiB"], "--attention": ["sdpa", "flash"],
    "--gpu": ["h100", "a100-40g", "nope", "/tmp", "auto"], "--engine": ["hf", "vllm", "trt"], "--margin": ["10%", "150%"],
    "--gpu-memory-utilization": ["0.9", "1.5", "abc"], "--prefill-chunk": ["2048", "100"], "--objective": ["cost", "speed"],
    "--top": ["3", "0"], "--train": ["full", "lora", "ppo"], "--zero": ["2", "5"],
}
commands = st.sampled_from(["estimate", "fit", "models", "gpus", "bogus"])
models_arg = st.sampled_from(["llama-3-8b", "qwen2.5-0.5b", "gemma-2-9b", "nope", "/etc/passwd", ""])
flag_pairs = st.lists(st.sampled_from(sorted(FLAG_VALUES)).flatmap(lambda f: st.tuples(st.just(f), st.sampled_from(FLAG_VALUES[f]))), max_size=4)
argvs = st.builds(lambda c, m, pairs, junk: [c, m, *[x for p in pairs for x in p], *junk], commands, models_arg, flag_pairs,
                  st.lists(st.text(max_size=6), max_size=1))

_runner = CliRunner()


def cli_target(argv: list[str]) -> None:
    """Any argv: exit 0-3 and no exception other than the exit itself."""
    result = _runner.invoke(app, argv)
    assert result.exit_code in (0, 1, 2, 3), (argv, result.exit_code, result.output)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (argv, repr(result.exception))


def finite(x) -> bool:
    return not isinstance(x, float) or math.isfinite(x)
