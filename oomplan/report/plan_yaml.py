"""Write plan files and other outputs atomically: a temporary file, then a rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from oomplan import __version__
from oomplan.errors import InputError
from oomplan.specs.plan_file import PlanFile, PlanGpu, PlanModel, PredictedBudget

HEADER = "# oomplan plan file (docs/plan-schema.md). Re-check before deploy: oomplan check {path}\n"


def write_atomic(path: Path, text: str, force: bool, flag: str = "-o") -> None:
    """Never leaves a partial file; refuses to overwrite without force."""
    write_atomic_bytes(path, text.encode("utf-8"), force, flag)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic_bytes(path: Path, data: bytes, force: bool, flag: str = "-o") -> None:
    """write_atomic for binary outputs (PNG, SVG): a temporary file in the same folder, then os.replace."""
    if path.exists() and not force:
        raise InputError(f"{flag}: {path} exists; pass --force to overwrite it")
    if path.exists() and path.is_dir():
        raise InputError(f"{flag}: {path} is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{flag}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a user's file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plan_file(model_ref: str, model_name: str, config_sha256: str, gpu_ref: str, workload, plan, predicted: dict) -> PlanFile:
    return PlanFile(
        oomplan_version=__version__,
        model=PlanModel(ref=model_ref, name=model_name, config_sha256=config_sha256),
        gpu=PlanGpu(ref=gpu_ref, num_gpus=plan.num_gpus),
        workload=workload,
        plan=plan,
        predicted=PredictedBudget(**predicted),
    )


def plan_yaml(pf: PlanFile, path: Path) -> str:
    body = yaml.safe_dump(pf.model_dump(mode="json"), sort_keys=False, default_flow_style=False)
    return HEADER.format(path=path.name) + body
