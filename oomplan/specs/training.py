"""TrainingPlan: how one training (or fine-tuning) step runs, every knob the training planner turns.

Typed, frozen, self-validating. Sizes per micro-batch: `micro_batch_size` sequences of `seq_tokens`
on each data-parallel rank; the global batch is micro x accumulation x data parallel.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from oomplan.specs.base import Strict
from oomplan.specs.plan import Attention

TrainMode = Literal["full", "lora", "qlora"]
OptimizerName = Literal["adamw", "adamw8bit", "adafactor", "sgd"]
# mixed: bf16 weights and gradients, fp32 master weights and optimizer states (Rajbhandari et al. 2020, 16 B/param
# with Adam); bf16: no master copy, fp32 optimizer states (bitsandbytes 32-bit optimizers, QLoRA); pure-bf16: states
# in bf16 too (torch.optim on a bf16 model); fp32: everything fp32.
Precision = Literal["mixed", "bf16", "pure-bf16", "fp32"]
Recompute = Literal["none", "selective", "full"]
Fsdp = Literal["none", "full", "hybrid"]

TRAIN_MODES: tuple[str, ...] = TrainMode.__args__  # type: ignore[attr-defined]
OPTIMIZERS: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]
PRECISIONS: tuple[str, ...] = Precision.__args__  # type: ignore[attr-defined]
RECOMPUTES: tuple[str, ...] = Recompute.__args__  # type: ignore[attr-defined]
FSDP_MODES: tuple[str, ...] = Fsdp.__args__  # type: ignore[attr-defined]
# PEFT's names; "all-linear" is every linear layer but the LM head (PEFT's target_modules="all-linear").
LORA_ALL_LINEAR = "all-linear"


class TrainingPlan(Strict):
    """One training step per GPU. Defaults: full fine-tuning, mixed-precision AdamW, one GPU, no recompute."""

    mode: TrainMode = "full"
    optimizer: OptimizerName = "adamw"
    precision: Precision = "mixed"
    seq_tokens: int = Field(ge=1, le=2**31, description="tokens per sequence")
    micro_batch_size: int = Field(default=1, ge=1, le=2**20, description="sequences per forward/backward on each DP rank")
    grad_accum_steps: int = Field(default=1, ge=1, le=2**20)
    data_parallel: int = Field(default=1, ge=1, le=2**16)
    tensor_parallel: int = Field(default=1, ge=1, le=1024)
    pipeline_parallel: int = Field(default=1, ge=1, le=1024)
    sequence_parallel: bool = Field(default=False, description="Megatron sequence parallelism (needs tensor_parallel > 1)")
    zero_stage: int = Field(default=0, ge=0, le=3, description="DeepSpeed ZeRO: 1 optimizer states, 2 + gradients, 3 + weights")
    fsdp: Fsdp = Field(default="none", description="PyTorch FSDP: full = shard over all DP ranks (ZeRO-3); hybrid = within a node")
    recompute: Recompute = "none"
    attention: Attention = Field(default="sdpa", description="sdpa: fused (FlashAttention-2); eager: N x N scores materialised")
    lora_rank: int = Field(default=16, ge=1, le=65536)
    lora_targets: tuple[str, ...] = Field(default=(LORA_ALL_LINEAR,), min_length=1, description="module names, or all-linear")
    offload_optimizer: bool = Field(default=False, description="ZeRO-Offload: fp32 master, optimizer states and step on the CPU")
    offload_params: bool = Field(default=False, description="ZeRO-Infinity: the weight shards in CPU memory (ZeRO-3/FSDP only)")

    @model_validator(mode="after")
    def _check(self) -> TrainingPlan:
        if self.fsdp != "none" and self.zero_stage:
            raise ValueError(f"zero_stage {self.zero_stage} and fsdp {self.fsdp!r} both shard; give one of them")
        if self.offload_params and self.shard_stage < 3:
            raise ValueError("offload_params needs ZeRO-3 or FSDP (zero_stage 3 or fsdp full/hybrid)")
        if self.sequence_parallel and self.tensor_parallel == 1:
            raise ValueError("sequence_parallel needs tensor_parallel > 1")
        return self

    @property
    def shard_stage(self) -> int:
        """The ZeRO stage the sharding amounts to (FSDP shards weights, gradients and optimizer states)."""
        return 3 if self.fsdp != "none" else self.zero_stage

    @property
    def num_gpus(self) -> int:
        return self.data_parallel * self.tensor_parallel * self.pipeline_parallel

    @property
    def global_batch_size(self) -> int:
        return self.micro_batch_size * self.grad_accum_steps * self.data_parallel

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_tokens

    @property
    def is_peft(self) -> bool:
        return self.mode != "full"
