"""Every ```console example in README.md is run and its output compared (stdout, lines right-trimmed).

The examples are captured as `COLUMNS=80 oomplan ...`; warnings on stderr are not part of them
(the README states them in prose). Re-capture a stale example with: COLUMNS=80 oomplan ARGS 2>/dev/null
"""
import shlex

import pytest
from readme_examples import examples, trim
from typer.testing import CliRunner

from oomplan.cli.app import app


def test_readme_has_examples():
    commands = [c for c, _ in examples()]
    assert len(commands) >= 5 and all(c.startswith("oomplan ") for c in commands)


@pytest.mark.parametrize("command,expected", examples(), ids=[c for c, _ in examples()])
def test_readme_example_output(command, expected):
    args = shlex.split(command)[1:]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code in (0, 1), result.output
    assert trim(result.stdout.splitlines()) == expected, "\n" + result.stdout
