#!/usr/bin/env python3
"""The CUDA probe on a real GPU: a matrix of plans, predicted vs measured, OOM verdicts, and what is left after.

    python benchmarks/probe_cuda.py                 # on the local GPU (one H100/H200: about 6-8 minutes)
    python benchmarks/probe_cuda.py --dry-run       # the same matrix on the meta device (no GPU; checks the script)
    python benchmarks/probe_cuda.py --cases llama   # only cases whose id contains "llama"

Each case is `oomplan.probe.run.probe` (what `oomplan probe` runs) on one plan, in this one process, one after
another; a case that fails is recorded and the next runs. Plans are for `--gpu` (default h200: the whole card)
unless the case names another card (its cap then stands for that card). `expect` is the analytic verdict of
the plan ("fit" or "oom"); `verdict_correct` says whether the probe agreed. After every case the script
checks that memory came back (allocated_after_bytes) and that the memory fraction is the one before.

Writes OUT.json: {"device", "driver", "cuda", "torch", "transformers", "cudnn", "dry_run", "cases": [...]} and a
markdown table OUT.md beside it; OUT defaults to benchmarks/results/probe_cuda (a real run) and to
/tmp/probe_cuda_dryrun (a dry run: measured numbers from meta are not GPU results and are not committed).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GiB, MiB = 2**30, 2**20


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    ctx: int
    batch: int = 1
    attention: str = "sdpa"
    gpu: str | None = None  # None: --gpu
    tp: int = 1
    weights: str = "auto"
    chunk: int | None = None
    why: str = ""


CASES = (
    *(Case(f"llama3.1-8b-{a}-{c // 1024}k-b{b}", "llama-3.1-8b", c, b, a)
      for a in ("sdpa", "eager") for c in (1024, 8192, 32768) for b in (1, 4)),
    Case("qwen2.5-7b-sdpa-8k", "qwen2.5-7b", 8192),
    Case("qwen2.5-7b-sdpa-32k", "qwen2.5-7b", 32768),
    Case("mistral-7b-v0.1-sdpa-8k", "mistral-7b-v0.1", 8192, why="sliding window"),
    Case("mistral-7b-v0.1-sdpa-32k", "mistral-7b-v0.1", 32768, why="sliding window bool mask at 32k"),
    Case("gemma-2-9b-sdpa-8k", "gemma-2-9b", 8192, why="fp32 checkpoint probed in bf16; tied embeddings"),
    Case("gemma-2-9b-sdpa-8k-b4", "gemma-2-9b", 8192, 4),
    Case("phi-3-mini-sdpa-4k-b4", "phi-3-mini", 4096, 4),
    Case("mixtral-8x7b-sdpa-8k", "mixtral-8x7b", 8192, why="bf16, ~87 GiB of weights"),
    Case("llama-3-70b-tp2-h100-8k", "llama-3-70b", 8192, gpu="h100", tp=2, why="one TP-2 shard under an H100 cap"),
    Case("llama3.1-8b-sdpa-32k-chunk2k", "llama-3.1-8b", 32768, chunk=2048, why="chunked prefill"),
    Case("llama3.1-8b-fp16-sdpa-8k", "llama-3.1-8b", 8192, weights="fp16", why="--weights fp16"),
    Case("qwen2.5-0.5b-l4-2k-b2", "qwen2.5-0.5b", 2048, 2, gpu="l4", why="tied embeddings, small"),
    Case("llama3.1-8b-l4-32k-b4-oom", "llama-3.1-8b", 32768, 4, gpu="l4", why="predicted not to fit: capped OOM"),
)


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout("the case ran past its time limit")


def _estimate(case: Case, default_gpu: str):
    from oomplan.memory.budget import estimate
    from oomplan.profiles import load_gpu, load_model
    from oomplan.specs.plan import Plan, Workload

    plan = Plan(attention=case.attention, tensor_parallel=case.tp, weights=case.weights,
                prefill_chunk_tokens=case.chunk)
    return estimate(load_model(case.model), load_gpu(case.gpu or default_gpu),
                    Workload(ctx_tokens=case.ctx, batch_size=case.batch), plan)


def _fraction_and_allocated(device: str) -> tuple[float | None, int | None]:
    if device != "cuda":
        return None, None
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()
    return float(torch.cuda.get_per_process_memory_fraction(0)), int(torch.cuda.memory_allocated(0))


def run_case(case: Case, device: str, default_gpu: str, limit_s: int) -> dict:
    from oomplan.probe.run import probe

    row: dict = {"case": case.id, "model": case.model, "gpu": case.gpu or default_gpu, "ctx": case.ctx,
                 "batch": case.batch, "attention": case.attention, "tp": case.tp, "weights": case.weights,
                 "chunk": case.chunk, "why": case.why}
    fraction_before, _ = _fraction_and_allocated(device)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit_s)
    start = time.perf_counter()
    try:
        est = _estimate(case, default_gpu)
        row["expect"] = "fit" if est.fits else "oom"
        report = probe(est, device, 3.0, 2)
        total = report.total
        row.update(predicted_bytes=total.predicted_bytes, measured_bytes=total.measured_bytes,
                   error_pct=round(total.error_pct, 3), oom_at=report.oom_at, fits_capacity=report.fits_capacity,
                   components=[{"name": c.name, "predicted_bytes": c.predicted_bytes, "measured_bytes": c.measured_bytes,
                                "error_pct": round(c.error_pct, 3)} for c in report.components],
                   not_probed=list(report.not_probed), notes=list(report.notes))
        measured_fit = report.oom_at is None and report.fits_capacity
        row["verdict_correct"] = measured_fit == est.fits
        row["within_3pct"] = abs(total.error_pct) <= 3.0 if report.oom_at is None else None
        c = report.cuda
        row.update(attention_kernel=c.attention_kernel if c else report.versions.rsplit("attention ", 1)[-1],
                   peak_allocated_bytes=c.peak_allocated_bytes if c else None,
                   peak_reserved_bytes=c.peak_reserved_bytes if c else None,
                   context_bytes=c.context_bytes if c else None, fraction=c.fraction if c else None,
                   versions=report.versions, device=report.device)
    except CaseTimeout as exc:
        row["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one case never stops the others
        row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    row["wall_s"] = round(time.perf_counter() - start, 2)
    fraction_after, allocated_after = _fraction_and_allocated(device)
    row.update(fraction_before=fraction_before, fraction_after=fraction_after, allocated_after_bytes=allocated_after,
               restored=None if device != "cuda" else (fraction_after == fraction_before and allocated_after < 64 * MiB))
    return row


def environment(device: str) -> dict:
    import torch
    import transformers

    env = {"device": "meta", "driver": None, "cuda": None, "torch": torch.__version__,
           "transformers": transformers.__version__, "cudnn": None}
    if device == "cuda":
        from oomplan.probe.cuda_device import TorchCuda

        v = TorchCuda().versions()
        env.update(device=v.device_name, driver=v.driver, cuda=v.cuda, cudnn=v.cudnn)
    return env


def markdown(result: dict) -> str:
    lines = [f"# CUDA probe matrix{' (DRY RUN on the meta device: not GPU measurements)' if result['dry_run'] else ''}",
             "", f"Device {result['device']}, driver {result['driver']}, CUDA {result['cuda']}, cuDNN {result['cudnn']}, "
             f"torch {result['torch']}, transformers {result['transformers']}; `benchmarks/probe_cuda.py`"
             f"{' --dry-run' if result['dry_run'] else ''}, {result['wall_s']:.0f} s.", "",
             "| case | expect | predicted GiB | measured GiB | error | verdict right | kernel | OOM at | restored | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["cases"]:
        if "error" in r:
            lines.append(f"| {r['case']} | {r.get('expect', '')} | | | | | | error: {r['error'][:80]} | {r.get('restored')} | {r['wall_s']} |")
            continue
        lines.append(f"| {r['case']} | {r['expect']} | {r['predicted_bytes'] / GiB:.3f} | {r['measured_bytes'] / GiB:.3f} | "
                     f"{r['error_pct']:+.2f}% | {'yes' if r['verdict_correct'] else 'NO'} | {r['attention_kernel']} | "
                     f"{r['oom_at'] or ''} | {r['restored']} | {r['wall_s']} |")
    ok = [r for r in result["cases"] if "error" not in r]
    lines += ["", f"{len(result['cases'])} cases, {len(ok)} ran; verdicts right: {sum(r['verdict_correct'] for r in ok)}; "
              f"fitting cases within 3%: {sum(1 for r in ok if r['within_3pct'])} of {sum(1 for r in ok if r['within_3pct'] is not None)}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="run the matrix on the meta device (no GPU)")
    ap.add_argument("--gpu", default="h200", help="the GPU profile plans are for unless a case names one")
    ap.add_argument("--cases", default="", help="only cases whose id contains this")
    ap.add_argument("--case-timeout", type=int, default=120, help="seconds per case")
    ap.add_argument("--budget-s", type=int, default=480, help="stop starting cases after this many seconds")
    ap.add_argument("--out", type=Path, default=None, help="OUT.json and OUT.md (no suffix)")
    args = ap.parse_args(argv)
    device = "meta" if args.dry_run else "cuda"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("probe_cuda.py: torch sees no CUDA GPU; use --dry-run to check the matrix on meta", file=sys.stderr)
            return 3
    out = args.out or (Path("/tmp/probe_cuda_dryrun") if args.dry_run else ROOT / "benchmarks" / "results" / "probe_cuda")
    cases = [c for c in CASES if args.cases in c.id]
    start = time.perf_counter()
    result = {**environment(device), "dry_run": args.dry_run, "gpu": args.gpu, "cases": []}
    for case in cases:
        if time.perf_counter() - start > args.budget_s:
            result["cases"].append({"case": case.id, "error": "skipped: past --budget-s", "wall_s": 0, "restored": None})
            continue
        row = run_case(case, device, args.gpu, args.case_timeout)
        result["cases"].append(row)
        verdict = row.get("error") or f"{row['error_pct']:+.2f}% oom_at={row['oom_at']} right={row['verdict_correct']}"
        print(f"{case.id:<34} {row['wall_s']:>7}s  {verdict}", flush=True)
    result["wall_s"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(result, indent=1) + "\n"), (".md", markdown(result))):
        tmp = out.with_suffix(suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out.with_suffix(suffix))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
