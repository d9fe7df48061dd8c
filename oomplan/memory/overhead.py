"""Per-GPU runtime overhead: CUDA context, cuBLAS workspace, allocator rounding, NCCL buffers.

The numbers come from the GPU profile (hardware_profiles/*.yaml), measured where the
profile has a calibration block.
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.specs.hardware import GpuSpec


@dataclass(frozen=True)
class OverheadBudget:
    cuda_context_bytes: int
    cublas_workspace_bytes: int
    allocator_bytes: int
    nccl_bytes: int

    @property
    def total(self) -> int:
        return self.cuda_context_bytes + self.cublas_workspace_bytes + self.allocator_bytes + self.nccl_bytes


def allocator_fraction(gpu: GpuSpec) -> float:
    return gpu.calibration.allocator_fraction if gpu.calibration else gpu.overhead.allocator_fraction


def overhead_budget(gpu: GpuSpec, tensor_bytes: int, num_gpus: int) -> OverheadBudget:
    """`tensor_bytes`: what the caching allocator holds (weights + KV + activations)."""
    o = gpu.overhead
    fraction = allocator_fraction(gpu)
    return OverheadBudget(
        cuda_context_bytes=o.cuda_context_bytes,
        cublas_workspace_bytes=o.cublas_workspace_bytes,
        allocator_bytes=int(tensor_bytes * fraction),
        nccl_bytes=o.nccl_buffer_bytes if num_gpus > 1 else 0,
    )
