"""Plan (the knobs) and Workload (what runs): typed, frozen, self-validating."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from oomplan.specs.base import Strict

WeightFormat = Literal["auto", "fp32", "bf16", "fp16", "fp8", "int8", "awq", "gptq", "nf4"]
KvDtype = Literal["auto", "fp32", "bf16", "fp16", "fp8", "int8", "int4"]
Attention = Literal["sdpa", "eager"]
Logits = Literal["last", "all"]
Engine = Literal["hf", "vllm", "sglang", "llamacpp"]  # hf: transformers generate(); the others: oomplan/engines

WEIGHT_FORMATS: tuple[str, ...] = WeightFormat.__args__  # type: ignore[attr-defined]
KV_DTYPES: tuple[str, ...] = KvDtype.__args__  # type: ignore[attr-defined]
# Spellings users type for the same format.
WEIGHT_ALIASES = {"int4": "awq", "int4-awq": "awq", "int4-gptq": "gptq", "bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "q4": "awq"}


class Plan(Strict):
    """How the model is run: every knob the planner can turn. Defaults are the lossless baseline."""

    weights: WeightFormat = Field(default="auto", description="auto: the checkpoint's dtype (fp32 checkpoints are served as bf16)")
    weight_group_size: int = Field(default=128, ge=16, le=4096, description="int4 AWQ/GPTQ quantisation group")
    quantize_embeddings: bool = Field(default=False, description="also quantise embeddings and lm_head")
    kv_dtype: KvDtype = "auto"
    dms_ratio: float = Field(default=1.0, ge=1.0, le=64.0, description="Dynamic Memory Sparsification compression; 1 = off")
    dms_window_tokens: int = Field(default=512, ge=0, description="DMS delayed-eviction window (512 in the released checkpoints)")
    paged: bool = True
    block_size: int = Field(default=16, ge=1, le=1024)
    tensor_parallel: int = Field(default=1, ge=1, le=1024)
    pipeline_parallel: int = Field(default=1, ge=1, le=1024)
    expert_parallel: bool = Field(default=False, description="split routed experts across the TP group instead of slicing each")
    offload_bytes: int = Field(default=0, ge=0, description="weights kept in CPU memory (per GPU) and streamed in")
    attention: Attention = "sdpa"
    prefill_chunk_tokens: int | None = Field(default=None, ge=1, description="None: the whole prompt in one forward pass")
    logits: Logits = Field(default="last", description="last: logits for the last position only, as generate() does")

    @property
    def num_gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel


class Workload(Strict):
    """What runs: inference of batch_size sequences of ctx_tokens (prompt + generated) each."""

    ctx_tokens: int = Field(ge=1, le=2**31)
    batch_size: int = Field(default=1, ge=1, le=2**20)
    engine: Engine = "hf"
