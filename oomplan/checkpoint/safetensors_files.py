"""Safetensors headers of a local file or folder (sharded or not), read with huggingface_hub's
parser: the 8-byte length, then exactly that many bytes of JSON; the tensor data is never read.

Each tensor's bytes are its header `data_offsets` (end - start), checked against dtype x shape
and against the file's size, so a header that claims more than the file holds is refused.
"""
from __future__ import annotations

import math
from pathlib import Path

from oomplan.errors import InputError, RuntimeFailure
from oomplan.specs.checkpoint import Checkpoint, CheckpointFile, CheckpointTensor

# Bits per element of every safetensors dtype (safetensors 0.8, src/tensor.rs Dtype::bitsize).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F8_E8M0": 8,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "C64": 64,
}
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def _hub():
    try:
        from huggingface_hub.utils import SafetensorsParsingError
        from huggingface_hub import parse_local_safetensors_file_metadata  # noqa: F401
    except ImportError:
        raise RuntimeFailure("reading safetensors headers needs huggingface_hub: pip install 'oomplan[hub]'") from None
    import huggingface_hub

    return huggingface_hub, SafetensorsParsingError


def tensors_from_header(tensors: dict, file: str, data_bytes: int | None) -> list[CheckpointTensor]:
    """Header entries (name -> hub TensorInfo) -> CheckpointTensor, each checked. `data_bytes`: the file's
    size after the header, when known."""
    out = []
    for name, info in tensors.items():
        dtype, shape, offsets = info.dtype, tuple(info.shape), tuple(info.data_offsets)
        if dtype not in DTYPE_BITS:
            raise InputError(f"{file}: tensor {name[:80]!r} has dtype {str(dtype)[:20]!r}; safetensors dtypes are {', '.join(DTYPE_BITS)}")
        if len(offsets) != 2 or not all(isinstance(o, int) and o >= 0 for o in offsets) or offsets[1] < offsets[0] \
                or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InputError(f"{file}: tensor {name[:80]!r} has malformed shape or data_offsets in its header")
        nbytes = offsets[1] - offsets[0]
        expected = math.ceil(math.prod(shape) * DTYPE_BITS[dtype] / 8)
        if nbytes != expected:
            raise InputError(f"{file}: tensor {name[:80]!r}: data_offsets span {nbytes} bytes but {dtype} x {list(shape)} is {expected}")
        if data_bytes is not None and offsets[1] > data_bytes:
            raise InputError(f"{file}: tensor {name[:80]!r} ends at byte {offsets[1]} of the data, past the end of the file ({data_bytes} bytes)")
        out.append(CheckpointTensor(name=name, dtype=dtype, shape=shape, nbytes=nbytes, file=file))
    return out


def read_file_header(path: Path) -> tuple[list[CheckpointTensor], CheckpointFile]:
    hub, parsing_error = _hub()
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
        if size < 8:
            raise InputError(f"{path}: not a valid safetensors file: {size} bytes, shorter than the 8-byte header length")
        if header_len > size - 8:
            raise InputError(f"{path}: not a valid safetensors file: its header length ({header_len} bytes) is larger than the file ({size} bytes)")
        meta = hub.parse_local_safetensors_file_metadata(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (listed in the checkpoint's index)") from None
    except PermissionError:
        raise InputError(f"{path}: not readable (permission denied)") from None
    except parsing_error as exc:
        reason = str(exc).split(": ", 1)[-1].split(". Please")[0]
        raise InputError(f"{path}: not a valid safetensors file: {reason}") from None
    except (UnicodeDecodeError, ValueError, TypeError, AttributeError):
        raise InputError(f"{path}: not a valid safetensors file: the header is not a JSON object of tensors") from None
    except OSError as exc:
        raise RuntimeFailure(f"{path}: cannot read: {exc.strerror}") from None
    tensors = tensors_from_header(meta.tensors, path.name, size - 8 - header_len)
    return tensors, CheckpointFile(name=path.name, size_bytes=size, num_tensors=len(tensors))


def shard_names(folder: Path) -> list[str] | None:
    """The safetensors files of a folder: the index's weight_map files, model.safetensors, or every
    *.safetensors; None when the folder has none."""
    from oomplan.safeio import read_json

    index = folder / INDEX_FILE
    if index.is_file():
        data = read_json(index, "safetensors index")
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise InputError(f"{index}: expected a 'weight_map' object of tensor name -> file name")
        names = sorted(set(weight_map.values()))
        if not names:
            raise InputError(f"{index}: its 'weight_map' lists no tensors; expected tensor name -> file name entries")
        for name in names:
            if "/" in name or "\\" in name or name.startswith("."):
                raise InputError(f"{index}: weight_map names a file outside the folder: {name[:80]!r}")
        return names
    if (folder / SINGLE_FILE).is_file():
        return [SINGLE_FILE]
    found = sorted(p.name for p in folder.glob("*.safetensors") if p.is_file())
    return found or None


def read_folder(folder: Path, quant_method: str | None = None, location: str | None = None) -> Checkpoint | None:
    """Every header of the folder's safetensors files; None when it has none."""
    names = shard_names(folder)
    if names is None:
        return None
    tensors: list[CheckpointTensor] = []
    files = []
    for name in names:
        t, f = read_file_header(folder / name)
        tensors += t
        files.append(f)
    if not tensors:  # weights priced from headers that list nothing would be 0 B: refused, never a silent answer
        raise InputError(f"{folder}: its safetensors files ({', '.join(n[:60] for n in names[:3])}) hold no tensors")
    return Checkpoint(kind="safetensors", location=location or str(folder), files=tuple(files), tensors=tuple(tensors),
                      quant_method=quant_method)
