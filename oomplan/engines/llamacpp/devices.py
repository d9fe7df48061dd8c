"""llama.cpp on several GPUs: which layers (and their KV) each device holds, and its own memory budget.

Read from ggml-org/llama.cpp@00342301d01add50835550e8a916f12097d94517 (and src/llama.cpp @01649e61), except the
first offloaded layer: at 00342301 load_tensors has i_gpu_start = std::max((int) hparams.n_layer - n_gpu_layers, 0)
(the output layer offloaded last); ggml-org/llama.cpp#18148 ("llama: offload output layer to GPU first", opened
2025-12-17, merged 2025-12-18) made it std::max(int(hparams.n_layer) + 1 - n_gpu_layers, 0), which oomplan prices;
act_gpu_layers, the split points and the input layer on the CPU read the same before it (00342301) and after it:
- src/llama.cpp llama_prepare_model_devices: `--split-mode none` keeps only devices[--main-gpu] (an index
  past the list is "invalid value for main_gpu"); layer and row use every device, in order.
- src/llama-model.cpp load_tensors: the split points are the prefix sums of --tensor-split (all zero or
  absent: each device's free memory, ggml_backend_dev_memory), normalised, in float32.
  i_gpu_start = max(n_layer + 1 - ngl, 0) (the output layer first: llama.cpp#18148),
  act_gpu_layers = min(ngl, n_layer + 1); layer il in 0..n_layer (il =
  n_layer is the output layer: output_norm + output) goes to device upper_bound(splits, (il - i_gpu_start) /
  act_gpu_layers), or to the CPU outside [i_gpu_start, i_gpu_start + act_gpu_layers). The input layer
  (token_embd) always stays on the CPU. The same split points place the layers in every split mode.
- make_gpu_buft_list: with `--split-mode row` each device's buffer list starts with the backend's split buffer
  type (its main device: the layer's device), so a layer's 2-D weight matrices are split by rows over all the
  devices, the output matrix too; what the split buffer refuses (3-D expert tensors: supports_op is false for
  MUL_MAT_ID on a split buffer) and norms, biases and the KV cache stay with the layer's device.
- The row split itself, ggml-org/llama.cpp@f6d77a1ba0ac794e950bd3abb630b904bdcd8fb8 ggml/src/ggml-cuda/ggml-cuda.cu
  (row_split below): ggml_backend_cuda_split_buffer_type keeps each device's *start* as a fraction, in float32 (the
  prefix sum of the --tensor-split shares before it over their sum; no -ts: ggml_cuda_info().default_tensor_split,
  the prefix sums of each device's total memory); get_row_split gives device i rows [low, high) with
  low = nrows * start[i], high = nrows * start[i + 1] (the last device: nrows), each rounded down to a multiple of
  get_row_rounding = the largest get_mmq_y_host(cc) of the devices with a non-empty share (ggml-cuda/mmq.cuh: 128
  from Volta on NVIDIA and on AMD except RDNA1 and RDNA3.5, else 64; @00cd2085); ggml_backend_cuda_split_buffer_type_get_alloc_size
  allocates (high - low) rows per device plus, when ne0 is not a multiple of MATRIX_ROW_PADDING (512,
  ggml-cuda/common.cuh), ggml_row_size(type, 512 - ne0 % 512) for the padded last row. supports_op refuses the split
  buffer when the layer's own device gets no rows (row_low == row_high): that matrix stays whole on the layer's device.
- src/llama-kv-cache.cpp: the cache of layer il lives on model.dev_layer(il), i.e. with its layer.
- The compute buffer (ggml_backend_sched, one per backend): the output layer's logits on the device holding
  it (or on the first device, which takes over the CPU layers' large matmuls, when it stays on the CPU); every
  other device that holds layers needs one layer's working set.
"""
from __future__ import annotations

import struct
from bisect import bisect_right
from dataclasses import dataclass

from oomplan.engines.llamacpp.constants import LlamaCppConstants, llamacpp_constants
from oomplan.engines.llamacpp.gguf import GgufSizes, cuda_row_padding_bytes, file_tensors, gguf_tensors, row_bytes, tensor_bytes
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.engines.llamacpp.split import (
    compute_buffer_bytes, cpu_moe_layers, ctx_cells, gpu_layer_start, kv_layer_bytes, layer_compute_bytes,
)
from oomplan.errors import InputError
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec

SPLIT_MODES = ("none", "layer", "row")
MAX_DEVICES = 16  # src/llama.cpp llama_max_devices()


