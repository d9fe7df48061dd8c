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


# ---- issue 14: one target per mechanism (numbers, structured text, files, sanitiser)
from oomplan import safeio  # noqa: E402
from oomplan.text import clean, is_clean  # noqa: E402
from oomplan.units import parse_bytes, parse_count, parse_fraction, parse_number  # noqa: E402

number_texts = st.one_of(
    st.text(alphabet="0123456789.eE+-kKmMgGiBb% naif", max_size=40),
    st.integers(0, 1000).map(lambda n: "1" + "0" * n), st.integers(0, 400).map(lambda n: "9" * n + "e" + str(n)),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "1e-308", "0", "-0", ".5", "5.", "1_000", "0x10", "１２"]),
)


def number_target(text: str) -> None:
    """Every numeric parser: a value within its bounds, or an InputError naming the flag (never OverflowError)."""
    for parse, low, high in ((lambda t: parse_count(t, "--ctx"), 1, 2**31), (lambda t: parse_bytes(t, "--offload-gib"), 0, 2**60),
                             (lambda t: parse_fraction(t, "--margin", 0.0, 0.99), 0.0, 0.99),
                             (lambda t: parse_number(t, "--x", -5, 5), -5, 5)):
        try:
            value = parse(text)
        except OomplanError as exc:
            assert str(exc).startswith("--"), exc
            continue
        assert low <= value <= high and finite(value), (text, value)


def _nested(depth: int, kind: str) -> str:
    return {"json": "[" * depth + "]" * depth, "yaml": "a:\n" + "".join(" " * (i + 1) + "- \n" for i in range(min(depth, 200)))}[kind]


structured_texts = st.one_of(
    st.text(max_size=300),
    st.integers(1, 5000).map(lambda d: _nested(d, "json")), st.integers(1, 300).map(lambda d: _nested(d, "yaml")),
    st.integers(0, 9).map(lambda n: "a: &a [x]\n" + "".join(f"b{i}: &b{i} [*{'a' if i == 0 else 'b' + str(i - 1)}, *{'a' if i == 0 else 'b' + str(i - 1)}]\n" for i in range(n))),
    st.integers(0, 5000).map(lambda n: '{"x": 1' + "0" * n + "}"),
    st.lists(st.sampled_from(["a", "b", "1", "true", "null"]), max_size=6).map(lambda ks: "\n".join(f"{k}: 1" for k in ks)),
    st.lists(st.sampled_from(["a", "b"]), max_size=5).map(lambda ks: "{" + ", ".join(f'"{k}": 1' for k in ks) + "}"),
)


def structured_text_target(text: str) -> None:
    """The JSON and YAML loaders: data within the bounds (depth, integers, no duplicate keys) or an InputError."""
    for load in (safeio.load_json_text, safeio.load_yaml_text):
        try:
            data = load(text, "fuzz")
        except OomplanError:
            continue
        safeio._check_tree(data, "fuzz")  # bounded: the check the loaders promise holds on what they return


file_kinds = st.sampled_from(["fifo", "devzero", "folder", "text", "symlink-loop"])


def file_target(kind: str, text: str) -> None:
    """Any file as a config.json, a GPU profile or a plan: a result or an OomplanError; never blocks."""
    import os

    from oomplan.profiles import load_model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.json"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "devzero":
            path = Path("/dev/zero")
        elif kind == "folder":
            path.mkdir()
        elif kind == "symlink-loop":
            path.symlink_to(path)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogateescape")
        for load in (lambda p: load_model(str(p)), lambda p: load_gpu(str(p).replace(".json", ".yaml") if kind == "text" else str(p)),
                     load_plan_file):
            try:
                load(path)
            except OomplanError:
                pass


def sanitiser_target(text: str) -> None:
    """clean(): no control, escape or bidi character survives; idempotent."""
    out = clean(text)
    assert is_clean(out) and "\x1b" not in out and clean(out) == out
