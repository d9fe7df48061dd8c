"""Hostile inputs against every CLI command and the surfaces the older fuzzing (tests/fuzz) does not reach:
--images/--image-tokens, GPU lists and boxes (a+b, all, auto), --engine/--engine-version, `vet` with hostile
vLLM / SGLang / llama.cpp command lines (-ts/-sm/-mg among them), --kv-policy, plan files (YAML bombs, wrong
types, non-UTF-8, FIFOs, symlink loops, sparse 1 GB files), config.json and checkpoint folders (broken
safetensors headers, missing shards), GGUF files (written by gguf.GGUFWriter, then corrupted), and output
paths (existing files, unwritable folders, output = input).

    python benchmarks/hostile_cli.py [--random 3000] [--seed 1] [--show 40]

Each case runs in-process through CliRunner (the `app` of tests and embedding; the console script's own
last-line handler is not in the way, so an escaped exception is visible). A case FAILS on: an exception other
than the exit (a traceback in the real CLI without --debug, or its "internal error"), an exit code outside
0-3, a raw control character or escape in stdout/stderr, an output line over 4,000 characters, more than one
`error:` line, exit 2/3 without an `error:` line, exit 0 with NaN/inf or a negative byte count in its JSON,
a file given as input changed, an existing output overwritten without --force, a temporary or partial file
left behind, or an output file written by a failing command. Results: benchmarks/results/hostile_cli.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
HOLDS = re.compile(r"(?:starts|fits): [^\n]*?([\d.]+) (B|KiB|MiB|GiB|TiB) of ([\d.]+) (B|KiB|MiB|GiB|TiB)")
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
NONSENSE = re.compile(r"(?i)(?<![\w.])(nan|-?inf(inity)?)(?![\w])")

HOSTILE = ["", " ", "\x1b[31mred\x1b[0m", "a\nb", "tab\there", "\r\rX", "\x07bell", "\u202eevil", "💥", "é", "ﬁ",
           "x" * 5000, "-1", "0", "1e308", "1e-308", "nan", "inf", "-inf", "9" * 400, "0x10", "1_000", "１２", "١٢٣", "1,5",
           " 5 ", "+5", "-", "--", "%s%n", "{}", "${HOME}", "../../etc/passwd", "/dev/zero", "/proc/self/environ", "~",
           "~nobody/x", "\\", "'", '"', "''", "5.5", "1e3", "2**64", str(2**64), str(-(2**63)), "True", "null", "[]"]
NUMS = ["1", "2", "4", "7", "16", "0", "-1", "1k", "4k", "32K", "1m", "2147483648", "2147483649", "99999999999", "1.5",
        "1e9", "nan", "inf", "max", "auto", "１２", "4 k", "4kk", "0x4", " 8"]
GPUS = ["h100", "a100-40g", "rtx-4090", "rtx-5090+rtx-4090", "rtx-4090+rtx-3090+rtx-3090", "all", "auto", "h100,h100",
        "h100,", ",", "+", "h100+", "+h100", "rtx-4090++rtx-3090", "+".join(["rtx-4090"] * 20), "+".join(["rtx-4090"] * 200),
        "2x80GiB", "80GiB+24GiB", "h100+2x24GiB", "h100,all", "all,all", "all+all", "auto+auto", "h100,auto", " a100-80g , h100 ",
        "h100+a100-40g", "H100", "h100+" + "x" * 300, ",".join(["h100"] * 500), "h100,\x1b[2J", "l4+l4", "apple-m4-32g+rtx-4090",
        "0x80GiB", "1x0GiB", "1e400GiB", "nanGiB", "-24GiB", "24GiB,24GiB", "24GiB+", "rtx-4090+rtx-4090:3", "mi300x+h100"]
ENGINES = ["hf", "vllm", "sglang", "llamacpp", "llama.cpp", "VLLM", "trt", "", "vllm\x1b", "tensorrt-llm", "hf,vllm"]
VERSIONS = ["0.19", "0.33", "0.33.0", "0.5", "99.0", "0.3x", "v0.20", "0.20.1rc1", "", "0", "-1", "nan", "0.19.0.0.0",
            "1" * 300, "0.19\n", "latest", "auto", "0.4.6", "0.5.0", "0.4", "main", "0.27-0.32"]
KV_POLICIES = ["none", "None", "window:4096", "window:4k,sinks:4", "window:0", "window:-1", "window:nan", "window:1e308",
               "budget:512", "budget:0", "budget", "budget:", "slots:8,window:512", "slots:0,window:0", "episodic:8GiB,read:4",
               "episodic:-1,read:4", "episodic:1e30GiB,read:1", "dms:4", "dms:4,window:256", "dms:0", "dms:nan", "dms:1e308",
               "window:4096,window:8", "window:4096,sinks:4,sinks:5", "window:4096,bogus:1", ":", ",", "::::", "window=4096",
               "window:4096;sinks:4", "WINDOW:4096", "window:４０９６", "window:4096,", ",window:4096", "window:" + "9" * 500,
               "window:\x1b[31m", "budget:1,window:2", "slots:8", "episodic:8GiB", "read:4", "dms:2,sinks:4"]
IMAGES = ["0", "1", "2", "64", "65", "1000", "-1", "99999999999", "1.5", "nan", "x", "1e3", "１"]
IMAGE_TOKENS = ["1", "256", "0", "-1", "1k", "1m", "2147483648", "99999999999999", "nan", "4.5", "x", "", "１"]
MODELS = ["llama-3-8b", "qwen3-vl-4b-instruct", "llama-3.2-11b-vision", "gemma-3-12b-it", "gpt-oss-20b", "qwen3-next-80b-a3b",
          "llama-4-scout-17b-16e", "nemotron-3-nano-30b-a3b", "deepseek-v2-lite", "qwen3.5-35b-a3b"]


def fixtures(root: Path) -> dict[str, Path]:
    """Good and broken inputs written once: tiny config.json, checkpoint folders, GGUF files, plan files."""
    from conftest import tiny_llama
    from checkpoint_fixtures import write_checkpoint, write_gguf
    from typer.testing import CliRunner

    from oomplan.cli.app import app

    fx: dict[str, Path] = {}

    def put(name: str, content: bytes | str) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        fx[name] = path
        return path

    cfg = tiny_llama()
    put("cfg/good.json", json.dumps(cfg))
    bad_configs = {
        "nan": {**cfg, "hidden_size": float("nan")}, "huge": {**cfg, "hidden_size": 1e308}, "neg": {**cfg, "hidden_size": -64},
        "zero": {**cfg, "num_hidden_layers": 0}, "zeroheads": {**cfg, "num_attention_heads": 0}, "bool": {**cfg, "hidden_size": True},
        "boolkv": {**cfg, "num_key_value_heads": False}, "bigvocab": {**cfg, "vocab_size": 10**18},
        "layers_str": {**cfg, "num_hidden_layers": "2"}, "float_layers": {**cfg, "num_hidden_layers": 2.5},
        "kvgtheads": {**cfg, "num_key_value_heads": 16}, "headdim0": {**cfg, "head_dim": 0}, "headdimneg": {**cfg, "head_dim": -8},
        "rope": {**cfg, "rope_scaling": {"rope_type": "yarn", "factor": float("inf")}}, "rope_str": {**cfg, "rope_scaling": "yarn"},
        "ltypes": {**cfg, "layer_types": ["full_attention"] * 5}, "ltypes_bad": {**cfg, "layer_types": ["warp_attention", 3]},
        "ltypes_str": {**cfg, "layer_types": "full_attention"},
        "text_list": {"model_type": "qwen3_vl", "architectures": ["Qwen3VLForConditionalGeneration"], "text_config": [1, 2]},
        "text_str": {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "text_config": "x"},
        "text_null": {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "text_config": None},
        "vision_list": {"model_type": "qwen3_vl", "architectures": ["Qwen3VLForConditionalGeneration"],
                        "text_config": {**cfg, "model_type": "qwen3_vl_text"}, "vision_config": [1]},
        "quant_list": {**cfg, "quantization_config": [1, 2]}, "quant_str": {**cfg, "quantization_config": "awq"},
        "quant_bits": {**cfg, "quantization_config": {"quant_method": "awq", "bits": 3.5, "group_size": 128}},
        "quant_group0": {**cfg, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 0}},
        "quant_groupneg": {**cfg, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": -7}},
        "quant_unknown": {**cfg, "quantization_config": {"quant_method": "\x1b[31mzzz"}},
        "quant_ct": {**cfg, "quantization_config": {"quant_method": "compressed-tensors", "config_groups": "x"}},
        "quant_ct2": {**cfg, "quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": 5}}}},
        "quant_fp8": {**cfg, "quantization_config": {"quant_method": "fp8", "weight_block_size": [0, 128]}},
        "quant_fp8b": {**cfg, "quantization_config": {"quant_method": "fp8", "weight_block_size": "x"}},
        "quant_ignore": {**cfg, "quantization_config": {"quant_method": "fp8", "ignore": [None, 5, {"a": 1}]}},
        "quant_mx": {**cfg, "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": "lm_head"}},
        "moe_zero": {**cfg, "model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "num_local_experts": 0, "num_experts_per_tok": 2},
        "moe_k": {**cfg, "model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "num_local_experts": 4, "num_experts_per_tok": 9},
        "arch_list": {**cfg, "architectures": "LlamaForCausalLM"}, "arch_none": {**cfg, "architectures": [None]},
        "mt_int": {**cfg, "model_type": 7}, "mt_esc": {**cfg, "model_type": "\x1b]0;pwned\x07"},
        "torch_dtype": {**cfg, "torch_dtype": "float7"}, "torch_dtype_list": {**cfg, "torch_dtype": ["bfloat16"]},
        "sliding": {**cfg, "model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": -5},
        "sliding_huge": {**cfg, "model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 10**30},
        "maxpos": {**cfg, "max_position_embeddings": -1}, "maxpos_f": {**cfg, "max_position_embeddings": 1e300},
    }
    for name, data in bad_configs.items():
        put(f"cfg/{name}.json", json.dumps(data, allow_nan=True))
        folder = root / f"cfgdir_{name}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(data, allow_nan=True))
        fx[f"cfgdir/{name}"] = folder
    hf_quant = {"list": "[1,2]", "str": '"x"', "empty": "", "nan": '{"quantization": {"quant_algo": NaN}}',
                "bad": '{"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": 5, "exclude_modules": "lm_head"}}',
                "weird": '{"quantization": {"quant_algo": "\\u001b[31mZZ"}}', "binary": "\xff\xfe"}
    for name, text in hf_quant.items():
        folder = root / f"hfq_{name}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(cfg))
        (folder / "hf_quant_config.json").write_bytes(text.encode("latin-1") if name == "binary" else text.encode())
        fx[f"hfq/{name}"] = folder
    put("cfg/dupkeys.json", '{"model_type": "llama", "model_type": "mistral", "hidden_size": 64}')
    put("cfg/deep.json", "[" * 100000 + "]" * 100000)
    put("cfg/bom.json", "\ufeff" + json.dumps(cfg))
    put("cfg/utf16.json", json.dumps(cfg).encode("utf-16"))
    put("cfg/trailing.json", json.dumps(cfg) + "garbage")
    put("cfg/bigint.json", json.dumps({**cfg, "hidden_size": 10**400}))
    put("cfg/nul.json", json.dumps(cfg).replace("llama", "lla\x00ma"))

    # checkpoint folders: a good one, then broken safetensors headers and indexes
    good_ckpt = root / "ckpt_good"
    write_checkpoint(good_ckpt)
    fx["ckpt/good"] = good_ckpt
    data = (good_ckpt / "model.safetensors").read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = data[8:8 + header_len]
    body = data[8 + header_len:]

    def ckpt(name: str, blob: bytes, index: str | None = None) -> None:
        folder = root / f"ckpt_{name}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(cfg))
        (folder / "model.safetensors").write_bytes(blob)
        if index is not None:
            (folder / "model.safetensors.index.json").write_text(index)
        fx[f"ckpt/{name}"] = folder

    ckpt("hugelen", struct.pack("<Q", 2**63) + header + body)
    ckpt("len_past_end", struct.pack("<Q", len(data)) + header + body)
    ckpt("zero_len", struct.pack("<Q", 0) + body)
    ckpt("short", data[:5])
    ckpt("empty", b"")
    ckpt("notjson", struct.pack("<Q", 12) + b"not json at all" + body)
    ckpt("json_list", struct.pack("<Q", 6) + b"[1,2] " + body)
    hdr = json.loads(header)
    first = next(k for k in hdr if k != "__metadata__")
    for name, change in {"bad_offsets": {"data_offsets": [10**15, 10**15 + 4]}, "reversed": {"data_offsets": [100, 4]},
                         "neg_shape": {"shape": [-1, 64]}, "huge_shape": {"shape": [2**40, 2**40]}, "dtype": {"dtype": "F7"},
                         "shape_str": {"shape": "64"}, "offsets_str": {"data_offsets": "x"}, "no_dtype": {"dtype": None}}.items():
        h2 = json.loads(header)
        h2[first] = {**h2[first], **change}
        text = json.dumps(h2).encode()
        ckpt(name, struct.pack("<Q", len(text)) + text + body)
    h2 = json.loads(header)
    h2["\x1b[31mevil"] = h2[first]
    text = json.dumps(h2).encode()
    ckpt("esc_name", struct.pack("<Q", len(text)) + text + body)
    idx = json.dumps({"metadata": {"total_size": 100}, "weight_map": {first: "model-00002-of-00002.safetensors"}})
    ckpt("missing_shard", data, idx)
    ckpt("index_notjson", data, "{nope")
    ckpt("index_list", data, "[]")
    ckpt("index_wm_list", data, json.dumps({"weight_map": [1]}))
    ckpt("index_escape", data, json.dumps({"weight_map": {first: "../../../etc/passwd"}}))
    ckpt("index_abs", data, json.dumps({"weight_map": {first: "/etc/passwd"}}))
    ckpt("index_nonstr", data, json.dumps({"weight_map": {first: 5}}))
    ckpt("index_esc", data, json.dumps({"weight_map": {first: "\x1b[2Jshard.safetensors"}}))
    ckpt("index_total_nan", data, '{"metadata": {"total_size": NaN}, "weight_map": {}}')
    sharded = root / "ckpt_sharded"
    write_checkpoint(sharded, num_shards=2)
    (sharded / "model-00002-of-00002.safetensors").unlink()
    fx["ckpt/sharded_missing"] = sharded

    # GGUF: a real file, then truncated, bad magic, huge counts
    good_gguf = root / "tiny-Q8_0.gguf"
    write_gguf(good_gguf)
    fx["gguf/good"] = good_gguf
    g = good_gguf.read_bytes()
    put("gguf/trunc-Q8_0.gguf", g[: len(g) // 2])
    put("gguf/trunc_header-Q8_0.gguf", g[:30])
    put("gguf/magic-Q8_0.gguf", b"GGUX" + g[4:])
    put("gguf/version-Q8_0.gguf", g[:4] + struct.pack("<I", 99) + g[8:])
    put("gguf/ntensors-Q8_0.gguf", g[:8] + struct.pack("<Q", 2**62) + g[16:])
    put("gguf/nkv-Q8_0.gguf", g[:16] + struct.pack("<Q", 2**62) + g[24:])
    put("gguf/empty-Q8_0.gguf", b"")
    put("gguf/text-Q8_0.gguf", "hello, I am not a gguf\n")
    flipped = bytearray(g)
    for k in range(24, min(len(flipped), 4000), 97):
        flipped[k] ^= 0xFF
    put("gguf/flipped-Q8_0.gguf", bytes(flipped))
    # a real GGUF with hostile metadata
    put("gguf/weird-Q8_0.gguf", _weird_gguf(root / "gguf/weird-Q8_0.gguf"))

    # plan files: a real one from fit -o, then hostile ones
    runner = CliRunner()
    plan_path = root / "plans/good.yaml"
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    result = runner.invoke(app, ["fit", "llama-3-8b", "--gpu", "h100", "-o", str(plan_path)])
    assert plan_path.exists(), result.output
    fx["plan/good"] = plan_path
    vplan = root / "plans/vllm.yaml"
    runner.invoke(app, ["fit", "llama-3-8b", "--gpu", "h100", "--engine", "vllm", "-o", str(vplan)])
    fx["plan/vllm"] = vplan
    good = plan_path.read_text()
    plans = {
        "empty": "", "ws": "   \n\n", "bom": "\ufeff" + good, "utf16": good.encode("utf-16"), "binary": bytes(range(256)) * 4,
        "latin1": "schema_version: 1\nmodel: caf\xe9\n".encode("latin-1"), "list": "- 1\n", "scalar": "42\n", "null": "~\n",
        "bomb": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
        "alias_self": "a: &a\n  b: *a\n", "deep": "a: " + "[" * 5000 + "]" * 5000 + "\n", "deepmap": "a:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(300)),
        "dup": good + "\nschema_version: 1\n", "tags": "!!python/object/apply:os.system ['echo pwned']\n",
        "tag2": good.replace("schema_version: 1", "schema_version: !!float 1"), "huge_int": good.replace("ctx_tokens: 4096", "ctx_tokens: " + "9" * 5000),
        "nan_ctx": good.replace("ctx_tokens: 4096", "ctx_tokens: .nan"), "inf_batch": good.replace("batch_size: 1", "batch_size: .inf"),
        "bool_batch": good.replace("batch_size: 1", "batch_size: true"), "neg_tp": good.replace("tensor_parallel: 1", "tensor_parallel: -1"),
        "str_tp": good.replace("tensor_parallel: 1", "tensor_parallel: 'two'"), "float_tp": good.replace("tensor_parallel: 1", "tensor_parallel: 1.5"),
        "esc_gpu": _ref(good, "gpu", '"\\e[31mh100"'), "esc_model": _ref(good, "model", '"\\e]0;x\\a"'),
        "gpu_box": _ref(good, "gpu", "rtx-5090+rtx-4090"), "gpu_all": _ref(good, "gpu", "all"),
        "gpu_auto": _ref(good, "gpu", "auto"), "gpu_list": _ref(good, "gpu", "h100,a100-40g"),
        "model_path": _ref(good, "model", "/etc/passwd"), "model_dev": _ref(good, "model", "/dev/zero"),
        "model_self": _ref(good, "model", "self.yaml"), "engine_bad": good.replace("engine: hf", "engine: trt"),
        "engine_ver": good.replace("engine: hf", "engine: vllm\n  engine_version: '99.1'"), "images": good.replace("num_images: 0", "num_images: 5"), "image_tokens": good.replace("image_tokens: null", "image_tokens: -3"),
        "images_neg": good.replace("num_images: 0", "num_images: -5"), "images_str": good.replace("num_images: 0", "num_images: '5'"), "kvp": good.replace("kv_dtype: ", "kv_policy: {kind: window, window_tokens: -1}\n  kv_dtype: "),
        "kvp_str": good.replace("kv_dtype: ", "kv_policy: 'window:4096'\n  kv_dtype: "), "extra": good + "\nbogus_key: 1\n",
        "long_key": good + "\n" + "k" * 100000 + ": 1\n", "crlf": good.replace("\n", "\r\n"), "tabs": good.replace("  ", "\t"),
        "nul": good.replace("schema_version", "schema\x00version"), "ctrl": good.replace("name: ", "name: \"\\x1b[31m\\x07\"\n  x_: ", 1),
        "version_str": good.replace("schema_version: 1", "schema_version: '1'"), "version_0": good.replace("schema_version: 1", "schema_version: 0"),
        "version_big": good.replace("schema_version: 1", "schema_version: 1e400"), "multi_doc": good + "\n---\n" + good,
        "ts": good.replace("tensor_parallel: 1", "tensor_parallel: 1\n  tensor_split: [nan, 1]"),
        "ts2": good.replace("tensor_parallel: 1", "tensor_parallel: 1\n  tensor_split: [-1, 1e308]"),
    }
    for name, text in plans.items():
        put(f"plans/{name}.yaml", text)
    (root / "plans/cfgref").mkdir()
    (root / "plans/cfgref/config.json").write_text(json.dumps({**cfg, "hidden_size": float("nan")}, allow_nan=True))
    put("plans/cfgref/p.yaml", _ref(good, "model", "config.json"))
    for folder, ext in (("plans", "yaml"), ("cfg", "json")):
        fx.update(_special_files(root / folder, ext))
    (root / "ro").mkdir()
    fx["ro"] = root / "ro"
    return fx


def _special_files(folder: Path, ext: str) -> dict[str, Path]:
    """A folder, a FIFO, a symlink loop, a dangling symlink and a 1 GB sparse file named like an input file."""
    made = {name: folder / f"{name}.{ext}" for name in ("dir", "fifo", "loop1", "dangling", "sparse")}
    made["dir"].mkdir()
    os.mkfifo(made["fifo"])
    os.symlink(folder / f"loop2.{ext}", made["loop1"])
    os.symlink(made["loop1"], folder / f"loop2.{ext}")
    os.symlink(folder / f"nowhere.{ext}", made["dangling"])
    with open(made["sparse"], "wb") as f:
        f.truncate(2**30)
    return {f"{folder.name}/{path.name}": path for path in made.values()}


def _ref(plan: str, section: str, value: str) -> str:
    """The plan text with `section`'s ref: replaced by value (raw YAML)."""
    lines = plan.splitlines()
    inside = False
    for i, line in enumerate(lines):
        if not line.startswith(" "):
            inside = line.startswith(section + ":")
        elif inside and line.strip().startswith("ref:"):
            lines[i] = line.split("ref:")[0] + "ref: " + value
            break
    return "\n".join(lines) + "\n"


