"""Read a real engine launch command (`vllm serve ...`, `python -m sglang.launch_server ...`,
`llama-server ...`) into the engine's settings. Flags that do not change memory are listed, not refused;
a bad value of a flag that does is an InputError naming the flag, the value and what is accepted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import PurePath
from typing import Any, Callable

from oomplan.engines.llamacpp import LlamaCppSettings
from oomplan.engines.sglang import SglangSettings
from oomplan.engines.vllm import VllmSettings
from oomplan.errors import InputError, ProfileNotFoundError
from oomplan.profiles import load_model, profile_keys
from oomplan.specs.model import ModelSpec
from oomplan.units import GIB

Settings = VllmSettings | SglangSettings | LlamaCppSettings


@dataclass(frozen=True)
class EngineLaunch:
    engine: str  # vllm | sglang | llamacpp
    model_ref: str  # as the command names it: HF repo id, local folder, GGUF file
    settings: Settings
    ignored_flags: tuple[str, ...]  # flags read past because they do not change memory


def parse_int(text: str, flag: str) -> int:
    """vllm/engine/arg_utils.py human_readable_int: 32k = 32,000, 32K = 32,768, 1m / 1M likewise."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", text.strip())
    if not match:
        raise InputError(f"{flag}: {text!r} is not an integer; use e.g. 8192, 32k (x1000) or 32K (x1024)")
    number, suffix = match.groups()
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "K": 2**10, "M": 2**20, "G": 2**30}[suffix]
    return int(float(number) * scale)


