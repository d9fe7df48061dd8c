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


# What `estimate` has no use for: the other commands' modules, their planners, the measured (transformers)
# path, click itself (typer >= 0.16 runs its vendored copy), importlib.metadata (pydantic's plugin scan, off),
# rich's emoji table (emoji codes are off).
OTHER_COMMANDS = {"oomplan.cli.fit", "oomplan.cli.curve", "oomplan.cli.check", "oomplan.cli.export", "oomplan.cli.catalog",
                  "oomplan.cli.probe", "oomplan.cli.vet", "oomplan.planner.search", "oomplan.planner.inverse"}
NOT_ON_THE_ESTIMATE_PATH = {"oomplan.specs.measured", "oomplan.memory.measured", "click", "importlib.metadata", "rich._emoji_codes"}


def test_estimate_json_imports_no_other_command_and_no_rendering():
    mods = _modules(["estimate", "llama-3.1-405b", "--gpu", "h100", "--ctx", "32k", "--tp", "8", "--pp", "2", "--json"])
    assert "oomplan.memory.budget" in mods and "oomplan.cli.estimate" in mods
    assert not {m for m in mods if m.startswith("rich")}
    assert not (OTHER_COMMANDS | NOT_ON_THE_ESTIMATE_PATH) & mods


def test_estimate_table_imports_no_other_command():
    mods = _modules(["estimate", "llama-3.1-405b", "--gpu", "h100", "--ctx", "32k", "--tp", "8", "--pp", "2"])
    assert {"rich.table", "oomplan.report.estimate_table"} <= mods
    assert not (OTHER_COMMANDS | NOT_ON_THE_ESTIMATE_PATH) & mods


def test_plugin_loader_stand_in_answers_as_pydantic_does():
    """main() stands in for pydantic's plugin loader while PYDANTIC_DISABLE_PLUGINS turns plugins off: its
    get_plugins() must answer as pydantic's own does for that value; any other value leaves pydantic's loader."""
    code = (
        "import importlib, os, sys\n"
        "from oomplan.cli.app import _skip_plugin_loader\n"
        "os.environ['PYDANTIC_DISABLE_PLUGINS'] = sys.argv[1]\n"
        "_skip_plugin_loader()\n"
        "from pydantic import BaseModel\n"
        "class M(BaseModel):\n"
        "    x: int\n"
        "assert M(x=1).x == 1\n"
        "loader = sys.modules['pydantic.plugin._loader']\n"
        "print(loader.__file__ if hasattr(loader, '__file__') else 'stand-in', 'importlib.metadata' in sys.modules, tuple(loader.get_plugins()))\n"
        "del sys.modules['pydantic.plugin._loader']\n"
        "print(tuple(importlib.import_module('pydantic.plugin._loader').get_plugins()))\n"
    )

    def run(value):
        out = subprocess.run([sys.executable, "-c", code, value], capture_output=True, text=True, cwd=ROOT, check=True,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        return out.stdout.splitlines()

    for value in ("__all__", "1", "true"):
        assert run(value) == ["stand-in False ()", "()"]
    first, _ = run("some-plugin")  # plugins on (all but one): pydantic's own loader, nothing stood in
    path, metadata_imported = first.split()[:2]
    assert path.endswith("_loader.py") and metadata_imported == "True"


def test_console_prints_emoji_codes_as_text():
    import io

    from oomplan.cli.console import SafeConsole

    buf = io.StringIO()
    SafeConsole(file=buf, width=80).print("model :fire: [bold]x[/bold]")
    assert buf.getvalue() == "model :fire: [bold]x[/bold]\n"


def test_estimate_imports_only_its_models_family():
    """Family modules (each defines pydantic config classes) load only for the model_type a config names."""
    mods = _modules(["estimate", "llama-3-8b", "--gpu", "h100", "--ctx", "4k", "--json"])
    families = {m for m in mods if m.startswith("oomplan.families.")}
    shared = {"oomplan.families.base", "oomplan.families.config", "oomplan.families.engine_facts", "oomplan.families.module_naming"}
    assert families == shared | {"oomplan.families.llama"}
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
