"""Shared CLI plumbing: error handling, output, and turning flags into specs."""
from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any, TypeVar
from collections.abc import Callable

import typer
from pydantic import ValidationError

from oomplan import formats
from oomplan.errors import EXIT_BAD_INPUT, FieldError, InputError, OomplanError
from oomplan.safeio import finite_json
from oomplan.specs.convert import error_line as spec_error_line
from oomplan.specs.plan import KV_DTYPES, WEIGHT_FORMATS, Plan, Workload
from oomplan.text import clean, shorten
from oomplan.units import parse_count, parse_number

if TYPE_CHECKING:  # rich is imported only to render: never with --json
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])
STATE = {"debug": False}

# Spec field -> the flag that sets it: the one table the CLI words library errors with (a FieldError or a
# spec's ValidationError names the field; the user reads the flag). Plan, Workload, TrainingPlan, EngineOptions.
FIELD_FLAGS: dict[str, str] = {
    # Plan / Workload
    "weights": "--weights", "weight_group_size": "--group-size", "kv_dtype": "--kv-dtype", "dms_ratio": "--dms",
    "dms_window_tokens": "--dms-window", "paged": "--paged", "block_size": "--block-size", "tensor_parallel": "--tp",
    "pipeline_parallel": "--pp", "offload_bytes": "--offload-gib", "attention": "--attention",
    "prefill_chunk_tokens": "--prefill-chunk", "logits": "--logits", "ctx_tokens": "--ctx", "batch_size": "--batch",
    "engine": "--engine", "expert_parallel": "--ep", "component_weights": "--component-weights", "kv_policy": "--kv-policy",
    "num_images": "--images", "image_tokens": "--image-tokens", "image_size": "--image-size",
    # TrainingPlan (tensor_parallel, pipeline_parallel and attention as above)
    "mode": "--train", "optimizer": "--optimizer", "precision": "--precision", "seq_tokens": "--seq", "micro_batch_size": "--batch",
    "grad_accum_steps": "--grad-accum", "data_parallel": "--dp", "sequence_parallel": "--sp", "zero_stage": "--zero",
    "fsdp": "--fsdp", "recompute": "--recompute", "lora_rank": "--lora-rank", "lora_targets": "--lora-targets",
    "offload_optimizer": "--offload-optimizer", "offload_params": "--offload-params",
    # EngineOptions
    "gpu_memory_utilization": "--gpu-memory-utilization", "max_model_len": "--max-model-len", "max_num_seqs": "--max-num-seqs",
    "max_num_batched_tokens": "--max-num-batched-tokens", "mem_fraction_static": "--mem-fraction-static",
    "gguf_type": "--gguf-type", "n_gpu_layers": "--n-gpu-layers", "engine_version": "--engine-version",
}
FLAGS = FIELD_FLAGS  # the older name, kept for callers being written now


def stdout() -> Console:
    from oomplan.cli.console import SafeConsole  # rich: only to render, never with --json

    return SafeConsole(file=sys.stdout, highlight=False, soft_wrap=False)


