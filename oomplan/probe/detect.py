"""Local GPU detection through NVML (nvidia-ml-py's `pynvml`), imported lazily."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.errors import RuntimeFailure


@dataclass(frozen=True)
class DetectedGpu:
    index: int
    name: str  # as NVML reports it, e.g. "NVIDIA H100 80GB HBM3"
    total_bytes: int  # NVML's total (includes what the driver reserves; torch sees a little less)
    free_bytes: int
    driver_version: str


def _nvml():
    try:
        import pynvml
    except ImportError:
        raise RuntimeFailure("GPU detection needs nvidia-ml-py: pip install 'oomplan[probe]'") from None
    return pynvml


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def detect_gpus() -> tuple[DetectedGpu, ...]:
    """Every GPU NVML sees; RuntimeFailure (exit 3) when there is no driver or no GPU."""
    nvml = _nvml()
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise RuntimeFailure(f"no NVIDIA driver found (NVML: {exc}); pass --gpu NAME instead of auto") from None
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        found = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(DetectedGpu(i, _text(nvml.nvmlDeviceGetName(handle)), int(mem.total), int(mem.free), driver))
    except nvml.NVMLError as exc:
        raise RuntimeFailure(f"NVML could not read the GPUs: {exc}") from None
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass
    if not found:
        raise RuntimeFailure("NVML found no GPU; pass --gpu NAME instead of auto")
    return tuple(found)


def profile_key(device_name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3', the alias form hardware profiles carry."""
    return "-".join(device_name.lower().replace("_", " ").split())
