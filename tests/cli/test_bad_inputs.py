"""Each row of docs/bad-inputs.md: its exit code and its one-line message, through the real console script."""
import os

import pytest
from bad_inputs import ROWS, run_row


@pytest.mark.parametrize("what,argv,files,code,fragment,options", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input(what, argv, files, code, fragment, options, tmp_path):
    if options.get("needs_unprivileged") and os.geteuid() == 0:
        pytest.skip("permission case: root reads and writes everything (run the suite as an unprivileged user)")
    out = run_row(argv, files, tmp_path, options)
    if code == 3 and out.returncode == 0:
        pytest.skip("a GPU driver is present here")
    stderr = out.stderr.replace(str(tmp_path), "DIR")
    stdout = out.stdout or ""
    assert out.returncode == code, stderr
    assert fragment in stderr or (code == 0 and fragment in stdout), stderr
    assert "Traceback" not in stderr
    assert len([line for line in stderr.splitlines() if line.startswith("error:")]) <= 1
    assert "\x1b" not in stdout + stderr, "a raw escape sequence reached the terminal"
    if options.get("empty_stdout"):
        assert stdout == "", "printed a result before failing"
    if options.get("nonempty_stdout"):
        assert stdout.strip(), "printed nothing"
    if options.get("absent"):
        assert options["absent"] not in stdout + stderr, "echoed the content of a file that is not ours"
