"""Families vs transformers on the meta device: parameters (ours vs sum(p.numel())) and KV + state bytes at 8k
(ours vs the cache tensors after a meta prefill + one decode step, full depth, batch 1). Issue 13.

Configs: the shipped gpt-oss-20b profile and, for the other families, sparse configs whose omitted keys take
transformers' configuration-class defaults (the flagship checkpoint of each family; see
tests/fixtures/configs/families/SOURCES.md). Sliding/chunked cache layers hold an int64 window-size tensor
each (cache_utils.py DynamicSlidingWindowLayer), which the meta probe counts: ours + 8 bytes per such layer.

Usage: python benchmarks/families.py [--out benchmarks/results/families.md] [--ctx 8192]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from meta_tables import ours_cache_bytes, table_args, write_table  # noqa: E402

from golden.test_families_transformers import GEMMA3_WRAPPER, KIMI_K2, SPARSE, _meta_count  # noqa: E402

from oomplan.families import parse_hf_config  # noqa: E402
from oomplan.memory.params import num_params  # noqa: E402
from oomplan.probe.meta_run import run_meta_probe  # noqa: E402
from oomplan.profiles import load_model  # noqa: E402

GIB = 1024**3


def main() -> None:
    args = table_args()
    cases = [("gpt_oss", "gpt-oss-20b (shipped profile)", load_model("gpt-oss-20b").hf_config, None)]
    cases += [(name, f"{name} class defaults" + (" + " + ", ".join(f"{k}={v}" for k, v in raw.items() if k != "model_type") if len(raw) > 1 else ""),
               raw, None) for name, raw in sorted(SPARSE.items())]
    cases.append(("kimi_k2", "kimi_k2 (DeepSeek-V3 arch, 384 experts)", KIMI_K2, "deepseek_v3"))
    rows = ["| family | config | params ours | params transformers | KV+state @ctx ours | KV+state @ctx meta | match | s |",
            "|---|---|---:|---:|---:|---:|---|---:|"]
    for family, label, raw, as_type in cases:
        start = time.perf_counter()
        spec = parse_hf_config(raw, family, "bench")
        ours_p, theirs_p = num_params(spec), _meta_count(raw, as_type)
        probe_raw = dict(raw, model_type=as_type) if as_type else raw
        measured = run_meta_probe(probe_raw, ctx_tokens=args.ctx, batch_size=1, attention="sdpa", num_decode_steps=1).kv_cache_bytes_final
        ours_kv = ours_cache_bytes(spec, args.ctx)
        ok = "exact" if (ours_p, ours_kv) == (theirs_p, measured) else "DIFFERS"
        rows.append(f"| {family} | {label} | {ours_p:,} | {theirs_p:,} | {ours_kv:,} | {measured:,} | {ok} | {time.perf_counter() - start:.0f} |")
        print(rows[-1], flush=True)
    spec = parse_hf_config(GEMMA3_WRAPPER, "gemma3", "bench")
    rows.append(f"| gemma3 (wrapper) | Gemma 3 4B text_config | {num_params(spec):,} | (text decoder: tests/golden) | {ours_cache_bytes(spec, args.ctx):,} | - | - | - |")
    write_table([f"# Families vs transformers (meta device), ctx {args.ctx}, batch 1", "",
                 "Produced by `python benchmarks/families.py`; KV+state: bytes the cache holds after a prefill of ctx - 1",
                 "tokens and one decode step (full depth)."], rows, args.out)


if __name__ == "__main__":
    main()
