"""The one-way data flow, checked from the imports of every module.

errors/units/text/safeio -> specs/formats -> families -> profiles -> memory -> engines -> planner -> probe -> api -> report -> cli.
torch/transformers/pynvml only in probe/; typer only in cli/; rich only in report/ and cli/.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "oomplan"
RANK = {"errors": 0, "units": 0, "text": 0, "safeio": 0, "specs": 1, "formats": 1, "families": 1.5, "profiles": 2, "planfile": 2, "checkpoint": 2, "data": 0, "memory": 3, "engines": 4, "planner": 5, "probe": 6, "api": 6.5, "report": 7, "cli": 8}
HEAVY = {"torch", "transformers", "pynvml"}
HUB = {"huggingface_hub", "safetensors", "gguf", "numpy"}  # only oomplan/checkpoint, and only inside functions


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("__init__.py", "__main__.py"):
            continue
        yield rel, ast.parse(path.read_text())


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((a.name, node) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, node


def _layer(rel):
    return rel.parts[0].removesuffix(".py")


@pytest.mark.parametrize("rel,tree", list(_modules()), ids=lambda x: str(x) if isinstance(x, Path) else "")
def test_imports_follow_the_layers(rel, tree):
    layer = _layer(rel)
    for name, _ in _imports(tree):
        top = name.split(".")[0]
        if top in HEAVY:
            assert layer == "probe", f"{rel} imports {name}: only oomplan/probe may"
        if top in HUB:
            assert layer in ("checkpoint", "probe"), f"{rel} imports {name}: only oomplan/checkpoint may (lazily)"
        if top == "typer":
            assert layer == "cli", f"{rel} imports typer"
        if top == "rich":
            assert layer in ("cli", "report"), f"{rel} imports rich"
        if top == "oomplan" and name != "oomplan":
            target = name.split(".")[1]
            assert RANK[target] <= RANK[layer], f"{rel} ({layer}) imports {name} from a later layer"


def test_formats_use_only_the_spec_base():
    """Plan (specs/plan.py) reads its literals from the format registry: formats may import specs.base only."""
    for rel, tree in _modules():
        if _layer(rel) == "formats":
            for name, _ in _imports(tree):
                assert not name.startswith("oomplan.specs") or name == "oomplan.specs.base", f"{rel} imports {name}"


def test_checkpoint_imports_hub_libraries_lazily():
    """huggingface_hub/safetensors/gguf/numpy are imported inside functions only: importing oomplan.checkpoint costs nothing."""
    for path in sorted((PACKAGE / "checkpoint").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in HUB for n in names), f"{path.name}: module-level import of {names}"


def test_probe_imports_torch_lazily():
    """Module-level torch imports in probe/ only in modules nothing outside probe/ imports."""
    init = (PACKAGE / "probe" / "__init__.py")
    if init.exists():
        top_level = [n for n in ast.parse(init.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not any(isinstance(n, ast.Import) and n.names[0].name.split(".")[0] in HEAVY for n in top_level)


def test_estimate_path_never_imports_torch_or_transformers():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from oomplan.cli.app import app\n"
        "r = CliRunner().invoke(app, ['estimate', 'llama-3-70b', '--gpu', sys.argv[1], '--ctx', '32k'])\n"
        "assert r.exit_code in (0, 1), r.output\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'pynvml', 'huggingface_hub', 'safetensors', 'gguf', 'numpy') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    gpu = str(Path(__file__).resolve().parents[1] / "fixtures" / "a100-40g-fixture.yaml")
    out = subprocess.run([sys.executable, "-c", code, gpu], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "heavy: []"
