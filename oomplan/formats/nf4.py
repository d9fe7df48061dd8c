"""bitsandbytes nf4 with double quantisation (QLoRA, Dettmers et al. 2023).

uint8 absmax per 64 weights, an fp32 absmax per 256 of those blocks, plus the nested state's 256-entry fp32
code, the 16-entry NF4 code and an fp32 offset.
"""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass

from oomplan.formats.base import layout
from oomplan.units import FP32, ceil_div

BLOCK = 64
NESTED_BLOCK = 256


@dataclass(frozen=True)
class Nf4:
    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        n = rows * cols
        blocks = ceil_div(n, BLOCK)
        return n // 2 + blocks + ceil_div(blocks, NESTED_BLOCK) * FP32 + 256 * FP32 + 16 * FP32 + FP32

    def kv_vector_bytes(self, num_values: int) -> int:
        raise ValueError("nf4 is a weight format")


@layout("nf4")
def _nf4(row: dict[str, Any]) -> Nf4:
    return Nf4()
