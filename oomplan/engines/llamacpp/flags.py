"""`llama-server` command lines and planner plans, read into llama.cpp's given settings."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any
from pathlib import Path, PurePath

from oomplan import formats
from oomplan.engines.cmdline import (
    TOKENS, Converter, OptionalValue, build_settings, choice, int_range, layers_value, on_off, parse_float, read_flags, split_ignored,
    text_value,
)
from oomplan.engines.llamacpp.devices import MAX_DEVICES, SPLIT_MODES, default_split
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.engines.llamacpp.split import fit_n_cpu_moe, fit_n_gpu_layers
from oomplan.specs.hardware import GpuSpec
from oomplan.engines.options import EngineOptions
from oomplan.engines.protocol import EngineLaunch
from oomplan.errors import FieldError, InputError
from oomplan.profiles import load_model, profile_keys
from oomplan.specs.kv_policy import WindowPolicy
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
def _override_tensor(text: str, flag: str) -> int:
    """-ot PATTERN=BUFFER: only the every-layer expert pattern to the CPU is modelled ("exps=CPU",
    ".ffn_.*_exps.=CPU"), i.e. --cpu-moe (-1)."""
    pattern, _, buffer = text.rpartition("=")
    if buffer.upper() == "CPU" and "exps" in pattern and "blk" not in pattern:
        return -1
    raise InputError(f"{flag}: {text!r} is not modelled; accepted: an expert pattern to the CPU such as exps=CPU "
                     "(or use --n-cpu-moe N)")


def _tensor_split(text: str, flag: str) -> tuple[float, ...]:
    """-ts 3,1 (common/arg.cpp splits on ',' or '/'): one share per GPU, each >= 0, up to llama_max_devices."""
    parts = re.split(r"[,/]", text)
    if len(parts) > MAX_DEVICES:
        raise InputError(f"{flag}: {len(parts)} shares; accepted: at most {MAX_DEVICES} (llama_max_devices)")
    return tuple(parse_float(p, flag, 0.0, 1e12) for p in parts)


FLAGS: dict[str, tuple[str, Converter]] = {
    "-m": ("model", text_value), "--model": ("model", text_value), "-hf": ("hf_repo", text_value), "--hf-repo": ("hf_repo", text_value),
    "-ngl": ("n_gpu_layers", layers_value), "--gpu-layers": ("n_gpu_layers", layers_value), "--n-gpu-layers": ("n_gpu_layers", layers_value),
    "-c": ("ctx_tokens", int_range(0, 2**31)), "--ctx-size": ("ctx_tokens", int_range(0, 2**31)),
    "-np": ("n_parallel", int_range(1, 2**16)), "--parallel": ("n_parallel", int_range(1, 2**16)),
    "-ctk": ("cache_type_k", choice(CACHE_TYPES)), "--cache-type-k": ("cache_type_k", choice(CACHE_TYPES)),
    "-ctv": ("cache_type_v", choice(CACHE_TYPES)), "--cache-type-v": ("cache_type_v", choice(CACHE_TYPES)),
    "-ub": ("ubatch_tokens", TOKENS), "--ubatch-size": ("ubatch_tokens", TOKENS), "--fit": ("fit", on_off),
    "-ncmoe": ("n_cpu_moe", int_range(0, 2**20)), "--n-cpu-moe": ("n_cpu_moe", int_range(0, 2**20)),
    "-ot": ("n_cpu_moe", _override_tensor), "--override-tensor": ("n_cpu_moe", _override_tensor),
    "-ts": ("tensor_split", _tensor_split), "--tensor-split": ("tensor_split", _tensor_split),
    "-sm": ("split_mode", choice(SPLIT_MODES)), "--split-mode": ("split_mode", choice(SPLIT_MODES)),
    "-mg": ("main_gpu", int_range(0, MAX_DEVICES - 1)), "--main-gpu": ("main_gpu", int_range(0, MAX_DEVICES - 1)),
    "--keep": ("keep_tokens", int_range(-1, 2**31)),  # tools/server/README.md: --keep N (-1: all)
}
SWITCHES = {"-nkvo": "no_kv_offload", "--no-kv-offload": "no_kv_offload", "--swa-full": "swa_full", "--context-shift": "context_shift"}
# common/arg.cpp: -dev/--device picks devices by name, which oomplan cannot see; -ts/-sm/-mg are read (devices.py)
UNMODELLED = frozenset({"-dev", "--device"})
FLASH_ATTN_VALUES = {"on": "on", "off": "off", "auto": "auto", "1": "on", "0": "off", "true": "on", "false": "off"}

# Plan.kv_dtype -> --cache-type-k/v; Plan.weights -> GGUF type: formats.gguf_type (the registry's llama.cpp spellings)
GGUF_KV = formats.plan_kv_table("llamacpp", "cache_type") | {formats.AUTO: "f16"}


def _flash_attn(args: list[str], i: int, value: str | None) -> tuple[int, str, Any]:
    """-fa [on|off|auto]: older llama.cpp took -fa alone (= on)."""
    if value is not None:
        return i, "flash_attn", FLASH_ATTN_VALUES[choice(tuple(FLASH_ATTN_VALUES))(value, "--flash-attn")]
    nxt = args[i + 1].lower() if i + 1 < len(args) else ""
    return (i + 1, "flash_attn", FLASH_ATTN_VALUES[nxt]) if nxt in FLASH_ATTN_VALUES else (i, "flash_attn", "on")


def _cpu_moe(args: list[str], i: int, value: str | None) -> tuple[int, str, Any]:
    """-cmoe/--cpu-moe (no value): every layer's experts on the CPU."""
    return i, "n_cpu_moe", -1


