"""Where the weights figure came from: the checkpoint's headers or config arithmetic, and the difference."""
from __future__ import annotations

from typing import Any

from oomplan.memory.budget import Estimate
from oomplan.memory.checkpoint_weights import weights_source
from oomplan.units import format_bytes


def weights_source_json(est: Estimate) -> dict[str, Any]:
    src = weights_source(est.model, est.plan)
    ck = est.model.checkpoint
    return {
        "kind": src.kind,
        "description": src.description,
        "checkpoint_location": ck.location if ck is not None else None,
        "num_tensors": ck.num_tensors if ck is not None else None,
        "num_files": len(ck.files) if ck is not None else None,
        "stored_bytes": ck.tensor_bytes if ck is not None else None,
        "stored_format": src.stored_format,
        "checkpoint_bytes": src.checkpoint_bytes,
        "arithmetic_bytes": src.arithmetic_bytes,
        "difference_bytes": src.difference_bytes,
        "reasons": list(src.reasons),
    }


def weights_source_lines(est: Estimate) -> list[str]:
    """Note lines for the table view; none when the figure is plain config arithmetic with no checkpoint."""
    src = weights_source(est.model, est.plan)
    if est.model.checkpoint is None:
        return []
    lines = [f"weights {src.description}"]
    if src.checkpoint_bytes is not None:
        diff = src.difference_bytes or 0
        sign = "+" if diff >= 0 else "-"
        lines[0] += (f" ({format_bytes(src.checkpoint_bytes)} held; config arithmetic {format_bytes(src.arithmetic_bytes)}, "
                     f"difference {sign}{format_bytes(abs(diff))})")
    lines += [f"  {reason}" for reason in src.reasons]
    return lines