def f32(x: float) -> float:
    """x rounded to a C float (llama.cpp computes the split points in float32)."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def split_points(shares: tuple[float, ...]) -> tuple[float, ...]:
    """load_tensors: prefix sums of the shares, each divided by the total, in float32."""
    total, sums = 0.0, []
    for share in shares:
        total = f32(total + f32(share))
        sums.append(total)
    return tuple(f32(s / total) for s in sums)


def free_bytes(gpu: GpuSpec) -> int:
    """What ggml_backend_dev_memory reports free when the model loads: the card less the process's context."""
    return gpu.memory_bytes - gpu.overhead.cuda_context_bytes


def layer_devices(n_layer: int, ngl: int, points: tuple[float, ...]) -> tuple[int | None, ...]:
    """The device of each layer il = 0..n_layer (the last is the output layer); None: the CPU."""
    start, active = gpu_layer_start(n_layer, ngl), min(ngl, n_layer + 1)
    out: list[int | None] = []
    for il in range(n_layer + 1):
        if il < start or il - start >= active:
            out.append(None)
        else:
            out.append(min(bisect_right(points, f32((il - start) / active)), len(points) - 1))
    return tuple(out)


def box_devices(gpu: GpuSpec, s: LlamaCppGiven) -> tuple[GpuSpec, ...]:
    """The GPUs llama.cpp sees: the box (--gpu a+b), else as many of `gpu` as --tensor-split has shares, else one.
    Checks --tensor-split and --main-gpu against them."""
    box = s.devices or (gpu,) * max(s.num_gpus, len(s.tensor_split), 1)
    if len(box) > MAX_DEVICES:
        raise InputError(f"--gpu: {len(box)} GPUs; llama.cpp uses at most {MAX_DEVICES} (llama_max_devices)")
    if s.tensor_split:
        if len(s.tensor_split) != len(box):
            raise InputError(f"--tensor-split: {len(s.tensor_split)} shares for {len(box)} GPUs "
                             f"({'+'.join(g.name for g in box)}); accepted: one share per GPU, e.g. {','.join(['1'] * len(box))}")
        if any(x < 0 for x in s.tensor_split):
            raise InputError(f"--tensor-split: {format_split(s.tensor_split)} has a negative share; accepted: shares >= 0 with a positive sum")
        if not any(s.tensor_split):
            raise InputError(f"--tensor-split: {format_split(s.tensor_split)} sums to 0; accepted: shares >= 0 with a positive sum "
                             "(leave the flag out for llama.cpp's default split by free memory)")
    if not 0 <= s.main_gpu < len(box):
        raise InputError(f"--main-gpu: {s.main_gpu} is out of range for {len(box)} GPU(s); accepted: 0..{len(box) - 1}")
    if s.split_mode not in SPLIT_MODES:
        raise InputError(f"--split-mode: {s.split_mode!r} is not accepted; use one of {', '.join(SPLIT_MODES)}")
    return box


def default_split(box: tuple[GpuSpec, ...]) -> tuple[float, ...]:
    """llama.cpp's default split written out: each GPU's free memory in GiB, two decimals (what fit -o records)."""
    return tuple(round(free_bytes(g) / 2**30, 2) for g in box)


def format_split(shares: tuple[float, ...]) -> str:
    return ",".join(f"{x:g}" for x in shares)


@dataclass(frozen=True)
class DeviceUse:
    """One GPU's share of the model: its layers, their weights and KV, its compute buffer."""

    index: int
    gpu: GpuSpec
    layers: tuple[int, ...]  # repeating layers placed on it (their KV too)
    output: bool  # the output layer (output_norm + output) is on it
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes + self.gpu.overhead.cuda_context_bytes

    @property
    def free_bytes(self) -> int:
        return self.gpu.memory_bytes - self.total_bytes


@dataclass(frozen=True)
class BoxSplit:
    devices: tuple[DeviceUse, ...]
    n_gpu_layers: int
    weights_host_bytes: int
    kv_host_bytes: int
    kv_cells: int
    experts_host_bytes: int
    num_cpu_moe_layers: int

    @property
    def tightest(self) -> DeviceUse:
        """The GPU with the least memory left (the first of equals)."""
        return min(self.devices, key=lambda d: (d.free_bytes, d.index))


@dataclass(frozen=True)
class RowMatrix:
    """A 2-D weight matrix the split buffer takes: its rows (ne1), row length (ne0), ggml type and bytes."""

    rows: int
    row_elems: int
    ggml_type: str
    nbytes: int


