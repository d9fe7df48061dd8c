"""Predicted vs measured, per component, with a verdict."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ComponentCheck:
    name: str
    predicted_bytes: int
    measured_bytes: int

    @property
    def error_pct(self) -> float:
        """(predicted - measured) / measured: negative means oomplan under-predicted."""
        return 100.0 * (self.predicted_bytes - self.measured_bytes) / self.measured_bytes if self.measured_bytes else 0.0


@dataclass(frozen=True)
class CudaRunRecord:
    """What a CUDA probe run saw besides the components: versions, kernel, peaks, the cap and its restore."""

    driver: str | None
    cuda: str | None
    cudnn: str | None
    torch: str
    transformers: str
    attention_kernel: str  # flash / mem-efficient / cudnn / math / eager, as the dispatcher chose it
    peak_allocated_bytes: int  # max_memory_allocated
    peak_reserved_bytes: int  # max_memory_reserved
    context_bytes: int  # this process's memory outside the caching allocator (CUDA context, libraries), after the run
    other_processes_bytes: int | None  # other processes' memory on the card at the start (None: NVML could not tell)
    unrealised_bytes: int  # what the probe builds that the plan does not hold (16-bit for quantised weights, ...)
    nccl_bytes: int  # TP: NCCL buffers the single-process probe does not allocate (counted analytically)
    allocator_cap_bytes: int  # the allocator's limit standing for the plan's card
    fraction: float  # set_per_process_memory_fraction during the run
    previous_fraction: float  # before the run, restored after it
    fraction_after: float
    allocated_after_bytes: int  # allocated once the model and cache were released


@dataclass(frozen=True)
class ProbeReport:
    device: str  # "meta" or the CUDA device name
    versions: str
    components: tuple[ComponentCheck, ...]  # the last one is the total
    tolerance_pct: float
    not_probed: tuple[str, ...]  # knobs left to the analytic model
    oom_at: str | None  # "prefill chunk 2" etc. when the CUDA probe ran out of memory
    fits_capacity: bool  # measured (plus the analytic deltas of what was not probed) within the card
    cuda: CudaRunRecord | None = None  # CUDA runs only
    notes: tuple[str, ...] = ()  # what the reader should know about this run (e.g. an unexpected attention kernel)

    @property
    def total(self) -> ComponentCheck:
        return self.components[-1]

    @property
    def within_tolerance(self) -> bool:
        """Only under-prediction fails: measured above predicted by more than the tolerance."""
        return self.oom_at is None and self.total.measured_bytes <= self.total.predicted_bytes * (1 + self.tolerance_pct / 100)

    @property
    def passed(self) -> bool:
        return self.within_tolerance and self.fits_capacity

    def verdict(self) -> str:
        if self.oom_at:
            return f"does not fit: OOM at {self.oom_at}"
        t = self.total
        word = "PASS" if self.passed else "FAIL"
        why = "" if self.fits_capacity else "; measured does not fit the card"
        return f"{word}: measured {t.measured_bytes / 2**30:.3f} GiB vs predicted {t.predicted_bytes / 2**30:.3f} GiB ({t.error_pct:+.2f}%, tolerance {self.tolerance_pct:g}%){why}"
