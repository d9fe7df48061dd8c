"""CUDA kernel choices emulated on the meta device, and the softcap-tolerant "sdpa" for Gemma 2.

Two aten paths allocate differently on meta than on a CUDA GPU; `GpuKernelMode` (a torch-function
mode, so it sees the Python call before any decomposition) routes them to what the GPU does:

1. SDPA. On `meta`, `F.scaled_dot_product_attention` picks the *math* backend (`_fused_sdp_choice_meta` only
asks the CUDA chooser when the tensors carry the CUDA key), which materialises the full
B x H x L x S score matrix. A CUDA GPU runs flash / memory-efficient kernels instead, which
allocate only the output (flash also returns a small fp32 logsumexp, B x H x L). `FusedSdpaMode`
intercepts the call at the torch-function level and allocates exactly that, so the tracker sees
what a GPU would hold. Everything *around* the call (repeat_kv, pack_gqa, mask creation) is still
transformers' own code.

2. `F.softmax(x, dtype=float32)` on fp16 input. CUDA takes `_softmax(x, dim, half_to_float=True)`
(no fp32 copy of the input); every other device, meta included, first makes an fp32 copy
(aten/src/ATen/native/SoftMax.cpp, `softmax`). bf16 takes the copy on CUDA too, so it is left alone.

Only import this module from oomplan.probe (it imports torch at import time).
"""
from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

_FLASH_DTYPES = (torch.float16, torch.bfloat16)
_FLASH_MAX_HEAD_DIM = 256

# Name under which the softcap-dropping sdpa is registered. It must not contain "flash", "flex" or
# "sdpa": transformers keys capability checks (`_sdpa_can_dispatch` refuses Gemma 2) and
# flash-specific mask handling on those substrings (modeling_utils.get_correct_attn_implementation).
PROBE_SDPA_NAME = "oomplan_fused_attention"


def _flash_eligible(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask) -> bool:
    """The conditions under which a CUDA GPU (sm80+) dispatches SDPA to the flash kernel."""
    same_dims = query.shape[-1] == key.shape[-1] == value.shape[-1]
    small_head = query.shape[-1] <= _FLASH_MAX_HEAD_DIM
    return attn_mask is None and same_dims and small_head and query.dtype in _FLASH_DTYPES


def fused_sdpa(
    query: torch.Tensor,  # (*B, H, L, E)
    key: torch.Tensor,  # (*B, Hk, S, E)
    value: torch.Tensor,  # (*B, Hk, S, Ev)
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """Allocates what a fused CUDA kernel allocates: the output, plus flash's transient logsumexp."""
    batch = torch.broadcast_shapes(query.shape[:-3], key.shape[:-3])
    heads, q_len = query.shape[-3], query.shape[-2]
    out = query.new_empty((*batch, heads, q_len, value.shape[-1]))  # (*B, H, L, Ev)
    if _flash_eligible(query, key, value, attn_mask):
        lse = query.new_empty((*batch, heads, q_len), dtype=torch.float32)  # (*B, H, L), freed on return
        del lse
    return out


def cuda_softmax(
    input: torch.Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None
) -> torch.Tensor:
    """F.softmax as CUDA runs it: fp16 -> fp32 without an fp32 copy of the input."""
    if dtype == torch.float32 and input.dtype == torch.float16 and dim is not None:
        return torch._softmax(input, dim, True)
    return torch.nn.functional.softmax(input, dim=dim, _stacklevel=_stacklevel, dtype=dtype)


class GpuKernelMode(TorchFunctionMode):
    """Routes SDPA to `fused_sdpa` and softmax to `cuda_softmax`; every other function runs unchanged."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.scaled_dot_product_attention:
            return fused_sdpa(*args, **kwargs)
        if func is torch.nn.functional.softmax:
            return cuda_softmax(*args, **kwargs)
        return func(*args, **kwargs)


def register_softcap_tolerant_sdpa() -> str:
    """Registers transformers' sdpa path minus the softcap check (Gemma 2 refuses plain "sdpa")."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    def forward(module, query, key, value, attention_mask, **kwargs):
        kwargs.pop("softcap", None)  # a fused kernel with softcap (flash-attn) allocates the same
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(PROBE_SDPA_NAME, forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(PROBE_SDPA_NAME, sdpa_mask)
    return PROBE_SDPA_NAME