def _row_matrices(model: ModelSpec, s: LlamaCppGiven) -> list[list[RowMatrix]]:
    """Per layer, each 2-D weight matrix the split buffer takes (not the experts)."""
    out: list[list[RowMatrix]] = [[] for _ in range(model.num_layers)]
    ck = model.checkpoint
    if ck is not None and ck.kind == "gguf":
        from oomplan.checkpoint.naming import layer_index

        for c in ck.tensors:
            i = layer_index(c.name)
            if i is not None and i < model.num_layers and len(c.shape) == 2 and "_exps" not in c.name:
                out[i].append(RowMatrix(c.shape[1], c.shape[0], c.dtype, c.nbytes))  # gguf-py: shape is ne, ne[1] the rows
        return out
    for t in file_tensors(gguf_tensors(model, s.gguf_type)):
        if t.layer is not None and 1 < t.row_elems < t.num_elems and not t.name.endswith("_exps"):  # biases, norms: row 1
            out[t.layer].append(RowMatrix(t.num_elems // t.row_elems, t.row_elems, t.ggml_type, tensor_bytes(t)))
    return out


def _output_matrix(model: ModelSpec, s: LlamaCppGiven) -> RowMatrix:
    """The output matrix (output.weight, or token_embd loaded again when tied): in the output layer, so split by rows
    too under --split-mode row."""
    ck = model.checkpoint
    if ck is not None and ck.kind == "gguf":
        by_name = {c.name: c for c in ck.tensors}
        c = by_name.get("output.weight") or by_name["token_embd.weight"]
        return RowMatrix(c.shape[1], c.shape[0], c.dtype, c.nbytes)
    named = {t.name: t for t in gguf_tensors(model, s.gguf_type)}
    t = named.get("output") or named["token_embd"]
    return RowMatrix(t.num_elems // t.row_elems, t.row_elems, t.ggml_type, tensor_bytes(t))


def row_split_starts(box: tuple[GpuSpec, ...], s: LlamaCppGiven) -> tuple[float, ...]:
    """ggml_backend_cuda_split_buffer_type's tensor_split_arr: each device's start, in float32 (the shares before it
    over their sum); no --tensor-split: ggml_cuda_init default_tensor_split, the same over each device's total memory."""
    if not s.tensor_split:
        total = sum(g.memory_bytes for g in box)
        return tuple(f32(f32(float(sum(g.memory_bytes for g in box[:i]))) / f32(float(total))) for i in range(len(box)))
    before, acc = [], 0.0
    for share in s.tensor_split:
        before.append(acc)
        acc = f32(acc + f32(share))
    return tuple(f32(b / acc) for b in before)


def row_rounding(box: tuple[GpuSpec, ...], starts: tuple[float, ...], c: LlamaCppConstants) -> int:
    """get_row_rounding: the largest get_mmq_y_host of the devices with a non-empty share (mmq.cuh: 64 before Volta and
    on RDNA1 and RDNA3.5, else 128; data/engines/llamacpp.yaml)."""
    n, out = len(box), 0
    for i, g in enumerate(box):
        if starts[i] >= (starts[i + 1] if i + 1 < n else 1.0):
            continue
        if g.vendor not in ("nvidia", "amd"):
            raise InputError(f"--split-mode row: {g.name} ({g.vendor}) has no row-split buffer in llama.cpp (CUDA/HIP only); "
                             "accepted: --split-mode layer or none")
        out = max(out, c.row_split_small_mmq_y_rows if g.architecture in c.row_split_small_mmq_y_architectures
                  else c.row_split_mmq_y_rows)
    return out


def row_split(rows: int, starts: tuple[float, ...], rounding: int) -> list[tuple[int, int]]:
    """get_row_split: device i's rows [low, high); nrows * start is a float32 product, truncated, then rounded down to a
    multiple of the rounding (the last device ends at nrows)."""
    out = []
    for i in range(len(starts)):
        low = 0 if i == 0 else int(f32(f32(float(rows)) * starts[i]))
        low -= low % rounding
        if i == len(starts) - 1:
            high = rows
        else:
            high = int(f32(f32(float(rows)) * starts[i + 1]))
            high -= high % rounding
        out.append((low, high))
    return out


def split_matrix_bytes(m: RowMatrix, starts: tuple[float, ...], rounding: int, layer_device: int,
                       c: LlamaCppConstants) -> list[int] | None:
    """Each device's allocation of one matrix in the split buffer (ggml_backend_cuda_split_buffer_type_get_alloc_size):
    its rows plus the padded last row where ne0 % MATRIX_ROW_PADDING != 0; None when the layer's device gets no rows
    (supports_op refuses the split buffer: the matrix stays whole on that device)."""
    bounds = row_split(m.rows, starts, rounding)
    low, high = bounds[layer_device]
    if low == high:
        return None
    pad_elems = (c.matrix_row_padding_elems - m.row_elems % c.matrix_row_padding_elems) % c.matrix_row_padding_elems
    pad = row_bytes(m.ggml_type, pad_elems, c) if pad_elems else 0
    per_row = m.nbytes // m.rows
    return [(hi - lo) * per_row + pad if hi > lo else 0 for lo, hi in bounds]


def _split_into(weights: list[int], m: RowMatrix, starts: tuple[float, ...], rounding: int, layer_device: int,
                c: LlamaCppConstants) -> tuple[int, int]:
    """Add one matrix's split-buffer shares to `weights` (per device, in place): (the bytes it takes off its layer
    device's whole tensors, the padding the shares add beyond the file's bytes); (0, 0) when it stays whole there."""
    shares = split_matrix_bytes(m, starts, rounding, layer_device, c)
    if shares is None:
        return 0, 0
    for d, x in enumerate(shares):
        weights[d] += x
    return m.nbytes, sum(shares) - m.nbytes


def box_split(model: ModelSpec, sizes: GgufSizes, s: LlamaCppGiven, box: tuple[GpuSpec, ...], ngl: int,
              c: LlamaCppConstants | None = None) -> BoxSplit:
    """Every device's bytes for one -ngl over the devices of a layer or row split (box_devices checked them)."""
    c, n = c or llamacpp_constants(), model.num_layers
    ngl = n + 1 if ngl < 0 else min(ngl, n + 1)
    points = split_points(s.tensor_split or tuple(float(free_bytes(g)) for g in box))
    where = layer_devices(n, ngl, points)
    cells = ctx_cells(model, s, c)
    cpu_moe = cpu_moe_layers(model, s)
    weights, kv = [0] * len(box), [0] * len(box)
    experts_host = kv_host = 0
    row = s.split_mode == "row" and len(box) > 1
    matrices = _row_matrices(model, s) if row else []
    starts = row_split_starts(box, s) if row else ()
    rounding = row_rounding(box, starts, c) if row else 0
    padding = 0  # the split buffer's padded last rows: GPU bytes that are not in the file
    for i in range(n):
        kv_i = kv_layer_bytes(model, s, cells, i, c)
        dev = where[i]
        experts = sizes.expert_bytes[i] if sizes.expert_bytes and i < cpu_moe else 0
        if dev is None:
            kv_host += kv_i
            continue
        experts_host += experts
        layer = sizes.layer_bytes[i] - experts
        cuda_pad = sizes.layer_padding(i, i + 1) - (sizes.expert_padding(i, i + 1) if experts else 0)
        for m in matrices[i] if row else ():
            moved, pad = _split_into(weights, m, starts, rounding, dev, c)
            layer, padding = layer - moved, padding + pad
            if moved:  # in the split buffer now, padded there
                cuda_pad -= cuda_row_padding_bytes(m.ggml_type, m.row_elems, m.rows * m.row_elems, m.nbytes, c)
        weights[dev] += layer + cuda_pad
        padding += cuda_pad
        if s.no_kv_offload:
            kv_host += kv_i
        else:
            kv[dev] += kv_i
    out_dev = where[n]
    if out_dev is not None:
        output, cuda_pad = sizes.output_bytes, sizes.output_padding_bytes
        if row:
            m = _output_matrix(model, s)
            moved, pad = _split_into(weights, m, starts, rounding, out_dev, c)
            output, padding = output - moved, padding + pad
            if moved:
                cuda_pad -= cuda_row_padding_bytes(m.ggml_type, m.row_elems, m.rows * m.row_elems, m.nbytes, c)
        weights[out_dev] += output + cuda_pad
        padding += cuda_pad
    logits_dev = out_dev if out_dev is not None else 0
    holds = {d for d in where[:n] if d is not None}
    devices = []
    for d, gpu in enumerate(box):
        compute = (compute_buffer_bytes(model, s, cells, c) if d == logits_dev
                   else layer_compute_bytes(model, s, cells, c) if d in holds else 0)
        layers = tuple(i for i in range(n) if where[i] == d)
        devices.append(DeviceUse(d, gpu, layers, out_dev == d, weights[d], kv[d], compute))
    host = sizes.total_bytes - (sum(weights) - padding)
    return BoxSplit(tuple(devices), ngl, host, kv_host, cells, experts_host, cpu_moe)
