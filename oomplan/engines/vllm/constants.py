"""vLLM's constants, one file per version range (oomplan/data/engines/vllm/<X.Y>.yaml), each value with its
source file and release there. A file may `extends:` an earlier one and name only what changed."""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field

from oomplan.engines.constants import DATA_DIR
from oomplan.engines.versions import VersionTable, constants_for, versions_in
from oomplan.specs.base import Strict

VERSIONS_DIR = DATA_DIR / "vllm"


class Mxfp4TritonLayout(Strict):
    """What the TRITON MXFP4 MoE backend keeps per FusedMoE layer once process_weights_after_loading has swizzled
    the experts (fused_moe/oracle/mxfp4.py TRITON branch -> quantization/utils/mxfp4_utils.py _swizzle_mxfp4 ->
    the vendored third_party/triton_kernels HopperMXValueLayout / HopperMXScaleLayout); sources in the data file."""

    architectures: tuple[str, ...]  # GPU architectures where vLLM picks TRITON for gpt-oss with these layouts
    value_pre_pad: int = Field(ge=1)  # both byte dims of each weight first padded to this multiple (1: none)
    value_tile: tuple[int, int]  # then (output rows, packed bytes) padded to these multiples
    scale_group_pad: int = Field(ge=1)  # the scale groups (K/32) padded to this before the swizzle (1: none)
    scale_tile: tuple[int, int]  # (output rows, scale groups) padded to these multiples
    keeps_checkpoint_scales: bool  # the unswizzled uint8 scales stay allocated next to the swizzled copies
    bias_bytes: int = Field(ge=1)  # the biases are converted to this width (fp32)


class VllmConstants(Strict):
    schema_version: int = 1
    engine: str
    engine_version: str  # the range's first minor release, e.g. "0.26" (covers 0.26.x up to the next file)
    first_release: str
    releases_read: tuple[str, ...]
    gpu_memory_utilization: float = Field(gt=0, le=1)
    block_size: int = Field(ge=1)
    vocab_padding: int = Field(ge=1)
    large_gpu_min_bytes: int
    large_gpu_max_num_batched_tokens: int
    large_gpu_max_num_seqs: int
    small_gpu_max_num_batched_tokens: int
    small_gpu_max_num_seqs: int
    huge_gpu_min_bytes: int | None  # None: no >= 160 GiB tier in this range
    huge_gpu_max_num_batched_tokens: int
    huge_gpu_max_num_seqs: int
    sampler_fp32_tensors: int
    sampler_hidden_copies: int
    profile_extra_bytes: int
    non_torch_bytes: int
    allreduce_bytes: int
    allreduce_bytes_per_peer: int
    cuda_graph_bytes: int
    cuda_graphs_in_budget: bool
    kv_tokens_logged: Literal["blocks", "concurrency"]
    model_runner_v2: Literal["never", "architectures", "dense", "all"]  # which models default to Model Runner V2
    v2_architectures: tuple[str, ...]  # HF architectures that default to V2 (DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES)
    v2_profiles_cuda_graphs: bool
    v2_sampler_fp32_tensors: int
    v2_sampler_hidden_copies: int
    # memory_profiling counts the torch tensors a runner keeps from before the profile (0.27+: from mem_get_info)
    v2_persistent_state_in_budget: bool
    sliding_window_counts_in_flight: bool  # window - 1 + max_in_flight_tokens (async scheduling) vs one chunk
    per_token_head_kv_bytes: dict[str, float]  # --kv-cache-dtype -> bytes per element (+ an fp32 scale per token-head)
    kv_cache_dtypes: tuple[str, ...]  # every --kv-cache-dtype the release accepts (CacheDType); the unpriced ones are refused
    # hybrid (Mamba / GDN) pools and DSA (oomplan/engines/vllm/mamba.py, kv.py)
    hybrid_prefix_caching: bool  # prefix caching on by default for hybrid models (decides the Mamba cache mode)
    mamba_all_mode_architectures: tuple[str, ...]  # SupportsMambaPrefixCaching: 'all' mode when prefix caching is on
    mamba_cache_modes: tuple[str, ...]
    mamba_cache_dtypes: tuple[str, ...]
    mamba2_align_checkpoint_blocks: int  # extra state pages per request in align mode (prefill checkpoint)
    gdn_align_checkpoint_alignment_hopper: int | None  # GDN align-mode checkpoint alignment with the FlashInfer prefill
    hybrid_alignment_counts_block_size: bool  # the kernel alignment of the raised block is max(16, --block-size)
    nemotron_h_ssm_cache_dtype: str
    qwen3_5_ssm_dtype_architectures: tuple[str, ...]
    dsa_modelled: bool  # the DSA (sparse MLA + indexer) pool of this release is read to the byte
    dsa_block_size: int
    dsa_indexer_bytes_per_value: int
    dsa_indexer_scale_bytes_per_128: int
    fp8_ds_mla_bytes_per_token: int
    # GPU architecture -> (intermediate, hidden) multiples the MXFP4 MoE backend vLLM picks there pads to;
    # architectures not listed are priced unpadded
    mxfp4_moe_padding: dict[str, tuple[int, int]]
    mxfp4_triton_layout: Mxfp4TritonLayout
    fp32_rope_architectures: tuple[str, ...]  # models whose rotary cos/sin cache vLLM builds in fp32
    sources: dict[str, str]


@lru_cache(maxsize=1)
def vllm_versions() -> VersionTable:
    return versions_in(VERSIONS_DIR, "vLLM")


@lru_cache(maxsize=16)
def vllm_constants(version: str | None = None) -> VllmConstants:
    return constants_for(vllm_versions(), version, VllmConstants)
