"""Engine constants read from oomplan/data/engines/*.yaml: each value carries its provenance there."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable

from pydantic import ValidationError

from oomplan.errors import InputError
from oomplan.profiles import read_yaml, validation_message
from oomplan.specs.base import Strict

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "engines"

C = TypeVar("C", bound=Strict)


def load_constants(path: Path, model: type[C], reader: Callable[[Path], Any] | None = None) -> C:
    """Validate a constants file (reader: e.g. a version table's merge of `extends:` chains)."""
    data = reader(path) if reader else read_yaml(path, "engine constants file")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(path, exc, tuple(model.model_fields))) from None