OPTIONAL: dict[str, OptionalValue] = {"-fa": _flash_attn, "--flash-attn": _flash_attn, "-cmoe": _cpu_moe, "--cpu-moe": _cpu_moe}

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


def command_args(args: list[str]) -> list[str] | None:
    prog = PurePath(args[0]).name
    return args[1:] if prog in ("llama-server", "llama-cli", "server") or prog.startswith("llama-server") else None


def read_launch(args: list[str], gguf_type: str | None = None) -> EngineLaunch:
    values, ignored = read_flags(args, FLAGS, SWITCHES, None, OPTIONAL)
    ref = values.get("model") or values.get("hf_repo")
    if not ref:
        raise InputError("llama-server: no model; pass -m FILE.gguf or -hf REPO[:QUANT]")
    quant = ref.split(":")[1].upper() if "hf_repo" in values and ":" in ref else None
    kind = gguf_type or quant or _file_type(ref) or gguf_type_from_name(ref)
    if kind is None:
        raise InputError(f"-m: cannot tell the GGUF type from {ref!r}; pass --gguf-type (e.g. Q4_K_M)")
    irrelevant, unmodelled = split_ignored(ignored, UNMODELLED)
    return EngineLaunch("llamacpp", ref, build_settings(LlamaCppGiven, values | {"gguf_type": kind}), irrelevant, unmodelled)


def _file_type(ref: str) -> str | None:
    """The GGUF file type from the file's metadata, when the file is here."""
    path = Path(ref).expanduser()
    if not (path.suffix.lower() == ".gguf" and path.is_file()):
        return None
    from oomplan.checkpoint.gguf_file import file_type_name, read_part

    return file_type_name(read_part(path)[0])


def resolve_model(launch: EngineLaunch) -> ModelSpec:
    """The GGUF file itself when it is here (architecture and tensor types from its header); else a GGUF file
    or -hf repo name matching a shipped profile (the name is then all there is: the CLI says so)."""
    path = Path(launch.model_ref).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return load_model(str(path))
    stem = gguf_model_stem(launch.model_ref).lower()
    for key, name in profile_keys("model_profiles").items():
        if stem in (key, key.split("/")[-1]):
            return load_model(name)
    raise InputError(f"model: cannot tell the model from GGUF {launch.model_ref!r} (no profile named {stem!r}); "
                     "pass --model-profile NAME (a shipped profile, a config.json or a folder holding one)")


def window_slot(plan: Plan, workload: Workload) -> tuple[int, int] | None:
    """A `window:W,sinks:S` KV policy as llama-server realises it: (tokens per slot, --keep) = (min(ctx, S + W), S),
    with --context-shift (docs/kv-policies.md "Engines"); None without a policy. Other policies are not realised."""
    p = plan.kv_policy
    if p is None:
        return None
    if not isinstance(p, WindowPolicy):
        from oomplan.engines.kv_policy_support import not_realised

        raise InputError(f"--kv-policy {p.spec}: not realised by llama.cpp ({not_realised(p.kind, 'llama.cpp')}); price it without --engine")
    return min(workload.ctx_tokens, p.sink_tokens + p.window_tokens), p.sink_tokens


