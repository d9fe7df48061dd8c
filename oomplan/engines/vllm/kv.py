"""vLLM's KV cache manager on one GPU: per-layer KV specs, groups, blocks, tokens, concurrency.

Mirrors vllm/v1/kv_cache_interface.py (page sizes, max_memory_usage_bytes) and
vllm/v1/core/kv_cache_utils.py (grouping, get_num_blocks, max concurrency, the start-up check).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oomplan.engines.vllm.mamba import MambaLayout
from oomplan.errors import InputError
from oomplan.specs.model import ModelSpec
from oomplan.units import ceil_div


@dataclass(frozen=True)
class KvLayout:
    """The KV layers of one GPU as vLLM groups them; all layers share one page size (a Mamba state page is padded
    to the attention page: mamba.py). Kinds: full (and MLA), sliding (SlidingWindowSpec), chunked
    (ChunkedLocalAttentionSpec), mamba (MambaSpec: a fixed number of state blocks per request)."""

    page_bytes: int  # one block of one layer
    block_size: int
    num_full_layers: int
    num_sliding_layers: int
    sliding_window_tokens: int | None
    num_chunked_layers: int = 0
    chunk_tokens: int | None = None
    num_mamba_layers: int = 0
    mamba: MambaLayout | None = None

    @property
    def num_layers(self) -> int:
        return self.num_full_layers + self.num_sliding_layers + self.num_chunked_layers + self.num_mamba_layers

    @property
    def _counts(self) -> list[int]:
        return [n for n in (self.num_full_layers, self.num_sliding_layers, self.num_chunked_layers, self.num_mamba_layers) if n]

    @property
    def group_size(self) -> int:
        """kv_cache_utils _get_kv_cache_groups_uniform_page_size (0.19.0 - 0.33.0): the smallest layer count of a
        type, or the largest when it is under 1.5x the smallest (pad the few instead of splitting the many)."""
        counts = self._counts
        if len(counts) <= 1:
            return self.num_layers
        low, high = min(counts), max(counts)
        return high if high < low * 1.5 else low

    @property
    def num_groups(self) -> int:
        return sum(ceil_div(n, self.group_size) for n in self._counts)

    @property
    def bytes_per_token(self) -> int:
        """Every attention layer of this GPU, one token (the pool's tokens are counted this way)."""
        return self.page_bytes * (self.num_layers - self.num_mamba_layers) // self.block_size

    def min_block_size(self, max_model_len: int | None = None) -> int:
        """_report_kv_cache_config (before 0.21): the smallest block size over the groups. A Mamba group's block is
        mamba_block_size: max_model_len in 'none' mode (MambaModelConfig), the attention block in 'align', the
        chunk-aligned block in 'all'."""
        if self.mamba is None:
            return self.block_size
        if self.mamba.mode == "all":
            return min(self.block_size, self.mamba.mamba_block_size)
        if self.mamba.mode == "none" and max_model_len is not None:
            return min(self.block_size, max_model_len)
        return self.block_size


def page_bytes(model: ModelSpec, tensor_parallel: int, kv_dtype_bytes: float, block_size: int,
               scale_bytes_per_head: int = 0, indexer_token_bytes: int = 0, mla_token_bytes: int | None = None) -> int:
    """kv_cache_interface AttentionSpec.page_size_bytes; MLAAttentionSpec: one latent 'head', not split by TP
    (fp8_ds_mla: `mla_token_bytes` = 656 per token). A DSA layer's indexer cache (DeepseekV32IndexerCache, its own
    MLAAttentionSpec in the same full-attention group) adds `indexer_token_bytes` per token: vLLM's uniform-type
    group sums every layer's page, so the pair prices as one page.
    Per-token-head KV modes (vLLM >= 0.20) add an fp32 scale per token per head for K and for V
    (TritonAttentionBackend.customize_spec: content = (head_size_k + head_size_v) x dtype + 2 x 4)."""
    if model.mla is not None:
        latent = mla_token_bytes if mla_token_bytes is not None else (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * kv_dtype_bytes
        return int(block_size * (latent + indexer_token_bytes))
    heads = max(1, model.num_kv_heads // tensor_parallel)  # vllm ModelConfig.get_num_kv_heads
    return int(block_size * heads * (2 * model.head_dim * kv_dtype_bytes + scale_bytes_per_head))


def attention_token_bytes(model: ModelSpec, tensor_parallel: int, kv_dtype_bytes: float, scale_bytes_per_head: int = 0) -> int:
    """FullAttentionSpec(block_size=1).page_size_bytes: what the hybrid block raise divides the state by."""
    return page_bytes(model, tensor_parallel, kv_dtype_bytes, 1, scale_bytes_per_head)


def kv_layout(model: ModelSpec, layer_indices: tuple[int, ...], tensor_parallel: int, kv_dtype_bytes: float,
              block_size: int, scale_bytes_per_head: int = 0, indexer_token_bytes: int = 0,
              mla_token_bytes: int | None = None, mamba: MambaLayout | None = None) -> KvLayout:
    layers = [model.layers[i].attention for i in layer_indices]
    kinds = [a.kind for a in layers]
    known = {"full", "sliding", "chunked", "mla", "linear", "none"}
    if any(k not in known for k in kinds):
        # e.g. Mllama's cross-attention (encoder) cache: an honest refusal (exit 2), not a guess
        odd = sorted({k for k in kinds if k not in known})
        raise InputError(f"{model.name}: vLLM's KV layout of {', '.join(odd)} layers is not modelled; --engine hf prices this model")
    # A parallel hybrid layer (Falcon-H1: attention and a Mamba-2 mixer side by side) is two vLLM layers, one
    # FullAttentionSpec and one MambaSpec: models/falcon_h1.py FalconH1ParallelHybrid registers the mixer under its own
    # layer index (num_hidden_layers + i, "In V1 all attention/ssm layers must have different index in prefix", 0.19.0 -
    # 0.33.0), so get_kv_cache_spec lists both and kv_cache_utils groups them by type like any hybrid's
    parallel = [a.kind for a in layers if a.state is not None and a.kind != "linear"]
    if odd_parallel := sorted(set(parallel) - {"full"}):
        raise InputError(f"{model.name}: vLLM's KV layout of {', '.join(odd_parallel)} attention beside a state mixer is not "
                         "modelled; --engine hf prices this model")
    num_parallel = len(parallel)
    chunks = {a.window_tokens for a in layers if a.kind == "chunked"}
    windows = {a.window_tokens for a in layers if a.kind == "sliding"}
    if len(chunks) > 1 or len(windows) > 1:
        raise InputError(f"{model.name}: layers with different windows are separate vLLM KV groups; not modelled, --engine hf prices this model")
    num_mamba = kinds.count("linear") + num_parallel
    if num_mamba and mamba is None:
        raise ValueError("state layers need their MambaLayout")
    block = mamba.block_size if mamba is not None and num_mamba else block_size
    num_sliding, num_chunked = kinds.count("sliding"), kinds.count("chunked")
    num_full = kinds.count("full") + kinds.count("mla")
    if num_mamba and not (num_full or num_sliding or num_chunked):
        # an attention-free stage (a pure Mamba model, or a PP stage of state layers only): vLLM sizes its blocks by
        # the state page and max_model_len (MambaModelConfig); not modelled
        raise InputError(f"{model.name}: vLLM's pool for a stage of state layers only (no attention layer) is not modelled; "
                         "--engine hf prices this model")
    page = page_bytes(model, tensor_parallel, kv_dtype_bytes, block, scale_bytes_per_head, indexer_token_bytes, mla_token_bytes)
    return KvLayout(page, block, num_full, num_sliding, windows.pop() if windows else None,
                    num_chunked, chunks.pop() if chunks else None, num_mamba, mamba if num_mamba else None)


def num_kv_blocks(layout: KvLayout, available_bytes: int) -> int:
    """kv_cache_utils get_num_blocks: available // page_size // num_layers (per group_size for hybrids)."""
    return max(0, available_bytes // layout.page_bytes // layout.group_size)


def kv_tokens(layout: KvLayout, num_blocks: int, max_model_len: int | None = None) -> int:
    """The 'GPU KV cache size: N tokens' line before 0.21: num_blocks // num_groups * min_block_size."""
    return num_blocks // layout.num_groups * layout.min_block_size(max_model_len)


def logged_kv_tokens(layout: KvLayout, num_blocks: int, max_model_len: int, max_in_flight_tokens: int) -> int:
    """The 'GPU KV cache size' line from 0.21 (kv_cache_utils._report_kv_cache_config):
    int(max concurrency x max_model_len), windowed groups counted at their per-request cap."""
    return int(max_concurrency(layout, num_blocks, max_model_len, max_in_flight_tokens) * max_model_len)


def _sliding_blocks(layout: KvLayout, max_model_len: int, in_flight_tokens: int) -> int:
    """SlidingWindowSpec.max_memory_usage_bytes: window - 1 + the in-flight tokens (one prefill chunk before 0.26;
    max_in_flight_tokens after), +1 block for misalignment."""
    assert layout.sliding_window_tokens is not None, "sliding-window layers carry their window"
    tokens = min(layout.sliding_window_tokens - 1 + in_flight_tokens, max_model_len)
    return ceil_div(tokens, layout.block_size) + 1


def _chunked_blocks(layout: KvLayout, max_model_len: int, in_flight_tokens: int) -> int:
    """ChunkedLocalAttentionSpec.max_memory_usage_bytes (max_admission_blocks_per_request): chunk + the in-flight
    tokens (one prefill chunk before 0.26), no extra block."""
    assert layout.chunk_tokens is not None, "chunked layers carry their chunk"
    return ceil_div(min(layout.chunk_tokens + in_flight_tokens, max_model_len), layout.block_size)


def _group_blocks(layout: KvLayout, max_model_len: int, in_flight_tokens: int) -> list[tuple[int, int]]:
    """(number of groups, blocks one request of max_model_len takes in each) per layer type."""
    g = layout.group_size
    out = [(ceil_div(layout.num_full_layers, g), ceil_div(max_model_len, layout.block_size))] if layout.num_full_layers else []
    if layout.num_sliding_layers:
        out.append((ceil_div(layout.num_sliding_layers, g), _sliding_blocks(layout, max_model_len, in_flight_tokens)))
    if layout.num_chunked_layers:
        out.append((ceil_div(layout.num_chunked_layers, g), _chunked_blocks(layout, max_model_len, in_flight_tokens)))
    if layout.num_mamba_layers:
        assert layout.mamba is not None, "state layers carry their MambaLayout"
        out.append((ceil_div(layout.num_mamba_layers, g), layout.mamba.state_blocks(max_model_len)))
    return out


def blocks_per_request(layout: KvLayout, max_model_len: int, in_flight_tokens: int) -> int:
    """get_max_concurrency_for_kv_cache_config: one request's blocks, summed over the groups (a Mamba group:
    its state blocks, whatever the length)."""
    return sum(n * blocks for n, blocks in _group_blocks(layout, max_model_len, in_flight_tokens))


def request_bytes(layout: KvLayout, max_model_len: int, in_flight_tokens: int) -> int:
    """The start-up check (kv_cache_utils _max_memory_usage_bytes_from_groups, 0.19.0 - 0.33.0):
    group_size x page x the blocks of one request of max_model_len over the groups (padding layers count)."""
    return layout.group_size * layout.page_bytes * blocks_per_request(layout, max_model_len, in_flight_tokens)


def max_concurrency(layout: KvLayout, num_blocks: int, max_model_len: int, in_flight_tokens: int) -> float:
    return num_blocks / blocks_per_request(layout, max_model_len, in_flight_tokens)


def max_request_tokens(layout: KvLayout, num_blocks: int, in_flight_tokens: int, upper: int) -> int:
    """The longest single request the pool admits (0: none): the largest length whose blocks, summed over the
    groups (get_max_concurrency_for_kv_cache_config's per-request count, windows at their cap), fit num_blocks.
    For full attention only this is num_blocks // num_groups x block_size; sliding windows make it longer."""
    return _longest(lambda n: blocks_per_request(layout, n, in_flight_tokens) <= num_blocks, upper)


def estimate_max_model_len(layout: KvLayout, available_bytes: int, in_flight_tokens: int, upper: int) -> int:
    """kv_cache_utils estimate_max_model_len: binary search for the longest len whose request fits (0: none)."""
    return _longest(lambda n: request_bytes(layout, n, in_flight_tokens) <= available_bytes, upper)


def _longest(fits: Callable[[int], bool], upper: int) -> int:
    """Largest n in [1, upper] with fits(n), fits monotone (true, then false); 0 when none."""
    lo, hi, best = 1, upper, 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best
