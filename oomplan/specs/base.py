"""Pydantic bases: our own files are strict (extra='forbid'), everything frozen."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Our own YAML and plan files: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Lenient(BaseModel):
    """Third-party files (HF config.json): unknown keys are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")
