"""Every bad input we promise a clean error for: (what, argv, files, exit code, message fragment).

Files are written into a temporary folder first; `{dir}` in argv stands for it. Used by
tests/cli/test_bad_inputs.py and benchmarks/bad_inputs_doc.py (which writes docs/bad-inputs.md).
"""
import json

GOOD_PLAN = None  # filled by the tests from a real `fit -o` run
CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 1000, "hidden_size": 64,
          "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2}

ROWS = [
    ("unknown model name", ["estimate", "lama-3-8b", "--gpu", "h100"], {}, 2, "did you mean: llama-3-8b"),
    ("unknown GPU name", ["estimate", "llama-3-8b", "--gpu", "h1000"], {}, 2, "--gpu: no GPU named 'h1000'"),
    ("ctx unit typo", ["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "32q"], {}, 2, "--ctx: '32q' is not a count"),
    ("ctx 0", ["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "0"], {}, 2, "--ctx: 0 is out of range"),
    ("ctx 10^12", ["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "1000000000000"], {}, 2, "--ctx: 1000000000000 is out of range; accepted: 1..2147483648"),
    ("batch -1", ["estimate", "llama-3-8b", "--gpu", "h100", "--batch", "-1"], {}, 2, "--batch: -1 is out of range"),
    ("TP 3 on 32 heads", ["estimate", "llama-3-8b", "--gpu", "h100", "--tp", "3"], {}, 2, "tensor_parallel (3) must divide num_attention_heads (32)"),
    ("NaN ratio", ["estimate", "llama-3-8b", "--gpu", "h100", "--dms", "nan"], {}, 2, "--dms: nan is invalid: it must be a finite number"),
    ("size unit typo", ["estimate", "llama-3-8b", "--gpu", "h100", "--offload-gib", "40 GiBs"], {}, 2, "--offload-gib: '40 GiBs' is not a size"),
    ("memory fraction 1.5", ["estimate", "llama-3-8b", "--gpu", "h100", "--engine", "vllm", "--gpu-memory-utilization", "1.5"], {}, 2, "--gpu-memory-utilization: '1.5' is out of range"),
    ("unknown weight format", ["estimate", "llama-3-8b", "--gpu", "h100", "--weights", "int3"], {}, 2, "--weights: 'int3' is invalid"),
    ("ctx beyond max positions", ["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "16k"], {}, 0, "warning: --ctx 16384 exceeds llama-3-8b's max_position_embeddings (8192)"),
    ("... with --strict", ["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "16k", "--strict"], {}, 2, "(--strict)"),
    ("fp8 on a card without fp8", ["estimate", "llama-3-8b", "--gpu", "a100-40g", "--weights", "fp8"], {}, 0, "has no fp8 tensor cores: fp8 weights run emulated"),
    ("... with --strict", ["estimate", "llama-3-8b", "--gpu", "a100-40g", "--weights", "fp8", "--strict"], {}, 2, "has no fp8 tensor cores"),
    ("not a causal LM", ["estimate", "{dir}/bert.json", "--gpu", "h100"], {"bert.json": json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 8})}, 2, "is not a decoder-only causal LM"),
    ("malformed JSON", ["estimate", "{dir}/bad.json", "--gpu", "h100"], {"bad.json": '{"model_type": "llama",'}, 2, "invalid JSON at line 1"),
    ("empty file", ["estimate", "{dir}/empty.json", "--gpu", "h100"], {"empty.json": ""}, 2, "file is empty"),
    ("binary garbage", ["estimate", "{dir}/bin.json", "--gpu", "h100"], {"bin.json": b"\xff\xfe\x00\x01garbage"}, 2, "not UTF-8"),
    ("huge file", ["estimate", "{dir}/huge.json", "--gpu", "h100"], {"huge.json": "{" + " " * (17 * 2**20) + "}"}, 2, "is too large for a config.json"),
    ("wrong type in config", ["estimate", "{dir}/cfg.json", "--gpu", "h100"], {"cfg.json": json.dumps({**CONFIG, "hidden_size": "wide"})}, 2, "field 'hidden_size'"),
    ("missing required field", ["estimate", "{dir}/cfg.json", "--gpu", "h100"], {"cfg.json": json.dumps({k: v for k, v in CONFIG.items() if k != "vocab_size"})}, 2, "missing required field(s) vocab_size"),
    ("folder without config.json", ["estimate", "{dir}", "--gpu", "h100"], {}, 2, "holds no config.json"),
    ("folder as GPU profile", ["estimate", "llama-3-8b", "--gpu", "{dir}"], {}, 2, "is a folder, expected a GPU profile file"),
    ("unknown key in a GPU profile", ["estimate", "llama-3-8b", "--gpu", "{dir}/g.yaml"], {"g.yaml": "name: x\nmemory_byts: 5\n"}, 2, "did you mean: memory_bytes"),
    ("truncated plan YAML", ["check", "{dir}/p.yaml"], {"p.yaml": "plan: [\n"}, 2, "invalid YAML at line 2"),
    ("plan file is a list", ["check", "{dir}/p.yaml"], {"p.yaml": "- 1\n- 2\n"}, 2, "expected a plan mapping at the top level"),
    ("plan from a newer schema", ["check", "{dir}/p.yaml"], {"p.yaml": "schema_version: 9\n"}, 2, "schema_version 9 is newer than this oomplan reads (1)"),
    ("missing plan file", ["check", "{dir}/nope.yaml"], {}, 2, "no such file"),
    ("unknown command", ["bogus"], {}, 2, "No such command 'bogus'"),
    ("unknown flag", ["estimate", "llama-3-8b", "--gpu", "h100", "--nope"], {}, 2, "No such option: --nope"),
    ("existing output without --force", ["fit", "llama-3-8b", "--gpu", "h100", "-o", "{dir}/exists.yaml"], {"exists.yaml": "x: 1\n"}, 2, "exists; pass --force to overwrite it"),
    ("no GPU driver for --gpu auto", ["estimate", "llama-3-8b", "--gpu", "auto"], {}, 3, "no NVIDIA driver found"),
]
