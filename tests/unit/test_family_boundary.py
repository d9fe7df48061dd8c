"""Only families/ (and probe/, which rebuilds the model in transformers) read the raw config or
compare model_type: everything else works from the typed, per-layer ModelSpec (issue 12 part 1)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "oomplan"
ALLOWED = ("families", "probe")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] not in ALLOWED:
            yield rel, ast.parse(path.read_text())


def _is_model_type(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "model_type") or (isinstance(node, ast.Name) and node.id == "model_type")


def _offences(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "hf_config" and isinstance(node.ctx, ast.Load):
            yield node.lineno, "reads .hf_config"
        if isinstance(node, ast.Compare) and any(_is_model_type(n) for n in [node.left, *node.comparators]):
            yield node.lineno, "compares model_type"
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "model_type":
            yield node.lineno, "reads ['model_type']"
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("oomplan.families."):
            yield node.lineno, f"imports {node.module} (use oomplan.families' entry points)"


@pytest.mark.parametrize("rel,tree", list(_modules()), ids=lambda x: str(x) if isinstance(x, Path) else "")
def test_no_family_logic_outside_families(rel, tree):
    found = [f"line {line}: {what}" for line, what in _offences(tree)]
    assert not found, f"{rel}: {'; '.join(found)}"


def test_the_check_catches_offences():
    bad = ast.parse("if model.model_type == 'falcon':\n    x = model.hf_config.get('a')\nfrom oomplan.families.llama import build\n")
    assert sorted(what for _, what in _offences(bad)) == sorted(["compares model_type", "reads .hf_config", "imports oomplan.families.llama (use oomplan.families' entry points)"])
