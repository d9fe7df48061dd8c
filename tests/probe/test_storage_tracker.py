"""StorageTracker on plain CPU tensors, checked against their real sizes."""
from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from oomplan.probe.tracker import StorageTracker  # noqa: E402

F32 = 4


def test_importing_the_probe_package_does_not_import_torch():
    code = "import sys, oomplan.probe, oomplan.probe.meta_run; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_preexisting_tensors_count_once_and_start_the_peak():
    weight = torch.zeros(1000)
    tied = weight.view(10, 100)  # same storage: counted once
    tracker = StorageTracker()
    tracker.register_existing([weight, tied])
    assert tracker.preexisting_bytes == 1000 * F32
    assert tracker.live_bytes == tracker.peak_bytes == 1000 * F32


def test_create_view_inplace_and_free():
    tracker = StorageTracker()
    with tracker:
        a = torch.empty(100, 10)
        views = (a[3:5], a.view(-1), a.t(), a.transpose(0, 1).reshape(10, 100)[0])
        assert tracker.live_bytes == 1000 * F32  # views share the storage
        a.add_(1).mul_(2)
        a.clamp_(max=3)
        assert tracker.live_bytes == 1000 * F32  # in-place ops allocate nothing
        b = a + 1
        assert tracker.live_bytes == tracker.peak_bytes == 2000 * F32
        del a
        assert tracker.live_bytes == 2000 * F32  # views still hold a's storage
        del views
        gc.collect()
        assert tracker.live_bytes == 1000 * F32
        del b
        assert tracker.live_bytes == 0
    assert tracker.peak_bytes == 2000 * F32


def test_reshape_of_non_contiguous_copies():
    tracker = StorageTracker()
    with tracker:
        a = torch.empty(8, 4)
        c = a.t().reshape(32)  # not viewable: a real copy
        assert tracker.live_bytes == 64 * F32
        del c


def test_out_argument_resizes_an_existing_storage():
    tracker = StorageTracker()
    with tracker:
        out = torch.empty(0)
        x, y = torch.ones(3, 4), torch.ones(4, 5)
        torch.mm(x, y, out=out)
        assert tracker.live_bytes == (12 + 20 + 15) * F32


def test_factory_ops_and_temporaries_are_seen():
    tracker = StorageTracker()
    with tracker:
        z = torch.zeros(16) + torch.ones(16)  # two temporaries freed, one result kept
        assert tracker.live_bytes == 16 * F32
        assert tracker.peak_bytes == 3 * 16 * F32
        del z


def test_peak_snapshot_lists_and_classifies_what_was_alive():
    labels = {}

    def classify(info):
        return labels.get(info.shape, "other")

    tracker = StorageTracker(classifier=classify, context=lambda: ("here", "tag"))
    labels[(4, 4)] = "big"
    with tracker:
        small = torch.empty(2)
        big = torch.empty(4, 4)
        del big
        tmp = torch.empty(3)
        del tmp, small
    snap = tracker.peak
    assert snap.peak_bytes == (2 + 16) * F32
    assert sorted(i.shape for i in snap.live) == [(2,), (4, 4)]
    assert snap.bytes_by_label() == {"big": 16 * F32, "other": 2 * F32}
    assert {i.origin for i in snap.live} == {"here"} and {i.tag for i in snap.live} == {"tag"}
    assert snap.op_name == "empty"


def test_reset_peak_starts_a_new_window():
    tracker = StorageTracker()
    with tracker:
        a = torch.empty(100)
        del a
        keep = torch.empty(10)
        tracker.reset_peak()
        assert tracker.peak_bytes == 10 * F32
        b = torch.empty(20)
        assert tracker.peak_bytes == 30 * F32
        del b, keep


def test_device_filter_ignores_other_devices():
    tracker = StorageTracker(device_type="meta")
    with tracker:
        cpu = torch.empty(100)
        meta = torch.empty(10, device="meta")
        assert tracker.live_bytes == 10 * F32
        del cpu, meta


# An action: ("alloc", n) makes a new n-float tensor, ("view", i) views tensor i, ("free", i) drops tensor i.
_actions = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 64)),
        st.tuples(st.just("view"), st.integers(0, 30)),
        st.tuples(st.just("free"), st.integers(0, 30)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_actions)
def test_live_bytes_equal_the_distinct_storages_still_referenced(actions):
    tracker = StorageTracker()
    held: list[torch.Tensor] = []
    with tracker:
        for kind, arg in actions:
            if kind == "alloc":
                held.append(torch.empty(arg))
            elif held and kind == "view":
                held.append(held[arg % len(held)][1:])
            elif held:
                held.pop(arg % len(held))
            distinct = {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in held}
            assert tracker.live_bytes == sum(distinct.values())
