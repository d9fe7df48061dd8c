"""Pydantic bases: our own files are strict (extra='forbid'), everything frozen.

Both bases refuse what pydantic's lax mode would coerce silently: a bool where a number is expected
(`num_hidden_layers: true` is not one layer, `schema_version: true` is not version 1), and NaN or
infinity in any float. Strict (our files) also refuses numbers written as strings ("8").
"""
from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def _scalar_kinds(annotation: Any) -> set[type]:
    """The scalar types an annotation admits: int | None -> {int, NoneType}; Literal[1] -> {int}."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar_kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: set[type] = set()
        for arg in typing.get_args(annotation):
            out |= _scalar_kinds(arg)
        return out
    if origin is typing.Literal:
        return {type(v) for v in typing.get_args(annotation)}
    if annotation is typing.Any:
        return {object}
    if isinstance(annotation, type):
        return {annotation}
    return {object}  # containers and the like: checked by their own validators


_CACHE = "_oomplan_number_fields"


def _number_fields(cls: type[BaseModel]) -> dict[str, bool]:
    """Field (and alias) -> True for fields that take numbers but not bools (or strings)."""
    cached: dict[str, bool] | None = cls.__dict__.get(_CACHE)
    if cached is not None:
        return cached
    out: dict[str, bool] = {}
    for name, info in cls.model_fields.items():
        kinds = _scalar_kinds(info.annotation)
        if kinds & {int, float} and not kinds & {bool, str, object}:
            out[name] = True
            if info.alias:
                out[info.alias] = True
    setattr(cls, _CACHE, out)  # a class attribute pydantic does not know; setattr keeps mypy from asking for a field
    return out


def _refuse_lax_numbers(cls: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    fields = _number_fields(cls)
    for key, value in data.items():
        if key in fields:
            if isinstance(value, bool):
                raise ValueError(f"field {key!r} must be a number, not {str(value).lower()}")
    return data


class Strict(BaseModel):
    """Our own YAML and plan files: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _no_lax_numbers(cls, data: Any) -> Any:
        return _refuse_lax_numbers(cls, data)


class Lenient(BaseModel):
    """Third-party files (HF config.json): unknown keys are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        return _refuse_lax_numbers(cls, data)
