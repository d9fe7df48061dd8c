"""Meta-device probe: runs a real transformers model on `meta` and measures live tensor bytes.

Importing this package does not import torch or transformers; `run_meta_probe` does, when called.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oomplan.probe.meta_run import MetaProbeResult


def run_meta_probe(hf_config: dict, **kwargs) -> MetaProbeResult:
    """See `oomplan.probe.meta_run.run_meta_probe` (imported lazily: it needs torch + transformers)."""
    from oomplan.probe.meta_run import run_meta_probe as run

    return run(hf_config, **kwargs)


__all__ = ["run_meta_probe"]
