"""The search space: every knob value, pruned by the model, the card and the engine."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan import formats
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.kv_policy import KvPolicy
from oomplan.specs.plan import TP_DEGREES
from oomplan.units import DEFAULT_HOST_MEMORY_BYTES

WEIGHTS = (formats.AUTO,) + formats.searched("weights")  # the formats marked searched in data/formats.yaml
KV_DTYPES = (formats.AUTO,) + formats.searched("kv")
DMS_RATIOS = (1.0, 2.0, 4.0, 8.0)
ALLOCATIONS = ((True, 16), (True, 32), (False, 16))  # (paged, block size)
PREFILL_CHUNKS = (None, 2048)


@dataclass(frozen=True)
class SearchLimits:
    """What the user allows: GPU count, host memory for offload, lossy knobs."""

    max_gpus: int
    exact_gpus: int | None = None  # --gpus N: exactly N
    host_memory_bytes: int = DEFAULT_HOST_MEMORY_BYTES
    allow_dms: bool = True
    allow_emulated_fp8: bool = False
    fixed_weights: str | None = None
    fixed_kv_dtype: str | None = None
    keep_dominated: bool = False  # fit --all: also deeper pipelines of plans that already fit
    kv_policies: tuple[KvPolicy, ...] = ()  # fit --kv-policy: bounded-KV policies the user allows, searched besides full KV
    allow_prefill_chunks: bool = True  # False with --images: generate() cannot chunk a prompt with raw pixel_values


def runs_natively(fmt: str, gpu: GpuSpec) -> bool:
    return fmt == formats.AUTO or formats.get(fmt).runs_natively(gpu.architecture, gpu.supports_fp8)


def weight_formats(gpu: GpuSpec, limits: SearchLimits) -> tuple[str, ...]:
    if limits.fixed_weights:
        return (limits.fixed_weights,)
    return tuple(w for w in WEIGHTS if runs_natively(w, gpu) or limits.allow_emulated_fp8)


def kv_dtypes(gpu: GpuSpec, limits: SearchLimits) -> tuple[str, ...]:
    if limits.fixed_kv_dtype:
        return (limits.fixed_kv_dtype,)
    return tuple(k for k in KV_DTYPES if runs_natively(k, gpu) or limits.allow_emulated_fp8)


def dms_ratios(limits: SearchLimits) -> tuple[float, ...]:
    return DMS_RATIOS if limits.allow_dms else (1.0,)


def kv_choices(limits: SearchLimits) -> tuple[tuple[float, KvPolicy | None], ...]:
    """(DMS ratio, KV policy) pairs: full KV, the DMS ratios, then each policy the user named (one at a time)."""
    return tuple((r, None) for r in dms_ratios(limits)) + tuple((1.0, p) for p in dict.fromkeys(limits.kv_policies))


def parallel_layouts(model: ModelSpec, gpu: GpuSpec, limits: SearchLimits) -> tuple[tuple[int, int], ...]:
    """(tp, pp) pairs: TP divides the heads and stays in a node; PP only once TP fills a node."""
    node = gpu.num_gpus_per_node
    tps = [t for t in TP_DEGREES if t <= node and model.num_attention_heads % t == 0]
    out = []
    for tp in tps:
        for pp in range(1, model.num_layers + 1):
            n = tp * pp
            if n > limits.max_gpus or (pp > 1 and tp != max(tps)):
                break
            if limits.exact_gpus is None or n == limits.exact_gpus:
                out.append((tp, pp))
    return tuple(out)
