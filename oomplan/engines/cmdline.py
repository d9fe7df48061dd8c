"""Read a real engine launch command (`vllm serve ...`, `python -m sglang.launch_server ...`,
`llama-server ...`) into the engine's settings. Flags that do not change memory are listed, not refused;
a bad value of a flag that does is an InputError naming the flag, the value and what is accepted.
"""
from __future__ import annotations

import re
from fractions import Fraction
from dataclasses import fields, replace
from pathlib import PurePath
from typing import Any
from collections.abc import Callable

from oomplan.engines.protocol import Engine, EngineLaunch
from oomplan.engines.registry import engines, get_engine
from oomplan.errors import InputError, ProfileNotFoundError
from oomplan.profiles import load_model
from oomplan.specs.model import ModelSpec
from oomplan.text import shorten
from oomplan.units import GIB, MAX_SIZE_BYTES, MAX_TEXT, parse_number

Converter = Callable[[str, str], Any]


def parse_int(text: str, flag: str, low: int = 0, high: int = 2**40) -> int:
    """vllm/engine/arg_utils.py human_readable_int: 32k = 32,000, 32K = 32,768, 1m / 1M likewise.
    Exact (no float overflow) and bounded: one line naming the flag otherwise (oomplan/units.py)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", text.strip(), re.ASCII) if len(text) <= MAX_TEXT else None
    if not match:
        raise InputError(f"{flag}: {shorten(repr(text), 60)} is not an integer; use e.g. 8192, 32k (x1000) or 32K (x1024)")
    number, suffix = match.groups()
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "K": 2**10, "M": 2**20, "G": 2**30}[suffix]
    return int(parse_number(int(Fraction(number) * scale), flag, low, high, integer=True))


def parse_float(text: str, flag: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number within [low, high] (the one number parser, oomplan/units.py)."""
    return float(parse_number(text, flag, low, high))


def int_range(low: int, high: int) -> Converter:
    return lambda text, flag: parse_int(text, flag, low, high)


def float_range(low: float, high: float) -> Converter:
    return lambda text, flag: parse_float(text, flag, low, high)


# Bounds shared by the engines' flag tables; they agree with the specs the values reach (Plan: TP/PP/block
# size <= 1024; Workload: ctx <= 2^31, batch <= 2^20) and with the CLI's own flags (fractions 0.01..1).
PARALLEL = int_range(1, 1024)
CONTEXT = int_range(1, 2**31)
FRACTION = float_range(0.01, 1.0)
SEQUENCES = int_range(1, 2**20)
TOKENS = int_range(1, 2**31)
BLOCK = int_range(1, 1024)
BYTES = int_range(1, MAX_SIZE_BYTES)


def choice(accepted: tuple[str, ...]) -> Callable[[str, str], str]:
    def convert(text: str, flag: str) -> str:
        if text.lower() not in accepted:
            raise InputError(f"{flag}: {text!r} is not accepted; use one of {', '.join(accepted)}")
        return text.lower()
    return convert


def text_value(text: str, flag: str) -> str:
    return text


def gib_value(text: str, flag: str) -> int:
    return int(parse_float(text, flag, 0, MAX_SIZE_BYTES / GIB) * GIB)


def layers_value(text: str, flag: str) -> int | None:
    """-ngl N | all (every layer) | auto or -1 (the default: all, lowered by --fit)."""
    low = text.strip().lower()
    return None if low in ("auto", "-1") else 999 if low == "all" else parse_int(text, flag, 0, 2**20)


def on_off(text: str, flag: str) -> bool:
    return choice(("on", "off", "1", "0", "true", "false"))(text, flag) in ("on", "1", "true")


# Flags of the three engines that take no value (so an unknown one never swallows the next token)
NO_VALUE_FLAGS = frozenset({
    "--trust-remote-code", "--enable-prefix-caching", "--no-enable-prefix-caching", "--enable-chunked-prefill",
    "--no-enable-chunked-prefill", "--disable-log-requests", "--disable-log-stats", "--enable-auto-tool-choice",
    "--disable-custom-all-reduce", "--enable-lora", "--enable-sleep-mode", "--async-scheduling", "--skip-tokenizer-init",
    "--enable-torch-compile", "--disable-radix-cache", "--enable-dp-attention", "--enable-metrics", "--log-requests",
    "--skip-server-warmup", "--mlock", "--no-mmap", "--cont-batching", "-cb", "--metrics", "--jinja", "--no-webui",
    "--verbose", "-v", "--embedding", "--embeddings", "--reranking", "--no-warmup", "--check-tensors",
})


def _split(token: str) -> tuple[str, str | None]:
    if token.startswith("--") and "=" in token:
        flag, value = token.split("=", 1)
        return flag, value
    return token, None


