"""The live-bytes peak of one call on the meta device, as the vision probes measure it (StorageTracker under
GpuKernelMode: what the CUDA kernels allocate)."""
from __future__ import annotations

import contextlib

import torch


def peak(model, make_inputs, call, *contexts: contextlib.AbstractContextManager) -> int:
    """Live bytes at the peak of `call(**inputs)`, weights excluded, the inputs included (made under tracking);
    `contexts` are entered around it (a probe's meta-safe stand-ins)."""
    from oomplan.probe.gpu_kernels import GpuKernelMode
    from oomplan.probe.tracker import StorageTracker

    tracker = StorageTracker(device_type="meta")
    tracker.register_existing([*model.parameters(), *model.buffers()])
    with contextlib.ExitStack() as stack:
        for c in (torch.no_grad(), tracker, GpuKernelMode(), *contexts):
            stack.enter_context(c)
        inputs = make_inputs()
        tracker.reset_peak()
        out = call(**inputs)
        del out
        return tracker.peak_bytes - tracker.preexisting_bytes
