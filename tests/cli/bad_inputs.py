"""Every bad input we promise a clean error for: (what, argv, files, exit code, message fragment[, options]).

Files are written into a temporary folder first; `{dir}` in argv and env stands for it. A file's content
may be FIFO, FOLDER or ("->", target) for a named pipe, a folder or a symlink. Options: env (extra
variables), stdout ("full": /dev/full, "closed"), empty_stdout / nonempty_stdout, absent (a string that must
not appear in the output), needs_unprivileged (permission cases; skipped as root). Every row also checks:
no traceback, at most one error line, no raw ESC byte in the output. Used by tests/cli/test_bad_inputs.py and
benchmarks/bad_inputs_doc.py (which writes docs/bad-inputs.md); `run_row` is shared by both.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

FIFO, FOLDER = "<fifo>", "<folder>"

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
    ("unknown weight format", ["estimate", "llama-3-8b", "--gpu", "h100", "--weights", "int3"], {}, 2, "--weights: 'int3' is not accepted; use one of auto"),
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
    ("raw capacity of 0 GPUs", ["estimate", "llama-3-8b", "--gpu", "0x80GiB"], {}, 2, "--gpu: '0x80GiB': the GPU count must be 1..72"),
    ("raw capacity too large", ["estimate", "llama-3-8b", "--gpu", "99TiB"], {}, 2, "a GPU capacity must be between 1 MiB and 16 TiB"),
    ("TP beyond the raw GPUs", ["estimate", "llama-3-8b", "--gpu", "2x40GiB", "--tp", "4"], {}, 2, "= 4 GPUs, but --gpu 2x40.00GiB (raw capacity) names 2"),
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

ESC = "\x1b"
TINY = json.dumps(CONFIG)
PREDICTED = {**dict.fromkeys(("weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes", "headroom_bytes"), 1),
             "total_bytes": 4, "capacity_bytes": 5, "quality_risk": "lossless", "decode_tokens_per_s": 1.0}
PLAN = dict(schema_version=1, oomplan_version="0.1.0", model=dict(ref="config.json", name="tiny", config_sha256="0" * 64),
            gpu=dict(ref="h100", num_gpus=1), workload=dict(ctx_tokens=1024, batch_size=1, engine="hf"),
            plan=dict(weights="auto", kv_dtype="auto", tensor_parallel=1), predicted=PREDICTED)


def plan(**changes) -> str:
    """The tiny plan (model.ref config.json next to it) as YAML, with top-level sections replaced/updated."""
    data = json.loads(json.dumps(PLAN))
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return yaml.safe_dump(data, sort_keys=False)


def gpu_profile(**changes) -> str:
    root = Path(__file__).resolve().parents[2] / "hardware_profiles" / "h100-sxm.yaml"
    data = yaml.safe_load(root.read_text())
    data.update(changes)
    return yaml.safe_dump(data, sort_keys=False)


MIXTRAL = {**CONFIG, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2}
DEEPSEEK = {**CONFIG, "model_type": "deepseek_v3", "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8,
            "q_lora_rank": None}
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
LONG = "m" * 5000
PROFILE_DIR = {"env": {"OOMPLAN_PROFILE_DIR": "{dir}/prof"}}

# Round 2 (issue 14): one row family per failure class; each class has one mechanism (see docs/bad-inputs.md).
ROWS += [
    # 1 numbers: one exact, bounded parser (oomplan/units.py) for every numeric flag
    ("ctx of 401 digits", ["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "1" + "0" * 400], {}, 2, "--ctx: '1000"),
    ("offload of 300 nines", ["estimate", "llama-3-8b", "--gpu", "h100", "--offload-gib", "9" * 300], {}, 2, "--offload-gib: '999"),
    ("host memory 1e400", ["fit", "llama-3-8b", "--gpu", "h100", "--host-mem", "1" + "0" * 400 + "GiB"], {}, 2, "--host-mem:"),
    ("vet --max-model-len of 401 digits", ["vet", "--gpu", "h100", "--", "vllm", "serve", "llama-3-8b", "--max-model-len", "1" + "0" * 400], {}, 2, "--max-model-len:"),
    ("vet --cpu-offload-gb 1e308", ["vet", "--gpu", "h100", "--", "vllm", "serve", "llama-3-8b", "--cpu-offload-gb", "1e308"], {}, 2, "--cpu-offload-gb: '1e308' is out of range"),
    ("vet --gpu-memory-utilization nan", ["vet", "--gpu", "h100", "--", "vllm", "serve", "llama-3-8b", "--gpu-memory-utilization", "nan"], {}, 2, "--gpu-memory-utilization: 'nan' is not a number"),
    ("--mem-fraction-static inf", ["estimate", "llama-3-8b", "--gpu", "h100", "--engine", "sglang", "--mem-fraction-static", "inf"], {}, 2, "--mem-fraction-static: 'inf' is not a fraction"),
    ("--price inf", ["fit", "llama-3-8b", "--gpu", "h100", "--price", "inf"], {}, 2, "--price: inf is invalid: it must be a finite number"),
    ("--top of 25 digits", ["fit", "llama-3-8b", "--gpu", "h100", "--top", "9" * 25], {}, 2, "--top: 9999999999999999999999999 is out of range; accepted: 1..10000"),
    # 2 specs: one converter (oomplan/specs/convert.py); later-stage specs too; bounds agree between layers
    ("num_local_experts 0", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": json.dumps({**MIXTRAL, "num_local_experts": 0})}, 2, "num_experts 0 (derived from the config) is invalid"),
    ("kv_lora_rank 0", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": json.dumps({**DEEPSEEK, "kv_lora_rank": 0})}, 2, "kv_lora_rank 0 (derived from the config) is invalid"),
    ("Falcon n_head 0", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": json.dumps({"model_type": "falcon", "architectures": ["FalconForCausalLM"], "vocab_size": 100, "hidden_size": 64, "n_head": 0, "n_layer": 2})}, 2, "num_attention_heads 0"),
    ("hidden_size 8 with 16 heads", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": json.dumps({**CONFIG, "hidden_size": 8, "num_attention_heads": 16, "num_key_value_heads": 16})}, 2, "head_dim = hidden_size (8) // num_attention_heads (16) = 0"),
    ("check --batch 2000000", ["check", "{dir}/p.yaml", "--batch", "2000000"], {"p.yaml": plan(), "config.json": TINY}, 2, "--batch: 2000000 is out of range; accepted: 1..1048576"),
    ("curve --to 2000000 on batch", ["curve", "llama-3-8b", "--gpu", "h100", "--x", "batch", "--to", "2000000"], {}, 2, "--to: 2000000 is out of range; accepted: 1..1048576"),
    ("curve --batch -5", ["curve", "llama-3-8b", "--gpu", "h100", "--batch", "-5"], {}, 2, "--batch: -5 is out of range"),
    ("vet --tensor-parallel-size 0", ["vet", "--gpu", "h100", "--", "vllm", "serve", "llama-3-8b", "--tensor-parallel-size", "0"], {}, 2, "--tensor-parallel-size: 0 is out of range; accepted: 1..1024"),
    # 3 not regular files: one bounded reader (oomplan/safeio.py), O_NONBLOCK + fstat, at most limit + 1 bytes
    ("FIFO as config.json", ["estimate", "{dir}/config.json", "--gpu", "h100"], {"config.json": FIFO}, 2, "is not a regular file (a FIFO)"),
    ("/dev/zero as the model", ["estimate", "/dev/zero", "--gpu", "h100"], {}, 2, "/dev/zero: is not a regular file (a character device)"),
    ("/dev/urandom as a GPU profile", ["estimate", "llama-3-8b", "--gpu", "/dev/urandom"], {}, 2, "is not a regular file"),
    ("plan model.ref /dev/zero", ["check", "{dir}/p.yaml"], {"p.yaml": plan(model={"ref": "/dev/zero"})}, 2, "/dev/zero: is not a regular file"),
    ("vet -- vllm serve /dev/zero", ["vet", "--gpu", "h100", "--", "vllm", "serve", "/dev/zero"], {}, 2, "/dev/zero: is not a regular file"),
    # 4 the user profile folder: a bad profile is reported once, naming the file, and skipped
    ("invalid YAML in the profile folder", ["estimate", "llama-3-8b", "--gpu", "h1"], {"prof/hardware_profiles/bad.yaml": "name: [\n"}, 2, "skipping user profile DIR/prof/hardware_profiles/bad.yaml: invalid YAML", PROFILE_DIR),
    ("FIFO, folder, aliases: 5, non-UTF-8 in the profile folder", ["models"], {"prof/model_profiles/f.yaml": FIFO, "prof/model_profiles/x.yaml": FOLDER, "prof/model_profiles/a.yaml": "name: a\naliases: 5\n", "prof/model_profiles/b.yaml": b"\xff\xfe"}, 0, "skipping user profile", PROFILE_DIR),
    ("the broken profile asked for by name", ["estimate", "bad", "--gpu", "h100"], {"prof/model_profiles/bad.yaml": "name: [\n"}, 2, "DIR/prof/model_profiles/bad.yaml: invalid YAML", PROFILE_DIR),
    ("a GPU profile missing fields in the folder", ["gpus"], {"prof/hardware_profiles/evil.yaml": "name: evil\nvendor: nvidia\n"}, 0, "skipping user profile DIR/prof/hardware_profiles/evil.yaml", PROFILE_DIR),
    # 5 path probing never raises; outputs are checked first
    ("5,000-character MODEL", ["estimate", LONG, "--gpu", "h100"], {}, 2, "MODEL: no model named 'mmm"),
    ("5,000-character --gpu", ["estimate", "llama-3-8b", "--gpu", LONG], {}, 2, "--gpu: no GPU named 'mmm"),
    ("5,000-character path", ["estimate", "/tmp/" + LONG + "/config.json", "--gpu", "h100"], {}, 2, "file name too long"),
    ("300-character -o name", ["fit", "llama-3-8b", "--gpu", "h100", "-o", "{dir}/" + "o" * 300 + ".yaml"], {}, 2, "file name too long", {"empty_stdout": True}),
    ("~nosuchuser", ["estimate", "~nosuchuser/config.json", "--gpu", "h100"], {}, 2, "MODEL: cannot expand '~nosuchuser': no such user"),
    ("-o in a missing folder, before the search", ["fit", "llama-3-8b", "--gpu", "h100", "--ctx", "max", "-o", "{dir}/no/p.yaml"], {}, 2, "-o: folder DIR/no does not exist", {"empty_stdout": True}),
    ("unreadable config.json", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": ("chmod", TINY, 0)}, 2, "not readable (permission denied)", {"needs_unprivileged": True}),
    ("-o in a read-only folder", ["fit", "llama-3-8b", "--gpu", "h100", "-o", "{dir}/ro/p.yaml"], {"ro": ("chmod", FOLDER, 0o555)}, 2, "is not writable (permission denied)", {"needs_unprivileged": True, "empty_stdout": True}),
    # 6 structures: bounded depth, no YAML aliases, bounded integers, tolerant free-form fields
    ("config nested 100,000 deep", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": "[" * 100000 + "]" * 100000}, 2, "nested more than 64 levels deep"),
    ("YAML alias bomb in a plan", ["check", "{dir}/p.yaml"], {"p.yaml": BOMB + plan(model={"ref": "config.json"})}, 2, "YAML aliases (*a) are not accepted"),
    ("10^310 in a plan", ["check", "{dir}/p.yaml"], {"p.yaml": plan(predicted={**PLAN["predicted"], "total_bytes": 10**310}), "config.json": TINY}, 2, "an integer with 311 digits is out of range"),
    ("10^310 in a GPU profile", ["estimate", "llama-3-8b", "--gpu", "{dir}/g.yaml"], {"g.yaml": gpu_profile(memory_bytes=10**310)}, 2, "an integer with 311 digits is out of range"),
    ("rope_scaling a string, --engine vllm", ["estimate", "{dir}/c.json", "--gpu", "h100", "--engine", "vllm", "--ctx", "1k"], {"c.json": json.dumps({**CONFIG, "rope_scaling": "big"})}, 0, ""),
    ("rope_scaling factor 'big' / NaN", ["estimate", "{dir}/c.json", "--gpu", "h100", "--engine", "vllm", "--ctx", "1k"], {"c.json": json.dumps({**CONFIG, "rope_scaling": {"rope_type": "yarn", "factor": float("nan")}, "x": {"rope_scaling": {"factor": "big"}}})}, 0, ""),
    ("mixed YAML key types in a model profile", ["estimate", "{dir}/m.yaml", "--gpu", "h100", "--ctx", "1k"], {"m.yaml": "name: m\ndisplay_name: m\nhf_repo: x/y\nsource: s\nconfig:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in CONFIG.items()) + "  extra: {1: a, b: 2, null: 3}\n"}, 0, ""),
    # 7 output and I/O failures: exit 3, one line, never exit 1
    ("stdout is /dev/full", ["estimate", "llama-3-8b", "--gpu", "h100", "--json"], {}, 3, "writing the output failed: No space left on device", {"stdout": "full"}),
    ("stdout closed", ["estimate", "llama-3-8b", "--gpu", "h100", "--json"], {}, 3, "stdout is closed", {"stdout": "closed"}),
    ("non-UTF-8 locale", ["estimate", "llama-3-8b", "--gpu", "h100"], {}, 0, "", {"env": {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}, "nonempty_stdout": True}),
    ("--log is a folder", ["probe", "{dir}/p.yaml", "--device", "meta", "--log", "{dir}"], {"p.yaml": plan(), "config.json": TINY}, 3, "--log: DIR is not a regular file; not writing the log"),
    ("--log /dev/full", ["probe", "{dir}/p.yaml", "--device", "meta", "--log", "/dev/full"], {"p.yaml": plan(), "config.json": TINY}, 3, "--log: /dev/full is not a regular file"),
    ("HOME is a file (probe's default log)", ["probe", "{dir}/p.yaml", "--device", "meta"], {"p.yaml": plan(), "config.json": TINY, "home": "x"}, 3, "DIR/home is not a folder", {"env": {"HOME": "{dir}/home"}}),
    # 8 atomic writes: exclusive creation, non-regular targets refused even with --force
    ("dangling symlink at -o", ["fit", "llama-3-8b", "--gpu", "h100", "-o", "{dir}/p.yaml"], {"p.yaml": ("->", "nowhere")}, 2, "exists; pass --force to overwrite it", {"empty_stdout": True}),
    ("-o a FIFO with --force", ["export", "{dir}/p.yaml", "--to", "vllm", "-o", "{dir}/fifo", "--force"], {"p.yaml": plan(), "config.json": TINY, "fifo": FIFO}, 2, "is not a regular file (a FIFO, device or socket); refusing to replace it"),
    ("-o /dev/null --force", ["fit", "llama-3-8b", "--gpu", "h100", "-o", "/dev/null", "--force"], {}, 2, "-o: /dev/null is not a regular file", {"empty_stdout": True}),
    # 9 strict types, duplicate keys, finite floats, zero is zero, every flag used or refused
    ("num_hidden_layers: true", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": json.dumps({**CONFIG, "num_hidden_layers": True})}, 2, "field 'num_hidden_layers' must be a number, not true"),
    ("schema_version: true", ["check", "{dir}/p.yaml"], {"p.yaml": plan(schema_version=True), "config.json": TINY}, 2, "field 'schema_version' must be a number, not true"),
    ("num_experts_per_tok 8 of 2 experts", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": json.dumps({**MIXTRAL, "num_local_experts": 2, "num_experts_per_tok": 8})}, 2, "num_experts_per_tok (8) exceeds the number of experts (2)"),
    ("duplicate key in a plan", ["check", "{dir}/p.yaml"], {"p.yaml": plan().replace("  tensor_parallel: 1\n", "  tensor_parallel: 8\n  tensor_parallel: 1\n"), "config.json": TINY}, 2, "duplicate key 'tensor_parallel'"),
    ("duplicate key in config.json", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": TINY[:-1] + ', "hidden_size": 128}'}, 2, "duplicate key 'hidden_size'"),
    ("bandwidth .inf in a GPU profile", ["estimate", "llama-3-8b", "--gpu", "{dir}/g.yaml"], {"g.yaml": gpu_profile(memory_bandwidth_bytes_per_s=float("inf"))}, 2, "field 'memory_bandwidth_bytes_per_s': Input should be a finite number"),
    ("--gpu-memory-utilization 0", ["estimate", "llama-3-8b", "--gpu", "h100", "--engine", "vllm", "--gpu-memory-utilization", "0"], {}, 2, "--gpu-memory-utilization: '0' is out of range"),
    ("curve --batch 0", ["curve", "llama-3-8b", "--gpu", "h100", "--batch", "0"], {}, 2, "--batch: 0 is out of range"),
    ("--lora-rank without LoRA", ["estimate", "llama-3-8b", "--gpu", "h100", "--train", "full", "--lora-rank", "8"], {}, 2, "--lora-rank: only with --train lora or qlora"),
    ("fit --probe --json", ["fit", "llama-3-8b", "--gpu", "h100", "--probe", "--json"], {}, 2, "--probe: not available with --json", {"empty_stdout": True}),
    ("--global-batch of 20 digits", ["fit", "llama-3-8b", "--gpu", "h100", "--train", "full", "--global-batch", "9" * 20, "-o", "{dir}/p.yaml"], {}, 2, "--global-batch: 99999999999999999999 is out of range; accepted: 1..1048576"),
    # 10 messages and trust: refs against the plan's folder, no echo of foreign files, one sanitiser, a minimum width
    ("relative model.ref from another folder", ["check", "{dir}/deploy/p.yaml"], {"deploy/p.yaml": plan(), "deploy/config.json": TINY}, 0, "PASS"),
    ("gpu.ref pointing at a foreign file", ["check", "{dir}/p.yaml"], {"p.yaml": plan(gpu={"ref": "secrets.yaml"}), "config.json": TINY, "secrets.yaml": "root: hunter2\napi_key: hunter2\n"}, 2, "DIR/secrets.yaml: not a GPU profile", {"absent": "hunter2"}),
    ("gpu.ref /etc/shadow", ["check", "{dir}/p.yaml"], {"p.yaml": plan(gpu={"ref": "/etc/shadow"}), "config.json": TINY}, 2, "/etc/shadow", {"absent": "root:"}),
    ("escape sequences in architectures", ["estimate", "{dir}/c.json", "--gpu", "h100", "--tp", "3"], {"c.json": json.dumps({**CONFIG, "architectures": [ESC + "]0;pwned" + "\x07LlamaForCausalLM" + ESC + "[2J"]})}, 2, "--tp: tensor_parallel (3) must divide"),
    ("escape sequences in a folder name", ["estimate", "{dir}/a" + ESC + "[31mb", "--gpu", "h100", "--ctx", "1k"], {"a" + ESC + "[31mb/config.json": TINY}, 0, ""),
    ("escape sequences in a GPU profile's names", ["estimate", "llama-3-8b", "--gpu", "{dir}/g.yaml"], {"g.yaml": gpu_profile(name="g" + ESC + "[2J", display_name=ESC + "]0;x\x07 H100")}, 0, "", {"nonempty_stdout": True}),
    ("COLUMNS=0", ["estimate", "llama-3-8b", "--gpu", "h100"], {}, 0, "", {"env": {"COLUMNS": "0"}, "nonempty_stdout": True}),
    ("fit --json -o existing.yaml", ["fit", "llama-3-8b", "--gpu", "h100", "--json", "-o", "{dir}/e.yaml"], {"e.yaml": "x: 1\n"}, 2, "exists; pass --force", {"empty_stdout": True}),
]
# --kv-policy (issue 16 item 5): one parser (oomplan/specs/kv_policy.py); plan files validate kv_policy as a typed spec
_E = ["estimate", "llama-3-8b", "--gpu", "h100", "--kv-policy"]
ROWS += [
    ("kv policy window:-1", _E + ["window:-1"], {}, 2, "--kv-policy: 'window:-1' is not a KV policy: window must be a token count 1..2147483648 (k = 1024); accepted: dms:R[,window:W], window:W[,sinks:S], budget:N, slots:M,window:W, episodic:HOST_BYTES,read:R"),
    ("kv policy budget:abc", _E + ["budget:abc"], {}, 2, "--kv-policy: 'budget:abc' is not a KV policy: budget must be a token count 1..2147483648"),
    ("kv policy unknown kind", _E + ["lru:4096"], {}, 2, "--kv-policy: 'lru:4096' is not a KV policy: unknown kind 'lru'; accepted:"),
    ("kv policy duplicate key", _E + ["window:4096,sinks:4,sinks:8"], {}, 2, "--kv-policy: 'window:4096,sinks:4,sinks:8' is not a KV policy: 'sinks' is given twice"),
    ("kv policy of 30 digits", _E + ["budget:" + "9" * 30], {}, 2, "is not a KV policy: budget must be a token count 1..2147483648"),
    ("kv policy with an escape byte", _E + ["window:4k\x1b[2J"], {}, 2, "--kv-policy: 'window:4k\\x1b[2J' is not a KV policy"),
    ("kv policy slots without window", _E + ["slots:64"], {}, 2, "--kv-policy: 'slots:64' is not a KV policy: slots needs window"),
    ("kv policy and --dms", _E + ["window:4096", "--dms", "4"], {}, 2, "--kv-policy and --dms/--dms-window: give one"),
    ("kv policy with --engine vllm", _E + ["window:4096", "--engine", "vllm"], {}, 2, "--kv-policy window:4096,sinks:4: not realised by vLLM (vLLM has no attention-sink eviction"),
    ("fit --kv-policy dms:4", ["fit", "llama-3-8b", "--gpu", "h100", "--kv-policy", "dms:4"], {}, 2, "--kv-policy: fit searches DMS ratios 2, 4 and 8 itself"),
    ("fit episodic store over --host-mem", ["fit", "llama-3-8b", "--gpu", "h100", "--host-mem", "16GiB", "--kv-policy", "episodic:64GiB,read:2k"], {}, 2, "--kv-policy episodic:68719476736,read:2048: the episodic store (64.00 GiB) exceeds --host-mem (16.00 GiB)"),
    ("plan kv_policy with an unknown key", ["check", "{dir}/p.yaml"], {"p.yaml": plan(plan={"kv_policy": {"kind": "window", "window_tokens": 4096, "sinks": 4}}), "config.json": TINY}, 2, "plan.kv_policy.window.sinks"),
    ("plan kv_policy of an unknown kind", ["check", "{dir}/p.yaml"], {"p.yaml": plan(plan={"kv_policy": {"kind": "lru", "budget_tokens": 4}}), "config.json": TINY}, 2, "plan.kv_policy"),
    ("plan kv_policy window 0", ["check", "{dir}/p.yaml"], {"p.yaml": plan(plan={"kv_policy": {"kind": "window", "window_tokens": 0}}), "config.json": TINY}, 2, "plan.kv_policy.window.window_tokens"),
    ("plan with DMS and a kv_policy", ["check", "{dir}/p.yaml"], {"p.yaml": plan(plan={"dms_ratio": 4.0, "kv_policy": {"kind": "budget", "budget_tokens": 512}}), "config.json": TINY}, 2, "one KV policy at a time"),
]
# Hostile inputs against the newer surfaces (benchmarks/hostile_cli.py found each): one mechanism per class
INDEX_NO_TENSORS = {"ck/config.json": TINY, "ck/model.safetensors": b"\x02\x00\x00\x00\x00\x00\x00\x00{}",
                    "ck/model.safetensors.index.json": json.dumps({"metadata": {"total_size": 0}, "weight_map": {}})}
ROWS += [
    ("typer's int flag names the value", ["estimate", "llama-3-8b", "--gpu", "h100", "--batch", "x"], {}, 2, "error: --batch: 'x' is not an integer; accepted: an integer, 1..1048576"),
    ("--images 1.5", ["estimate", "qwen3-vl-4b-instruct", "--gpu", "h100", "--images", "1.5"], {}, 2, "error: --images: '1.5' is not an integer; accepted: an integer, 0..65536"),
    ("--image-tokens beyond the Workload bound", ["estimate", "qwen3-vl-4b-instruct", "--gpu", "h100", "--images", "1", "--image-tokens", "9999999"], {}, 2, "--image-tokens: 9999999 is out of range; accepted: 1..1048576"),
    ("5,000-character --weights", ["estimate", "llama-3-8b", "--gpu", "h100", "--weights", LONG], {}, 2, "more characters)"),
    ("curve --gpu ''", ["curve", "llama-3-8b", "--gpu", ""], {}, 2, "--gpu: empty; give a profile name or a path"),
    ("curve --png and --svg one file", ["curve", "llama-3-8b", "--gpu", "h100", "--png", "{dir}/c.png", "--svg", "{dir}/c.png"], {}, 2, "--svg: DIR/c.png is also --png's file", {"empty_stdout": True}),
    ("fit -o its own config.json --force", ["fit", "{dir}/c.json", "--gpu", "h100", "-o", "{dir}/c.json", "--force"], {"c.json": TINY}, 2, "-o: DIR/c.json is also this command's input", {"empty_stdout": True}),
    ("index.json with an empty weight_map", ["estimate", "{dir}/ck", "--gpu", "h100"], INDEX_NO_TENSORS, 2, "its 'weight_map' lists no tensors"),
    ("curve --compare with a knob twice", ["curve", "llama-3-8b", "--gpu", "h100", "--compare", "weights=fp8,weights=awq"], {}, 2, "--compare: 'weights' is given twice in 'weights=fp8,weights=awq'; give each knob once"),
    ("two prices for one card", ["fit", "llama-3-8b", "--gpu", "h100", "--price", "h100=1,h100-sxm=2"], {}, 2, "--price: two prices for h100-sxm ('h100=1' and 'h100-sxm=2'); give one"),
    ("torch_dtype float7", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": json.dumps({**CONFIG, "torch_dtype": "float7"})}, 2, "field 'torch_dtype': 'float7' is not a torch dtype; accepted: float32, bfloat16, float16, float, half"),
    ("layer_types longer than the layers", ["estimate", "{dir}/c.json", "--gpu", "h100"], {"c.json": json.dumps({**CONFIG, "layer_types": ["full_attention"] * 5})}, 2, "layer_types has 5 entries for 2 layers (num_hidden_layers)"),
    ("--ctx in fullwidth digits", ["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "\uff11\uff12k"], {}, 2, "--ctx: '\\\\uff11\\\\uff12k' is not a count"),
    ("safetensors holding no tensors", ["estimate", "{dir}/ck", "--gpu", "h100"], {k: v for k, v in INDEX_NO_TENSORS.items() if "index" not in k}, 2, "hold no tensors"),
]
ROWS = [r if len(r) == 6 else (*r, {}) for r in ROWS]


def _write(folder: Path, name: str, content) -> None:
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = None
    if isinstance(content, tuple) and content[0] == "chmod":
        _, content, mode = content
    if isinstance(content, tuple) and content[0] == "->":
        target.symlink_to(folder / content[1])
    elif content == FIFO:
        os.mkfifo(target)
    elif content == FOLDER:
        target.mkdir(exist_ok=True)
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    if mode is not None:
        target.chmod(mode)


def run_row(argv, files, folder: Path, options=None) -> subprocess.CompletedProcess:
    """Write the row's files into `folder` and run it through the real console script."""
    options = options or {}
    for name, content in files.items():
        _write(folder, name, content)
    args = [a.replace("{dir}", str(folder)) for a in argv]
    env = {**os.environ, **{k: v.replace("{dir}", str(folder)) for k, v in options.get("env", {}).items()}}
    if "PYTHONIOENCODING" in options.get("env", {}) and not env["PYTHONIOENCODING"]:
        env.pop("PYTHONIOENCODING")
    stdout = subprocess.PIPE
    if options.get("stdout") == "full":
        stdout = open("/dev/full", "w")  # noqa: SIM115 - closed below
    kwargs = {"pass_fds": ()} if options.get("stdout") != "closed" else {}
    cmd = [sys.executable, "-m", "oomplan", *args]
    if options.get("stdout") == "closed":
        cmd = ["sh", "-c", 'exec "$@" >&-', "sh", *cmd]
    try:
        return subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, errors="replace", env=env,
                              stdin=subprocess.DEVNULL, timeout=120, **kwargs)
    finally:
        if stdout is not subprocess.PIPE:
            stdout.close()
