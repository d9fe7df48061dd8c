"""4-bit floats (e2m1, two per byte) with block scales: MXFP4 and NVFP4.

MXFP4 (OCP Microscaling v1.0): 32-element blocks along the input dim, one e8m0 (uint8) scale per block, 4.25
bits per weight. gpt-oss stores experts as `*_blocks` uint8 [.., out, in/32, 16] and `*_scales` uint8 [.., out,
in/32] (transformers integrations/mxfp4.py, Mxfp4GptOssExperts; vLLM Mxfp4MoEMethod.create_weights,
vllm-project/vllm@007d50058a06dec0f82472d63c819244d460c40d:vllm/model_executor/layers/quantization/mxfp4.py).

NVFP4 (NVIDIA ModelOpt): 16-element blocks, one fp8 e4m3 scale per block, plus a per-tensor fp32 global scale
(weight_scale_2) and the fp32 input_scale (vLLM ModelOptNvFp4LinearMethod.create_weights:
weight uint8 [out, in/2], weight_scale fp8 [out, in/16], weight_scale_2 and input_scale fp32 per shard,
vllm-project/vllm@c9a59901113ccfe729e9c2be54062abee99b37f7:vllm/model_executor/layers/quantization/modelopt.py).
NVFP4 weight-only (ModelOpt W4A16_NVFP4, a MIXED_PRECISION checkpoint's layers): the same weight, weight_scale and
weight_scale_2, no input_scale (KNvfp4Static registers the three; the activation key is None for W4A16, so no
KNvfp4Dynamic input_scale: vLLM ModelOptMixedPrecisionConfig w4a16_nvfp4_config, as in
local-inference-lab/vllm@08fe538f66e30856658ddc4d66859219c8a6285c:vllm/model_executor/layers/quantization/modelopt.py).
"""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass

from oomplan.formats.base import layout
from oomplan.units import FP32, ceil_div


@dataclass(frozen=True)
class BlockFp4:
    block: int  # elements per scale
    scale_bytes: int  # e8m0: 1, e4m3: 1
    tensor_scales: int  # fp32 scalars per tensor (NVFP4: weight_scale_2 and input_scale)

    def matrix_bytes(self, rows: int, cols: int, group_size: int) -> int:
        blocks = ceil_div(cols, self.block)
        return rows * blocks * (self.block // 2 + self.scale_bytes) + self.tensor_scales * FP32

    def kv_vector_bytes(self, num_values: int) -> int:
        raise ValueError("fp4 formats are weight formats here")


@layout("mxfp4")
def _mxfp4(row: dict[str, Any]) -> BlockFp4:
    return BlockFp4(block=32, scale_bytes=1, tensor_scales=0)


@layout("nvfp4")
def _nvfp4(row: dict[str, Any]) -> BlockFp4:
    return BlockFp4(block=16, scale_bytes=1, tensor_scales=2)


@layout("nvfp4-a16")
def _nvfp4_a16(row: dict[str, Any]) -> BlockFp4:
    return BlockFp4(block=16, scale_bytes=1, tensor_scales=1)
