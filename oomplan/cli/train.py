"""`--train`: the training flags shared by estimate and fit, and the training paths of estimate, fit and check."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import ValidationError

from oomplan.cli.common import FIELD_FLAGS, check_pick, note, print_json, stdout, warn
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, FieldError, InputError
from oomplan.specs.convert import error_line as spec_error_line
from oomplan.specs.training import FSDP_MODES, LORA_ALL_LINEAR, OPTIMIZERS, PRECISIONS, RECOMPUTES, TRAIN_MODES, TrainingPlan
from oomplan.units import DEFAULT_HOST_MEMORY_BYTES, parse_bytes, parse_count

# The training model, planner and reports are imported by the functions that use them: the inference
# commands import this module for its options only, and stay as fast as before.

TRAIN = typer.Option(None, "--train", help="Plan a training step instead of inference: full, lora or qlora.")
OPTIMIZER = typer.Option(None, "--optimizer", help="--train: adamw (default), adamw8bit, adafactor or sgd (momentum).")
PRECISION = typer.Option(None, "--precision", help="--train: mixed (bf16 + fp32 master, default), bf16 (fp32 states), pure-bf16, fp32.")
SEQ = typer.Option(None, "--seq", help="--train: tokens per sequence (4k, 4096; default: --ctx).")
GRAD_ACCUM = typer.Option(None, "--grad-accum", help="--train: micro-batches per optimizer step (default 1).")
DP = typer.Option(None, "--dp", help="--train: data-parallel ranks (default 1).")
ZERO = typer.Option(None, "--zero", help="--train: DeepSpeed ZeRO stage 0, 1, 2 or 3.")
FSDP = typer.Option(None, "--fsdp", help="--train: PyTorch FSDP none, full (ZeRO-3 over all ranks) or hybrid (within a node).")
SP = typer.Option(None, "--sp/--no-sp", help="--train: Megatron sequence parallelism (needs --tp > 1).")
RECOMPUTE = typer.Option(None, "--recompute", help="--train: activation recompute none (default), selective or full.")
LORA_RANK = typer.Option(None, "--lora-rank", help="--train lora/qlora: adapter rank (default 16).")
LORA_TARGETS = typer.Option(None, "--lora-targets", help="--train lora/qlora: module names, comma-separated, or all-linear (default).")
OFFLOAD_OPTIMIZER = typer.Option(None, "--offload-optimizer/--no-offload-optimizer", help="--train: ZeRO-Offload the optimizer to CPU.")
OFFLOAD_PARAMS = typer.Option(None, "--offload-params/--no-offload-params", help="--train: ZeRO-Infinity weight shards in CPU memory (ZeRO-3/FSDP).")
HOST_MEM = typer.Option(None, "--host-mem", help="--train: CPU memory per node for offloaded states (default: not checked).")
GLOBAL_BATCH = typer.Option(None, "--global-batch", help="fit --train: sequences per optimizer step (default: the largest micro-batch).")

_CHOICES = {"mode": TRAIN_MODES, "optimizer": OPTIMIZERS, "precision": PRECISIONS, "recompute": RECOMPUTES, "fsdp": FSDP_MODES}


@dataclass(frozen=True)
class TrainFlags:
    """The training-only flags as given (None: not given)."""

    train: Optional[str] = None
    optimizer: Optional[str] = None
    precision: Optional[str] = None
    seq: Optional[str] = None
    grad_accum: Optional[int] = None
    dp: Optional[int] = None
    zero: Optional[str] = None
    fsdp: Optional[str] = None
    sp: Optional[bool] = None
    recompute: Optional[str] = None
    lora_rank: Optional[int] = None
    lora_targets: Optional[str] = None
    offload_optimizer: Optional[bool] = None
    offload_params: Optional[bool] = None
    host_mem: Optional[str] = None

    def reject_without_train(self) -> None:
        """Training flags on an inference command are an error, not silently ignored."""
        if self.train is None:
            given = [name for name, value in vars(self).items() if value is not None]
            if given:
                raise InputError(f"--{given[0].replace('_', '-')}: only used with --train {'|'.join(TRAIN_MODES)}")

    def host_memory_bytes(self) -> int | None:
        return parse_bytes(self.host_mem, "--host-mem") if self.host_mem is not None else None


def _choice(field: str, value: str) -> str:
    v = value.strip().lower()
    if v not in _CHOICES[field]:
        raise FieldError(field, f"{value!r} is not accepted; use one of {', '.join(_CHOICES[field])}")
    return v


def _zero(value: str) -> int:
    if value.strip() not in ("0", "1", "2", "3"):
        raise InputError(f"--zero: {value!r} is not accepted; use 0, 1, 2 or 3")
    return int(value)


def _targets(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise InputError(f"--lora-targets: {value!r} names no module; use module names (q_proj,v_proj) or {LORA_ALL_LINEAR}")
    return names


def training_fields(f: TrainFlags) -> dict[str, Any]:
    """The TrainingPlan fields the flags set (defaults left to the plan)."""
    fields: dict[str, Any] = {"mode": _choice("mode", f.train or "full")}
    if fields["mode"] == "full":  # every flag used or refused
        for flag, value in (("--lora-rank", f.lora_rank), ("--lora-targets", f.lora_targets)):
            if value is not None:
                raise InputError(f"{flag}: only with --train lora or qlora (this is full fine-tuning)")
    for name in ("optimizer", "precision", "recompute", "fsdp"):
        if getattr(f, name) is not None:
            fields[name] = _choice(name, getattr(f, name))
    simple = dict(grad_accum_steps=f.grad_accum, data_parallel=f.dp, sequence_parallel=f.sp, lora_rank=f.lora_rank,
                  offload_optimizer=f.offload_optimizer, offload_params=f.offload_params)
    fields.update({k: v for k, v in simple.items() if v is not None})
    if f.zero is not None:
        fields["zero_stage"] = _zero(f.zero)
    if f.lora_targets is not None:
        fields["lora_targets"] = _targets(f.lora_targets)
    return fields


def build_training_plan(**fields: Any) -> TrainingPlan:
    try:
        return TrainingPlan(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a cross-field check: name the flags of the fields it mentions
            flags = [flag for name, flag in FIELD_FLAGS.items() if name in TrainingPlan.model_fields and name in msg]
            raise InputError(f"{'/'.join(flags) or '--train'}: {msg}") from None
        raise InputError(spec_error_line(exc, None, FIELD_FLAGS)) from None


def run_train_estimate(spec, card, f: TrainFlags, seq_tokens: int, batch: int, tp: int, pp: int, attention: str,
                       strict: bool, as_json: bool) -> int:
    """`estimate --train`: the training budget table (or JSON) and a verdict; the exit code: 0 fits, 1 does not."""
    from oomplan.memory.train_estimate import estimate_training
    from oomplan.planner.train_speed import train_speed
    from oomplan.planner.verdict import train_verdict
    from oomplan.report.estimate_table import verdict_text
    from oomplan.report.train_report import train_budget_table, train_estimate_json

    plan = build_training_plan(**training_fields(f), seq_tokens=seq_tokens, micro_batch_size=batch, tensor_parallel=tp,
                               pipeline_parallel=pp, attention=attention)
    est = estimate_training(spec, card, plan, f.host_memory_bytes())
    warn(est.warnings, strict)
    if as_json:
        print_json(train_estimate_json(est, train_speed(spec, card, plan)))
    else:
        out = stdout()
        out.print(train_budget_table(est))
        for note in est.notes:
            out.print(f"note: {note}", soft_wrap=True)
        out.print(verdict_text(train_verdict(est)))
    return EXIT_OK if est.fits else EXIT_DOES_NOT_FIT


@dataclass(frozen=True)
class TrainFitArgs:
    model_ref: str
    gpu_ref: str
    seq_tokens: int
    global_batch: Optional[int]
    objective: str
    top: int
    max_gpus: int
    exact_gpus: Optional[int]
    attention: str
    tp: Optional[int]
    pp: Optional[int]
    output: Optional[Path]
    pick: int
    force: bool
    strict: bool
    as_json: bool


def train_limits(f: TrainFlags, a: TrainFitArgs):
    from oomplan.planner.train_search import TrainLimits

    return TrainLimits(
        max_gpus=a.max_gpus, exact_gpus=a.exact_gpus, host_memory_bytes=f.host_memory_bytes() or DEFAULT_HOST_MEMORY_BYTES,
        global_batch_size=a.global_batch, tensor_parallel=a.tp, pipeline_parallel=a.pp,
        zero_stage=_zero(f.zero) if f.zero is not None else None,
        recompute=_choice("recompute", f.recompute) if f.recompute is not None else None,
        allow_offload=f.offload_optimizer is not False,
    )


def run_train_fit(spec, card, f: TrainFlags, a: TrainFitArgs) -> int:
    """`fit --train`: search layouts, ZeRO/offload, recompute and micro-batching; rank by throughput."""
    from oomplan.planner.train_search import TRAIN_OBJECTIVES, search_training
    from oomplan.report.train_fit_report import train_fit_json

    objective = "throughput" if a.objective == "quality" else a.objective
    if objective not in TRAIN_OBJECTIVES:
        raise InputError(f"--objective: {a.objective!r} is not accepted with --train; use one of {', '.join(TRAIN_OBJECTIVES)}")
    if f.dp is not None or f.grad_accum is not None or f.fsdp is not None:
        raise InputError("--dp/--grad-accum/--fsdp: fit --train searches them; give --global-batch and --gpus/--max-gpus instead")
    fields = {k: v for k, v in training_fields(f).items() if k not in ("zero_stage", "recompute", "offload_optimizer", "offload_params")}
    request = build_training_plan(**fields, seq_tokens=a.seq_tokens, attention=a.attention)
    limits = train_limits(f, a)
    from oomplan.memory.validate import request_warnings

    warn(request_warnings(spec, a.seq_tokens, "--seq"), a.strict)
    result = search_training(spec, card, request, limits, objective)
    check_pick(a.pick, len(result.plans))
    if a.as_json:
        print_json(train_fit_json(result, a.top))
    else:
        _render_fit(result, limits, a.top)
    if a.output is not None and result.plans:
        _write_plan(result, a)
    return EXIT_OK if result.plans else EXIT_DOES_NOT_FIT


def _render_fit(result, limits, top: int) -> None:
    from oomplan.planner.train_search import fewest_gpus
    from oomplan.report.train_fit_report import train_fit_table, train_nofit_lines, train_search_summary

    out = stdout()
    if result.plans:
        out.print(train_fit_table(result, top))
        out.print(train_search_summary(result, top), soft_wrap=True)
        return
    wider = fewest_gpus(result.model, result.gpu, result.request, limits, result.gpu.num_gpus_per_node * 8)
    for line in train_nofit_lines(result, wider):
        out.print(line, soft_wrap=True)


def _write_plan(result, a: TrainFitArgs) -> None:
    from oomplan.report.plan_yaml import plan_yaml, write_atomic
    from oomplan.planner.plan_files import training_plan_file

    assert a.output is not None, "_write_plan is called with -o only"
    pf = training_plan_file(a.model_ref, a.gpu_ref, result.plans[a.pick - 1])
    write_atomic(a.output, plan_yaml(pf, a.output), a.force)
    note(f"wrote plan #{a.pick} to {a.output}")


def run_train_check(plan: str, gpu: Optional[str], seq: Optional[str], batch: Optional[int], required: float,
                    strict: bool, as_json: bool) -> int:
    """`check` of a training plan file; the exit code: 0 fits with the margin, 1 does not."""
    from oomplan.planner.gate import headroom_line
    from oomplan.planner.train_recheck import train_recheck
    from oomplan.report.train_report import train_budget_table, train_estimate_json

    result = train_recheck(plan, gpu, parse_count(seq, "--ctx") if seq else None, batch)
    warn(result.warnings, strict)
    est, ok = result.estimate, result.fits_with_margin(required)
    total, cap = est.per_gpu.total_bytes, est.capacity_bytes
    verdict = headroom_line(ok, total, cap, est.gpu.name, required)
    if as_json:
        print_json(train_estimate_json(est, result.speed) | {"check": {"pass": ok, "margin": required, "plan_file": plan}})
    else:
        out = stdout()
        out.print(train_budget_table(est))
        out.print(verdict, style="green" if ok else "bold red")
    return EXIT_OK if ok else EXIT_DOES_NOT_FIT


def reject_inference_flags(given: dict[str, bool]) -> None:
    """Inference-only flags on a --train command are an error, not silently ignored."""
    for flag, is_given in given.items():
        if is_given:
            raise InputError(f"{flag}: not used with --train (full and lora train bf16 weights; qlora's base is nf4)")


FIT_TP = typer.Option(None, "--tp", help="fit --train: fix the tensor-parallel degree instead of searching it.")
FIT_PP = typer.Option(None, "--pp", help="fit --train: fix the pipeline stages instead of searching them.")


def reject_train_only(given: dict[str, bool]) -> None:
    for flag, is_given in given.items():
        if is_given:
            raise InputError(f"{flag}: only used with --train {'|'.join(TRAIN_MODES)}")
