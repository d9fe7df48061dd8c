"""vLLM (V1 engine) on each GPU of each pipeline stage: weights, profile run, the KV pool and its blocks.

KV pool per GPU = total_memory x gpu_memory_utilization - (weights + profile-run activation peak + non-torch
memory) (vllm/v1/worker/gpu_worker.py determine_available_memory), cut into blocks per layer group
(vllm/v1/core/kv_cache_utils.py); with pipeline parallelism every stage takes the smallest block count.
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.engines.vllm.constants import VllmConstants, vllm_constants
from oomplan.engines.vllm.kv import KvLayout, kv_layout, num_kv_blocks, request_bytes
from oomplan.engines.vllm.profile import ProfileRun, non_torch_bytes, profile_run
from oomplan.engines.vllm.settings import KV_CACHE_DTYPES, VllmGiven, VllmResolved, resolve
from oomplan.engines.weights import activation_dtype_bytes, served_plan, stage_weight_bytes
from oomplan.errors import InputError
from oomplan.memory.layout import pipeline_stages
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import FP32


@dataclass(frozen=True)
class VllmStage:
    """One GPU of one pipeline stage."""

    stage: int
    weights_bytes: int
    profile: ProfileRun
    non_torch_bytes: int
    cuda_graph_bytes: int  # the CUDA-graph estimate taken from the budget (0.20+); 0 where graphs sit outside it
    available_kv_bytes: int  # requested memory - non-KV memory, before cutting into blocks
    layout: KvLayout
    num_blocks: int  # this stage's own count (the engine then uses the minimum over stages)

    @property
    def non_kv_bytes(self) -> int:
        return self.weights_bytes + self.profile.activation_peak_bytes + self.non_torch_bytes + self.cuda_graph_bytes


def engine_plan(model: ModelSpec, s: VllmResolved) -> Plan:
    """The memory model's Plan for the weights: format, TP/PP/EP (KV is vLLM's own, below)."""
    return served_plan(model, s.dtype, s.quantization, s.tensor_parallel, s.pipeline_parallel, s.enable_expert_parallel)



def kv_dtype_bytes(model: ModelSpec, plan: Plan, kv_cache_dtype: str, c: VllmConstants) -> tuple[float, int]:
    """(bytes per element, scale bytes per token per head) of --kv-cache-dtype in this release: the dense
    formats and the per-token-head modes are priced; the release's other (packed) formats are refused."""
    priced = [d for d in c.kv_cache_dtypes if d in KV_CACHE_DTYPES or d in c.per_token_head_kv_bytes]
    if kv_cache_dtype not in c.kv_cache_dtypes:
        raise InputError(f"--kv-cache-dtype: {kv_cache_dtype!r} is not accepted by vLLM {c.engine_version}; use one of {', '.join(priced)}")
    if kv_cache_dtype in c.per_token_head_kv_bytes:
        if model.mla is not None:
            raise InputError(f"--kv-cache-dtype: {kv_cache_dtype!r} with an MLA model ({model.name}) is not modelled; "
                             f"use one of {', '.join(KV_CACHE_DTYPES)}")
        return c.per_token_head_kv_bytes[kv_cache_dtype], 2 * FP32
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise InputError(f"--kv-cache-dtype: {kv_cache_dtype!r} is accepted by vLLM {c.engine_version} but its packed layout "
                         f"is not modelled; use one of {', '.join(priced)}")
    return float(KV_CACHE_DTYPES[kv_cache_dtype] or activation_dtype_bytes(model, plan)), 0


def cuda_graph_budget_bytes(s: VllmResolved, c: VllmConstants) -> int:
    """gpu_worker.determine_available_memory: profile_cudagraph_memory() is taken from the budget from 0.20
    (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1), except under Model Runner V2 before it profiled graphs (0.26)."""
    if s.enforce_eager or not c.cuda_graphs_in_budget or (s.model_runner_v2 and not c.v2_profiles_cuda_graphs):
        return 0
    return c.cuda_graph_bytes


def predict_stage(model: ModelSpec, gpu: GpuSpec, s: VllmResolved, plan: Plan, index: int, c: VllmConstants) -> VllmStage:
    st = pipeline_stages(model.num_layers, s.pipeline_parallel)[index]
    weights = max(0, stage_weight_bytes(model, plan, index, c.vocab_padding) - s.cpu_offload_bytes)
    dt = activation_dtype_bytes(model, plan)
    prof = profile_run(model, st.layer_indices, st.is_last, s.tensor_parallel, s.max_num_batched_tokens,
                       s.max_num_seqs, dt, c, s.model_runner_v2)
    nontorch = non_torch_bytes(s.tensor_parallel, c)
    graphs = cuda_graph_budget_bytes(s, c)
    requested = int(gpu.memory_bytes * s.gpu_memory_utilization)
    available = s.kv_cache_memory_bytes or requested - weights - prof.activation_peak_bytes - nontorch - graphs
    elem, scale = kv_dtype_bytes(model, plan, s.kv_cache_dtype, c)
    layout = kv_layout(model, st.layer_indices, s.tensor_parallel, elem, s.block_size, scale)
    blocks = s.num_gpu_blocks_override or num_kv_blocks(layout, available)  # kv_cache_utils: the override wins
    return VllmStage(index, weights, prof, nontorch, graphs, available, layout, blocks)


def predict_stages(model: ModelSpec, gpu: GpuSpec, given: VllmGiven,
                   constants: VllmConstants | None = None) -> tuple[VllmResolved, tuple[VllmStage, ...]]:
    c = constants or vllm_constants(given.engine_version)
    s = resolve(model, gpu, given, c)
    plan = engine_plan(model, s)
    return s, tuple(predict_stage(model, gpu, s, plan, i, c) for i in range(s.pipeline_parallel))


def busiest(stages: tuple[VllmStage, ...]) -> VllmStage:
    """The stage with the fewest blocks decides the pool (kv_cache_utils: min num_blocks over workers)."""
    return min(stages, key=lambda st: (st.num_blocks, -st.non_kv_bytes))


def refusal(st: VllmStage, s: VllmResolved) -> str | None:
    """Why vLLM raises at start-up on this stage, in its own terms, or None."""
    if st.available_kv_bytes <= 0:
        return (f"no memory left for the KV cache: weights, activations{', CUDA graphs' if st.cuda_graph_bytes else ''} and non-torch memory take "
                f"{st.non_kv_bytes / 2**30:.2f} GiB of the {s.gpu_memory_utilization:g} x total budget")
    need = request_bytes(st.layout, s.max_model_len, s.max_in_flight_tokens)
    if need > st.available_kv_bytes:
        return (f"max_model_len {s.max_model_len} needs {need / 2**30:.2f} GiB of KV cache for one request, "
                f"larger than the available KV cache memory ({st.available_kv_bytes / 2**30:.2f} GiB)")
    return None
