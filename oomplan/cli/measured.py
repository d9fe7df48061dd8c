"""The transformers path in the CLI: a model_type oomplan has no family for, counted on the meta device.

`estimate` and `fit` load the model; when the family registry refuses an unknown model_type
(UnknownFamilyError) and transformers + torch are installed, they come here: the probe builds a
MeasuredModel (oomplan/probe/hf_meta.py), the memory model prices it (oomplan/memory/measured.py), the
report renders it. Without transformers the refusal stands, with a hint. docs/transformers-path.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer

from oomplan.cli.common import print_json, stdout, warn
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, InputError, UnknownFamilyError
from oomplan.families import config_sha256
from oomplan.specs.hardware import GpuSpec
from oomplan.profiles import load_model
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload

if TYPE_CHECKING:  # the measured path's models and pricing: imported when a config has no family (start-up, issue 16)
    from oomplan.memory.measured import MeasuredEstimate
    from oomplan.probe.meta_run import DtypeName
    from oomplan.specs.measured import MeasuredModel

HINT = "install transformers (and torch) to count any architecture transformers knows on the meta device"


def load_or_unknown(model: str, revision: str | None, train: str | None) -> ModelSpec | UnknownFamilyError:
    """The model's spec, or the refusal of a model_type without a family (for the transformers path to count);
    training is priced only by a family (exit 2)."""
    try:
        return load_model(model, revision=revision)
    except UnknownFamilyError as exc:
        if train is not None:
            raise InputError(f"--train: training is priced only by a family; {exc}") from None
        return exc


def measure_or_refuse(exc: UnknownFamilyError, plan: Plan, workload: Workload, flags: dict[str, bool]) -> MeasuredModel:
    """The MeasuredModel of the refused config, or the refusal (exit 2) when transformers is absent or cannot count it."""
    from oomplan.memory.measured import refuse_unpriced_plan
    from oomplan.probe.hf_meta import check_measurable, measure_model, transformers_version

    version = transformers_version()
    if version is None:
        raise InputError(f"{exc} ({HINT})")
    check_measurable(exc.raw, str(exc))
    dtypes: dict[str, DtypeName] = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"}
    dtype = dtypes.get(plan.weights) or dtypes.get(exc.dtype, "bf16")
    if plan.weights == "auto" and dtype == "fp32":
        dtype = "bf16"  # fp32 checkpoints are served in bf16 (memory/weights.py resolved_weight_format)
    refuse_unpriced_plan(f"{exc.name} (model_type {exc.model_type!r}, counted by transformers {version})", dtype, plan, workload, flags)
    typer.echo(f"note: model_type {exc.model_type!r} is not a family oomplan ships: counting it with transformers {version} "
               "on the meta device (no weights are read; this takes seconds)", err=True)
    return measure_model(exc.raw, name=exc.name, source=exc.source, config_sha256=config_sha256(exc.raw), ctx_tokens=workload.ctx_tokens,
                         batch_size=workload.batch_size, attention=plan.attention, logits=plan.logits,
                         prefill_chunk_tokens=plan.prefill_chunk_tokens, dtype=dtype)


def render_measured(est: MeasuredEstimate, as_json: bool, strict: bool, header: str | None = None) -> NoReturn:
    """Print the budget (table or JSON) and exit 0 (fits) or 1 (does not)."""
    from oomplan.report.measured_report import measured_json, measured_notes, measured_table, measured_verdict

    warn(est.warnings, strict)
    if as_json:
        print_json(measured_json(est))
    else:
        out = stdout()
        if header:
            out.print(header, soft_wrap=True)
        out.print(measured_table(est))
        for note in measured_notes(est):
            out.print(f"note: {note}", soft_wrap=True)
        out.print(measured_verdict(est))
    typer.echo(f"counted by {est.model.counted_by} in {est.model.elapsed_s:.1f} s", err=True)
    raise typer.Exit(EXIT_OK if est.fits else EXIT_DOES_NOT_FIT)


def run_measured(exc: UnknownFamilyError, gpu: GpuSpec, workload: Workload, plan: Plan, flags: dict[str, bool],
                 as_json: bool, strict: bool, header: str | None = None) -> NoReturn:
    from oomplan.memory.measured import measured_estimate

    model = measure_or_refuse(exc, plan, workload, flags)
    render_measured(measured_estimate(model, gpu, workload, plan), as_json, strict, header)
