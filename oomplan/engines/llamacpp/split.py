"""llama.cpp (llama-server): -ngl layer split, KV cache types, compute buffer, and the largest -ngl that fits.

src/llama-model.cpp load_tensors: the input layer (token_embd) stays on the CPU; since ggml-org/llama.cpp#18148
(merged 2025-12-18, "offload output layer to GPU first"; at ggml-org/llama.cpp@00342301 it was max(n_layer - ngl, 0),
the output layer last) i_gpu_start = max(n_layer + 1 - ngl, 0): -ngl k puts the
output layer on the GPU first (k >= 1), then the last k - 1 repeating layers. The KV cache of an offloaded layer
sits on its GPU (src/llama-kv-cache.cpp), n_ctx cells padded to 256; sliding-window layers keep only the
window (unless --swa-full). --fit (on by default) keeps 1024 MiB of the memory free at load (the card less its
CUDA context) per device.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from oomplan.engines.llamacpp.constants import LlamaCppConstants, llamacpp_constants
from oomplan.engines.llamacpp.gguf import GgufSizes, gguf_sizes, row_bytes
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.errors import InputError
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.units import FP32, ceil_div, round_up


@dataclass(frozen=True)
class GpuSplit:
    """Where everything sits for one -ngl value."""

    n_gpu_layers: int  # effective, 0..n_layer+1
    weights_gpu_bytes: int
    weights_host_bytes: int
    kv_gpu_bytes: int
    kv_host_bytes: int
    compute_bytes: int
    kv_cells: int
    experts_host_bytes: int = 0  # routed experts kept in host memory by --n-cpu-moe (part of weights_host_bytes)
    num_cpu_moe_layers: int = 0

    @property
    def gpu_bytes(self) -> int:
        return self.weights_gpu_bytes + self.kv_gpu_bytes + self.compute_bytes


def ctx_cells(model: ModelSpec, s: LlamaCppGiven, c: LlamaCppConstants) -> int:
    ctx = c.default_ctx_tokens if s.ctx_tokens is None else s.ctx_tokens or model.max_position_embeddings
    return round_up(ctx, c.ctx_padding_tokens)


def _cache_type(name: str, flag: str, c: LlamaCppConstants) -> str:
    t = name.upper()
    if t not in c.cache_types:
        raise InputError(f"{flag}: {name!r} is not a KV cache type; accepted: {', '.join(x.lower() for x in c.cache_types)}")
    return t


def kv_layer_bytes(model: ModelSpec, s: LlamaCppGiven, cells: int, layer: int, c: LlamaCppConstants) -> int:
    """One layer's K and V rows (ggml_row_size of the cache types); MLA caches the latent + rope key as K."""
    if model.mla is not None:
        k_elems, v_elems = model.mla.kv_lora_rank + model.mla.qk_rope_head_dim, model.mla.kv_lora_rank
    else:
        k_elems = v_elems = model.num_kv_heads * model.head_dim
    if model.layer_attention[layer] == "sliding" and not s.swa_full:
        assert model.sliding_window_tokens is not None, "sliding-window layers carry their window"
        window = ceil_div(model.sliding_window_tokens * s.n_parallel + _ubatch(s, c), c.ctx_padding_tokens) * c.ctx_padding_tokens
        cells = min(cells, window)  # llama-kv-cache-iswa: n_swa * n_seq + n_ubatch
    k = row_bytes(_cache_type(s.cache_type_k, "--cache-type-k", c), k_elems) * cells
    return k + row_bytes(_cache_type(s.cache_type_v, "--cache-type-v", c), v_elems) * cells


def _ubatch(s: LlamaCppGiven, c: LlamaCppConstants) -> int:
    return s.ubatch_tokens or c.default_ubatch_tokens


def flash_attention(model: ModelSpec, s: LlamaCppGiven, c: LlamaCppConstants) -> bool:
    if s.flash_attn in ("on", "off"):
        return s.flash_attn == "on"
    head = model.mla.kv_lora_rank + model.mla.qk_rope_head_dim if model.mla else model.head_dim
    return head in c.flash_attn_head_dims


def compute_buffer_bytes(model: ModelSpec, s: LlamaCppGiven, cells: int, c: LlamaCppConstants) -> int:
    """The GPU compute buffer (ggml-alloc's peak): the output layer's logits, or one layer's working set."""
    ub, h = min(_ubatch(s, c), cells), model.hidden_size
    return max((model.vocab_size + h) * ub * FP32, layer_compute_bytes(model, s, cells, c))


def layer_compute_bytes(model: ModelSpec, s: LlamaCppGiven, cells: int, c: LlamaCppConstants) -> int:
    """One layer's working set: the KQ scores (f32) + scratch without flash attention, else the FFN activations."""
    ub, h = min(_ubatch(s, c), cells), model.hidden_size
    scratch = c.compute_scratch_rows * h * ub * FP32
    if not flash_attention(model, s, c):
        return cells * ub * model.num_attention_heads * FP32 + scratch  # KQ scores, f32
    ff = model.intermediate_size
    if model.moe is not None:
        ff = max(ff, model.moe.num_experts_per_token * model.moe.expert_intermediate_size)
    return scratch + 2 * ff * ub * FP32


