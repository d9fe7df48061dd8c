"""Integer formats: int8 (weights per output channel, KV per group), int4 KV, AWQ and GPTQ int4 weights.

int8 weights: one fp32 scale per output channel (bitsandbytes LLM.int8 SCB, W8A8 compressed-tensors).
int8/int4 KV: HF QuantizedCache (quanto/HQQ) default q_group_size 64, an fp16 scale + fp16 zero per group.
AWQ/GPTQ: AutoAWQ/GPTQ packing, int4 qweight, fp16 scales [in/g, out], int4 qzeros [in/g, out/8 int32];
GPTQ adds g_idx, one int32 per input channel.
"""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass

from oomplan.formats.base import layout
from oomplan.units import FP32, INT32, ceil_div

KV_QUANT_GROUP = 64
FP16 = 2


def kv_group_bytes(num_values: int, bits: int) -> int:
    """Quantised KV values plus an fp16 scale and fp16 zero per KV_QUANT_GROUP values."""
    return int(num_values * bits / 8) + ceil_div(num_values, KV_QUANT_GROUP) * 2 * FP16


@dataclass(frozen=True)
class Int8:
    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        return rows * cols + rows * FP32

    def kv_vector_bytes(self, num_values: int) -> int:
        return kv_group_bytes(num_values, 8)


@dataclass(frozen=True)
class Int4Kv:
    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        raise ValueError("int4 is a KV cache format; int4 weights are awq or gptq")

    def kv_vector_bytes(self, num_values: int) -> int:
        return kv_group_bytes(num_values, 4)


@dataclass(frozen=True)
class GroupedInt4:
    g_idx: bool  # GPTQ's act-order index

    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        n, groups = rows * cols, ceil_div(cols, group_size)
        packed = n // 2 + groups * rows * FP16 + ceil_div(groups * rows, 2)
        return packed + (cols * INT32 if self.g_idx else 0)

    def kv_vector_bytes(self, num_values: int) -> int:
        raise ValueError("AWQ/GPTQ are weight formats")


@dataclass(frozen=True)
class SymmetricInt4:
    """compressed-tensors W4A16 (pack-quantized, symmetric): weight_packed int32 [out, in/8], weight_scale
    16-bit [out, in/g], weight_shape int64 [2]; no zero points (vLLM CompressedTensorsWNA16.create_weights,
    vllm/model_executor/layers/quantization/compressed_tensors/schemes/compressed_tensors_wNa16.py)."""

    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        return rows * cols // 2 + rows * ceil_div(cols, group_size) * FP16 + 2 * 8

    def kv_vector_bytes(self, num_values: int) -> int:
        raise ValueError("W4A16 is a weight format")


@layout("int4-sym")
def _int4_sym(row: dict[str, Any]) -> SymmetricInt4:
    return SymmetricInt4()


@layout("int8")
def _int8(row: dict[str, Any]) -> Int8:
    return Int8()


@layout("int4-kv")
def _int4_kv(row: dict[str, Any]) -> Int4Kv:
    return Int4Kv()


@layout("awq")
def _awq(row: dict[str, Any]) -> GroupedInt4:
    return GroupedInt4(g_idx=False)


@layout("gptq")
def _gptq(row: dict[str, Any]) -> GroupedInt4:
    return GroupedInt4(g_idx=True)
