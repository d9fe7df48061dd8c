"""Training budgets: the analytic model (oomplan.memory.training) vs a real training step on the meta device (issue #6).

Each case builds the model at full depth from its shipped profile and runs oomplan.probe.train_run: two steps of
forward + HF loss + backward + torch.optim AdamW (mixed precision: bf16 weights and gradients, fp32 master and
states), the second one measured by the probe's StorageTracker. Compared: the persistent bytes (weights, master,
gradients, optimizer states), the activations-and-temporaries peak on top of them, and the total peak.
Overheads (CUDA context, allocator) are not tensors and are left out of both sides.

Target (issue #6): within 5% on at least 4 models x 3 recompute policies.

Usage: python benchmarks/train_meta.py [--out benchmarks/results/train_meta.md] [--quick]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from pathlib import Path

from oomplan.memory.training import train_stage_budget
from oomplan.probe.train_run import TrainSetup, run_train_probe
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.training import TrainingPlan

DENSE = ["llama-3.1-8b", "qwen2.5-7b", "qwen3-8b", "phi-3-mini", "gemma-2-9b", "mistral-7b-v0.1", "llama-3.2-1b"]
RECOMPUTE = ["none", "selective", "full"]
ATTENTION = ["sdpa", "eager"]
EXTRA = [  # (model, layers or None for all, seq, micro-batch, mode, attention, recompute)
    ("llama-3.1-8b", None, 2048, 4, "full", "sdpa", "none"),
    ("qwen2.5-7b", None, 8192, 1, "full", "sdpa", "full"),
    ("llama-3.1-8b", None, 4096, 1, "lora", "sdpa", "none"),
    ("llama-3.1-8b", None, 4096, 1, "lora", "sdpa", "full"),
    ("qwen3-8b", None, 4096, 2, "lora", "eager", "selective"),
    ("falcon-40b", 8, 4096, 1, "full", "sdpa", "none"),  # approximate families: parallel attention, MoE, MLA
    ("mixtral-8x7b", 4, 8192, 1, "full", "sdpa", "none"),
    ("qwen3-30b-a3b", 8, 8192, 1, "full", "sdpa", "none"),
    ("deepseek-v2-lite", 8, 8192, 1, "full", "sdpa", "none"),
]


def _pct(predicted: int, measured: int) -> float:
    return 100.0 * (predicted - measured) / measured


def case(name: str, layers: int | None, seq: int, batch: int, mode: str, attention: str, recompute: str) -> tuple[str, float, float]:
    model = load_model(name)
    cfg = dict(model.hf_config, num_hidden_layers=layers) if layers else model.hf_config
    spec = load_model(name) if not layers else _shrunk(name, layers)
    plan = TrainingPlan(mode=mode, seq_tokens=seq, micro_batch_size=batch, attention=attention, recompute=recompute)
    budget = train_stage_budget(spec, load_gpu("b200"), plan, 0)
    start = time.perf_counter()
    got = run_train_probe(cfg, TrainSetup(seq_tokens=seq, micro_batch_size=batch, recompute=recompute, attention=attention, mode=mode))
    pers, acts = budget.states.gpu_bytes, budget.activation_bytes
    cells = [f"{pers / 2**30:.3f} / {got.persistent_bytes / 2**30:.3f}",
             f"{acts / 2**30:.3f} / {got.activation_bytes / 2**30:.3f} ({_pct(acts, got.activation_bytes):+.2f}%)",
             f"{budget.activations.peak.name} / {got.peak_phase}",
             f"{(pers + acts) / 2**30:.3f} / {got.peak_bytes / 2**30:.3f} ({_pct(pers + acts, got.peak_bytes):+.2f}%)"]
    label = f"| {name} | {layers or spec.num_layers} | {seq} x {batch} | {mode} | {attention} | {recompute} | " + " | ".join(cells)
    return label + f" | {time.perf_counter() - start:.1f} |", _pct(pers + acts, got.peak_bytes), _pct(acts, got.activation_bytes)


def _shrunk(name: str, layers: int):
    """The shipped profile with fewer layers (MoE/MLA/Falcon rows: same layer shapes, fewer of them)."""
    from oomplan.families import parse_hf_config

    model = load_model(name)
    return parse_hf_config(dict(model.hf_config, num_hidden_layers=layers), f"{name}-{layers}l", model.source)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="4 models, sdpa only")
    opts = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    models = DENSE[:4] if opts.quick else DENSE
    cases = [(m, None, 4096, 1, "full", a, r) for m in models for a in (ATTENTION[:1] if opts.quick else ATTENTION) for r in RECOMPUTE]
    cases += [] if opts.quick else EXTRA
    lines, totals, acts = [], [], []
    for c in cases:
        text, total_err, act_err = case(*c)
        lines.append(text)
        totals.append(abs(total_err))
        acts.append(abs(act_err))
        print(text, flush=True)
    import torch
    import transformers

    main_rows = len(models) * len(RECOMPUTE) * (1 if opts.quick else len(ATTENTION))
    head = [
        "# Training step: analytic budget vs the meta probe (tensor bytes, GiB: predicted / measured)",
        "",
        f"torch {torch.__version__}, transformers {transformers.__version__} (meta device). Mixed-precision AdamW "
        "(bf16 weights and gradients, fp32 master and states, 16 B/param), full-depth shipped profiles unless `layers` "
        "says otherwise; error = (predicted - measured) / measured. `persistent`: weights + master + gradients + "
        "optimizer states; `activations`: the peak on top of them (saved activations, loss logits, gradients in flight, "
        "optimizer temporaries); `peak phase`: where the peak is, predicted / measured.",
        "",
        f"Total peak over all {len(totals)} cases: median |error| {statistics.median(totals):.3f}%, max {max(totals):.3f}%; "
        f"activations alone: median {statistics.median(acts):.3f}%, max {max(acts):.3f}%.",
        f"The {main_rows} rows of {len(models)} dense models x 3 recompute policies: max |error| of the total "
        f"{max(totals[:main_rows]):.3f}%, of the activations {max(acts[:main_rows]):.3f}% (target: 5%).",
        "",
        "| model | layers | seq x batch | mode | attention | recompute | persistent | activations | peak phase | total | probe s |",
        "|---|---:|---|---|---|---|---|---|---|---|---:|",
    ]
    print("\n".join(head[4:6]))
    if opts.out:
        opts.out.write_text("\n".join(head + lines) + "\n")


if __name__ == "__main__":
    main()
