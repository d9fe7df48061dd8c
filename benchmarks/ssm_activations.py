"""Mamba-2, Gated DeltaNet and Mamba (Jamba) prefill activations: oomplan's replay of transformers' PyTorch scan (memory/ssm_activations.py) vs the
meta probe's measured transient (peak - weights - final KV + state), per family, batch and prompt length.

Tiny configs (Mamba-2 chunk_size 8, Gated DeltaNet's fixed 64: lengths below one chunk and not a multiple of it) and the
real Nemotron 3 Nano, Nemotron-H 56B, Qwen3-Next-80B-A3B and Qwen3.5-27B configs (tests/fixtures/configs, sources in
SOURCES.md there) cut to their first layers, at lengths around their chunk size. Usage: python benchmarks/ssm_activations.py [--out benchmarks/results/ssm_activations.md]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import transformers

from oomplan.families import parse_hf_config
from oomplan.memory.budget import estimate
from oomplan.probe.meta_run import run_meta_probe
from oomplan.profiles import load_gpu
from oomplan.specs.plan import Plan, Workload

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "configs"
SMALL = dict(vocab_size=1000, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128)
TINY = {
    "mamba2": dict(model_type="mamba2", vocab_size=1000, hidden_size=30, num_hidden_layers=2, num_heads=6, head_dim=10, expand=2,
                   n_groups=2, state_size=12, conv_kernel=4, chunk_size=8),
    "nemotron_h": dict(SMALL, model_type="nemotron_h", hybrid_override_pattern="M*M", mamba_num_heads=8, mamba_head_dim=16,
                       n_groups=2, ssm_state_size=16, conv_kernel=4, chunk_size=8, head_dim=16),
    "granitemoehybrid": dict(SMALL, model_type="granitemoehybrid", num_hidden_layers=3, layer_types=["mamba", "attention", "mamba"],
                             shared_intermediate_size=64, num_local_experts=4, num_experts_per_tok=2, mamba_n_heads=8,
                             mamba_n_groups=2, mamba_d_state=16, mamba_d_head=16, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=8),
    "falcon_h1": dict(SMALL, model_type="falcon_h1", num_hidden_layers=2, head_dim=16, mamba_d_ssm=96, mamba_n_heads=6,
                      mamba_d_head=16, mamba_n_groups=2, mamba_d_state=16, mamba_d_conv=4, mamba_chunk_size=8, projectors_bias=True),
    "qwen3_next": dict(SMALL, model_type="qwen3_next", num_hidden_layers=2, layer_types=["linear_attention", "full_attention"],
                       head_dim=16, linear_key_head_dim=12, linear_value_head_dim=10, linear_num_key_heads=2, linear_num_value_heads=6,
                       num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32),
    "qwen3_5_text": dict(SMALL, model_type="qwen3_5_text", hidden_size=80, num_hidden_layers=4, head_dim=16, linear_key_head_dim=8,
                         linear_value_head_dim=12, linear_num_key_heads=2, linear_num_value_heads=4, full_attention_interval=2),
    "jamba": dict(SMALL, model_type="jamba", num_hidden_layers=4, attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
                  expert_layer_offset=1, num_experts=4, num_experts_per_tok=2, mamba_d_state=8, mamba_d_conv=4, mamba_expand=2),
}
REAL = {  # name -> (fixture, first layers kept)
    "nemotron-3-nano-30b-a3b (6 layers)": ("nemotron-3-nano-30b-a3b", dict(hybrid_override_pattern="MEMEM*", num_hidden_layers=6)),
    "nemotron-h-56b-base-8k (4 layers)": ("nemotron-h-56b-base-8k", dict(hybrid_override_pattern="M-*M", num_hidden_layers=4)),
    "qwen3-next-80b-a3b (4 layers)": ("qwen3-next-80b-a3b", dict(num_hidden_layers=4)),
    "qwen3.5-27b text (4 layers)": ("qwen3.5-27b", dict(num_hidden_layers=4)),
}


def row(name: str, cfg: dict, batch: int, tokens: int) -> tuple[str, float]:
    spec = parse_hf_config(cfg, name, "benchmark")
    est = estimate(spec, load_gpu("b200"), Workload(ctx_tokens=tokens, batch_size=batch), Plan(paged=False))
    start = time.perf_counter()
    r = run_meta_probe(cfg, ctx_tokens=tokens, batch_size=batch, attention="sdpa", num_decode_steps=0)
    measured = r.peak_bytes - r.weights_bytes - r.kv_cache_bytes_final
    ours = est.per_gpu.activation_bytes
    err = 100.0 * (ours - measured) / measured
    return (f"| {name} | {batch} | {tokens} | {ours:,} | {measured:,} | {err:+.3f}% | {r.steps[0].peak_origin} "
            f"| {time.perf_counter() - start:.1f} |"), err


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    cases = [(n, c, b, s) for n, c in TINY.items() for b in (1, 2) for s in (5, 64, 203)]
    for name, (fixture, cut) in REAL.items():
        raw = json.loads((FIXTURES / f"{fixture}.json").read_text())
        raw = raw.get("text_config", raw)  # Qwen3.5: the text decoder of the multimodal wrapper
        cfg = dict(raw, **cut)
        if isinstance(cfg.get("layer_types"), list):
            cfg["layer_types"] = cfg["layer_types"][:cfg["num_hidden_layers"]]
        chunk = cfg.get("chunk_size") or cfg.get("mamba_chunk_size") or 64  # Gated DeltaNet: 64
        cases += [(name, cfg, 1, s) for s in (chunk - 1, 4 * chunk, 4 * chunk + 1, 8192)]
    rows, errors = [], []
    for case in cases:
        text, err = row(*case)
        rows.append(text)
        errors.append(abs(err))
        print(text, flush=True)
    head = ["# Mamba-2, Gated DeltaNet and Mamba (Jamba) prefill activations: analytic vs meta probe (bytes)", "",
            f"transformers {transformers.__version__} PyTorch path (no mamba_ssm / causal_conv1d / flash-linear-attention), bf16, sdpa, "
            "whole prompt in one pass.",
            f"Largest |error|: {max(errors):.3f}% over {len(errors)} cases.", "",
            "| config | batch | prompt tokens | oomplan | meta probe | error | peak in | probe s |", "|---|---|---|---|---|---|---|---|"]
    text = "\n".join(head + rows) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
