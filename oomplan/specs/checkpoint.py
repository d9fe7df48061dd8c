"""What a checkpoint's own tensor table says: every stored tensor, its dtype, shape and bytes.

Read from safetensors headers (oomplan/checkpoint/safetensors_files.py, local or through the hub's
range requests) or a GGUF file's tensor infos (oomplan/checkpoint/gguf_file.py); never the weights.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from oomplan.specs.base import Strict


class CheckpointTensor(Strict):
    name: str
    dtype: str = Field(description="safetensors dtype (BF16, F8_E4M3, U8, ...) or ggml type (Q4_K, F16, ...)")
    shape: tuple[int, ...]
    nbytes: int = Field(ge=0, description="bytes stored: data_offsets end - start (safetensors) or ggml row size (GGUF)")
    file: str


class CheckpointFile(Strict):
    name: str
    size_bytes: int = Field(ge=0, description="header + tensor data")
    num_tensors: int = Field(ge=0)


class Checkpoint(Strict):
    kind: Literal["safetensors", "gguf"]
    location: str = Field(description="folder, file or repo@revision the table was read from")
    files: tuple[CheckpointFile, ...]
    tensors: tuple[CheckpointTensor, ...] = Field(repr=False)
    quant_method: str | None = Field(default=None, description="config.json quantization_config.quant_method, or the GGUF file type")

    @property
    def num_tensors(self) -> int:
        return len(self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def largest_file_bytes(self) -> int:
        return max((f.size_bytes for f in self.files), default=0)
