"""StorageTracker: exact live tensor bytes (and their peak) seen through TorchDispatchMode.

Every op's outputs pass through `__torch_dispatch__`; each new storage is registered once,
keyed by its StorageImpl pointer (`untyped_storage()._cdata`; stable while the storage lives,
also on `meta` where `data_ptr()` is 0), and a `weakref.finalize` on the storage's Python
object subtracts its bytes when it is freed (torch keeps that Python object alive exactly as
long as the StorageImpl, "PyObject preservation"). Views share a storage, so they add nothing;
in-place and `out=` ops return an already-known storage, so they add nothing either.

Only import this module from oomplan.probe (it imports torch at import time).
"""
from __future__ import annotations

import dataclasses
import itertools
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


@dataclass(frozen=True)
class StorageInfo:
    """One live storage: how big it is and where it came from."""

    seq: int  # unique per registration; a freed-then-reused `_cdata` address gets a new seq
    nbytes: int
    shape: tuple[int, ...]  # of the first tensor seen on this storage
    dtype: str
    op_name: str  # aten op that produced it, or "preexisting"
    origin: str  # context label at creation time (e.g. module path)
    tag: str = ""  # free-form marker from the context at creation time (e.g. "kv:12", "logits")
    preexisting: bool = False  # registered up front (parameters, buffers)


@dataclass(frozen=True)
class PeakSnapshot:
    """What was alive at the highest point since the last `reset_peak()`."""

    peak_bytes: int
    op_name: str  # op whose output made the peak
    origin: str  # context label of that op
    live: tuple[StorageInfo, ...]  # non-preexisting storages alive at the peak
    labels: tuple[str, ...]  # classifier label per entry of `live`, taken at the peak

    def bytes_by_label(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for info, label in zip(self.live, self.labels, strict=True):
            totals[label] = totals.get(label, 0) + info.nbytes
        return totals


Classifier = Callable[[StorageInfo], str]
ContextFn = Callable[[], tuple[str, str]]  # -> (origin, tag) for storages created now


@dataclass
class _State:
    live: dict[int, StorageInfo] = field(default_factory=dict)  # _cdata -> info
    live_bytes: int = 0
    preexisting_bytes: int = 0
    peak_bytes: int = 0
    peak: PeakSnapshot | None = None


class StorageTracker(TorchDispatchMode):
    """Tracks live storage bytes and the peak; snapshots and classifies what is alive at each new peak."""

    def __init__(
        self,
        classifier: Classifier | None = None,
        context: ContextFn | None = None,
        device_type: str | None = None,
    ) -> None:
        super().__init__()
        self._classify = classifier or (lambda info: "weights" if info.preexisting else "other")
        self._context = context or (lambda: ("", ""))
        self._device_type = device_type  # None: count tensors on every device
        self._seq = itertools.count()
        self._s = _State()

    # --- public view -------------------------------------------------------------------
    @property
    def live_bytes(self) -> int:
        return self._s.live_bytes

    @property
    def peak_bytes(self) -> int:
        return self._s.peak_bytes

    @property
    def preexisting_bytes(self) -> int:
        return self._s.preexisting_bytes

    @property
    def peak(self) -> PeakSnapshot | None:
        return self._s.peak

    def info(self, t: torch.Tensor) -> StorageInfo | None:
        """The live record of the tensor's storage, or None if untracked."""
        return self._s.live.get(t.untyped_storage()._cdata)

    def live_infos(self) -> tuple[StorageInfo, ...]:
        return tuple(self._s.live.values())

    def reset_peak(self) -> None:
        """Start a new peak window at the current live bytes (snapshot taken now)."""
        self._s.peak_bytes = self._s.live_bytes
        self._s.peak = self._snapshot("reset", self._context()[0])

    # --- registration ------------------------------------------------------------------
    def register_existing(self, tensors: Iterable[torch.Tensor], origin: str = "preexisting") -> None:
        """Count tensors made before tracking started (parameters, buffers) as preexisting."""
        for t in tensors:
            self._observe(t, "preexisting", (origin, ""), preexisting=True)
        self.reset_peak()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        where = None
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                where = self._context() if where is None else where
                self._observe(t, str(func.overloadpacket.__name__), where)
        return out

    def _observe(
        self, t: torch.Tensor, op_name: str, where: tuple[str, str], preexisting: bool = False
    ) -> None:
        if self._device_type is not None and t.device.type != self._device_type:
            return
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse / storage-less tensor subclasses
            return
        key, nbytes = storage._cdata, storage.nbytes()
        known = self._s.live.get(key)
        if known is not None:
            if known.nbytes != nbytes:  # an out= op or resize_ grew/shrank an existing storage
                self._resize(key, known, nbytes, op_name, where[0])
            return
        dtype = str(t.dtype).removeprefix("torch.")
        info = StorageInfo(
            seq=next(self._seq), nbytes=nbytes, shape=tuple(t.shape), dtype=dtype,
            op_name=op_name, origin=where[0], tag=where[1], preexisting=preexisting,
        )
        self._s.live[key] = info
        weakref.finalize(storage, self._on_free, key, info.seq).atexit = False
        self._add(nbytes, preexisting, op_name, where[0])

    def _resize(self, key: int, known: StorageInfo, nbytes: int, op_name: str, origin: str) -> None:
        self._s.live[key] = dataclasses.replace(known, nbytes=nbytes)
        self._add(nbytes - known.nbytes, known.preexisting, op_name, origin)

    def _add(self, delta: int, preexisting: bool, op_name: str, origin: str) -> None:
        s = self._s
        s.live_bytes += delta
        if preexisting:
            s.preexisting_bytes += delta
        elif s.live_bytes > s.peak_bytes:
            s.peak_bytes = s.live_bytes
            s.peak = self._snapshot(op_name, origin)

    def _on_free(self, key: int, seq: int) -> None:
        info = self._s.live.get(key)
        if info is None or info.seq != seq:
            return
        del self._s.live[key]
        self._s.live_bytes -= info.nbytes
        if info.preexisting:
            self._s.preexisting_bytes -= info.nbytes

    def _snapshot(self, op_name: str, origin: str) -> PeakSnapshot:
        live = tuple(i for i in self._s.live.values() if not i.preexisting)
        labels = tuple(self._classify(i) for i in live)
        return PeakSnapshot(self._s.live_bytes, op_name, origin, live, labels)
