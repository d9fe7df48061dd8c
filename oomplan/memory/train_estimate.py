"""A training plan on a GPU: every pipeline stage's budget, the host memory offload needs, warnings, notes."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.errors import FieldError
from oomplan.memory.budget import BusiestGpu
from oomplan.memory.params import inventory
from oomplan.memory.validate import check_parallel, context_warnings, tp_span_warnings
from oomplan.memory.train_states import is_lora_target
from oomplan.memory.training import TrainStageBudget, train_stage_budget
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.training import LORA_ALL_LINEAR, TrainingPlan



@dataclass(frozen=True)
class TrainEstimate(BusiestGpu):
    model: ModelSpec
    gpu: GpuSpec
    plan: TrainingPlan
    stages: tuple[TrainStageBudget, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    host_memory_limit_bytes: int | None  # CPU memory of one node, when given

    @property
    def num_gpus(self) -> int:
        return self.plan.num_gpus

    @property
    def host_bytes_per_node(self) -> int:
        """CPU memory the offloaded states of one node's GPUs take."""
        per_gpu = max(s.states.host_bytes for s in self.stages)
        return per_gpu * min(self.num_gpus, self.gpu.num_gpus_per_node)

    @property
    def host_fits(self) -> bool:
        return self.host_memory_limit_bytes is None or self.host_bytes_per_node <= self.host_memory_limit_bytes

    @property
    def fits(self) -> bool:
        return self.headroom_bytes >= 0 and self.host_fits


def lora_target_names(model: ModelSpec) -> tuple[str, ...]:
    """The linear layers a LoRA adapter can target in this model (PEFT module names)."""
    names = {t.name.rsplit(".", 1)[-1] for kind in inventory(model).layer_kinds for t in kind.tensors if t.quantizable}
    return tuple(sorted(names))


def check_training_plan(model: ModelSpec, plan: TrainingPlan) -> None:
    """Raise FieldError when the plan cannot train this model at all."""
    check_parallel(model, plan.tensor_parallel, plan.pipeline_parallel)
    known = lora_target_names(model)
    unknown = [t for t in plan.lora_targets if t != LORA_ALL_LINEAR and t not in known]
    if plan.is_peft and unknown:
        raise FieldError("lora_targets", f"{unknown[0]!r} is not a linear layer of {model.name}; accepted: {LORA_ALL_LINEAR}, {', '.join(known)}")
    if plan.is_peft and not any(is_lora_target(t, plan.lora_targets) for k in inventory(model).layer_kinds for t in k.tensors):
        raise FieldError("lora_targets", f"{','.join(plan.lora_targets)} matches no linear layer of {model.name}")


def training_warnings(model: ModelSpec, gpu: GpuSpec, plan: TrainingPlan) -> list[str]:
    out: list[str] = []
    out.extend(context_warnings(model, plan.seq_tokens, "--seq"))
    out.extend(tp_span_warnings(gpu, plan.tensor_parallel))
    if not gpu.supports_bf16 and plan.precision != "fp32":
        out.append(f"{gpu.display_name} has no bf16: train in fp16 with loss scaling (same bytes)")
    if plan.pipeline_parallel > plan.grad_accum_steps:
        out.append(f"--pp {plan.pipeline_parallel} with {plan.grad_accum_steps} micro-batch(es) per step: the pipeline is mostly bubble; use --grad-accum >= --pp")
    return out


def training_notes(model: ModelSpec, plan: TrainingPlan) -> list[str]:
    out: list[str] = []
    if not model.training_probe_checked or model.moe or model.mla:  # benchmarks/results/train_meta.md
        out.append(f"activations of {model.model_type} (MoE/MLA/parallel attention) are approximate: the meta probe checks llama, "
                   "mistral, qwen2/3, phi3 and gemma2 layers to 3% (benchmarks/results/train_meta.md)")
    if plan.mode == "qlora":
        out.append("QLoRA: nf4 base with double quantisation (bitsandbytes), bf16 adapters; a paged optimizer can spill its states "
                   "to CPU memory under pressure (counted here on the GPU)")
    if plan.offload_optimizer or plan.offload_params:
        out.append("ZeRO-Offload/Infinity: the optimizer step runs on the CPU (DeepSpeed CPUAdam); speed is bound by the host link")
    if plan.tensor_parallel > 1:
        out.append("tensor parallel: Megatron-style column/row splits with a vocab-parallel cross-entropy")
    return out


def estimate_training(model: ModelSpec, gpu: GpuSpec, plan: TrainingPlan, host_memory_limit_bytes: int | None = None) -> TrainEstimate:
    """Budget every pipeline stage of the training plan on one GPU of its TP group."""
    check_training_plan(model, plan)
    stages = tuple(train_stage_budget(model, gpu, plan, s) for s in range(plan.pipeline_parallel))
    warnings = tuple(model.warnings) + tuple(training_warnings(model, gpu, plan))
    return TrainEstimate(model, gpu, plan, stages, warnings, tuple(training_notes(model, plan)), host_memory_limit_bytes)
