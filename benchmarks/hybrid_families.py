"""Hybrid and multimodal families: ours vs transformers, as a markdown table.

For each config: parameters (ours vs sum(p.numel()) of transformers' meta build) and, at 8k tokens,
batch 1, the KV cache and the recurrent state (ours vs the cache tensors after a meta forward at
full depth, oomplan.probe.cache_census). Writes benchmarks/results/hybrid_families.md.

    PYTHONPATH=. python3 benchmarks/hybrid_families.py
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from oomplan.families import parse_hf_config  # noqa: E402
from oomplan.memory.budget import estimate  # noqa: E402
from oomplan.memory.params import num_params  # noqa: E402
from oomplan.probe.cache_census import cache_census  # noqa: E402
from oomplan.profiles import load_gpu  # noqa: E402
from oomplan.specs.plan import Plan, Workload  # noqa: E402

CTX = 8192


def _real(name: str) -> dict:
    return json.loads((ROOT / "tests" / "fixtures" / "configs" / f"{name}.json").read_text())


def cases() -> list[tuple[str, str, dict]]:
    from golden.test_hybrid_families import BAMBA, FALCON_H1, GRANITE, JAMBA, MAMBA2

    return [
        ("qwen3_next", "Qwen3-Next-80B-A3B (real)", _real("qwen3-next-80b-a3b")),
        ("nemotron_h", "Nemotron 3 Nano 30B-A3B (real)", _real("nemotron-3-nano-30b-a3b")),
        ("granitemoehybrid", "small, all keys set", GRANITE),
        ("falcon_h1", "small, all keys set", FALCON_H1),
        ("jamba", "small, all keys set", JAMBA),
        ("mamba2", "small, all keys set", MAMBA2),
        ("bamba", "small, all keys set", BAMBA),
    ]


def main() -> None:
    import torch
    import transformers

    from oomplan.probe.meta_run import build_config

    gpu, plan = load_gpu("h100-80g"), Plan(paged=False)
    rows = ["| family | config | params (ours) | params (transformers) | KV at 8k (ours / meta) | state (ours / meta) | s |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for family, label, cfg in cases():
        start = time.perf_counter()
        spec = parse_hf_config(cfg, family, label)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.device("meta"):
                model = transformers.AutoModelForCausalLM.from_config(build_config(cfg))
            ref = sum(p.numel() for p in model.parameters())
            census = cache_census(cfg, CTX, batch_size=1)
        g = estimate(spec, gpu, Workload(ctx_tokens=CTX, batch_size=1), plan).per_gpu
        ok = "=" if (num_params(spec), g.kv_cache_bytes, g.state_bytes) == (ref, census.kv_cache_bytes, census.state_bytes) else "≠"
        rows.append(f"| {family} | {label} | {num_params(spec):,} | {ref:,} {ok} | {g.kv_cache_bytes:,} / {census.kv_cache_bytes:,} "
                    f"| {g.state_bytes:,} / {census.state_bytes:,} | {time.perf_counter() - start:.1f} |")
    text = (f"# Hybrid families vs transformers {transformers.__version__} (torch {torch.__version__}), meta device\n\n"
            f"KV and state: batch 1, {CTX:,} tokens (8,191 prefill + 1 decode), full depth, bf16.\n\n" + "\n".join(rows) + "\n")
    (ROOT / "benchmarks" / "results" / "hybrid_families.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