def settings_for_plan(plan: Plan, workload: Workload, o: EngineOptions) -> LlamaCppGiven:
    """One slot per sequence: -c = ctx x batch, -np = batch (llama-server splits -c over the slots). Several GPUs:
    pipeline stages are --split-mode layer, tensor parallel is --split-mode row (with plan.tensor_split as -ts);
    one GPU of a box (--gpu a+b) is --split-mode none on GPU 0."""
    if plan.tensor_parallel > 1 and plan.pipeline_parallel > 1:
        raise InputError(f"--engine llamacpp: TP {plan.tensor_parallel} x PP {plan.pipeline_parallel} has no llama.cpp split; "
                         "use --tp N (--split-mode row) or --pp N (--split-mode layer)")
    if o.devices and plan.num_gpus not in (1, len(o.devices)):
        raise InputError(f"--gpu: the box has {len(o.devices)} GPUs; a llama.cpp plan uses 1 (GPU 0) or all {len(o.devices)}, "
                         f"not {plan.num_gpus}")
    if o.engine_version is not None:
        raise InputError(f"--engine-version: {o.engine_version!r} is not accepted with llama.cpp (one modelled build; "
                         "versions apply to vllm and sglang)")
    kv = GGUF_KV.get(plan.kv_dtype)
    if kv is None:
        raise FieldError("kv_dtype", f"{plan.kv_dtype!r} is not available in llama.cpp; accepted: {', '.join(GGUF_KV)}")
    window = window_slot(plan, workload)
    mode = "row" if plan.tensor_parallel > 1 else "layer" if plan.pipeline_parallel > 1 else "none" if o.devices else "layer"
    return LlamaCppGiven(
        gguf_type=(o.gguf_type or formats.gguf_type(plan.weights)).upper(),
        ctx_tokens=(window[0] if window else workload.ctx_tokens) * workload.batch_size, n_parallel=workload.batch_size,
        context_shift=window is not None, keep_tokens=window[1] if window else 0,
        cache_type_k=kv, cache_type_v=kv, ubatch_tokens=plan.prefill_chunk_tokens, n_cpu_moe=plan.moe_layers_on_cpu,
        n_gpu_layers=o.n_gpu_layers, split_mode=mode, tensor_split=plan.tensor_split, devices=o.devices, num_gpus=plan.num_gpus)


def plan_variants(model: ModelSpec, gpu: GpuSpec, plan: Plan, workload: Workload, o: EngineOptions) -> tuple[Plan, ...]:
    """fit --engine llamacpp: the fewest --n-cpu-moe layers (expert_offload_variants), and on a box (--gpu a+b)
    the whole box with --split-mode layer at llama.cpp's default split, written out (devices.default_split)."""
    out = expert_offload_variants(model, gpu, plan, workload, o)
    if o.devices and len(o.devices) > 1 and plan.num_gpus == 1 and not plan.moe_layers_on_cpu:
        out += (plan.model_copy(update={"pipeline_parallel": len(o.devices), "tensor_split": default_split(o.devices)}),)
    return out


def expert_offload_variants(model: ModelSpec, gpu: GpuSpec, plan: Plan, workload: Workload, o: EngineOptions) -> tuple[Plan, ...]:
    """For a MoE model that does not fit whole, the plan with the fewest --n-cpu-moe layers that puts every layer
    on the GPU (split.py fit_n_cpu_moe), when there is one."""
    if model.moe is None or plan.moe_layers_on_cpu or plan.num_gpus > 1 or o.devices:
        return ()
    given = settings_for_plan(plan, workload, o)
    if fit_n_gpu_layers(model, gpu, given) == model.num_layers + 1:
        return ()
    n = fit_n_cpu_moe(model, gpu, given)
    return (plan.model_copy(update={"moe_layers_on_cpu": n}),) if n else ()


def with_devices(given: LlamaCppGiven | None, box: tuple[GpuSpec, ...]) -> LlamaCppGiven | None:
    """--gpu a+b: llama.cpp sees these GPUs, in this order (CUDA0, CUDA1, ...); None: only asked whether a box is accepted."""
    return None if given is None else replace(given, devices=box)


def plan_summary(plan: Plan, model: ModelSpec) -> str:
    """'Q4_K_M · KV q8_0' (· cpu-moe 12: --n-cpu-moe; · layer split 30.86,23.14 on several GPUs)."""
    if plan.num_gpus > 1:
        mode = "row" if plan.tensor_parallel > 1 else "layer"
        split = ",".join(f"{x:g}" for x in plan.tensor_split) if plan.tensor_split else "by free memory"
        return f"{formats.gguf_type(plan.weights)} · KV {GGUF_KV[plan.kv_dtype]} · {mode} split {split}"
    if plan.moe_layers_on_cpu:
        return f"{formats.gguf_type(plan.weights)} · KV {GGUF_KV[plan.kv_dtype]} · cpu-moe {plan.moe_layers_on_cpu}"
    return f"{formats.gguf_type(plan.weights)} · KV {GGUF_KV[plan.kv_dtype]}"
