"""Plan (the knobs) and Workload (what runs): typed, frozen, self-validating."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from oomplan import formats
from oomplan.specs.base import Strict
from oomplan.specs.kv_policy import KvPolicy

# The accepted values come from the format registry (oomplan/data/formats.yaml), in its order.
WEIGHT_FORMATS: tuple[str, ...] = (formats.AUTO,) + formats.format_names("weights")
KV_DTYPES: tuple[str, ...] = (formats.AUTO,) + formats.format_names("kv")
if TYPE_CHECKING:  # the names are data (oomplan/formats): a type checker sees str, pydantic the Literal it validates
    WeightFormat = str
    KvDtype = str
    StoredFormat = str
else:
    WeightFormat = Literal[WEIGHT_FORMATS]
    KvDtype = Literal[KV_DTYPES]
    StoredFormat = Literal[formats.format_names("weights")]
# Components a plan can give their own format (norms and biases always stay in the dense dtype).
FormatComponent = Literal["embedding", "attention", "mlp", "experts", "router", "lm_head"]
# Tensor-parallel degrees the plan searches and the engines' fix suggestions try (the TP ladder, defined once).
TP_DEGREES: tuple[int, ...] = (1, 2, 4, 8)
Attention = Literal["sdpa", "eager"]
Logits = Literal["last", "all"]
Engine = Literal["hf", "vllm", "sglang", "llamacpp"]  # hf: transformers generate(); the others: oomplan/engines

# Spellings users type for the same format.
WEIGHT_ALIASES = formats.aliases("weights")
KV_ALIASES = formats.aliases("kv")


class Plan(Strict):
    """How the model is run: every knob the planner can turn. Defaults are the lossless baseline."""

    weights: WeightFormat = Field(default="auto", description="auto: the checkpoint's dtype (fp32 checkpoints are served as bf16)")
    weight_group_size: int = Field(default=128, ge=16, le=4096, description="int4 AWQ/GPTQ quantisation group")
    quantize_embeddings: bool = Field(default=False, description="also quantise embeddings and lm_head")
    component_weights: dict[FormatComponent, StoredFormat] = Field(
        default_factory=dict, description="a format per component (e.g. experts: mxfp4), over `weights` for its matrices")
    kv_dtype: KvDtype = "auto"
    dms_ratio: float = Field(default=1.0, ge=1.0, le=64.0, description="Dynamic Memory Sparsification compression; 1 = off")
    dms_window_tokens: int = Field(default=512, ge=0, description="DMS delayed-eviction window (512 in the released checkpoints)")
    kv_policy: KvPolicy | None = Field(default=None, description="a bounded-KV policy (window, budget, slots, episodic; "
                                        "docs/kv-policies.md); None keeps every token (DMS has its own fields)")
    paged: bool = True
    block_size: int = Field(default=16, ge=1, le=1024)
    tensor_parallel: int = Field(default=1, ge=1, le=1024)
    pipeline_parallel: int = Field(default=1, ge=1, le=1024)
    expert_parallel: bool = Field(default=False, description="split routed experts across the TP group instead of slicing each")
    offload_bytes: int = Field(default=0, ge=0, description="weights kept in CPU memory (per GPU) and streamed in")
    moe_layers_on_cpu: int = Field(default=0, ge=0, le=100_000, description="MoE layers whose routed experts stay in host "
                                   "memory and run on the CPU (llama.cpp --n-cpu-moe N); attention, shared experts, router on the GPU")
    tensor_split: tuple[float, ...] = Field(default=(), description="llama.cpp --tensor-split: one share per GPU (layers, or "
                                             "matrix rows with tensor_parallel > 1); empty: even stages (llama.cpp: by free memory)")
    attention: Attention = "sdpa"
    prefill_chunk_tokens: int | None = Field(default=None, ge=1, description="None: the whole prompt in one forward pass")
    logits: Logits = Field(default="last", description="last: logits for the last position only, as generate() does")

    @model_validator(mode="after")
    def _one_kv_policy(self) -> Plan:
        if self.kv_policy is not None and self.dms_ratio > 1:
            raise ValueError(f"one KV policy at a time: dms_ratio {self.dms_ratio:g} and kv_policy {self.kv_policy.spec}")
        return self

    @model_validator(mode="after")
    def _tensor_split_per_gpu(self) -> Plan:
        if self.tensor_split:
            if len(self.tensor_split) != self.num_gpus:
                raise ValueError(f"tensor_split has {len(self.tensor_split)} shares for {self.num_gpus} GPU(s); give one share per GPU")
            if any(x < 0 for x in self.tensor_split) or not any(self.tensor_split):
                raise ValueError("tensor_split: shares must be >= 0 with a positive sum")
        return self

    @property
    def num_gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    def __hash__(self) -> int:  # frozen, but component_weights is a dict: hash its items
        return hash(tuple((k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in self.__dict__.items()))


class Workload(Strict):
    """What runs: inference of batch_size sequences of ctx_tokens (prompt + generated) each.

    num_images images per sequence go through the model's vision tower in the prefill; their tokens are part of
    ctx_tokens (the prompt holds them), except Mllama's, which cross-attention layers read instead (memory/images.py)."""

    ctx_tokens: int = Field(ge=1, le=2**31)
    batch_size: int = Field(default=1, ge=1, le=2**20)
    engine: Engine = "hf"
    num_images: int = Field(default=0, ge=0, le=2**16, description="images per sequence (--images); 0: text only")
    image_tokens: int | None = Field(default=None, ge=1, le=2**20, description="decoder tokens per image (--image-tokens), "
                                     "for towers whose count is dynamic; None: the config's fixed count")
    image_size: str | None = Field(default=None, max_length=64, description="width x height in pixels of every image as "
                                   "given to the processor (--image-size, 'WxH'), for towers whose patch grid follows it "
                                   "(Pixtral / Mistral 3)")

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_image_size(value)
        return value

    @property
    def image_width_height(self) -> tuple[int, int] | None:
        """(width, height) of image_size, None without one."""
        return None if self.image_size is None else parse_image_size(self.image_size)


MAX_IMAGE_SIDE = 2**16  # pixels; PIL refuses larger images (Image.MAX_IMAGE_PIXELS) long before


def parse_image_size(text: str) -> tuple[int, int]:
    """'1024x768' -> (1024, 768): width x height in pixels, each 1..MAX_IMAGE_SIDE; ValueError otherwise."""
    # re.ASCII: 0-9 only, as every count oomplan reads (units.py); Python's \d takes '１０２４' and int() would read it
    match = re.fullmatch(r"\s*(\d{1,6})\s*[xX]\s*(\d{1,6})\s*", text, re.ASCII)
    if not match:
        raise ValueError("not WIDTHxHEIGHT in pixels; accepted: two whole numbers joined by x, e.g. 1024x768")
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise ValueError(f"{width}x{height} is out of range; accepted: 1..{MAX_IMAGE_SIDE} pixels a side")
    return width, height
