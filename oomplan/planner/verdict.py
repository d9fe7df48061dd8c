"""The answer of `estimate` (and `estimate --train`), decided once: fits / does not fit, with the line that says why.

The report styles it (oomplan/report/estimate_table.py), the CLI turns `ok` into an exit code and the Python API
returns it (`oomplan.verdict`). `check`'s PASS / FAIL sentences are planner/gate.py's; `Recheck.verdict` wraps them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from oomplan.memory.budget import Estimate
from oomplan.units import format_bytes

if TYPE_CHECKING:
    from oomplan.memory.train_estimate import TrainEstimate


@dataclass(frozen=True)
class Verdict:
    """`ok`: fits (estimate) or passes (check); `line`: the sentence that says so, for a report to print."""

    ok: bool
    line: str


def estimate_verdict(est: Estimate) -> Verdict:
    """fits / does not fit / does not fit while loading, for an inference estimate."""
    total, cap = est.per_gpu.total_bytes, est.capacity_bytes
    peak = est.load_peak_stage
    if est.headroom_bytes >= 0 and peak is not None and peak.load_total_bytes > cap:
        return Verdict(False, f"does not fit while loading: the load peak needs {format_bytes(peak.load_total_bytes)} per GPU, "
                              f"{format_bytes(cap)} available ({format_bytes(peak.load_total_bytes - cap)} over; steady state "
                              f"{format_bytes(total)} would fit)")
    if est.fits:
        return Verdict(True, f"fits: {format_bytes(total)} of {format_bytes(cap)} per GPU, {format_bytes(cap - total)} headroom")
    return Verdict(False, f"does not fit: needs {format_bytes(total)} per GPU, {format_bytes(cap)} available ({format_bytes(total - cap)} over)")


def train_verdict(est: TrainEstimate) -> Verdict:
    """fits / does not fit (GPU memory, then host memory for offloaded states), for a training step."""
    total, cap = est.per_gpu.total_bytes, est.capacity_bytes
    if est.headroom_bytes < 0:
        return Verdict(False, f"does not fit: needs {format_bytes(total)} per GPU, {format_bytes(cap)} available ({format_bytes(total - cap)} over)")
    if not est.host_fits:
        return Verdict(False, f"does not fit: offload needs {format_bytes(est.host_bytes_per_node)} of CPU memory per node, "
                              f"--host-mem allows {format_bytes(est.host_memory_limit_bytes or 0)}")
    return Verdict(True, f"fits: {format_bytes(total)} of {format_bytes(cap)} per GPU, {format_bytes(cap - total)} headroom")


def check_verdict(ok: bool, total_bytes: int, capacity_bytes: int, gpu_name: str, required: float) -> Verdict:
    """`check`'s PASS / FAIL for a plan file (inference or training), its sentence from planner/gate.py."""
    from oomplan.planner.gate import headroom_line

    return Verdict(ok, headroom_line(ok, total_bytes, capacity_bytes, gpu_name, required))
