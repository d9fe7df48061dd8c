"""The CI gate over plan files (`oomplan check A.yaml B.yaml ...`): one verdict per file, in one process.

Each file is re-estimated like `check FILE` (planner/recheck.py, planner/train_recheck.py, or an engine's own
accounting) and gets one of four verdicts, ordered by exit code; the gate exits with the worst:

    pass 0  <  fail 1 (does not fit with the margin)  <  bad-input 2 (unreadable/invalid file, unknown
    model or GPU, a --strict warning)  <  error 3 (I/O or runtime failure, an internal error)

A bad file is that file's verdict, never the end of the run: the others are still checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from oomplan.engines.options import EngineOptions
from oomplan.engines.result import EnginePrediction
from oomplan.errors import EXIT_BAD_INPUT, EXIT_DOES_NOT_FIT, EXIT_OK, EXIT_RUNTIME, InputError, OomplanError
from oomplan.specs.plan import Workload
from oomplan.text import clean
from oomplan.units import format_bytes

Status = Literal["pass", "fail", "bad-input", "error"]
STATUS_BY_CODE: dict[int, Status] = {EXIT_OK: "pass", EXIT_DOES_NOT_FIT: "fail", EXIT_BAD_INPUT: "bad-input", EXIT_RUNTIME: "error"}


@dataclass(frozen=True)
class GateOptions:
    """What `check` applies to every file: another card, context or batch, the margin, an engine."""

    gpu: str | None = None
    ctx_tokens: int | None = None
    batch_size: int | None = None
    margin: float = 0.0
    strict: bool = False
    engine: str | None = None  # None: each plan's own workload.engine
    engine_options: EngineOptions | None = None


@dataclass(frozen=True)
class GateVerdict:
    """One plan file's verdict; `reason` is one sanitised line (the verdict sentence or the error)."""

    file: str
    exit_code: int
    reason: str
    warnings: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        return STATUS_BY_CODE[self.exit_code]


def worst_exit_code(verdicts: list[GateVerdict]) -> int:
    """The gate's exit code: the highest of its files' (pass 0 < fail 1 < bad input 2 < runtime 3)."""
    return max((v.exit_code for v in verdicts), default=EXIT_OK)


def headroom_line(ok: bool, total_bytes: int, capacity_bytes: int, gpu_name: str, margin: float) -> str:
    """`check`'s verdict sentence for an estimate."""
    return (f"{'PASS' if ok else 'FAIL'}: {format_bytes(total_bytes)} of {format_bytes(capacity_bytes)} per GPU on {gpu_name}, "
            f"headroom {100 * (capacity_bytes - total_bytes) / capacity_bytes:.1f}% (required {100 * margin:.0f}%)")


def workload_verdict(p: EnginePrediction, workload: Workload) -> tuple[bool, str]:
    """Whether an engine serves the workload, and the sentence saying so."""
    ctx, batch = workload.ctx_tokens, workload.batch_size
    if p.fits_workload(ctx, batch):
        if ctx > p.context_tokens:  # llama.cpp --context-shift (a window KV policy)
            return True, (f"fits: {batch} x {ctx:,} tokens by context shift, {p.context_tokens:,} held per sequence, "
                          f"in a pool of {p.kv_cache_tokens:,} tokens")
        return True, f"fits: {batch} x {ctx:,} tokens in a pool of {p.kv_cache_tokens:,} tokens"
    if not p.ok:
        return False, "does not fit: the engine will not serve this configuration (see above)"
    if ctx > p.context_tokens:
        return False, f"does not fit: {ctx:,} tokens per sequence, the engine serves at most {p.context_tokens:,}"
    limit = min(p.max_running_requests, int(p.max_concurrency))
    return False, f"does not fit: batch {batch} of {ctx:,} tokens, the pool holds {p.max_concurrency:.2f} at once (at most {limit} run)"


def engine_line(engine_title: str, p: EnginePrediction, workload: Workload, margin: float) -> tuple[bool, str]:
    """`check --engine`'s verdict: the engine serves the workload and its process leaves `margin` of the card."""
    fits, line = workload_verdict(p, workload)
    ok = fits and p.gpu_total_bytes <= p.capacity_bytes * (1.0 - margin)
    cap = p.capacity_bytes
    return ok, (f"{'PASS' if ok else 'FAIL'}: {line}; {engine_title} holds {format_bytes(p.gpu_total_bytes)} of "
                f"{format_bytes(cap)} per GPU, headroom {100 * (cap - p.gpu_total_bytes) / cap:.1f}% (required {100 * margin:.0f}%)")


def gate_file(path: str, opts: GateOptions) -> GateVerdict:
    """One plan file through the gate; every failure becomes this file's verdict (never raised)."""
    try:
        ok, line, found = _check(path, opts)
    except OomplanError as exc:
        return GateVerdict(path, exc.exit_code, clean(exc))
    except OSError as exc:
        return GateVerdict(path, EXIT_RUNTIME, clean(f"{path}: I/O failed: {exc.strerror or exc}"))
    except Exception as exc:  # noqa: BLE001 - one file's internal error must not hide the other files' verdicts
        return GateVerdict(path, EXIT_RUNTIME, f"internal error ({type(exc).__name__}); please report it with this plan file")
    warnings = tuple(w if w.startswith(f"{path}: ") else f"{path}: {w}" for w in found)
    if opts.strict and warnings:
        return GateVerdict(path, EXIT_BAD_INPUT, clean(f"{warnings[0]} (--strict)"), warnings)
    reason = line.removeprefix("PASS: ").removeprefix("FAIL: ")
    return GateVerdict(path, EXIT_OK if ok else EXIT_DOES_NOT_FIT, clean(reason), warnings)


def _check(path: str, opts: GateOptions) -> tuple[bool, str, tuple[str, ...]]:
    from oomplan.planner.train_recheck import is_training_plan

    if is_training_plan(path):
        from oomplan.planner.train_recheck import train_recheck

        if opts.engine not in (None, "hf"):
            raise InputError(f"--engine {opts.engine}: {path} is a training plan; engines are for serving plans")
        tr = train_recheck(path, opts.gpu, opts.ctx_tokens, opts.batch_size)
        tok = tr.fits_with_margin(opts.margin)
        return tok, headroom_line(tok, tr.estimate.per_gpu.total_bytes, tr.estimate.capacity_bytes, tr.estimate.gpu.name, opts.margin), tr.warnings
    from oomplan.planner.recheck import box_options, recheck, refuse_kv_policy_for_engine

    result = recheck(path, opts.gpu, opts.ctx_tokens, opts.batch_size)
    est = result.estimate
    engine = opts.engine or est.workload.engine
    refuse_kv_policy_for_engine(path, est.plan, engine)
    engine_options = box_options(path, result, engine, opts.engine_options or EngineOptions())
    if engine == "hf":
        ok = result.fits_with_margin(opts.margin)
        return ok, headroom_line(ok, est.per_gpu.total_bytes, est.capacity_bytes, est.gpu.name, opts.margin), result.warnings
    from oomplan.engines.registry import get_engine

    workload = est.workload.model_copy(update={"engine": engine})
    e = get_engine(engine)
    p = e.predict(est.model, est.gpu, e.settings_for_plan(est.plan, workload, engine_options))
    ok, line = engine_line(e.display_name, p, workload, opts.margin)
    return ok, line, result.warnings + tuple(p.warnings)
