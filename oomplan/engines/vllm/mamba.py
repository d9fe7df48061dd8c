"""vLLM's recurrent state for Mamba / Gated DeltaNet hybrids: one page per layer per block, the attention block
raised so an attention page holds a state, the cache mode that decides how many state blocks a request keeps.

Per release (constants in oomplan/data/engines/vllm/<X.Y>.yaml, each with its source):
  * state shapes: oomplan/engines/state_shapes.py (MambaStateShapeCalculator, shared with SGLang; VLLM_RULES).
  * dtypes: MambaStateDtypeCalculator._mamba_state_dtype: conv = --mamba-cache-dtype ('auto': the model dtype),
    ssm = --mamba-ssm-cache-dtype ('auto': the conv dtype), with the per-model defaults of
    model_executor/models/config.py (NemotronH: the HF config's mamba_ssm_cache_dtype, else a release default;
    Qwen3.5: the HF text config's mamba_ssm_dtype).
  * cache mode: MambaModelConfig: prefix caching off -> 'none' (one state per request); on -> 'all' (one state per
    block of tokens) for SupportsMambaPrefixCaching models, else 'align' (two, plus a prefill checkpoint from 0.33).
  * block size: HybridAttentionMambaModelConfig (0.19) / platforms/interface.py _align_hybrid_block_size (0.20+):
    the smallest multiple of the kernel alignment whose attention page holds one state ('all': of the Mamba chunk
    size); the state page is then padded to the attention page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from oomplan.engines import state_shapes as shapes
from oomplan.engines.state_shapes import STATE_DTYPE_BYTES, VLLM_RULES
from oomplan.engines.vllm.constants import VllmConstants
from oomplan.errors import InputError
from oomplan.families import engine_facts
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.state import Mixer
from oomplan.units import ceil_div

MambaMode = Literal["none", "align", "all"]
KERNEL_BLOCK_ALIGNMENT = 16  # FlashAttention get_supported_kernel_block_sizes: MultipleOf(16) (non-MLA attention)
MAMBA1_CHUNK_SIZE = 2048  # config/model.py get_mamba_chunk_size: no chunk_size in the config -> 2048


@dataclass(frozen=True)
class MambaSettings:
    """The `vllm serve` options that shape the state (None / 'auto': vLLM's default)."""

    mamba_cache_dtype: str = "auto"
    mamba_ssm_cache_dtype: str = "auto"
    mamba_cache_mode: str | None = None
    mamba_block_size: int | None = None
    prefix_caching: bool | None = None


@dataclass(frozen=True)
class MambaLayout:
    """The state layers of one GPU as vLLM's hybrid manager prices them."""

    state_bytes: int  # one state of one layer on this GPU (unpadded: MambaSpec shapes x dtypes)
    block_size: int  # the attention block after the raise (tokens)
    mode: MambaMode
    blocks_per_request_fixed: int  # 'none' / 'align': state blocks one request holds in each state layer
    mamba_block_size: int  # 'all': tokens per state block (one state per block)
    conv_dtype: str
    ssm_dtype: str

    def state_blocks(self, max_model_len: int) -> int:
        """MambaSpec.max_memory_usage_bytes // page: 'all' keeps a state per block of the request's tokens."""
        if self.mode == "all":
            return ceil_div(max_model_len, self.mamba_block_size)
        return self.blocks_per_request_fixed


def _architecture(model: ModelSpec) -> str:
    return engine_facts(model).architecture


def _given_dtype(value: str, flag: str, c: VllmConstants) -> str:
    if value not in c.mamba_cache_dtypes:
        raise InputError(f"{flag}: {value!r} is not accepted by vLLM {c.engine_version}; use one of {', '.join(c.mamba_cache_dtypes)}")
    return value


def state_dtypes(model: ModelSpec, model_dtype: str, s: MambaSettings, c: VllmConstants) -> tuple[str, str]:
    """(conv dtype, ssm dtype) as vLLM names them ('bfloat16', 'float32', ...)."""
    conv_flag = _given_dtype(s.mamba_cache_dtype, "--mamba-cache-dtype", c)
    ssm_flag = _given_dtype(s.mamba_ssm_cache_dtype, "--mamba-ssm-cache-dtype", c)
    conv = model_dtype if conv_flag == "auto" else conv_flag
    if ssm_flag == "auto":
        facts = engine_facts(model)
        if facts.is_nemotron_h and facts.architecture.startswith("NemotronH"):
            # NemotronHForCausalLMConfig.verify_and_update_config
            ssm_flag = facts.mamba_ssm_cache_dtype or c.nemotron_h_ssm_cache_dtype
        elif facts.architecture in c.qwen3_5_ssm_dtype_architectures and facts.mamba_ssm_dtype:
            ssm_flag = facts.mamba_ssm_dtype  # Qwen3_5ForConditionalGenerationConfig
    ssm = conv if ssm_flag == "auto" else ssm_flag
    for name in (conv, ssm):
        if name not in STATE_DTYPE_BYTES:
            raise InputError(f"{model.name}: vLLM's Mamba state dtype {name!r} is not one of {', '.join(STATE_DTYPE_BYTES)}")
    return conv, ssm


def state_elements(m: Mixer, tp: int, model: ModelSpec) -> tuple[int, int]:
    """(conv elements, ssm elements) of one state of one layer on one GPU (mamba_utils.py MambaStateShapeCalculator)."""
    e = shapes.state_elements(m, tp, model, VLLM_RULES)
    return e.conv_elements, e.ssm_elements


def state_page_bytes(model: ModelSpec, mixers: list[Mixer], tp: int, conv_dtype: str, ssm_dtype: str) -> int:
    """MambaSpec.page_size_bytes before padding: vLLM builds one spec for the model, so every state layer must
    have the same shapes (the families' hybrids do); a model mixing state shapes is refused."""
    e = shapes.uniform_state_elements(model, mixers, tp, VLLM_RULES)
    return e.bytes(STATE_DTYPE_BYTES[conv_dtype], STATE_DTYPE_BYTES[ssm_dtype])


def cache_mode(model: ModelSpec, s: MambaSettings, c: VllmConstants) -> MambaMode:
    """MambaModelConfig.verify_and_update_config: the mode from prefix caching (on by default for hybrids from 0.26)."""
    prefix = c.hybrid_prefix_caching if s.prefix_caching is None else s.prefix_caching
    if not prefix:
        return "none"  # '--mamba-cache-mode' is reset to 'none' when prefix caching is off
    if s.mamba_cache_mode not in (None, "none"):
        if s.mamba_cache_mode not in c.mamba_cache_modes:
            raise InputError(f"--mamba-cache-mode: {s.mamba_cache_mode!r} is not accepted by vLLM {c.engine_version}; "
                             f"use one of {', '.join(c.mamba_cache_modes)}")
        mode = s.mamba_cache_mode
    else:
        mode = "all" if _architecture(model) in c.mamba_all_mode_architectures else "align"
    if mode == "all" and _architecture(model) not in c.mamba_all_mode_architectures:
        mode = "align"  # 'all' without SupportsMambaPrefixCaching falls back to 'align'
    return "all" if mode == "all" else "align"


def _mamba_chunk_size(model: ModelSpec) -> int:
    """config/model.py get_mamba_chunk_size: mamba_chunk_size, else chunk_size, else 2048."""
    return engine_facts(model).mamba_chunk_size or MAMBA1_CHUNK_SIZE


def _checkpoint(mixers: list[Mixer], mode: MambaMode, gpu: GpuSpec, c: VllmConstants, model: ModelSpec) -> tuple[int, int]:
    """(extra state blocks per request, token alignment) of the align-mode prefill checkpoint (0.33: MambaSpec
    num_prefill_checkpoint_blocks / get_mamba_prefill_checkpoint_alignment)."""
    if mode != "align":
        return 0, 1
    kinds = {m.kind for m in mixers}
    if kinds == {"mamba2"}:
        return c.mamba2_align_checkpoint_blocks, 1
    if kinds == {"gated_deltanet"} and c.gdn_align_checkpoint_alignment_hopper is not None:
        if gpu.architecture == "hopper":
            return 1, c.gdn_align_checkpoint_alignment_hopper
        if gpu.architecture in ("ampere", "ada"):
            return 0, 1
        raise InputError(f"{model.name}: vLLM {c.engine_version}'s GDN prefill backend on {gpu.display_name} ({gpu.architecture}) "
                         "decides the prefix-caching state layout and is not modelled; pass --no-enable-prefix-caching "
                         "(one state per request) or --engine-version 0.26")
    if c.mamba2_align_checkpoint_blocks and kinds != {"mamba2"}:
        raise InputError(f"{model.name}: vLLM {c.engine_version}'s prefix-caching checkpoints of {', '.join(sorted(kinds))} "
                         "state layers are not modelled; pass --no-enable-prefix-caching or --engine-version 0.26")
    return 0, 1


def mamba_layout(model: ModelSpec, gpu: GpuSpec, mixers: list[Mixer], tp: int, model_dtype: str, attn_token_bytes: int,
                 given_block_size: int | None, default_block_size: int, s: MambaSettings, c: VllmConstants) -> MambaLayout:
    """The raised attention block and the state pages (see the module docstring for the source of each step)."""
    conv_dtype, ssm_dtype = state_dtypes(model, model_dtype, s, c)
    state = state_page_bytes(model, mixers, tp, conv_dtype, ssm_dtype)
    mode = cache_mode(model, s, c)
    block = given_block_size or default_block_size
    align = max(KERNEL_BLOCK_ALIGNMENT, block) if c.hybrid_alignment_counts_block_size else KERNEL_BLOCK_ALIGNMENT
    extra_blocks, checkpoint_align = _checkpoint(mixers, mode, gpu, c, model)
    align = math.lcm(align, checkpoint_align)
    mamba_block = 0
    if mode == "all":
        chunk = math.lcm(s.mamba_block_size or _mamba_chunk_size(model), align)
        need = chunk * ceil_div(ceil_div(state, attn_token_bytes), chunk)
        mamba_block = need
    else:
        need = align * ceil_div(state, align * attn_token_bytes)
    block = max(block, need)  # "override attention block size if it is too small, even if the user has explicitly set it"
    fixed = (2 + extra_blocks) if mode == "align" else 1
    return MambaLayout(state, block, mode, fixed, mamba_block, conv_dtype, ssm_dtype)



def vllm_dtype_name(oomplan_dtype: str) -> str:
    """The model's compute dtype in vLLM's spelling (ModelConfig.dtype)."""
    return {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[oomplan_dtype]
