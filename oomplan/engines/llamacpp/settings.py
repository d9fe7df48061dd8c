"""`llama-server` settings as given (None where llama.cpp derives a default: -ngl by --fit, -c 4096, -ub 512)."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.specs.hardware import GpuSpec


@dataclass(frozen=True)
class LlamaCppGiven:
    gguf_type: str = "Q4_K_M"
    n_gpu_layers: int | None = None  # None or -1: every layer (--fit lowers it when it does not fit)
    ctx_tokens: int | None = None  # -c; None: the default 4096; 0: the model's trained context
    n_parallel: int = 1
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: str = "auto"  # on | off | auto
    ubatch_tokens: int | None = None
    fit: bool = True
    no_kv_offload: bool = False
    swa_full: bool = False
    context_shift: bool = False  # --context-shift: a full slot keeps --keep tokens and discards half of the rest
    keep_tokens: int = 0  # --keep N: tokens kept from the start of the prompt when the context shifts (-1: all)
    n_cpu_moe: int = 0  # --n-cpu-moe N: the routed experts of the first N layers stay in host memory (-1: every layer)
    split_mode: str = "layer"  # -sm none | layer | row (devices.py)
    tensor_split: tuple[float, ...] = ()  # -ts: one share per GPU; (): by each GPU's free memory
    main_gpu: int = 0  # -mg: the one GPU of -sm none
    devices: tuple[GpuSpec, ...] = ()  # the GPUs of the box (--gpu a+b); (): num_gpus of the card, or one per -ts share
    num_gpus: int = 1  # GPUs of the one card kind when there is no box (a plan's TP x PP)
