"""Start-up (issue #16): a command imports only itself, and --json imports nothing for rendering.
Timings are in benchmarks/cli_speed.py; these check what is imported, which is what makes them."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, sys\n"
    "sys.argv = ['oomplan'] + json.loads(sys.argv[1])\n"
    "from oomplan.cli.app import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stderr.write('\\nMODULES ' + json.dumps(sorted(sys.modules)))\n"
)


def _modules(args):
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return set(json.loads(out.stderr.rsplit("MODULES ", 1)[1]))


def test_estimate_json_imports_no_other_command_and_no_rendering():
    mods = _modules(["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "4k", "--json"])
    assert "oomplan.memory.budget" in mods
    assert not {m for m in mods if m.startswith("rich")}
    assert not {"oomplan.cli.fit", "oomplan.cli.curve", "oomplan.cli.vet", "oomplan.cli.probe", "oomplan.planner.search"} & mods


def test_estimate_imports_only_its_models_family():
    """Family modules (each defines pydantic config classes) load only for the model_type a config names."""
    mods = _modules(["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "4k", "--json"])
    families = {m for m in mods if m.startswith("oomplan.families.")}
    assert families == {"oomplan.families.base", "oomplan.families.config", "oomplan.families.llama"}
    mods = _modules(["estimate", "qwen3-next-80b-a3b", "--gpu", "h100", "--ctx", "4k", "--json"])
    assert "oomplan.families.qwen3_next" in mods and "oomplan.families.llama" not in mods


def test_estimate_table_renders_with_rich():
    mods = _modules(["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "4k"])
    assert "rich.table" in mods and "oomplan.cli.fit" not in mods


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "oomplan", "--help"], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "80"})
    from oomplan.cli.app import COMMANDS

    assert out.returncode == 0 and all(f"  {name} " in out.stdout for name in COMMANDS)
