"""Nothing lost: outputs are written to a temporary file and renamed; a failure leaves nothing behind."""
import os

import pytest

from oomplan.errors import InputError
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
    with pytest.raises(OSError):
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
