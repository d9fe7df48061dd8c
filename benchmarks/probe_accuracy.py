"""Analytic prediction vs the meta probe's measured peak, per component (issue #4).

Matrix: models (dense MHA/GQA, biases, fused MLP, sliding windows, MoE, MLA, parallel attention)
x ctx {1k, 8k, 32k} x batch {1, 4} x attention {sdpa, eager}, plus tensor-parallel shards.
Target: median |error| of the total under 2%, none over 5%.

Usage: python benchmarks/probe_accuracy.py [--out benchmarks/results/probe_meta.md] [--quick]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from pathlib import Path

from oomplan.memory.budget import estimate
from oomplan.probe.run import probe
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

MODELS = ["llama-3-8b", "qwen2.5-7b", "phi-3-mini", "mistral-7b-v0.1", "gemma-2-9b", "falcon-40b",
          "mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v2-lite"]
CTX = [1024, 8192, 32768]
BATCH = [1, 4]
ATTENTION = ["sdpa", "eager"]
SHARDS = [("llama-3-70b", 4, 32768), ("qwen2.5-72b", 8, 32768), ("deepseek-v3", 8, 32768), ("mixtral-8x22b", 8, 8192)]


def row(name: str, ctx: int, batch: int, attention: str, tp: int = 1) -> tuple[str, list[float], str]:
    plan = Plan(paged=False, attention=attention, tensor_parallel=tp)
    est = estimate(load_model(name), load_gpu("b200"), Workload(ctx_tokens=ctx, batch_size=batch), plan)
    start = time.perf_counter()
    report = probe(est, "meta")
    cells = []
    for c in report.components:
        cells.append(f"{c.predicted_bytes / 2**30:.3f} / {c.measured_bytes / 2**30:.3f} ({c.error_pct:+.2f}%)")
    label = f"| {name} | {ctx} | {batch} | {attention} | {tp} | " + " | ".join(cells) + f" | {time.perf_counter() - start:.1f} |"
    return label, [c.error_pct for c in report.components], report.versions.split(", attention")[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="8k only, for a smoke run")
    opts = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    cases = [(m, c, b, a, 1) for m in MODELS for c in ([8192] if opts.quick else CTX) for b in BATCH for a in ATTENTION]
    cases += [(m, c, 1, "sdpa", tp) for m, tp, c in SHARDS]
    lines, totals, versions = [], [], ""
    for case in cases:
        text, errors, versions = row(*case)
        lines.append(text)
        totals.append(abs(errors[-1]))
        print(text, flush=True)
    head = [
        "# Meta probe vs analytic prediction (tensor bytes, GiB: predicted / measured (error))",
        "",
        f"{versions}. Weights bf16, contiguous KV, 2 decode steps after the prefill; error = (predicted - measured) / measured.",
        f"Total over {len(totals)} cases: median |error| {statistics.median(totals):.3f}%, max |error| {max(totals):.3f}%"
        f" (target: median < 2%, max < 5%).",
        "",
        "| model | ctx | batch | attention | TP | weights | KV cache | activations | total | probe s |",
        "|---|---:|---:|---|---:|---|---|---|---|---:|",
    ]
    text = "\n".join(head + lines) + "\n"
    print("\n".join(head[:4]))
    if opts.out:
        opts.out.write_text(text)


if __name__ == "__main__":
    main()
