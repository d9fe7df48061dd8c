"""Read a plan file: one-line errors for every way it can be wrong."""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from oomplan.errors import InputError
from oomplan.profiles import read_yaml, validation_message
from oomplan.specs.plan_file import PLAN_SCHEMA_VERSION, PlanFile

_KNOWN = ("schema_version", "oomplan_version", "model", "gpu", "workload", "plan", "predicted", "training")


def load_plan_file(path: str | Path) -> PlanFile:
    path = Path(path)
    data = read_yaml(path, "plan file")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a plan mapping at the top level, got {type(data).__name__}")
    version = data.get("schema_version")
    if isinstance(version, (int, float)) and not isinstance(version, bool) and version > PLAN_SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema_version {version:g} is newer than this oomplan reads ({PLAN_SCHEMA_VERSION}); upgrade oomplan"
        )
    try:
        return PlanFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(path, exc, _KNOWN + tuple(_nested_fields()))) from None


def _nested_fields() -> list[str]:
    from oomplan.specs.plan import Plan, Workload

    from oomplan.specs.training import TrainingPlan

    return list(Plan.model_fields) + list(Workload.model_fields) + list(TrainingPlan.model_fields)
