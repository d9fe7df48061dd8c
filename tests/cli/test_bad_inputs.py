"""Each row of docs/bad-inputs.md: its exit code and its one-line message, through the real console script."""
import subprocess
import sys

import pytest
from bad_inputs import ROWS


def run_row(argv, files, tmp_path):
    for name, content in files.items():
        target = tmp_path / name
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    args = [a.replace("{dir}", str(tmp_path)) for a in argv]
    return subprocess.run([sys.executable, "-m", "oomplan", *args], capture_output=True, text=True, errors="replace")


@pytest.mark.parametrize("what,argv,files,code,fragment", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input(what, argv, files, code, fragment, tmp_path):
    out = run_row(argv, files, tmp_path)
    if code == 3 and out.returncode == 0:
        pytest.skip("a GPU driver is present here")
    assert out.returncode == code, out.stderr
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr
    assert len([line for line in out.stderr.splitlines() if line.startswith("error:")]) <= 1