def _weird_gguf(path: Path) -> bytes:
    """A real GGUF with hostile metadata: a huge block count, an escape in the name, a negative head count."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("\x1b[31mevil\x07")
    w.add_block_count(2**31)
    w.add_context_length(2**32 - 1)
    w.add_embedding_length(256)
    w.add_feed_forward_length(512)
    w.add_head_count(0)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(float("nan"))
    w.add_tensor("token_embd.weight", np.zeros((1000, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def _files(fx: dict[str, Path], prefix: str) -> list[Path]:
    return [p for k, p in fx.items() if k.startswith(prefix)]


def fixed_cases(fx: dict[str, Path], root: Path) -> list[list[str]]:
    """The deterministic part: every hostile file through every command that reads it, every flag's pools."""
    out: list[list[str]] = []
    configs = _files(fx, "cfg/") + _files(fx, "cfgdir/") + _files(fx, "hfq/") + _files(fx, "ckpt/")
    for path in configs:
        out += [["estimate", str(path), "--gpu", "h100"], ["estimate", str(path), "--gpu", "h100", "--json"],
                ["estimate", str(path), "--gpu", "h100", "--engine", "vllm"], ["models", "show", str(path)],
                ["curve", str(path), "--gpu", "h100", "--points", "3", "--json"]]
    out += [["fit", str(fx["cfg/good.json"]), "--gpu", "h100", "--top", "2"], ["fit", str(fx["ckpt/good"]), "--gpu", "h100", "--top", "2"]]
    for path in _files(fx, "gguf/"):
        out += [["estimate", str(path), "--gpu", "h100", "--engine", "llamacpp"], ["models", "show", str(path)],
                ["vet", "--gpu", "rtx-4090", "--", "llama-server", "-m", str(path)],
                ["vet", "--gpu", "rtx-4090+rtx-3090", "--", "llama-server", "-m", str(path), "-ts", "1,1"]]
    plans = [p for k, p in fx.items() if k.startswith("plans/")] + [fx["plan/good"], fx["plan/vllm"]]
    for path in plans:
        out += [["check", str(path)], ["check", str(path), "--json"], ["export", str(path), "--to", "vllm"],
                ["curve", "--plan", str(path), "--points", "3"], ["check", str(path), str(fx["plan/good"])],
                ["probe", str(path), "--help"]]
    for model in MODELS:
        out.append(["estimate", model, "--gpu", "h100", "--json"])
        for images in IMAGES:
            out.append(["estimate", model, "--gpu", "h100", "--images", images, "--json"])
        for tokens in IMAGE_TOKENS:
            out.append(["estimate", model, "--gpu", "h100", "--images", "1", "--image-tokens", tokens, "--json"])
        out.append(["curve", model, "--gpu", "h100", "--images", "2", "--points", "3", "--json"])
    for gpu in GPUS + HOSTILE:
        out += [["estimate", "llama-3-8b", "--gpu", gpu], ["vet", "--gpu", gpu, "--", "llama-server", "-m", "Meta-Llama-3-8B-Q4_K_M.gguf"],
                ["curve", "llama-3-8b", "--gpu", gpu, "--points", "3"], ["check", str(fx["plan/good"]), "--gpu", gpu]]
        if gpu in GPUS[:12]:
            out.append(["fit", "llama-3-8b", "--gpu", gpu, "--top", "1"])
    for engine in ENGINES:
        for version in VERSIONS:
            out.append(["estimate", "llama-3-8b", "--gpu", "h100", "--engine", engine, "--engine-version", version])
        out.append(["check", str(fx["plan/good"]), "--engine", engine])
    for version in VERSIONS:
        out += [["vet", "--gpu", "h100", "--engine-version", version, "--", "vllm", "serve", "meta-llama/Meta-Llama-3-8B"],
                ["vet", "--gpu", "h100", "--engine-version", version, "--", "python", "-m", "sglang.launch_server", "--model-path", "meta-llama/Meta-Llama-3-8B"]]
    for policy in KV_POLICIES + HOSTILE:
        out += [["estimate", "llama-3-8b", "--gpu", "h100", "--kv-policy", policy],
                ["estimate", "llama-3-8b", "--gpu", "h100", "--kv-policy", policy, "--engine", "llamacpp"],
                ["curve", "llama-3-8b", "--gpu", "h100", "--kv-policy", policy, "--points", "3"]]
    for policy in KV_POLICIES[:12]:
        out.append(["fit", "llama-3-8b", "--gpu", "h100", "--kv-policy", policy, "--top", "1"])
    for value in HOSTILE:  # every string flag once with each hostile value
        for flag in ("--ctx", "--batch", "--weights", "--kv-dtype", "--component-weights", "--offload-gib", "--prefill-chunk",
                     "--attention", "--logits", "--gguf-type", "--max-model-len", "--gpu-memory-utilization", "--mem-fraction-static",
                     "--max-num-batched-tokens", "--train", "--zero", "--seq", "--lora-targets", "--host-mem", "--revision"):
            engine = ["--engine", "vllm"] if flag in ("--max-model-len", "--gpu-memory-utilization", "--max-num-batched-tokens") else \
                ["--engine", "sglang"] if flag == "--mem-fraction-static" else ["--engine", "llamacpp"] if flag == "--gguf-type" else \
                ["--train", "lora"] if flag in ("--seq", "--lora-targets", "--host-mem", "--zero") else []
            out.append(["estimate", "llama-3-8b", "--gpu", "h100", flag, value, *engine])
        for flag in ("--objective", "--price", "--host-mem", "--ctx", "--batch", "--weights"):
            out.append(["fit", "llama-3-8b", "--gpu", "h100", "--top", "1", flag, value])
        for flag in ("--x", "--from", "--to", "--compare", "--ctx"):
            out.append(["curve", "llama-3-8b", "--gpu", "h100", "--points", "3", flag, value])
        for flag in ("--margin", "--ctx", "--format"):
            out.append(["check", str(fx["plan/good"]), flag, value])
        out += [["models", "show", value], ["export", str(fx["plan/good"]), "--to", value],
                ["vet", "--gpu", "h100", "--model-profile", value, "--", "vllm", "serve", "x"],
                ["vet", "--gpu", "rtx-4090", "--gguf-type", value, "--", "llama-server", "-m", "model.gguf"],
                ["estimate", value, "--gpu", "h100"], ["check", value], ["export", value, "--to", "hf"]]
    out += output_cases(fx, root)
    return out