def stderr() -> Console:
    from oomplan.cli.console import SafeConsole

    return SafeConsole(file=sys.stderr, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    """JSON on stdout: strict JSON (NaN/Infinity refused), ASCII (any terminal encoding can print it)."""
    typer.echo(finite_json(obj))


def error_line(message: object) -> None:
    """The one-line error on stderr, sanitised; a closed or full stderr is not a second failure."""
    try:
        typer.echo(f"error: {clean(message)}", err=True)
    except (OSError, ValueError, AttributeError):
        pass


def note(message: object) -> None:
    """A line on stderr that is not an error ('note: ...', 'wrote PATH'), sanitised like error_line: it may
    carry a path, a model ref or a profile's display name from input, which must not reach a terminal raw."""
    typer.echo(clean(message), err=True)


def error_message(exc: OomplanError | ValidationError) -> str:
    """The one line for a library error: a FieldError or a spec's ValidationError names its field, worded here
    as its flag (FIELD_FLAGS); a plan file's FieldError names the file and key; anything else as raised."""
    if isinstance(exc, ValidationError):
        return spec_error_line(exc, None, FIELD_FLAGS)
    if isinstance(exc, FieldError):
        return exc.line(FIELD_FLAGS)
    return str(exc)


def handle_errors(fn: F) -> F:
    """The one place a command's outcome becomes a process exit: the command returns its exit code (0 fits,
    1 does not; None is 0); an OomplanError (or a spec's ValidationError) is one line on stderr and its exit
    code (2 bad input, 3 runtime), a traceback only with --debug. Helpers never raise typer.Exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            check_numeric_flags(kwargs)
            code = fn(*args, **kwargs)
        except (OomplanError, ValidationError) as exc:
            if STATE["debug"]:
                raise
            error_line(error_message(exc))
            raise typer.Exit(exc.exit_code if isinstance(exc, OomplanError) else EXIT_BAD_INPUT) from None
        if code:  # 0 / None: a normal return (a group callback such as `models` must not end the command)
            raise typer.Exit(code)
        return code

    return wrapper  # type: ignore[return-value]


MAX_FLAG_INT = 2**53  # no count or size flag needs more; larger ints never reach the arithmetic
# The bounds of every int/float flag typer parses, the same as the specs they reach (Plan, Workload,
# TrainingPlan, the engines' settings), so the error names the flag and the real range.
FLAG_BOUNDS: dict[str, tuple[float, float]] = {
    "--batch": (1, 2**20), "--tp": (1, 1024), "--pp": (1, 1024), "--group-size": (16, 4096), "--dms": (1, 64),
    "--dms-window": (0, 2**31), "--block-size": (1, 1024), "--top": (1, 10_000), "--pick": (1, 10_000),
    "--gpus": (1, 2**16), "--max-gpus": (1, 2**16), "--price": (0, 1e9), "--points": (2, 200), "--decode-steps": (0, 64),
    "--global-batch": (1, 2**20), "--grad-accum": (1, 2**20), "--dp": (1, 2**16), "--lora-rank": (1, 65536),
    "--max-num-seqs": (1, 2**20), "--n-gpu-layers": (-1, 2**20), "--images": (0, 2**16),
}


def check_numeric_flags(values: dict[str, Any]) -> None:
    """Every int/float flag typer parsed goes through the one number parser (oomplan/units.py): finite and
    within FLAG_BOUNDS (else +-2^53), or exit 2 naming the flag and what is accepted."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = _flag_name(name)
        low, high = FLAG_BOUNDS.get(flag, (-MAX_FLAG_INT, MAX_FLAG_INT))
        parse_number(value, flag, low, high)


def _flag_name(param: str) -> str:
    """The command-line spelling of a parameter, from the running click command."""
    try:
        ctx = _click_context()
        for p in ctx.command.params if ctx else ():
            if p.name == param and p.opts:
                return max(p.opts, key=len)
    except Exception:  # noqa: BLE001 - a name for a message only
        pass
    return "--" + param.replace("_", "-")


_PARSE_KINDS = {"int_parsing": "an integer", "int_from_float": "an integer", "float_parsing": "a number", "bool_parsing": "true or false"}


def bad_parameter_line(exc: Exception) -> str | None:
    """typer's own refusal of an int/float flag ('Invalid value for --batch: Input should be a valid integer') as
    the project's one line naming the flag, the value and what is accepted (FLAG_BOUNDS); None for other usage errors."""
    param, cause = getattr(exc, "param", None), exc.__cause__
    if param is None or not isinstance(cause, ValidationError) or not cause.errors():
        return None
    error = cause.errors()[0]
    kind = _PARSE_KINDS.get(error.get("type", ""))
    if kind is None:
        return None
    flag = max(getattr(param, "opts", None) or [f"--{param.name}"], key=len)
    bounds = FLAG_BOUNDS.get(flag)
    accepted = f"{kind}, {_bound(bounds[0])}..{_bound(bounds[1])}" if bounds else kind
    return f"{flag}: {shorten(repr(str(error.get('input'))), 60)} is not {kind}; accepted: {accepted}"


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_pick(pick: int, num_fitting: int, noun: str = "plan") -> None:
    """--pick N against what fits, checked before anything is printed: exit 2 naming the flag, the value and the range."""
    if num_fitting and pick > num_fitting:
        fit = f"1 {noun} fits; give --pick 1" if num_fitting == 1 else f"{num_fitting} {noun}s fit; give --pick 1 to {num_fitting}"
        raise InputError(f"--pick {pick}: only {fit}")


def _click_context() -> Any:
    """The running command's context: typer >= 0.16 runs its vendored click (typer._click; importing click
    itself would cost start-up and find no context), older typers run click itself."""
    try:
        from typer._click import globals as running
    except ImportError:  # pragma: no cover - depends on the installed typer
        import click as running  # type: ignore[no-redef]
    return running.get_current_context(silent=True)


def warn(messages: tuple[str, ...] | list[str], strict: bool) -> None:
    """Warnings go to stderr; with --strict the first one is an error."""
    if strict and messages:
        raise InputError(f"{messages[0]} (--strict)")
    for message in messages:
        typer.echo(f"warning: {clean(message)}", err=True)


WEIGHTS_HELP = ", ".join(WEIGHT_FORMATS) + " (int4 = awq)."
KV_HELP = ", ".join(KV_DTYPES) + " (auto: the model dtype)."


def parse_component_weights(text: str | None, flag: str = "--component-weights") -> dict[str, str]:
    """'experts=mxfp4,attention=bf16' -> {component: format}; names checked by Plan."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{flag}: {part.strip()!r} is not COMPONENT=FORMAT (e.g. experts=mxfp4)")
        out[key.strip().lower()] = formats.canonical(value, "weights")
    return out


KV_POLICY_HELP = ("Bounded-KV policy (lossy; docs/kv-policies.md): dms:R[,window:W], window:W[,sinks:S] (StreamingLLM), budget:N "
                  "(H2O/SnapKV), slots:M,window:W (CAMELoT), episodic:HOST_BYTES,read:R (Larimar), or none.")


FIT_KV_POLICY_HELP = "Also search this lossy KV policy (repeatable): " + KV_POLICY_HELP.split(": ", 1)[1].replace("dms:R[,window:W], ", "")


def kv_policy_fields(text: str | None) -> dict[str, Any]:
    """--kv-policy -> Plan fields: dms:R sets dms_ratio / dms_window_tokens, the other kinds kv_policy; none: neither."""
    from oomplan.specs.kv_policy import DmsChoice, parse_kv_policy

    if text is None:
        return {}
    if text.strip().lower() == "none":
        return {"kv_policy": None, "dms_ratio": 1.0}
    parsed = parse_kv_policy(text)
    if isinstance(parsed, DmsChoice):
        return {"kv_policy": None, "dms_ratio": parsed.ratio, "dms_window_tokens": parsed.window_tokens}
    return {"kv_policy": parsed}


def refuse_kv_policy_with_engine(text: str | None, engine: str) -> None:
    """The engines' own KV pools (--engine) hold every token, except where the engine realises the policy
    (llama.cpp: window, by context shift): engines/kv_policy_support.py."""
    if text is None or text.strip().lower() == "none" or engine == "hf":
        return
    from oomplan.engines.kv_policy_support import refuse_unrealised
    from oomplan.specs.kv_policy import DmsChoice, parse_kv_policy

    policy = parse_kv_policy(text)
    kind, spec = ("dms", text.strip()) if isinstance(policy, DmsChoice) else (policy.kind, policy.spec)
    refuse_unrealised(spec, kind, engine, "--kv-policy")


def build_plan(**fields: Any) -> Plan:
    """A Plan from flag values (format names through the registry); a refused value is a ValidationError or
    FieldError naming the field, which handle_errors words as its flag."""
    if isinstance(fields.get("weights"), str):
        fields["weights"] = formats.require(fields["weights"], "weights")
    if isinstance(fields.get("kv_dtype"), str):
        fields["kv_dtype"] = formats.require(fields["kv_dtype"], "kv")
    return Plan(**fields)


def build_workload(**fields: Any) -> Workload:
    return Workload(**fields)


IMAGES = typer.Option(0, "--images", help="Images per sequence (multimodal models): the vision tower's prefill activations, and "
                      "Mllama's cross-attention K/V; their tokens are part of --ctx.")
IMAGE_TOKENS = typer.Option(None, "--image-tokens", help="Decoder tokens per image where the processor decides them "
                            "(Qwen2.5-VL, Qwen3-VL, Qwen3.5, Llama 4); fixed by the config for Gemma 3 and Mllama.")
IMAGE_SIZE = typer.Option(None, "--image-size", help="WIDTHxHEIGHT in pixels of every image, as given to the processor "
                          "(Pixtral / Mistral 3: the patch grid and tokens follow it), e.g. 1024x768.")


def image_fields(images: int | None, image_tokens: str | None, image_size: str | None = None) -> dict[str, Any]:
    """--images / --image-tokens / --image-size -> Workload fields (checked by Workload and oomplan.memory.images)."""
    out: dict[str, Any] = {}
    if images:
        out["num_images"] = images
    if image_tokens is not None:
        out["image_tokens"] = parse_count(image_tokens, "--image-tokens", 1, 2**20)  # Workload.image_tokens' bounds
    if image_size is not None:
        out["image_size"] = image_size
    return out


def resolve_gpu(ref: str, flag: str = "--gpu"):
    """A GPU profile, or with 'auto' the local card (capacity = what is free now)."""
    from oomplan.profiles import is_raw_gpu, load_gpu

    if ref.strip().lower() != "auto":
        card = load_gpu(ref, flag)
        if is_raw_gpu(card):
            note(
                f"note: {flag} {ref.strip()}: a raw capacity with default overheads (README 'GPUs'); fp8 tensor cores are not "
                "assumed and tokens/s figures are placeholders; name a profile (oomplan gpus) for those",
            )
        return card
    from oomplan.probe.local_gpu import local_gpu
    from oomplan.units import format_bytes

    found = local_gpu()
    note(
        f"detected {found.num_gpus} x {found.device_name} -> profile {found.spec.name}; "
        f"planning against {format_bytes(found.spec.memory_bytes)} free per GPU",
    )
    return found.spec


def raw_gpu_parallel(card, tp: int, pp: int):
    """`--gpu 2x80GiB` names the GPUs at hand: with --tp/--pp left at 1 the plan uses all of them as tensor parallel.
    `--gpu 24GiB` (no count) with --tp/--pp: that many such GPUs in one box. Returns (card, tp, pp)."""
    from oomplan.profiles import is_raw_gpu

    if not is_raw_gpu(card):
        return card, tp, pp
    if card.num_gpus_per_node == 1:
        return card.model_copy(update={"num_gpus_per_node": min(72, tp * pp)}), tp, pp
    if tp == 1 and pp == 1:
        note(f"note: {card.display_name}: planning tensor parallel {card.num_gpus_per_node} (set --tp/--pp to split otherwise)")
        return card, card.num_gpus_per_node, 1
    if tp * pp > card.num_gpus_per_node:
        raise InputError(f"--tp {tp} x --pp {pp} = {tp * pp} GPUs, but --gpu {card.display_name} names {card.num_gpus_per_node}")
    return card, tp, pp