def _value(args: list[str], i: int, flag: str, value: str | None) -> tuple[int, str]:
    if value is not None:
        return i, value
    if i + 1 >= len(args):
        raise InputError(f"{flag}: needs a value")
    return i + 1, args[i + 1]


# A flag whose value is optional (llama.cpp's -fa [on|off|auto]): (args, i, value after '=') -> (new i, field, value)
OptionalValue = Callable[[list[str], int, "str | None"], tuple[int, str, Any]]


def read_flags(args: list[str], flags: dict[str, tuple[str, Converter]], switches: dict[str, str], positional: str | None,
               optional: dict[str, OptionalValue] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Flags -> {field: value}; a bare first token is `positional`; unknown flags skip their value."""
    out: dict[str, Any] = {}
    ignored: list[str] = []
    optional = optional or {}
    i = 0
    while i < len(args):
        flag, value = _split(args[i])
        if flag in switches:
            out[switches[flag]] = True
        elif flag in optional:
            i, field, out_value = optional[flag](args, i, value)
            out[field] = out_value
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


def strip_env(argv: list[str]) -> list[str]:
    """The command without leading VAR=value assignments."""
    args = list(argv)
    while args and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", args[0]):
        args.pop(0)
    return args


def python_module_args(args: list[str]) -> tuple[str, list[str]] | None:
    """`python -m MODULE ARGS...` -> (MODULE, ARGS), else None."""
    if not args or not PurePath(args[0]).name.startswith("python") or "-m" not in args:
        return None
    at = args.index("-m")
    return (args[at + 1] if at + 1 < len(args) else ""), args[at + 2:]


def detect_engine(argv: list[str]) -> tuple[Engine, list[str]]:
    """(engine, the arguments after the program): env assignments and `python -m` are read past."""
    args = strip_env(argv)
    if not args:
        raise InputError("vet: no engine command after '--'; e.g. oomplan vet --gpu h100 -- vllm serve MODEL")
    for engine in engines().values():
        rest = engine.command_args(args)
        if rest is not None:
            return engine, rest
    raise InputError(f"vet: {' '.join(args[:3])!r} is not a known engine command; accepted: 'vllm serve MODEL ...', "
                     "'python -m vllm.entrypoints.openai.api_server ...', 'python -m sglang.launch_server ...', 'llama-server ...'")


def split_ignored(ignored: list[str], unmodelled: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(flags that do not change memory, memory-relevant flags the model does not read)."""
    return tuple(f for f in ignored if f not in unmodelled), tuple(f for f in ignored if f in unmodelled)


def build_settings(cls: Any, values: dict[str, Any]) -> Any:
    """The settings dataclass from the fields it has (the command's other readings, e.g. the model, are not settings)."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def read_served_launch(engine: str, args: list[str], flags: dict[str, tuple[str, Converter]], switches: dict[str, str],
                       positional: str | None, given: Any, unmodelled: frozenset[str], missing: str,
                       defaults: frozenset[str] = frozenset()) -> EngineLaunch:
    """A vLLM-style server command (vllm serve, sglang.launch_server) read into its given settings: the model is
    required (`missing` says how to pass it); flags in `defaults` state what the prediction already assumes."""
    values, ignored = read_flags(args, flags, switches, positional)
    if not values.get("model"):
        raise InputError(missing)
    irrelevant, not_read = split_ignored([f for f in ignored if f not in defaults], unmodelled)
    return EngineLaunch(engine, values["model"], build_settings(given, values), irrelevant, not_read)


def parse_launch(argv: list[str], gguf_type: str | None = None, engine_version: str | None = None) -> EngineLaunch:
    """The command read into the engine's given settings; engine_version (vet --engine-version) is set on them."""
    engine, args = detect_engine(argv)
    launch = engine.read_launch(args, gguf_type)
    if engine_version is None:
        return launch
    if "engine_version" not in {f.name for f in fields(launch.settings)}:
        raise InputError(f"--engine-version: {engine_version!r} is not accepted with {engine.display_name} "
                         "(one modelled build; versions apply to vllm and sglang)")
    return replace(launch, settings=replace(launch.settings, engine_version=engine_version))


def resolve_model(launch: EngineLaunch, model_profile: str | None) -> ModelSpec:
    """--model-profile wins; else the engine resolves the command's model."""
    if model_profile:
        return load_model(model_profile, flag="--model-profile")
    return get_engine(launch.engine).resolve_model(launch)


def profile_model(model_ref: str) -> ModelSpec:
    """The command's model as a profile alias (HF id), a config.json or a folder holding one."""
    try:
        return load_model(model_ref, flag="model")
    except ProfileNotFoundError as exc:
        raise InputError(f"{exc} (pass --model-profile NAME, a config.json, or a folder holding one)") from None
