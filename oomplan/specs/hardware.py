"""GpuSpec: one GPU kind, as read from hardware_profiles/*.yaml.

Every number is per GPU and carries its unit in its name. `memory_bytes` is what the
driver gives CUDA (torch.cuda.get_device_properties(i).total_memory), not the label.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from oomplan.specs.base import Strict


class Link(Strict):
    """A GPU-to-GPU or GPU-to-host link, per direction, per GPU."""

    kind: str = Field(description="e.g. nvlink4, pcie5, infinity-fabric")
    bandwidth_bytes_per_s: float = Field(gt=0)


class RuntimeOverhead(Strict):
    """Memory each process uses on a GPU beyond its tensors."""

    cuda_context_bytes: int = Field(ge=0, description="CUDA/HIP context and loaded kernels")
    cublas_workspace_bytes: int = Field(ge=0, description="cuBLAS/cuBLASLt workspaces")
    allocator_fraction: float = Field(
        ge=0, le=0.5, description="caching-allocator rounding and fragmentation, as a fraction of tensor bytes"
    )
    nccl_buffer_bytes: int = Field(ge=0, description="NCCL communicator buffers once tensor parallel > 1")
    source: str


class Calibration(Strict):
    """Overheads measured by the CUDA probe on this GPU kind."""

    measured_on: str = Field(description="date, YYYY-MM-DD")
    device: str
    driver: str
    versions: str
    non_torch_bytes: int = Field(ge=0)
    allocator_fraction: float = Field(ge=0, le=0.5)
    notes: str = ""


class GpuSpec(Strict):
    schema_version: Literal[1] = 1
    name: str
    display_name: str
    aliases: tuple[str, ...] = ()
    vendor: Literal["nvidia", "amd", "apple"]
    architecture: str
    memory_bytes: int = Field(gt=0)
    memory_bandwidth_bytes_per_s: float = Field(gt=0)
    dense_bf16_flops_per_s: float = Field(gt=0)
    dense_fp8_flops_per_s: float | None = Field(default=None, gt=0, description="absent where the card has no fp8 tensor cores")
    dense_int8_ops_per_s: float | None = Field(default=None, gt=0)
    supports_fp8: bool
    supports_bf16: bool = True
    interconnect: Link
    host_link: Link
    num_gpus_per_node: int = Field(ge=1, le=72)
    overhead: RuntimeOverhead
    calibration: Calibration | None = None
    sources: dict[str, str] = Field(description="field name -> where its value comes from")