def output_cases(fx: dict[str, Path], root: Path) -> list[list[str]]:
    """Outputs: existing files (no --force), folders, FIFOs, symlinks, unwritable or missing folders, output = input."""
    good = str(fx["plan/good"])
    outs = root / "outs"
    outs.mkdir(exist_ok=True)
    (outs / "exists.yaml").write_text("keep: me\n")
    (outs / "exists.png").write_bytes(b"keep")
    (outs / "exists.xml").write_text("<keep/>")
    (outs / "adir").mkdir(exist_ok=True)
    if not (outs / "fifo").exists():
        os.mkfifo(outs / "fifo")
    if not (outs / "link.yaml").exists():
        os.symlink(outs / "exists.yaml", outs / "link.yaml")
        os.symlink(outs / "missing-target.yaml", outs / "dangling.yaml")
    (outs / "ro").mkdir(exist_ok=True)
    os.chmod(outs / "ro", 0o555)
    targets = [outs / "exists.yaml", outs / "adir", outs / "fifo", outs / "link.yaml", outs / "dangling.yaml", outs / "ro" / "x",
               outs / "nodir" / "x.yaml", Path("/dev/full"), Path("/proc/self/x"), fx["plan/good"], outs / ("n" * 300), outs / "",
               outs / "ok\x1b[31m.yaml", Path("/")]
    cases = []
    for target in targets:
        t = str(target)
        cases += [["fit", "llama-3-8b", "--gpu", "h100", "-o", t], ["export", good, "--to", "vllm", "-o", t],
                  ["check", good, "--format", "junit", "-o", t], ["curve", "llama-3-8b", "--gpu", "h100", "--points", "3", "--svg", t],
                  ["curve", "llama-3-8b", "--gpu", "h100", "--points", "3", "--png", t]]
    cases += [["export", good, "--to", "vllm", "-o", good, "--force"], ["fit", "--gpu", "h100", "llama-3-8b", "-o", good, "--force"],
              ["check", good, "--format", "junit", "-o", good, "--force"], ["curve", "--plan", good, "--svg", good, "--force", "--points", "3"],
              ["curve", "llama-3-8b", "--gpu", "h100", "--png", str(outs / "same.png"), "--svg", str(outs / "same.png"), "--points", "3"]]
    return cases


