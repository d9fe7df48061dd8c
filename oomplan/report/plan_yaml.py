"""Write plan files and other outputs atomically: a temporary file, then a rename."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from oomplan.safeio import check_output, check_outputs, exists, load_yaml_text, write_atomic_bytes  # noqa: F401 - re-exported for the CLI
from oomplan.specs.convert import build
from oomplan.text import clean
from oomplan.specs.plan_file import PlanFile

HEADER = "# oomplan plan file (docs/plan-schema.md). Re-check before deploy: oomplan check {path}\n"


def write_atomic(path: Path, text: str, force: bool, flag: str = "-o") -> None:
    """Never leaves a partial file; refuses to overwrite without force (oomplan/safeio.py)."""
    write_atomic_bytes(path, text.encode("utf-8"), force, flag)


def portable_ref(ref: str, output: Path) -> str:
    """A model/GPU ref as a plan at `output` stores it: a path that exists is written relative to the plan
    file's folder (check resolves it from there, wherever it is run); a profile name stays a name."""
    if not exists(ref) or ref.startswith("~"):
        return ref
    try:
        return os.path.relpath(os.path.abspath(ref), os.path.abspath(output.parent if str(output.parent) else "."))
    except (OSError, ValueError):
        return os.path.abspath(ref)


def plan_yaml(pf: PlanFile, path: Path) -> str:
    """The plan file's text. It is read back with the reader `check` uses before it is written: whatever
    fit writes, check accepts (a value out of a spec's bounds is refused here, not at deploy time)."""
    refs = {"model": pf.model.model_copy(update={"ref": portable_ref(pf.model.ref, path)}),
            "gpu": pf.gpu.model_copy(update={"ref": portable_ref(pf.gpu.ref, path)})}
    body = yaml.safe_dump(pf.model_copy(update=refs).model_dump(mode="json"), sort_keys=False, default_flow_style=False)
    build(PlanFile, load_yaml_text(body, f"the plan for {path}"), f"the plan for {path} (not written)")
    return HEADER.format(path=clean(path.name)) + body
