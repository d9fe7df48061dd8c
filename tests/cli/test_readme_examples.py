"""Every ```console example in README.md is run and its output compared (stdout, lines right-trimmed).

The examples are captured as `COLUMNS=80 oomplan ...`; warnings on stderr are not part of them
(the README states them in prose). Re-capture a stale example with: COLUMNS=80 oomplan ARGS 2>/dev/null
"""
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```console\n(.*?)^```", re.S | re.M)


def _trim(lines):
    lines = [line.rstrip() for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def examples():
    """(command, expected stdout lines) for every `$ oomplan ...` line of every console block."""
    found = []
    for block in BLOCK.findall(README.read_text(encoding="utf-8")):
        command, expected = None, []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command:
                    found.append((command, _trim(expected)))
                command, expected = line[2:].strip(), []
            else:
                expected.append(line)
        if command:
            found.append((command, _trim(expected)))
    return found


def test_readme_has_examples():
    commands = [c for c, _ in examples()]
    assert len(commands) >= 5 and all(c.startswith("oomplan ") for c in commands)


@pytest.mark.parametrize("command,expected", examples(), ids=[c for c, _ in examples()])
def test_readme_example_output(command, expected):
    args = shlex.split(command)[1:]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code in (0, 1), result.output
    assert _trim(result.stdout.splitlines()) == expected, "\n" + result.stdout