def _engine_flag_pool() -> dict[str, list[str]]:
    from oomplan.engines.llamacpp.flags import FLAGS as LLAMA
    from oomplan.engines.sglang.flags import FLAGS as SGLANG
    from oomplan.engines.vllm.flags import FLAGS as VLLM

    return {"vllm": sorted(VLLM), "sglang": sorted(SGLANG), "llamacpp": sorted(LLAMA)}


def random_cases(fx: dict[str, Path], rng: random.Random, n: int) -> list[list[str]]:
    pools = _engine_flag_pool()
    values = NUMS + HOSTILE + ["auto", "fp8", "fp8_e4m3", "bfloat16", "awq", "q8_0", "q4_0", "f16", "layer", "row", "none", "3,1",
                               "1/1/1", "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", "nan,1", "-1,1", "0,0", "1e308,1", ",", "0", "1", "99",
                               "on", "off", "all", "exps=CPU", "blk.0=CPU", "'8192'", '"8192"', "8192 ", "=8192", "8k", "8K", "１"]
    out = []
    heads = {"vllm": [["vllm", "serve", "meta-llama/Meta-Llama-3-8B"], ["vllm", "serve", "--model", "Qwen/Qwen3-8B"],
                      ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "meta-llama/Meta-Llama-3-8B"],
                      ["vllm", "serve", str(fx["cfg/good.json"])], ["vllm", "serve", str(fx["ckpt/good"])], ["vllm", "serve"],
                      ["vllm", "serve", "\x1b[31mx/y"], ["vllm", "serve", "a" * 3000]],
             "sglang": [["python", "-m", "sglang.launch_server", "--model-path", "meta-llama/Meta-Llama-3-8B"],
                        ["python3", "-m", "sglang.launch_server", "--model", "Qwen/Qwen3-8B"], ["sglang", "serve", "--model-path", "x/y"],
                        ["python", "-m", "sglang.launch_server"]],
             "llamacpp": [["llama-server", "-m", "Meta-Llama-3-8B-Q4_K_M.gguf"], ["llama-server", "-hf", "bartowski/Meta-Llama-3-8B-GGUF:Q4_K_M"],
                          ["llama-server", "-m", str(fx["gguf/good"])], ["./build/bin/llama-server", "-m", "gpt-oss-20b-MXFP4.gguf"],
                          ["llama-server"], ["llama-server", "-m", "x.gguf"], ["llama-cli", "-m", "qwen3-8b-Q8_0.gguf"]]}
    for _ in range(n):
        kind = rng.random()
        if kind < 0.45:  # vet
            engine = rng.choice(sorted(heads))
            argv = list(rng.choice(heads[engine]))
            for _ in range(rng.randint(0, 6)):
                r = rng.random()
                flag = rng.choice(pools[engine]) if r < 0.8 else rng.choice(["--bogus", "-x", "--max-model-len", "-ts", "--", "-", "—max-model-len", "--ünï"])
                value = rng.choice(values)
                if rng.random() < 0.2:
                    argv.append(f"{flag}={value}")
                elif rng.random() < 0.1:
                    argv.append(flag)
                else:
                    argv += [flag, value]
                if rng.random() < 0.15:  # duplicated flag
                    argv += [flag, rng.choice(values)]
            gpu = rng.choice(GPUS[:20]) if engine == "llamacpp" else rng.choice(["h100", "a100-40g", "rtx-4090", "h200", "b200", "l4"])
            extra = rng.choice([[], ["--json"], ["--strict"], ["--engine-version", rng.choice(VERSIONS)], ["--gguf-type", rng.choice(values)]])
            out.append(["vet", "--gpu", gpu, *extra, "--", *argv])
        elif kind < 0.75:  # estimate with a mix of the new flags
            argv = ["estimate", rng.choice(MODELS), "--gpu", rng.choice(GPUS)]
            for flag, pool in rng.sample([("--images", IMAGES), ("--image-tokens", IMAGE_TOKENS), ("--engine", ENGINES[:4]),
                                          ("--engine-version", VERSIONS), ("--kv-policy", KV_POLICIES), ("--ctx", NUMS), ("--batch", NUMS[:8]),
                                          ("--tp", ["1", "2", "4", "8", "3"]), ("--pp", ["1", "2", "3"]), ("--weights", ["auto", "fp8", "awq", "mxfp4", "nvfp4", "int3"]),
                                          ("--kv-dtype", ["auto", "fp8", "int4", "int8"]), ("-ngl", ["-1", "0", "5", "999"]),
                                          ("--gguf-type", ["Q4_K_M", "Q8_0", "F16", "Q1_X"])], rng.randint(1, 5)):
                argv += [flag, rng.choice(pool)]
            if rng.random() < 0.3:
                argv.append("--json")
            out.append(argv)
        elif kind < 0.87:  # curve
            argv = ["curve", rng.choice(MODELS), "--gpu", rng.choice(GPUS[:12]), "--points", rng.choice(["2", "3", "5"])]
            for flag, pool in rng.sample([("--images", IMAGES), ("--image-tokens", IMAGE_TOKENS), ("--kv-policy", KV_POLICIES),
                                          ("--x", ["ctx", "batch", "tp"]), ("--from", NUMS), ("--to", NUMS), ("--compare", ["kv_dtype=fp8", "tp=2", "x=y", "=", "kv_dtype=", "images=3"]),
                                          ("--ctx", NUMS), ("--tp", ["1", "2"])], rng.randint(1, 4)):
                argv += [flag, rng.choice(pool)]
            if rng.random() < 0.5:
                argv.append("--json")
            out.append(argv)
        else:  # check / export with flags
            plan = str(rng.choice([fx["plan/good"], fx["plan/vllm"], *[p for k, p in fx.items() if k.startswith("plans/")]]))
            if rng.random() < 0.5:
                argv = ["check", plan]
                for flag, pool in rng.sample([("--gpu", GPUS), ("--ctx", NUMS), ("--batch", NUMS[:8]), ("--margin", ["10%", "0.1", "150%", "-5%", "nan", "1e308"]),
                                              ("--engine", ENGINES[:5]), ("--engine-version", VERSIONS), ("--format", ["text", "junit", "github", "xml"]),
                                              ("--max-model-len", NUMS), ("-ngl", ["-1", "0", "99"]), ("--gguf-type", ["Q4_K_M", "zz"])], rng.randint(1, 4)):
                    argv += [flag, rng.choice(pool)]
            else:
                argv = ["export", plan, "--to", rng.choice(["vllm", "sglang", "llamacpp", "hf", "trt"])]
            out.append(argv)
    return out


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    state = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if path.is_symlink() or not path.is_file() or path.stat().st_size > 2**24:
                    continue
                state[str(path)] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
            except OSError:
                continue
    return state


