"""`oomplan probe PLAN.yaml`: run the plan with real torch (CUDA if present, else meta) and compare.

Exit 0 within tolerance, 1 OOM or measured above predicted beyond the tolerance, 3 the probe could not run.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from oomplan.cli.progress import spinner
from oomplan.cli.common import handle_errors, print_json, stdout, warn
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, InputError
from oomplan.memory.budget import Estimate
from oomplan.planner.recheck import recheck
from oomplan.safeio import check_log
from oomplan.units import parse_fraction

def _default_log() -> Path:
    try:
        return Path.home() / ".local" / "share" / "oomplan" / "probe-log.jsonl"
    except (RuntimeError, KeyError, OSError):  # no home folder: the log goes to the current folder
        return Path("oomplan-probe-log.jsonl")


DEFAULT_LOG = _default_log()


def run_probe(est: Estimate, device: str, tolerance: str, decode_steps: int, as_json: bool, log: Optional[Path], plan_file: Optional[str]) -> int:
    """Shared by `probe` and `fit --probe`: run, print, log; returns the exit code."""
    from oomplan.probe.run import probe
    from oomplan.report.probe_report import append_log, probe_json, probe_table

    if device not in ("auto", "meta", "cuda"):
        raise InputError(f"--device: {device!r} is not accepted; use auto, meta or cuda")
    tol_pct = 100 * parse_fraction(tolerance, "--tolerance", 0.0, 1.0)
    if log is not None:  # a log that can never be written fails now, not after a long run
        check_log(log, "--log")
    with spinner(f"probing {est.model.name} at ctx {est.workload.ctx_tokens:,} x batch {est.workload.batch_size} ...", quiet=as_json):
        report = probe(est, device, tol_pct, decode_steps)
    record = probe_json(est, report, plan_file)
    if as_json:
        print_json(record)
    else:
        out = stdout()
        out.print(probe_table(est, report))
        for knob in report.not_probed:
            out.print(f"not probed (analytic): {knob}")
        for note in report.notes:
            out.print(f"note: {note}")
        out.print(report.verdict(), style="green" if report.passed else "bold red")
    sys.stdout.flush()  # the verdict is out before the log write can fail (that is exit 3, one line)
    if log is not None:
        append_log(log, record)
    return EXIT_OK if report.passed else EXIT_DOES_NOT_FIT


@handle_errors
def probe_command(
    plan: str = typer.Argument(..., help="A plan file written by oomplan fit -o."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when torch sees a GPU, else meta), meta or cuda."),
    tolerance: str = typer.Option("2%", "--tolerance", help="Allowed error of measured over predicted, e.g. 2% or 0.02."),
    decode_steps: int = typer.Option(2, "--decode-steps", help="Decode steps after the prefill."),
    log: Path = typer.Option(DEFAULT_LOG, "--log", help="Append each run to this JSONL file."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not append to the log."),
    as_json: bool = typer.Option(False, "--json", help="Print the run's JSON record."),
) -> int:
    """Check a plan's prediction with a real torch run. Exit 0 within tolerance, 1 not, 3 could not run."""
    result = recheck(plan)
    warn(result.warnings, strict=False)
    return run_probe(result.estimate, device, tolerance, decode_steps, as_json, None if no_log else log, plan)
