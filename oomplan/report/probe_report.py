"""Rendering of a probe: predicted vs measured per component, the verdict, a JSONL record."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from oomplan import __version__
from oomplan.memory.budget import Estimate
from oomplan.probe.compare import ProbeReport
from oomplan.safeio import append_line
from oomplan.report.summary import plan_summary


def probe_table(est: Estimate, report: ProbeReport) -> Table:
    table = Table(title=f"probe on {report.device}: {est.model.name}, ctx {est.workload.ctx_tokens} x batch {est.workload.batch_size}",
                  title_justify="left", caption=f"{plan_summary(est.model, est.plan)}; {report.versions}", caption_justify="left")
    for col, just in (("component", "left"), ("predicted", "right"), ("measured", "right"), ("error", "right")):
        table.add_column(col, justify="right" if just == "right" else "left")
    for i, c in enumerate(report.components):
        if i == len(report.components) - 1:
            table.add_section()
        table.add_row(c.name, f"{c.predicted_bytes / 2**30:.3f} GiB", f"{c.measured_bytes / 2**30:.3f} GiB", f"{c.error_pct:+.2f}%")
    return table


def probe_json(est: Estimate, report: ProbeReport, plan_file: str | None) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "oomplan_version": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plan_file": plan_file,
        "model": est.model.name,
        "gpu": est.gpu.name,
        "workload": est.workload.model_dump(),
        "plan": est.plan.model_dump(),
        "device": report.device,
        "versions": report.versions,
        "components": [{"name": c.name, "predicted_bytes": c.predicted_bytes, "measured_bytes": c.measured_bytes,
                        "error_pct": round(c.error_pct, 4)} for c in report.components],
        "not_probed": list(report.not_probed),
        "notes": list(report.notes),
        "cuda": asdict(report.cuda) if report.cuda is not None else None,
        "oom_at": report.oom_at,
        "tolerance_pct": report.tolerance_pct,
        "within_tolerance": report.within_tolerance,
        "fits_capacity": report.fits_capacity,
        "passed": report.passed,
        "verdict": report.verdict(),
    }


def append_log(path: Path, record: dict[str, Any]) -> None:
    """One JSON object per line, appended (a whole line per write); I/O failures are exit 3 (oomplan/safeio.py)."""
    append_line(path, json.dumps(record, sort_keys=False), "--log")
