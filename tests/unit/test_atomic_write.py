"""Nothing lost: outputs are written to a temporary file and renamed; a failure leaves nothing behind."""
import os
from pathlib import Path

import pytest

from oomplan.errors import InputError, RuntimeFailure
from oomplan.report.plan_yaml import write_atomic


def test_writes_and_refuses_overwrite(tmp_path):
    target = tmp_path / "plan.yaml"
    write_atomic(target, "a: 1\n", force=False)
    assert target.read_text() == "a: 1\n"
    with pytest.raises(InputError, match="exists; pass --force"):
        write_atomic(target, "a: 2\n", force=False)
    write_atomic(target, "a: 2\n", force=True)
    assert target.read_text() == "a: 2\n"


def test_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "plan.yaml"
    target.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(RuntimeFailure, match="disk full"):  # exit 3, one line
        write_atomic(target, "new\n", force=True)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        write_atomic(tmp_path / "no" / "plan.yaml", "x", force=False)


def test_written_file_gets_the_umask_mode(tmp_path):
    target = tmp_path / "plan.yaml"
    old = os.umask(0o022)
    try:
        write_atomic(target, "a: 1\n", force=False)
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_exclusive_creation_loses_no_write(tmp_path, monkeypatch):
    """Two writers without --force: the second one to publish fails (link(2) is exclusive); it never
    silently replaces the first (the check-then-rename race)."""
    import oomplan.safeio as safeio

    target = tmp_path / "out.sh"
    real_check = safeio.check_output

    def check_then_someone_else_writes(path, force, flag="-o"):
        real_check(path, force, flag)
        path.write_text("the other writer\n")  # lands between the check and the rename

    monkeypatch.setattr(safeio, "check_output", check_then_someone_else_writes)
    with pytest.raises(InputError, match="exists; pass --force"):
        write_atomic(target, "mine\n", force=False)
    assert target.read_text() == "the other writer\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.sh"]


def test_non_regular_targets_are_never_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for force in (False, True):
        with pytest.raises(InputError, match="not a regular file"):
            write_atomic(fifo, "x", force=force)
    assert fifo.is_fifo()
    with pytest.raises(InputError, match="not a regular file"):
        write_atomic(Path("/dev/null"), "x", force=True)
    with pytest.raises(InputError, match="is a folder"):
        write_atomic(tmp_path, "x", force=True)


def test_dangling_symlink_counts_as_existing(tmp_path):
    link = tmp_path / "plan.yaml"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="exists; pass --force"):
        write_atomic(link, "x", force=False)
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
    write_atomic(link, "a: 1\n", force=True)  # --force replaces the link itself, never what it points at
    assert not link.is_symlink() and link.read_text() == "a: 1\n"


def test_sigterm_during_write_leaves_no_temp_file(tmp_path):
    """A SIGTERM between write and rename: the handler removes the temporary file, the target never appears."""
    import signal

    import oomplan.safeio as safeio

    safeio.install_signal_cleanup()
    old = os.replace

    def replace_then_signal(src, dst):
        os.kill(os.getpid(), signal.SIGTERM)
        old(src, dst)

    try:
        os.replace = replace_then_signal
        with pytest.raises(safeio.Terminated):
            write_atomic(tmp_path / "plan.yaml", "x", force=True)
    finally:
        os.replace = old
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert list(tmp_path.iterdir()) == []