def gpu_split(model: ModelSpec, sizes: GgufSizes, s: LlamaCppGiven, ngl: int) -> GpuSplit:
    c, n = llamacpp_constants(), model.num_layers
    ngl = n + 1 if ngl < 0 else min(ngl, n + 1)
    first, output = gpu_layer_start(n, ngl), ngl >= 1
    cells = ctx_cells(model, s, c)
    kv = [kv_layer_bytes(model, s, cells, i, c) for i in range(n)]
    cpu_moe = cpu_moe_layers(model, s)
    experts_host = sum(sizes.expert_bytes[first:cpu_moe]) if sizes.expert_bytes else 0  # GPU layers' experts kept on the CPU
    w_gpu = sum(sizes.layer_bytes[first:]) + (sizes.output_bytes if output else 0) - experts_host
    # the CUDA buffer's padded rows of what it holds (gguf.cuda_row_padding_bytes; 0 in a sizes.without_padding())
    padding = (sizes.layer_padding(first) - sizes.expert_padding(first, max(first, cpu_moe))
               + (sizes.output_padding_bytes if output else 0))
    kv_gpu = 0 if s.no_kv_offload else sum(kv[first:])
    return GpuSplit(ngl, w_gpu + padding, sizes.total_bytes - w_gpu, kv_gpu, sum(kv) - kv_gpu,
                    compute_buffer_bytes(model, s, cells, c), cells, experts_host, cpu_moe)


def gpu_layer_start(n_layer: int, ngl: int) -> int:
    """llama-model.cpp load_tensors i_gpu_start = max(n_layer + 1 - ngl, 0) (llama.cpp#18148): the first repeating layer on
    a GPU; the output layer (il = n_layer) is on a GPU for any ngl >= 1."""
    return max(n_layer + 1 - ngl, 0)


def gpu_repeating_layers(n_layer: int, ngl: int) -> int:
    """How many repeating layers -ngl puts on the GPU(s): all but the output layer, which goes first."""
    return n_layer - gpu_layer_start(n_layer, min(max(ngl, 0), n_layer + 1))


def cpu_moe_layers(model: ModelSpec, s: LlamaCppGiven) -> int:
    """common/arg.cpp -ncmoe/--n-cpu-moe N: one CPU buffer override per layer i < N, llm_ffn_exps_block_regex(i)
    (-cmoe/--cpu-moe and -ot exps=CPU: every layer). 0 for a model without routed experts."""
    if model.moe is None or s.n_cpu_moe == 0:
        return 0
    n = model.num_layers if s.n_cpu_moe < 0 else s.n_cpu_moe
    if n > model.num_layers:
        raise InputError(f"--n-cpu-moe: {n} is more than {model.name}'s {model.num_layers} layers")
    return n


def fit_n_cpu_moe(model: ModelSpec, gpu: GpuSpec, s: LlamaCppGiven, sizes: GgufSizes | None = None) -> int | None:
    """The fewest --n-cpu-moe layers with which every layer (-ngl all) leaves --fit's margin free; None when even
    all experts on the CPU do not fit, or the model has no experts. GPU bytes only fall as N grows: binary search."""
    if model.moe is None:
        return None
    c, sizes = llamacpp_constants(), sizes or gguf_sizes(model, s.gguf_type)
    budget, n = gpu.memory_bytes - gpu.overhead.cuda_context_bytes - c.fit_margin_bytes, model.num_layers

    def fits(k: int) -> bool:
        return gpu_split(model, sizes, replace(s, n_cpu_moe=k), n + 1).gpu_bytes <= budget
    if not fits(n):
        return None
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    return lo


def decode_tokens_per_s(model: ModelSpec, gpu: GpuSpec, sizes: GgufSizes, split: GpuSplit, c: LlamaCppConstants) -> float:
    """Memory-bound decode: every dense weight is read once per token, routed experts in the ratio of active to
    total experts; GPU-resident bytes at the card's bandwidth, host-resident ones (CPU layers, --n-cpu-moe
    experts, computed by the CPU) at the host RAM bandwidth."""
    share = model.moe.num_experts_per_token / model.moe.num_experts if model.moe else 1.0
    experts = sum(sizes.expert_bytes) if sizes.expert_bytes else 0
    gpu_expert_bytes = experts - split.experts_host_bytes - _cpu_layer_experts(sizes, split)
    gpu_read = split.weights_gpu_bytes - gpu_expert_bytes * (1 - share)
    host_experts = split.experts_host_bytes + _cpu_layer_experts(sizes, split)
    host_read = (split.weights_host_bytes - sizes.token_embd_bytes) - host_experts * (1 - share)
    seconds = gpu_read / gpu.memory_bandwidth_bytes_per_s + host_read / c.host_memory_bandwidth_bytes_per_s
    return 1 / seconds if seconds > 0 else 0.0


def _cpu_layer_experts(sizes: GgufSizes, split: GpuSplit) -> int:
    """Experts of the layers -ngl leaves on the CPU."""
    first = gpu_layer_start(len(sizes.layer_bytes), split.n_gpu_layers)
    return sum(sizes.expert_bytes[:first]) if sizes.expert_bytes else 0


def fit_n_gpu_layers(model: ModelSpec, gpu: GpuSpec, s: LlamaCppGiven, sizes: GgufSizes | None = None) -> int | None:
    """The largest -ngl whose GPU memory leaves --fit's margin free (common_fit_params); None if even 0 does not.
    GPU bytes only grow with -ngl, so a binary search is exact."""
    c, sizes = llamacpp_constants(), sizes or gguf_sizes(model, s.gguf_type)
    budget = gpu.memory_bytes - gpu.overhead.cuda_context_bytes - c.fit_margin_bytes
    if gpu_split(model, sizes, s, 0).gpu_bytes > budget:
        return None
    lo, hi = 0, model.num_layers + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if gpu_split(model, sizes, s, mid).gpu_bytes <= budget else (lo, mid - 1)
    return lo