def _walk_json(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_json(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_json(v, f"{path}[{i}]")
    else:
        yield path, obj


def check_case(argv: list[str], result, before: dict, after: dict) -> list[str]:
    problems = []
    stdout, stderr = result.stdout or "", result.stderr or ""
    text = stdout + stderr
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        problems.append(f"exception {type(exc).__name__}: {str(exc)[:200]!r}")
    if result.exit_code not in (0, 1, 2, 3):
        problems.append(f"exit {result.exit_code}")
    if "Traceback" in text or "internal error" in text:
        problems.append("traceback/internal error")
    found = CONTROL.search(text)
    if found:
        problems.append(f"raw control character {found.group()!r}")
    if any(len(line) > 4000 for line in text.splitlines()):
        problems.append("output line over 4000 characters")
    # CliRunner runs `app` standalone: a usage error is click's "Error: ..." after the usage (the console script's
    # main() words it as one "error:" line, tests/cli/test_bad_inputs.py checks that); several plan files or
    # --format junit/github report each file's error in the summary, not as an error line
    errors = [line for line in stderr.splitlines() if line.startswith(("error:", "Error:"))]
    summary = argv[0] == "check" and ("--format" in argv or sum(1 for a in argv[1:] if a.endswith(".yaml")) > 1)
    if len(errors) > 1:
        problems.append(f"{len(errors)} error lines")
    if result.exit_code in (2, 3) and not errors and "--help" not in argv and not summary:
        problems.append("exit 2/3 without an error line")
    if result.exit_code == 0 and "--json" in argv and stdout.strip():
        try:
            data = json.loads(stdout)
        except ValueError:
            problems.append("--json output is not JSON")
        else:
            for path, value in _walk_json(data):
                if isinstance(value, float) and not math.isfinite(value):
                    problems.append(f"non-finite {path}")
                if path.endswith("_bytes") and isinstance(value, (int, float)) and value < 0 and "headroom" not in path and "delta" not in path:
                    problems.append(f"negative {path} = {value}")
    for match in HOLDS.finditer(stdout if result.exit_code == 0 else ""):  # "starts: vLLM holds 4194321.88 GiB of 79.19 GiB"
        held, capacity = (float(match.group(i)) * UNITS[match.group(i + 1)] for i in (1, 3))
        if held > capacity:
            problems.append(f"exit 0 with more held than the card has: {match.group(0)!r}")
    if result.exit_code == 0 and NONSENSE.search(stdout):
        problems.append(f"nonsense number {NONSENSE.search(stdout).group()!r} in the output")
    force = "--force" in argv
    for path, sig in before.items():
        if path in after and after[path] != sig and not force:
            problems.append(f"changed {path}")
        if path not in after and not force:
            problems.append(f"removed {path}")
    for path in set(after) - set(before):
        name = Path(path).name
        if name.startswith(".") or "tmp" in name or "part" in name:
            problems.append(f"left behind {path}")
        elif result.exit_code not in (0, 1):
            problems.append(f"failing command wrote {path}")
    return problems


def run(args: argparse.Namespace) -> int:
    os.environ["HF_HUB_OFFLINE"] = "1"  # no network: a repo id that is not cached is a clean refusal
    from typer.testing import CliRunner

    from oomplan.cli.app import app
    from oomplan.cli.common import STATE

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="oomplan-hostile-") as tmp:
        root = Path(tmp)
        os.environ["OOMPLAN_CACHE_DIR"] = str(root / "cache")
        os.environ["OOMPLAN_PROFILE_DIR"] = str(root / "profiles")
        os.environ["HF_HUB_CACHE"] = str(root / "hub")
        fx = fixtures(root)
        fixed = [] if args.no_fixed else fixed_cases(fx, root)
        cases = fixed + random_cases(fx, rng, args.random)
        if args.limit:
            cases = cases[: args.limit]
        runner = CliRunner(env={"COLUMNS": "100", "NO_COLOR": None})
        failures: dict[str, list[str]] = {}
        kinds: Counter = Counter()
        codes: Counter = Counter()
        start = time.monotonic()
        for i, argv in enumerate(cases):
            STATE["debug"] = False
            before = snapshot(root)
            result = runner.invoke(app, argv, color=True)  # color: click strips ESC sequences otherwise, a terminal would not
            after = snapshot(root)
            codes[result.exit_code] += 1
            problems = check_case(argv, result, before, after)
            if problems:
                key = " ".join(repr(a)[:80] for a in argv)
                failures[key] = problems + [f"exit {result.exit_code}: " + repr((result.stderr or "")[-300:])]
                for p in problems:
                    kinds[re.sub(r"'.*|\d+|/\S+", "", p)[:60]] += 1
                if args.progress:
                    print(f"FAIL {key}: {problems}", file=sys.stderr)
            if args.progress and i % 200 == 0:
                print(f"{i}/{len(cases)} {time.monotonic() - start:.0f}s {len(failures)} failing", file=sys.stderr)
        seconds = time.monotonic() - start
        os.chmod(root / "outs" / "ro", 0o755)
    summary = f"{len(cases)} cases ({min(len(fixed), len(cases))} fixed, {len(cases) - min(len(fixed), len(cases))} random, seed {args.seed}) in {seconds:.0f} s; " \
              f"exit codes {dict(sorted(codes.items()))}; {len(failures)} failing"
    print(summary)
    for kind, count in kinds.most_common():
        print(f"  {count:5d}  {kind}")
    for key, problems in list(failures.items())[: args.show]:
        print(f"FAIL {key}")
        for p in problems:
            print(f"     {p}")
    if args.write:
        import platform

        lines = ["# benchmarks/hostile_cli.py", "", f"`python benchmarks/hostile_cli.py --random {args.random} --seed {args.seed} --write`, "
                 f"{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, the project's shared 2-core machine.", "", summary, ""]
        lines += [f"- {count} x {kind}" for kind, count in kinds.most_common()]
        lines += [f"- FAIL {key}: {'; '.join(problems)}" for key, problems in list(failures.items())[: args.show]]
        (ROOT / "benchmarks" / "results" / "hostile_cli.md").write_text("\n".join(lines) + "\n")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--random", type=int, default=3000, help="random combination cases after the fixed ones")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="run only the first N cases")
    parser.add_argument("--show", type=int, default=60, help="failing cases to print")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--no-fixed", action="store_true", help="only the random cases")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/hostile_cli.md")
    raise SystemExit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
