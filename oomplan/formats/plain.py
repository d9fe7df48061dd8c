"""fp32, bf16, fp16: one element, `element_bytes` each; no scales."""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass

from oomplan.formats.base import layout


@dataclass(frozen=True)
class Plain:
    element_bytes: float

    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        return int(rows * cols * self.element_bytes)

    def kv_vector_bytes(self, num_values: int) -> int:
        return int(num_values * self.element_bytes)


@layout("plain")
def _plain(row: dict[str, Any]) -> Plain:
    return Plain(row["element_bytes"])
