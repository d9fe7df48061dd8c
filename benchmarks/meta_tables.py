"""Shared by the families benchmarks (families.py, families_table.py, multimodal_families.py): their flags, the
cache bytes oomplan prices as the meta probe counts them, and writing the table."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from oomplan.memory.kv_cache import kv_budget
from oomplan.memory.layout import pipeline_stages
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan


def table_args() -> argparse.Namespace:
    """--out FILE (also printed), --ctx N (default 8192) and --only GLOB; transformers' warnings silenced."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--only", action="append", default=[], metavar="GLOB",
                    help="families_table.py: re-run only the configs whose path under tests/fixtures/configs matches (repeatable); "
                         "the other rows of --out are kept")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    return args


def ours_cache_bytes(spec: ModelSpec, ctx: int) -> int:
    """oomplan's KV of one contiguous sequence, plus the int64 window-size tensor each sliding/chunked cache layer
    holds (transformers cache_utils.py DynamicSlidingWindowLayer), which the meta census counts."""
    kv = kv_budget(spec, Plan(paged=False), ctx, 1, pipeline_stages(spec.num_layers, 1)[0]).bytes
    return kv + 8 * sum(layer.attention.kind in ("sliding", "chunked") for layer in spec.layers)


def write_table(header: list[str], rows: list[str], out: Path | None) -> None:
    text = "\n".join(header + [""] + rows) + "\n"
    if out:
        out.write_text(text)
    print(text)
