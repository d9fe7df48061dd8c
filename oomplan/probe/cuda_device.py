"""The few CUDA calls the CUDA probe makes, behind one small object, so that its bookkeeping (caps, fractions,
restores, what counts as non-torch) is tested with a fake device on machines without a GPU.

`TorchCuda` is the real one (torch.cuda + NVML where installed). Tests pass their own object with the same
methods; nothing in torch or transformers is patched.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceVersions:
    device_name: str
    driver: str | None  # NVML's driver version, None without nvidia-ml-py
    cuda: str | None  # the CUDA runtime torch was built with
    cudnn: str | None
    torch: str


class TorchCuda:
    """Device 0 through torch.cuda; NVML (nvidia-ml-py) for the driver version and per-process usage."""

    def __init__(self):
        import torch

        self._torch = torch

    def versions(self) -> DeviceVersions:
        t = self._torch
        cudnn = t.backends.cudnn.version() if t.backends.cudnn.is_available() else None
        return DeviceVersions(t.cuda.get_device_name(0), _nvml_driver(), t.version.cuda,
                              str(cudnn) if cudnn else None, t.__version__)

    def total_bytes(self) -> int:
        return int(self._torch.cuda.get_device_properties(0).total_memory)

    def free_bytes(self) -> int:
        """Free on the device now, for every process (cudaMemGetInfo)."""
        return int(self._torch.cuda.mem_get_info(0)[0])

    def process_used_bytes(self) -> int | None:
        """What this process holds on the device (context + allocator + libraries), from NVML; None if unknown."""
        return _nvml_process_used(os.getpid())

    def reserved_bytes(self) -> int:
        return int(self._torch.cuda.memory_reserved(0))

    def allocated_bytes(self) -> int:
        return int(self._torch.cuda.memory_allocated(0))

    def max_allocated_bytes(self) -> int:
        return int(self._torch.cuda.max_memory_allocated(0))

    def max_reserved_bytes(self) -> int:
        return int(self._torch.cuda.max_memory_reserved(0))

    def reset_peak(self) -> None:
        self._torch.cuda.synchronize(0)
        self._torch.cuda.reset_peak_memory_stats(0)

    def get_fraction(self) -> float:
        get = getattr(self._torch.cuda, "get_per_process_memory_fraction", None)
        return float(get(0)) if get is not None else 1.0

    def set_fraction(self, fraction: float) -> None:
        self._torch.cuda.set_per_process_memory_fraction(fraction, 0)

    def synchronize(self) -> None:
        self._torch.cuda.synchronize(0)

    def empty_cache(self) -> None:
        self._torch.cuda.empty_cache()

    def init(self) -> None:
        """Create the CUDA context (and cuBLAS handle) before anything is measured."""
        self._torch.zeros(1, device="cuda").add_(1)
        self.synchronize()


def _nvml_driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetDriverVersion()
            return v.decode() if isinstance(v, bytes) else str(v)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - NVML absent or failing: the version is unknown, not an error
        return None


def _nvml_process_used(pid: int) -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == pid and proc.usedGpuMemory is not None:
                    return int(proc.usedGpuMemory)
            return None
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - unknown (containers often hide PIDs): the caller falls back
        return None
