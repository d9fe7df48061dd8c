"""vLLM (V1 engine) on each GPU of each pipeline stage: weights, profile run, the KV pool and its blocks.

KV pool per GPU = total_memory x gpu_memory_utilization - (weights + profile-run activation peak + non-torch
memory) (vllm/v1/worker/gpu_worker.py determine_available_memory), cut into blocks per layer group
(vllm/v1/core/kv_cache_utils.py); with pipeline parallelism every stage takes the smallest block count.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oomplan.engines.vllm.constants import Mxfp4TritonLayout, VllmConstants, vllm_constants
from oomplan.engines.vllm.kv import KvLayout, attention_token_bytes, kv_layout, num_kv_blocks, request_bytes
from oomplan.engines.vllm.mamba import MambaLayout, MambaSettings, mamba_layout, vllm_dtype_name
from oomplan.engines.vllm.profile import ProfileRun, non_torch_bytes, profile_run, v2_persistent_bytes
from oomplan.engines.vllm.settings import KV_CACHE_DTYPES, VllmGiven, VllmResolved, resolve
from oomplan.engines.weights import (activation_dtype_bytes, mxfp4_expert_padding_bytes, rope_cache_bytes, served_plan,
                                     stage_weight_bytes)
from oomplan.errors import InputError
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.weights import dense_dtype
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import FP32, round_up


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
    persistent_bytes: int = 0  # Model Runner V2's sampler state, counted from 0.27 (profile.v2_persistent_bytes)

    @property
    def non_kv_bytes(self) -> int:
        return (self.weights_bytes + self.profile.activation_peak_bytes + self.non_torch_bytes + self.cuda_graph_bytes
                + self.persistent_bytes)


def engine_plan(model: ModelSpec, s: VllmResolved) -> Plan:
    """The memory model's Plan for the weights: format, TP/PP/EP (KV is vLLM's own, below)."""
    return served_plan(model, s.dtype, s.quantization, s.tensor_parallel, s.pipeline_parallel, s.enable_expert_parallel)



def kv_dtype_bytes(model: ModelSpec, plan: Plan, kv_cache_dtype: str, c: VllmConstants) -> tuple[float, int]:
    """(bytes per element, scale bytes per token per head) of --kv-cache-dtype in this release: the dense
    formats and the per-token-head modes are priced; the release's other (packed) formats are refused
    (fp8_ds_mla: sparse_mla_token_bytes)."""
    priced = [d for d in c.kv_cache_dtypes if d in KV_CACHE_DTYPES or d in c.per_token_head_kv_bytes or d == "fp8_ds_mla"]
    if kv_cache_dtype not in c.kv_cache_dtypes:
        raise InputError(f"--kv-cache-dtype: {kv_cache_dtype!r} is not accepted by vLLM {c.engine_version}; use one of {', '.join(priced)}")
    if kv_cache_dtype == "fp8_ds_mla" and model.indexer is None:
        raise InputError(f"--kv-cache-dtype: 'fp8_ds_mla' is the sparse-MLA format of DeepSeek-V3.2 / GLM-5 (FLASHMLA_SPARSE); "
                         f"{model.name} has no DSA indexer, use one of {', '.join(KV_CACHE_DTYPES)}")
    if kv_cache_dtype in c.per_token_head_kv_bytes:
        if model.mla is not None:
            raise InputError(f"--kv-cache-dtype: {kv_cache_dtype!r} with an MLA model ({model.name}) is not modelled; "
                             f"use one of {', '.join(KV_CACHE_DTYPES)}")
        return c.per_token_head_kv_bytes[kv_cache_dtype], 2 * FP32
    if kv_cache_dtype not in KV_CACHE_DTYPES and kv_cache_dtype != "fp8_ds_mla":
        raise InputError(f"--kv-cache-dtype: {kv_cache_dtype!r} is accepted by vLLM {c.engine_version} but its packed layout "
                         f"is not modelled; use one of {', '.join(priced)}")
    return float(KV_CACHE_DTYPES.get(kv_cache_dtype) or activation_dtype_bytes(model, plan)), 0


# FlashMLASparseBackend.supported_kv_cache_dtypes (v1/attention/backends/mla/flashmla_sparse.py 0.19.0 - 0.26.0)
SPARSE_MLA_KV_DTYPES = ("auto", "bfloat16", "fp8", "fp8_ds_mla")


def sparse_mla_token_bytes(model: ModelSpec, gpu: GpuSpec, kv_cache_dtype: str, c: VllmConstants) -> tuple[int | None, int]:
    """DSA models (DeepSeek-V3.2, GLM-5): (the MLA latent's bytes per token, None for the plain layout; the indexer
    key cache's bytes per token). fp8 kv caches become fp8_ds_mla on FLASHMLA_SPARSE (mla_attention.py)."""
    if model.indexer is None:
        return None, 0
    if not c.dsa_modelled:
        raise InputError(f"{model.name}: vLLM {c.engine_version}'s sparse-MLA (DSA) pool layout is not modelled; "
                         "use --engine-version 0.26 (or --engine hf)")
    if gpu.architecture != "hopper":
        # platforms/cuda.py _get_backend_priorities 0.19.0 - 0.26.0: FLASHMLA_SPARSE is the sparse backend on SM90;
        # SM100 prefers FLASHINFER_MLA_SPARSE (fp8 KV, or <= 16 heads per GPU), a different page format; older
        # cards have no sparse-MLA kernel
        raise InputError(f"{model.name}: vLLM's sparse-MLA backend on {gpu.display_name} ({gpu.architecture}) is not "
                         "modelled (priced on Hopper, FLASHMLA_SPARSE); --engine hf prices this model")
    if not all(layer.attention.indexed for layer in model.layers if layer.attention.kind == "mla"):
        raise InputError(f"{model.name}: some MLA layers without the DSA indexer: vLLM's per-layer pages differ; not modelled")
    if kv_cache_dtype not in SPARSE_MLA_KV_DTYPES:
        raise InputError(f"--kv-cache-dtype: {kv_cache_dtype!r} is not accepted by vLLM's sparse-MLA backend (FLASHMLA_SPARSE) "
                         f"for {model.name}; use one of {', '.join(SPARSE_MLA_KV_DTYPES)}")
    return (c.fp8_ds_mla_bytes_per_token if kv_cache_dtype.startswith("fp8") else None), indexer_token_bytes(model, c)


def indexer_token_bytes(model: ModelSpec, c: VllmConstants) -> int:
    """deepseek_v2.py Indexer k_cache: index_head_dim fp8 values + one fp32 scale per 128 (132 bytes for 128)."""
    assert model.indexer is not None, "called for DSA models"
    d = model.indexer.head_dim
    return d * c.dsa_indexer_bytes_per_value + d // 128 * c.dsa_indexer_scale_bytes_per_128


def dsa_block_size(model: ModelSpec, s: VllmResolved, given_block_size: int | None, c: VllmConstants) -> int:
    """FLASHMLA_SPARSE runs 64-token kernel blocks: update_block_size_for_backend picks 64 unless --block-size is given."""
    if given_block_size is None:
        return c.dsa_block_size
    if given_block_size % c.dsa_block_size:
        raise InputError(f"--block-size: {given_block_size} with {model.name}'s sparse MLA; FLASHMLA_SPARSE accepts {c.dsa_block_size}")
    return s.block_size


def stage_mamba(model: ModelSpec, gpu: GpuSpec, s: VllmResolved, plan: Plan, given_block_size: int | None, elem: float,
                scale: int, c: VllmConstants) -> MambaLayout | None:
    """The hybrid manager's state layout (whole model: vLLM raises one block size for every stage)."""
    mixers = [m for layer in model.layers if (m := layer.attention.state) is not None]
    if not mixers:
        return None
    if model.mla is not None:
        raise InputError(f"{model.name}: vLLM's hybrid layout of MLA with state layers is not modelled; --engine hf prices this model")
    ms = MambaSettings(s.mamba_cache_dtype, s.mamba_ssm_cache_dtype, s.mamba_cache_mode, s.mamba_block_size,
                       True if s.enable_prefix_caching else False if s.disable_prefix_caching else None)
    return mamba_layout(model, gpu, mixers, s.tensor_parallel, vllm_dtype_name(dense_dtype(model, plan)),
                        attention_token_bytes(model, s.tensor_parallel, elem, scale), given_block_size, s.block_size, ms, c)


def cuda_graph_budget_bytes(s: VllmResolved, c: VllmConstants) -> int:
    """gpu_worker.determine_available_memory: profile_cudagraph_memory() is taken from the budget from 0.20
    (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1), except under Model Runner V2 before it profiled graphs (0.26)."""
    if s.enforce_eager or not c.cuda_graphs_in_budget or (s.model_runner_v2 and not c.v2_profiles_cuda_graphs):
        return 0
    return c.cuda_graph_bytes


def mxfp4_triton_expert_bytes(layout: Mxfp4TritonLayout) -> Callable[[int, int, int, bool], int]:
    """One FusedMoE layer's experts as the TRITON MXFP4 backend keeps them (c.mxfp4_triton_layout and its sources):
    each uint8 weight [E, N, K/2] padded to (value_pre_pad, then value_tile) in (N, K/2), each scale [E, N, K/32] to
    (scale_tile) after its groups are padded to scale_group_pad, the checkpoint scales too while they stay allocated,
    and fp32 biases w13 [E, 2I] and w2 [E, H]; w13 has N = 2I, K = H and w2 N = H, K = I."""
    def weight(rows: int, k: int) -> int:
        pre = layout.value_pre_pad
        return (round_up(round_up(rows, pre), layout.value_tile[0])
                * round_up(round_up(k // 2, pre), layout.value_tile[1]))

    def scale(rows: int, k: int) -> int:
        groups = round_up(k // 32, layout.scale_group_pad)
        swizzled = round_up(rows, layout.scale_tile[0]) * round_up(groups, layout.scale_tile[1])
        return swizzled + (rows * (k // 32) if layout.keeps_checkpoint_scales else 0)

    def stored(num_experts: int, hidden: int, intermediate: int, bias: bool) -> int:
        w13 = weight(2 * intermediate, hidden) + scale(2 * intermediate, hidden)
        w2 = weight(hidden, intermediate) + scale(hidden, intermediate)
        biases = layout.bias_bytes * (2 * intermediate + hidden) if bias else 0
        return num_experts * (w13 + w2 + biases)
    return stored


def mxfp4_padding_bytes(model: ModelSpec, gpu: GpuSpec, plan: Plan, index: int, c: VllmConstants) -> int:
    """The MXFP4 MoE backend's expert padding on this card (c.mxfp4_moe_padding, by GPU architecture), and on the
    TRITON backend's cards (c.mxfp4_triton_layout) its weight swizzle."""
    pad = c.mxfp4_moe_padding.get(gpu.architecture) if gpu.vendor == "nvidia" else None
    if pad is None:
        return 0
    if gpu.architecture in c.mxfp4_triton_layout.architectures:
        return mxfp4_expert_padding_bytes(model, plan, index, *pad, mxfp4_triton_expert_bytes(c.mxfp4_triton_layout))
    return mxfp4_expert_padding_bytes(model, plan, index, *pad)


def fp32_rope_extra_bytes(model: ModelSpec, plan: Plan, c: VllmConstants) -> int:
    """The rotary cache's extra bytes where vLLM builds it in fp32 (c.fp32_rope_architectures, gpt_oss.py)."""
    if not set(model.architectures) & set(c.fp32_rope_architectures):
        return 0
    return rope_cache_bytes(model, plan) // activation_dtype_bytes(model, plan) * (4 - activation_dtype_bytes(model, plan))


def predict_stage(model: ModelSpec, gpu: GpuSpec, s: VllmResolved, plan: Plan, index: int, c: VllmConstants,
                  given_block_size: int | None = None) -> VllmStage:
    st = pipeline_stages(model.num_layers, s.pipeline_parallel)[index]
    weights = max(0, stage_weight_bytes(model, plan, index, c.vocab_padding) + mxfp4_padding_bytes(model, gpu, plan, index, c)
                  + fp32_rope_extra_bytes(model, plan, c) - s.cpu_offload_bytes)
    dt = activation_dtype_bytes(model, plan)
    prof = profile_run(model, st.layer_indices, st.is_last, s.tensor_parallel, s.max_num_batched_tokens,
                       s.max_num_seqs, dt, c, s.model_runner_v2)
    nontorch = non_torch_bytes(s.tensor_parallel, c)
    graphs = cuda_graph_budget_bytes(s, c)
    persistent = v2_persistent_bytes(model, st.is_last, s.max_num_seqs, s.model_runner_v2, c)
    requested = int(gpu.memory_bytes * s.gpu_memory_utilization)
    available = s.kv_cache_memory_bytes or requested - weights - prof.activation_peak_bytes - nontorch - graphs - persistent
    elem, scale = kv_dtype_bytes(model, plan, s.kv_cache_dtype, c)
    latent, indexer = sparse_mla_token_bytes(model, gpu, s.kv_cache_dtype, c)
    block = dsa_block_size(model, s, given_block_size, c) if model.indexer is not None else s.block_size
    mamba = stage_mamba(model, gpu, s, plan, given_block_size, elem, scale, c)
    layout = kv_layout(model, st.layer_indices, s.tensor_parallel, elem, block, scale, indexer, latent, mamba)
    blocks = s.num_gpu_blocks_override or num_kv_blocks(layout, available)  # kv_cache_utils: the override wins
    return VllmStage(index, weights, prof, nontorch, graphs, available, layout, blocks, persistent)


def predict_stages(model: ModelSpec, gpu: GpuSpec, given: VllmGiven,
                   constants: VllmConstants | None = None) -> tuple[VllmResolved, tuple[VllmStage, ...]]:
    c = constants or vllm_constants(given.engine_version)
    s = resolve(model, gpu, given, c)
    plan = engine_plan(model, s)
    return s, tuple(predict_stage(model, gpu, s, plan, i, c, given.block_size) for i in range(s.pipeline_parallel))


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
