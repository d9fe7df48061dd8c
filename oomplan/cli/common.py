"""Shared CLI plumbing: error handling, output, and turning flags into specs."""
from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from oomplan import formats
from oomplan.errors import InputError, OomplanError
from oomplan.specs.plan import KV_DTYPES, WEIGHT_FORMATS, Plan, Workload

F = TypeVar("F", bound=Callable[..., Any])
STATE = {"debug": False}

# Plan/Workload field -> the flag that sets it, for error messages.
FLAGS = {
    "weights": "--weights", "weight_group_size": "--group-size", "kv_dtype": "--kv-dtype", "dms_ratio": "--dms",
    "dms_window_tokens": "--dms-window", "block_size": "--block-size", "tensor_parallel": "--tp",
    "pipeline_parallel": "--pp", "offload_bytes": "--offload-gib", "attention": "--attention",
    "prefill_chunk_tokens": "--prefill-chunk", "logits": "--logits", "ctx_tokens": "--ctx", "batch_size": "--batch",
    "engine": "--engine", "expert_parallel": "--ep", "component_weights": "--component-weights",
}


def stdout() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False))


def handle_errors(fn: F) -> F:
    """OomplanError -> one line on stderr and its exit code (traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OomplanError as exc:
            if STATE["debug"]:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def warn(messages: tuple[str, ...] | list[str], strict: bool) -> None:
    """Warnings go to stderr; with --strict the first one is an error."""
    if strict and messages:
        raise InputError(f"{messages[0]} (--strict)")
    for message in messages:
        typer.echo(f"warning: {message}", err=True)


def _spec_error(exc: ValidationError) -> InputError:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    flag = FLAGS.get(field, field)
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return InputError(f"{flag}: {value!r} is invalid: it must be a finite number")
    return InputError(f"{flag}: {value!r} is invalid: {msg}")


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


def build_plan(**fields: Any) -> Plan:
    if isinstance(fields.get("weights"), str):
        fields["weights"] = formats.canonical(fields["weights"], "weights")
    if isinstance(fields.get("kv_dtype"), str):
        fields["kv_dtype"] = formats.canonical(fields["kv_dtype"], "kv")
    try:
        return Plan(**fields)
    except ValidationError as exc:
        raise _spec_error(exc) from None


def build_workload(**fields: Any) -> Workload:
    try:
        return Workload(**fields)
    except ValidationError as exc:
        raise _spec_error(exc) from None


def resolve_gpu(ref: str, flag: str = "--gpu"):
    """A GPU profile, or with 'auto' the local card (capacity = what is free now)."""
    from oomplan.profiles import load_gpu

    if ref.strip().lower() != "auto":
        return load_gpu(ref, flag)
    from oomplan.probe.local_gpu import local_gpu
    from oomplan.units import format_bytes

    found = local_gpu()
    typer.echo(
        f"detected {found.num_gpus} x {found.device_name} -> profile {found.spec.name}; "
        f"planning against {format_bytes(found.spec.memory_bytes)} free per GPU",
        err=True,
    )
    return found.spec
