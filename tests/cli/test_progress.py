"""The spinner: on a terminal's stderr only; silent with --json, in pipes and under CliRunner."""
import io
import sys

from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.cli.progress import spinner, spinner_wanted


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_spinner_only_on_a_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not spinner_wanted(quiet=False)
    monkeypatch.setattr(sys, "stderr", FakeTty())
    assert spinner_wanted(quiet=False)
    assert not spinner_wanted(quiet=True)  # --json
    monkeypatch.setenv("TERM", "dumb")
    assert not spinner_wanted(quiet=False)


def test_spinner_runs_the_block_and_writes_to_stderr(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    fake = FakeTty()
    monkeypatch.setattr(sys, "stderr", fake)
    done = []
    with spinner("probing ..."):
        done.append(1)
    assert done == [1]
    quiet = FakeTty()
    monkeypatch.setattr(sys, "stderr", quiet)
    with spinner("probing ...", quiet=True):
        pass
    assert quiet.getvalue() == ""


def test_fit_stderr_has_no_spinner_when_not_a_tty():
    r = CliRunner().invoke(app, ["fit", "llama-3.1-8b", "--gpu", "l4", "--ctx", "8k"])
    assert r.exit_code == 0, r.output
    assert "searching plans" not in r.output
