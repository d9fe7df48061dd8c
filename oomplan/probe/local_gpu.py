"""`--gpu auto`: the local card's profile, with its capacity cut to what is free now."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.errors import InputError, ProfileNotFoundError
from oomplan.probe.detect import DetectedGpu, detect_gpus, profile_key
from oomplan.profiles import load_gpu
from oomplan.specs.hardware import GpuSpec


@dataclass(frozen=True)
class LocalGpu:
    spec: GpuSpec  # memory_bytes = min(profile capacity, free now)
    num_gpus: int
    device_name: str
    free_bytes: int
    profile_memory_bytes: int


def match_profile(device_name: str, key: str) -> GpuSpec:
    try:
        return load_gpu(key, flag="--gpu auto")
    except ProfileNotFoundError:
        raise InputError(f"--gpu auto: detected {device_name!r}, which matches no GPU profile; pass --gpu NAME (see oomplan gpus)") from None


def local_gpu(detected: tuple[DetectedGpu, ...] | None = None) -> LocalGpu:
    """The local GPUs (detected now unless given); all must be the same kind."""
    detected = detected if detected is not None else detect_gpus()
    names = {d.name for d in detected}
    if len(names) > 1:
        raise InputError(f"--gpu auto: mixed GPUs {sorted(names)}; pass --gpu NAME")
    first = detected[0]
    spec = match_profile(first.name, profile_key(first.name))
    free = min(d.free_bytes for d in detected)
    usable = min(spec.memory_bytes, free)
    return LocalGpu(spec.model_copy(update={"memory_bytes": usable}), len(detected), first.name, free, spec.memory_bytes)
