"""Read a plan file: one-line errors for every way it can be wrong."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from oomplan.errors import FieldError, InputError
from oomplan.profiles import read_yaml
from oomplan.specs.convert import build_file
from oomplan.text import clean
from oomplan.specs.plan_file import PLAN_SCHEMA_VERSION, PlanFile

_KNOWN = ("schema_version", "oomplan_version", "model", "gpu", "workload", "plan", "predicted", "training")


def load_plan_file(path: str | Path) -> PlanFile:
    path = Path(path)
    data = read_yaml(path, "plan file")
    if not isinstance(data, dict):
        raise InputError(f"{clean(str(path))}: expected a plan mapping at the top level, got {type(data).__name__}")
    version = data.get("schema_version")
    if isinstance(version, (int, float)) and not isinstance(version, bool) and version > PLAN_SCHEMA_VERSION:
        raise InputError(
            f"{clean(str(path))}: schema_version {version:g} is newer than this oomplan reads ({PLAN_SCHEMA_VERSION}); upgrade oomplan"
        )
    return build_file(PlanFile, data, path, "plan file", _KNOWN + tuple(_nested_fields()))


def _nested_fields() -> list[str]:
    from oomplan.specs.plan import Plan, Workload

    from oomplan.specs.training import TrainingPlan

    return list(Plan.model_fields) + list(Workload.model_fields) + list(TrainingPlan.model_fields)


@contextmanager
def named_by_key(path: str | Path, sections: Mapping[str, Iterable[str]], overridden: Iterable[str] = ()) -> Iterator[None]:
    """A FieldError raised inside names the plan file's key (`plan.tensor_parallel`), not a flag: `sections`
    maps each section of the file to its fields; a field a flag `overridden` keeps the flag's wording."""
    try:
        yield
    except FieldError as exc:
        section = next((name for name, fields in sections.items() if exc.field in fields), None)
        if exc.file is not None or section is None or exc.field in overridden:
            raise
        raise exc.in_file(clean(str(path)), f"{section}.") from None
