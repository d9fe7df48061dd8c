"""fp8 e4m3 weights: one byte per element plus fp32 scales per tensor, per output channel or per 2-D block.

Per tensor: vLLM Fp8LinearMethod's weight_scale (one fp32; vllm-project/vllm@0071b24bf8fe8c3d1bc3516d0ff8477f07964aaf:
vllm/model_executor/layers/quantization/fp8.py). Block-wise (`weight_block_size` [128, 128], DeepSeek-V3 / Qwen3 FP8):
weight_scale_inv fp32 [ceil(out/128), ceil(in/128)] (same file, create_weights with block_quant; transformers
integrations/finegrained_fp8.py FP8Linear keeps the same weight_scale_inv shape). Per channel: compressed-tensors
strategy 'channel', one fp32 scale per output row (vllm compressed_tensors_w8a8_fp8.py, ChannelQuantScaleParameter).
KV: one byte per value (vLLM fp8 KV cache; its per-layer k/v scales are negligible and not counted).
"""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass

from oomplan.formats.base import layout
from oomplan.units import FP32, ceil_div


@dataclass(frozen=True)
class Fp8:
    scales: str  # tensor | channel | block

    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        n = rows * cols
        if self.scales == "tensor":
            return n + FP32
        if self.scales == "channel":
            return n + rows * FP32
        return n + ceil_div(rows, group_size) * ceil_div(cols, group_size) * FP32

    def kv_vector_bytes(self, num_values: int) -> int:
        return num_values


@layout("fp8-tensor")
def _tensor(row: dict[str, Any]) -> Fp8:
    return Fp8("tensor")


@layout("fp8-channel")
def _channel(row: dict[str, Any]) -> Fp8:
    return Fp8("channel")


@layout("fp8-block")
def _block(row: dict[str, Any]) -> Fp8:
    return Fp8("block")
