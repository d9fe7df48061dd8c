"""Every config under tests/fixtures/configs: oomplan's answer vs transformers on the meta device (issue 13).

Per config: the family oomplan reads it with (or the transformers path, or the refusal), parameters (ours vs
sum(p.numel()) of the class transformers builds from the config on `meta`), KV cache + recurrent state at ctx 8k,
batch 1 (ours, unpaged, vs the storages transformers' DynamicCache holds after a meta prefill of ctx - 1 tokens and
one decode step), and, for configs declaring a quantization_config, the checkpoint's weight bytes as shipped (ours;
the meta model is never quantised, so there is no meta figure for it). Sliding-window cache layers also hold an
int64 window size (cache_utils.py DynamicSlidingWindowLayer._sliding_window_tensor): ours + 8 B per such layer.
Configs of architectures oomplan has no family for are counted by the transformers path (oomplan/probe/hf_meta.py):
its params and cache are transformers' by construction, so the row checks the path's derived cache at 8k against
the direct measurement.

Usage: python benchmarks/families_table.py [--out benchmarks/results/families_table.md] [--ctx 8192] [--only 'sweep/*' ...]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meta_tables import table_args, write_table  # noqa: E402

from oomplan.errors import InputError, UnknownFamilyError  # noqa: E402
from oomplan.families import config_sha256, parse_hf_config  # noqa: E402
from oomplan.memory.budget import estimate  # noqa: E402
from oomplan.memory.params import num_params  # noqa: E402
from oomplan.probe.hf_meta import derived_cache_bytes, measure_model, meta_counts  # noqa: E402
from oomplan.profiles import load_gpu  # noqa: E402
from oomplan.specs.plan import Plan, Workload  # noqa: E402

CONFIGS = ROOT / "tests" / "fixtures" / "configs"
# Rows where transformers' build from the config alone is not the checkpoint (tests/golden/test_real_configs.py says why)
REFEREE_NOTES = {"sweep/mistralai--Magistral-Small-2509.json": "Mistral3Config ties when tie_word_embeddings is absent; "
                 "from_pretrained unties the checkpoint's own lm_head: oomplan prices that, one 131072 x 5120 matrix more"}
KNOWN_AS = {"kimi_k2": "deepseek_v3"}  # Kimi-K2 is DeepSeek-V3's architecture (families/deepseek.py); transformers lacks kimi_k2


def _failed(exc: Exception) -> str:
    """A row's referee cell when transformers' own build or forward raises (the row says so; the table goes on)."""
    return f"transformers failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}".replace("|", "/")


def _row(path: Path, ctx: int) -> str:
    raw = json.loads(path.read_text())
    label = str(path.relative_to(CONFIGS))
    start = time.perf_counter()
    probe_raw = dict(raw, model_type=KNOWN_AS.get(raw.get("model_type"), raw.get("model_type")))
    try:
        spec = parse_hf_config(raw, path.stem, label)
    except UnknownFamilyError as exc:
        try:
            m = measure_model(raw, name=path.stem, source=label, config_sha256=config_sha256(raw), ctx_tokens=64, batch_size=1)
        except InputError as refused:
            return f"| refused | {label} | {str(refused)[:90]}... | | | | | | {time.perf_counter() - start:.0f} |"
        try:
            _, theirs_p, theirs_kv = meta_counts(probe_raw, ctx)
        except Exception as failed:  # noqa: BLE001 - the referee itself failing is a row, not the end of the table
            return (f"| transformers path ({exc.model_type}) | {label} | {m.num_params:,} | {_failed(failed)} | | | - | - | "
                    f"{time.perf_counter() - start:.0f} |")
        ours_kv = derived_cache_bytes(m.cache_layers, ctx, 1)
        ok = "exact" if (m.num_params, ours_kv) == (theirs_p, theirs_kv) else "DIFFERS"
        return (f"| transformers path ({exc.model_type}) | {label} | {m.num_params:,} | {theirs_p:,} | {ours_kv:,} | {theirs_kv:,} | - | "
                f"{ok} | {time.perf_counter() - start:.0f} |")
    except InputError as refused:
        return f"| refused | {label} | {str(refused)[:90]}... | | | | | | {time.perf_counter() - start:.0f} |"
    # transformers caches in the model dtype: a checkpoint's declared fp8 KV (ModelOpt kv_cache_scheme, vLLM's default) is not its
    kv = "bf16" if spec.dtype == "fp32" else spec.dtype
    s = estimate(spec, load_gpu("h100"), Workload(ctx_tokens=ctx, batch_size=1), Plan(paged=False, kv_dtype=kv)).per_gpu
    ours_kv = s.kv_cache_bytes + s.state_bytes + 8 * sum(layer.attention.kind in ("sliding", "chunked") for layer in spec.layers)
    shipped = f"{s.weights_bytes:,}" if spec.declared_weights is not None else "-"
    try:
        _, theirs_p, theirs_kv = meta_counts(probe_raw, ctx)
    except InputError as exc:
        return f"| {spec.model_type} | {label} | {num_params(spec):,} | ({str(exc)[:60]}) | {ours_kv:,} | - | {shipped} | - | {time.perf_counter() - start:.0f} |"
    except Exception as failed:  # noqa: BLE001 - e.g. 5.24's Llama4ForConditionalGeneration.forward without pixel_values
        return (f"| {spec.model_type} | {label} | {num_params(spec):,} | {_failed(failed)} | {ours_kv:,} | - | {shipped} | - | "
                f"{time.perf_counter() - start:.0f} |")
    ok = "exact" if (num_params(spec), ours_kv) == (theirs_p, theirs_kv) else "DIFFERS"
    if label in REFEREE_NOTES:
        ok = f"{ok} ({REFEREE_NOTES[label]})"
    return (f"| {spec.model_type} | {label} | {num_params(spec):,} | {theirs_p:,} | {ours_kv:,} | {theirs_kv:,} | {shipped} | {ok} | "
            f"{time.perf_counter() - start:.0f} |")


def _kept_rows(out: Path | None, only: list[str]) -> dict[str, str]:
    """With --only: the rows of the existing --out table for the configs the globs do not match (kept as they are)."""
    if not only or out is None or not out.exists():
        return {}
    from fnmatch import fnmatch

    kept = {}
    for line in out.read_text().splitlines():
        cells = line.split(" | ")
        if line.startswith("| ") and len(cells) > 2 and cells[1].endswith(".json") and not any(fnmatch(cells[1], g) for g in only):
            kept[cells[1]] = line
    return kept


def main() -> None:
    args = table_args()
    import transformers

    transformers.logging.set_verbosity_error()
    rows = [f"| family | config | params ours | params transformers | KV+state @{args.ctx} ours | KV+state @{args.ctx} meta | "
            "checkpoint bytes (declared quantisation) | match | s |", "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    kept = _kept_rows(args.out, args.only)
    for path in sorted(CONFIGS.rglob("*.json")):
        if "hf_quant_config" in path.parts:  # ModelOpt quantisation files read beside a config (not configs themselves)
            continue
        label = str(path.relative_to(CONFIGS))
        if label in kept:
            rows.append(kept[label])
            continue
        rows.append(_row(path, args.ctx))
        print(rows[-1], flush=True)
    write_table([
        f"# Config fixtures vs transformers {transformers.__version__} (meta device), ctx {args.ctx}, batch 1", "",
        "Produced by `python benchmarks/families_table.py` (the configs under tests/fixtures/configs; their sources in the",
        "SOURCES.md files there). KV+state: the bytes the cache holds after a prefill of ctx - 1 tokens and one decode step.",
        "s: wall seconds for the row on a shared 2-core machine (meta builds and forwards: Python time only)."], rows, args.out)


if __name__ == "__main__":
    main()