def parse_float(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{flag}: {text!r} is not a number") from None


def choice(accepted: tuple[str, ...]) -> Callable[[str, str], str]:
    def convert(text: str, flag: str) -> str:
        if text.lower() not in accepted:
            raise InputError(f"{flag}: {text!r} is not accepted; use one of {', '.join(accepted)}")
        return text.lower()
    return convert


def _text(text: str, flag: str) -> str:
    return text


def _gib(text: str, flag: str) -> int:
    return int(parse_float(text, flag) * GIB)


def _layers(text: str, flag: str) -> int | None:
    """-ngl N | all (every layer) | auto or -1 (the default: all, lowered by --fit)."""
    low = text.strip().lower()
    return None if low in ("auto", "-1") else 999 if low == "all" else parse_int(text, flag)


def _on_off(text: str, flag: str) -> bool:
    return choice(("on", "off", "1", "0", "true", "false"))(text, flag) in ("on", "1", "true")


VLLM_FLAGS: dict[str, tuple[str, Callable]] = {
    "--model": ("model", _text), "--tensor-parallel-size": ("tensor_parallel", parse_int), "-tp": ("tensor_parallel", parse_int),
    "--pipeline-parallel-size": ("pipeline_parallel", parse_int), "-pp": ("pipeline_parallel", parse_int),
    "--dtype": ("dtype", choice(("auto", "half", "float16", "bfloat16", "float", "float32"))),
    "--quantization": ("quantization", choice(("fp8", "awq", "awq_marlin", "gptq", "gptq_marlin", "bitsandbytes", "compressed-tensors"))),
    "-q": ("quantization", choice(("fp8", "awq", "awq_marlin", "gptq", "gptq_marlin", "bitsandbytes", "compressed-tensors"))),
    "--kv-cache-dtype": ("kv_cache_dtype", choice(("auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc"))),
    "--max-model-len": ("max_model_len", parse_int), "--gpu-memory-utilization": ("gpu_memory_utilization", parse_float),
    "--max-num-seqs": ("max_num_seqs", parse_int), "--max-num-batched-tokens": ("max_num_batched_tokens", parse_int),
    "--block-size": ("block_size", parse_int), "--cpu-offload-gb": ("cpu_offload_bytes", _gib),
    "--kv-cache-memory-bytes": ("kv_cache_memory_bytes", parse_int), "--kv-cache-memory": ("kv_cache_memory_bytes", parse_int),
}
VLLM_SWITCHES = {"--enforce-eager": "enforce_eager", "--enable-expert-parallel": "enable_expert_parallel"}

SGLANG_FLAGS: dict[str, tuple[str, Callable]] = {
    "--model-path": ("model", _text), "--model": ("model", _text),
    "--tp-size": ("tp_size", parse_int), "--tp": ("tp_size", parse_int), "--tensor-parallel-size": ("tp_size", parse_int),
    "--pp-size": ("pp_size", parse_int), "--pipeline-parallel-size": ("pp_size", parse_int),
    "--dtype": ("dtype", choice(("auto", "half", "float16", "bfloat16", "float", "float32"))),
    "--quantization": ("quantization", choice(("fp8", "awq", "gptq", "bitsandbytes", "compressed-tensors", "w8a8_int8"))),
    "--kv-cache-dtype": ("kv_cache_dtype", choice(("auto", "bf16", "bfloat16", "fp16", "float16", "fp8_e4m3", "fp8_e5m2"))),
    "--context-length": ("context_length", parse_int), "--mem-fraction-static": ("mem_fraction_static", parse_float),
    "--page-size": ("page_size", parse_int), "--max-running-requests": ("max_running_requests", parse_int),
    "--max-total-tokens": ("max_total_tokens", parse_int), "--chunked-prefill-size": ("chunked_prefill_size", parse_int),
    "--cuda-graph-max-bs": ("cuda_graph_max_bs", parse_int),
}
SGLANG_SWITCHES = {"--disable-cuda-graph": "disable_cuda_graph"}

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
LLAMA_FLAGS: dict[str, tuple[str, Callable]] = {
    "-m": ("model", _text), "--model": ("model", _text), "-hf": ("hf_repo", _text), "--hf-repo": ("hf_repo", _text),
    "-ngl": ("n_gpu_layers", _layers), "--gpu-layers": ("n_gpu_layers", _layers), "--n-gpu-layers": ("n_gpu_layers", _layers),
    "-c": ("ctx_tokens", parse_int), "--ctx-size": ("ctx_tokens", parse_int),
    "-np": ("n_parallel", parse_int), "--parallel": ("n_parallel", parse_int),
    "-ctk": ("cache_type_k", choice(CACHE_TYPES)), "--cache-type-k": ("cache_type_k", choice(CACHE_TYPES)),
    "-ctv": ("cache_type_v", choice(CACHE_TYPES)), "--cache-type-v": ("cache_type_v", choice(CACHE_TYPES)),
    "-ub": ("ubatch_tokens", parse_int), "--ubatch-size": ("ubatch_tokens", parse_int), "--fit": ("fit", _on_off),
}
LLAMA_SWITCHES = {"-nkvo": "no_kv_offload", "--no-kv-offload": "no_kv_offload", "--swa-full": "swa_full"}
FLASH_ATTN = ("-fa", "--flash-attn")


# Flags of the three engines that take no value (so an unknown one never swallows the next token)
NO_VALUE_FLAGS = frozenset({
    "--trust-remote-code", "--enable-prefix-caching", "--no-enable-prefix-caching", "--enable-chunked-prefill",
    "--no-enable-chunked-prefill", "--disable-log-requests", "--disable-log-stats", "--enable-auto-tool-choice",
    "--disable-custom-all-reduce", "--enable-lora", "--enable-sleep-mode", "--async-scheduling", "--skip-tokenizer-init",
    "--enable-torch-compile", "--disable-radix-cache", "--enable-dp-attention", "--enable-metrics", "--log-requests",
    "--skip-server-warmup", "--mlock", "--no-mmap", "--cont-batching", "-cb", "--metrics", "--jinja", "--no-webui",
    "--verbose", "-v", "--embedding", "--embeddings", "--reranking", "--no-warmup", "--check-tensors",
})
FLASH_ATTN_VALUES = {"on": "on", "off": "off", "auto": "auto", "1": "on", "0": "off", "true": "on", "false": "off"}


def _split(token: str) -> tuple[str, str | None]:
    if token.startswith("--") and "=" in token:
        flag, value = token.split("=", 1)
        return flag, value
    return token, None


def _flash_attn(args: list[str], i: int, value: str | None) -> tuple[int, str]:
    """-fa [on|off|auto]: older llama.cpp took -fa alone (= on)."""
    if value is not None:
        return i, choice(tuple(FLASH_ATTN_VALUES))(value, "--flash-attn") and FLASH_ATTN_VALUES[value.lower()]
    nxt = args[i + 1].lower() if i + 1 < len(args) else ""
    return (i + 1, FLASH_ATTN_VALUES[nxt]) if nxt in FLASH_ATTN_VALUES else (i, "on")


def _value(args: list[str], i: int, flag: str, value: str | None) -> tuple[int, str]:
    if value is not None:
        return i, value
    if i + 1 >= len(args):
        raise InputError(f"{flag}: needs a value")
    return i + 1, args[i + 1]


def _read(args: list[str], flags: dict, switches: dict, positional: str | None) -> tuple[dict[str, Any], list[str]]:
    """Flags -> {field: value}; a bare first token is `positional`; unknown flags skip their value."""
    out: dict[str, Any] = {}
    ignored: list[str] = []
    i = 0
    while i < len(args):
        flag, value = _split(args[i])
        if flag in switches:
            out[switches[flag]] = True
        elif flag in FLASH_ATTN and flags is LLAMA_FLAGS:
            i, out["flash_attn"] = _flash_attn(args, i, value)
        elif flag in flags:
            i, value = _value(args, i, flag, value)
            field, convert = flags[flag]
            out[field] = convert(value, flag)
        elif not flag.startswith("-") and positional and positional not in out:
            out[positional] = flag
        else:
            ignored.append(flag)
            if value is None and flag not in NO_VALUE_FLAGS and i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
        i += 1
    return out, ignored


def detect_engine(argv: list[str]) -> tuple[str, list[str]]:
    """(engine, the arguments after the program): env assignments and `python -m` are read past."""
    args = [a for a in argv]
    while args and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", args[0]):
        args.pop(0)
    if not args:
        raise InputError("vet: no engine command after '--'; e.g. oomplan vet --gpu h100 -- vllm serve MODEL")
    prog = PurePath(args[0]).name
    if prog == "vllm" and len(args) > 1 and args[1] == "serve":
        return "vllm", args[2:]
    if prog.startswith("python") and "-m" in args:
        module = args[args.index("-m") + 1] if args.index("-m") + 1 < len(args) else ""
        rest = args[args.index("-m") + 2:]
        if module.startswith("vllm.entrypoints"):
            return "vllm", rest
        if module in ("sglang.launch_server", "sglang.launch_server.py"):
            return "sglang", rest
    if prog in ("llama-server", "llama-cli", "server") or prog.startswith("llama-server"):
        return "llamacpp", args[1:]
    raise InputError(f"vet: {' '.join(args[:3])!r} is not a known engine command; accepted: 'vllm serve MODEL ...', "
                     "'python -m vllm.entrypoints.openai.api_server ...', 'python -m sglang.launch_server ...', 'llama-server ...'")


GGUF_TYPE = re.compile(r"(?i)(?:^|[-_.])(IQ4_XS|IQ4_NL|Q[2-6]_K_[SML]|Q[2-8]_K|Q[458]_[01]|BF16|F16|F32)(?=$|[-_.])")


def gguf_type_from_name(name: str) -> str | None:
    """'Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf' -> 'Q4_K_M'; a split file's '-00001-of-00003' is read past."""
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", PurePath(name).name.removesuffix(".gguf"))
    found = GGUF_TYPE.findall(stem)
    return found[-1].upper() if found else None


def gguf_model_stem(name: str) -> str:
    """The model part of a GGUF file name or -hf repo: quant type, split suffix and '-GGUF' removed."""
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", PurePath(name.split(":")[0]).name.removesuffix(".gguf"))
    stem = GGUF_TYPE.sub("", stem)
    return re.sub(r"(?i)[-_.]gguf$", "", stem)


def _build(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def _llamacpp(values: dict[str, Any], ignored: list[str], gguf_type: str | None) -> EngineLaunch:
    ref = values.get("model") or values.get("hf_repo")
    if not ref:
        raise InputError("llama-server: no model; pass -m FILE.gguf or -hf REPO[:QUANT]")
    quant = ref.split(":")[1].upper() if "hf_repo" in values and ":" in ref else None
    kind = gguf_type or quant or gguf_type_from_name(ref)
    if kind is None:
        raise InputError(f"-m: cannot tell the GGUF type from {ref!r}; pass --gguf-type (e.g. Q4_K_M)")
    return EngineLaunch("llamacpp", ref, _build(LlamaCppSettings, values | {"gguf_type": kind}), tuple(ignored))


def parse_launch(argv: list[str], gguf_type: str | None = None) -> EngineLaunch:
    engine, args = detect_engine(argv)
    if engine == "llamacpp":
        return _llamacpp(*_read(args, LLAMA_FLAGS, LLAMA_SWITCHES, None), gguf_type)
    flags, switches, cls = (VLLM_FLAGS, VLLM_SWITCHES, VllmSettings) if engine == "vllm" else (SGLANG_FLAGS, SGLANG_SWITCHES, SglangSettings)
    values, ignored = _read(args, flags, switches, "model" if engine == "vllm" else None)
    if not values.get("model"):
        raise InputError(f"{engine}: no model in the command; pass it as {'vllm serve MODEL' if engine == 'vllm' else '--model-path MODEL'}")
    return EngineLaunch(engine, values["model"], _build(cls, values), tuple(ignored))


def resolve_model(launch: EngineLaunch, model_profile: str | None) -> ModelSpec:
    """--model-profile wins; else the command's model (HF id alias or folder), or a GGUF name matching a profile."""
    if model_profile:
        return load_model(model_profile, flag="--model-profile")
    if launch.engine != "llamacpp":
        try:
            return load_model(launch.model_ref, flag="model")
        except ProfileNotFoundError as exc:
            raise InputError(f"{exc} (pass --model-profile NAME, a config.json, or a folder holding one)") from None
    stem = gguf_model_stem(launch.model_ref).lower()
    for key, name in profile_keys("model_profiles").items():
        if stem in (key, key.split("/")[-1]):
            return load_model(name)
    raise InputError(f"model: cannot tell the model from GGUF {launch.model_ref!r} (no profile named {stem!r}); "
                     "pass --model-profile NAME (a shipped profile, a config.json or a folder holding one)")
