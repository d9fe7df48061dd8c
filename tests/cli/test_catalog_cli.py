"""`oomplan models` / `oomplan gpus` list every shipped profile by its full name on an 80-column terminal
(names are what users type; other columns give way)."""
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command, folder", [("models", "model_profiles"), ("gpus", "hardware_profiles")])
def test_every_shipped_name_is_listed_whole_at_80_columns(command, folder, monkeypatch, tmp_path):
    monkeypatch.setenv("OOMPLAN_PROFILE_DIR", str(tmp_path))  # no user profiles
    result = CliRunner().invoke(app, [command], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    listed = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")}
    shipped = {p.stem for p in (ROOT / folder).glob("*.yaml")}
    assert shipped <= listed, sorted(shipped - listed)
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
