"""The per-GPU budget of a MeasuredModel (an architecture counted by transformers on the meta device).

Pure arithmetic on what oomplan/probe/hf_meta.py measured (oomplan/specs/measured.py says what is
counted, derived and measured). Only what can be priced exactly is accepted: one GPU (no family means no
sharding rules: tensor/pipeline splits are refused), the dtype the model was built in, KV in that dtype,
no DMS, no offload. Overheads (CUDA context, cuBLAS, allocator) are the GPU profile's, as for every plan.
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.errors import InputError
from oomplan.memory.overhead import OverheadBudget, overhead_budget
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.measured import MeasuredModel
from oomplan.specs.plan import Plan, Workload
from oomplan.units import round_up


@dataclass(frozen=True)
class MeasuredEstimate:
    model: MeasuredModel
    gpu: GpuSpec
    workload: Workload
    plan: Plan
    weights_bytes: int
    kv_cache_bytes: int
    kv_cache_bytes_per_token: int  # every layer, one more token of one sequence (before any window caps it)
    state_bytes: int
    state_bytes_per_sequence: int
    activation_bytes: int
    overhead: OverheadBudget
    warnings: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.state_bytes + self.activation_bytes + self.overhead.total

    @property
    def capacity_bytes(self) -> int:
        return self.gpu.memory_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.total_bytes

    @property
    def fits(self) -> bool:
        return self.headroom_bytes >= 0


def refuse_unpriced_plan(where: str, dtype: str, plan: Plan, workload: Workload, flags: dict[str, bool]) -> None:
    """Exit 2 naming the first flag the transformers path cannot price exactly for a model counted in `dtype`
    (`flags`: CLI-only knobs, True when set)."""
    reasons = {
        "--tp": (plan.tensor_parallel != 1, "tensor parallelism: oomplan has no family (sharding rules) for this model_type"),
        "--pp": (plan.pipeline_parallel != 1, "pipeline stages: oomplan has no family (layer split) for this model_type"),
        "--ep": (plan.expert_parallel, "expert parallelism: oomplan has no family for this model_type"),
        "--weights": (plan.weights not in ("auto", dtype), f"the model was counted in {dtype}; re-quantised weights are priced only by a family"),
        "--component-weights": (bool(plan.component_weights), "per-component formats are priced only by a family"),
        "--kv-dtype": (plan.kv_dtype not in ("auto", dtype), f"the cache was measured in {dtype}"),
        "--dms": (plan.dms_ratio != 1.0, "DMS needs a family's attention layout"),
        "--offload-gib": (plan.offload_bytes != 0, "offload needs a family's per-layer weights"),
        "--engine": (workload.engine != "hf", "the meta device runs transformers; engines are priced only by a family"),
    } | {flag: (True, "not available for a model counted by transformers") for flag, on in flags.items() if on}
    for flag, (refused, why) in reasons.items():
        if refused:
            raise InputError(f"{flag}: {where}: {why}; refusing rather than guessing")


def cache_tokens(plan: Plan, ctx_tokens: int, window_tokens: int | None) -> int:
    """Tokens one sequence keeps in one layer: the window caps it; paging rounds it up to blocks (memory/kv_cache.py)."""
    tokens = min(ctx_tokens, window_tokens) if window_tokens else ctx_tokens
    return round_up(tokens, plan.block_size) if plan.paged else tokens


def measured_estimate(model: MeasuredModel, gpu: GpuSpec, workload: Workload, plan: Plan) -> MeasuredEstimate:
    """One GPU: weights + KV + state (derived for the workload) + the activation transient (measured at its shape)."""
    refuse_unpriced_plan(f"{model.name} (counted by {model.counted_by})", model.dtype, plan, workload, {})
    acts = model.activations
    if (acts.ctx_tokens, acts.batch_size) != (workload.ctx_tokens, workload.batch_size):
        raise ValueError(f"{model.name}: activations were measured at ctx {acts.ctx_tokens} x batch {acts.batch_size}, "
                         f"not ctx {workload.ctx_tokens} x batch {workload.batch_size}")
    b = workload.batch_size
    kv = sum(layer.shared_bytes + b * layer.bytes_per_token * cache_tokens(plan, workload.ctx_tokens, layer.window_tokens)
             for layer in model.cache_layers)
    per_sequence = sum(layer.per_sequence_bytes for layer in model.cache_layers)
    tensors = model.weights_bytes + kv + b * per_sequence + acts.transient_bytes
    warnings = []
    if model.max_position_embeddings and workload.ctx_tokens > model.max_position_embeddings:
        warnings.append(f"--ctx {workload.ctx_tokens} exceeds the model's max_position_embeddings ({model.max_position_embeddings})")
    return MeasuredEstimate(
        model=model, gpu=gpu, workload=workload, plan=plan, weights_bytes=model.weights_bytes, kv_cache_bytes=kv,
        kv_cache_bytes_per_token=sum(layer.bytes_per_token for layer in model.cache_layers),
        state_bytes=b * per_sequence, state_bytes_per_sequence=per_sequence, activation_bytes=acts.transient_bytes,
        overhead=overhead_budget(gpu, tensors, 1), warnings=tuple(warnings),
    )
