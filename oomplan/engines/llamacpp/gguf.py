"""GGUF files as llama.cpp's quantize writes them: the ggml type of every tensor, and its bytes.

Type sizes come from ggml (data/engines/llamacpp.yaml). The per-tensor mix of the K-quant file types
(Q4_K_M's Q6_K attn_v and ffn_down on half the layers, Q6_K output, ...) follows src/llama-quant.cpp
llama_tensor_get_type; norms, biases and the MoE router stay F32 (convert_hf_to_gguf keeps them F32).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from oomplan.engines.llamacpp.constants import LlamaCppConstants, llamacpp_constants
from oomplan.checkpoint.naming import layer_index
from oomplan.errors import InputError
from oomplan.memory.params import TensorGroup, inventory
from oomplan.specs.model import ModelSpec

LAYER_NAMES = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output", "q_a_proj": "attn_q_a",
    "q_b_proj": "attn_q_b", "kv_a_proj_with_mqa": "attn_kv_a_mqa", "kv_b_proj": "attn_kv_b",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    "experts.gate_proj": "ffn_gate_exps", "experts.up_proj": "ffn_up_exps", "experts.down_proj": "ffn_down_exps",
    "shared_expert.gate_proj": "ffn_gate_shexp", "shared_expert.up_proj": "ffn_up_shexp",
    "shared_expert.down_proj": "ffn_down_shexp", "router": "ffn_gate_inp", "shared_expert_gate": "ffn_gate_inp_shexp",
}


@dataclass(frozen=True)
class GgufTensor:
    name: str  # llama.cpp's name without 'blk.N.' and '.weight'
    layer: int | None  # None: token_embd, output, output_norm
    row_elems: int  # ne0, the length of a row (a linear layer's input width)
    num_elems: int
    ggml_type: str


def row_bytes(ggml_type: str, num_elems: int, c: LlamaCppConstants | None = None) -> int:
    """ggml_row_size: whole blocks of the type."""
    c = c or llamacpp_constants()
    block, size = c.ggml_types[ggml_type]
    return num_elems // block * size


def tensor_bytes(t: GgufTensor) -> int:
    return row_bytes(t.ggml_type, t.num_elems)


# ggml/src/ggml.c type_traits: the types ggml_is_quantized is false for (the rest, K-quants, IQ, MXFP4, ..., are quantized)
UNQUANTIZED_TYPES = frozenset({"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"})


def cuda_row_padding_bytes(ggml_type: str, row_elems: int, num_elems: int, nbytes: int, c: LlamaCppConstants) -> int:
    """What a CUDA (or HIP) device buffer allocates for one weight tensor beyond its bytes: ggml-org/llama.cpp@f6d77a1b
    ggml/src/ggml-cuda/ggml-cuda.cu ggml_backend_cuda_buffer_type_get_alloc_size adds ggml_row_size(type,
    MATRIX_ROW_PADDING - ne0 % MATRIX_ROW_PADDING) to ggml_nbytes when the type is quantized and its row length ne0 is
    not a multiple of MATRIX_ROW_PADDING (512): one padded row per tensor, whatever its other dimensions. ne0 and 512
    are both whole blocks of every ggml type (1, 32 or 256 weights), so the padded row costs nbytes / num_elems per
    weight exactly."""
    pad = c.matrix_row_padding_elems
    if ggml_type.upper() in UNQUANTIZED_TYPES or row_elems % pad == 0 or num_elems == 0:
        return 0
    return nbytes * (pad - row_elems % pad) // num_elems


def _more_bits(i: int, n: int) -> bool:
    """llama_tensor_get_type use_more_bits: first and last eighth of the layers and every third one between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _output_type(model: ModelSpec, new: str, ne0: int, c: LlamaCppConstants) -> str:
    if model.gguf_arch == "falcon" or ne0 % c.ggml_types[new][0]:
        return "Q8_0"
    return new if new == "Q8_0" else "Q6_K"


def _attn_v_type(model: ModelSpec, ftype: str, new: str, i: int, n: int) -> str:
    gqa = model.num_attention_heads // model.num_kv_heads
    rules = {"Q2_K": "Q4_K" if gqa >= 4 else "Q3_K", "Q3_K_M": "Q5_K" if i < 2 else "Q4_K", "Q3_K_L": "Q5_K",
             "IQ4_NL": "Q5_K" if gqa >= 4 else new, "IQ4_XS": "Q5_K" if gqa >= 4 else new,
             "Q4_K_M": "Q6_K" if _more_bits(i, n) else new, "Q5_K_M": "Q6_K" if _more_bits(i, n) else new,
             "Q4_K_S": "Q5_K" if i < 4 else new}
    new = rules.get(ftype, new)
    if model.gguf_arch == "llama" and model.num_layers == 80 and new in ("Q3_K", "Q4_K"):
        new = "Q5_K"  # LLM_TYPE_70B: attn_v is 8x smaller than attn_q, more bits cost little
    return "Q8_0" if model.moe is not None and model.moe.num_experts == 8 else new


def _ffn_down_type(model: ModelSpec, ftype: str, new: str, i: int, n: int) -> str:
    falcon = model.gguf_arch == "falcon"
    if ftype == "Q2_K":
        return "Q3_K"
    if ftype == "Q3_K_M":
        return "Q5_K" if i < n // 16 else "Q4_K" if not falcon or _more_bits(i, n) else "Q3_K"
    if ftype == "Q3_K_L":
        return "Q4_K" if falcon else "Q5_K"
    if ftype == "Q4_K_M":
        if falcon:
            return "Q6_K" if i < n // 16 else "Q5_K" if _more_bits(i, n) else "Q4_K"
        return "Q6_K" if _more_bits(i, n) else new
    if ftype in ("IQ4_NL", "IQ4_XS") and i < n // 8:
        return "Q5_K"
    if ftype == "Q5_K_M" and _more_bits(i, n):
        return "Q6_K"
    if ftype == "Q4_K_S" and not falcon and i < n // 8:
        return "Q5_K"
    return new


def _attn_output_type(model: ModelSpec, ftype: str, new: str) -> str:
    if model.gguf_arch == "falcon":
        return "Q4_K" if ftype == "Q3_K_L" else new
    if model.moe is not None and model.moe.num_experts == 8:
        return "Q5_K" if ftype in ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ4_XS") else new
    return {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ftype, new)


def _rule_type(model: ModelSpec, ftype: str, name: str, i: int, c: LlamaCppConstants) -> str:
    new, n = c.ftype_default[ftype], model.num_layers
    if name == "attn_v":
        return _attn_v_type(model, ftype, new, i, n)
    if name == "attn_k" and model.moe is not None and model.moe.num_experts == 8:
        return "Q8_0"
    if name.startswith("ffn_down"):
        return _ffn_down_type(model, ftype, new, i, n)
    if name == "attn_output":
        return _attn_output_type(model, ftype, new)
    if name == "attn_qkv":
        return {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(ftype, new)
    return new


def _with_fallback(new: str, ne0: int, c: LlamaCppConstants) -> str:
    """convert_incompatible_tensor: rows not a whole number of blocks fall back, finally to F16."""
    if ne0 % c.ggml_types[new][0] == 0:
        return new
    new = c.fallback.get(new, "F16")
    return new if ne0 % c.ggml_types[new][0] == 0 else "F16"


def tensor_type(model: ModelSpec, ftype: str, name: str, layer: int, ne0: int, has_output: bool) -> str:
    """The ggml type quantize gives one 2-D weight of a file of type `ftype`."""
    c = llamacpp_constants()
    new = c.ftype_default[ftype]
    if new in ("F32", "F16", "BF16"):
        return new
    if name == "output" or (name == "token_embd" and not has_output):
        return _output_type(model, new, ne0, c)
    if name == "token_embd":
        return new
    return _with_fallback(_rule_type(model, ftype, name, layer, c), ne0, c)


def _gguf_name(model: ModelSpec, group: TensorGroup) -> str:
    base = group.name.removesuffix(".bias")
    name = LAYER_NAMES.get(base, base)
    if model.fused_qkv and name in ("attn_q", "attn_k", "attn_v"):  # GGUF stores one attn_qkv tensor
        return "attn_qkv"
    return name


def _layer_tensors(model: ModelSpec, ftype: str, layer: int, groups: tuple[TensorGroup, ...], has_output: bool) -> list[GgufTensor]:
    out: list[GgufTensor] = []
    for g in groups:
        name = _gguf_name(model, g)
        weight = g.quantizable and not g.name.endswith(".bias")
        gtype = tensor_type(model, ftype, name, layer, g.cols, has_output) if weight else "F32"
        out.append(GgufTensor(name, layer, g.cols, g.num_params, gtype))
    return out


def gguf_tensors(model: ModelSpec, ftype: str) -> tuple[GgufTensor, ...]:
    """Every tensor of the GGUF file (q/k/v of fused-QKV families counted as one attn_qkv type)."""
    ftype = ftype.upper()
    if ftype not in llamacpp_constants().ftype_default:
        raise InputError(f"--gguf-type: {ftype!r} (from the flag or the file name) is not modelled; "
                         f"accepted: {', '.join(llamacpp_constants().ftype_default)}")
    inv, has_output = inventory(model), not model.tie_word_embeddings
    h = model.hidden_size
    rows = model.vocab_size + model.num_extra_embedding_rows  # Mllama's embed_tokens: vocab_size + 8 rows, converted as they are
    out = [GgufTensor("token_embd", None, h, rows * h, tensor_type(model, ftype, "token_embd", 0, h, has_output))]
    for kind in inv.layer_kinds:
        for i in kind.layer_indices:
            out += _layer_tensors(model, ftype, i, kind.tensors, has_output)
    out.append(GgufTensor("output_norm", None, h, h, "F32"))
    if has_output:
        out.append(GgufTensor("output", None, h, model.vocab_size * h, tensor_type(model, ftype, "output", 0, h, has_output)))
    return tuple(out)


@dataclass(frozen=True)
class GgufSizes:
    token_embd_bytes: int  # llama.cpp keeps the input layer on the CPU
    layer_bytes: tuple[int, ...]  # each repeating layer, in order
    output_bytes: int  # output norm + output (lm_head): 'the output layer', offloaded last
    file_bytes: int  # the tensors in the file (a tied token_embd is loaded twice, stored once)
    expert_bytes: tuple[int, ...] = ()  # each layer's routed-expert tensors (ffn_*_exps), part of layer_bytes
    # what a CUDA/HIP device buffer adds to those bytes (cuda_row_padding_bytes): each layer's, its experts', the output's
    layer_padding_bytes: tuple[int, ...] = ()
    expert_padding_bytes: tuple[int, ...] = ()
    output_padding_bytes: int = 0

    def layer_padding(self, first: int, last: int | None = None) -> int:
        return sum(self.layer_padding_bytes[first:last])

    def expert_padding(self, first: int, last: int) -> int:
        return sum(self.expert_padding_bytes[first:last])

    def without_padding(self) -> GgufSizes:
        """The same tensors in a buffer that allocates their bytes only (not CUDA/HIP: Metal, the CPU)."""
        return replace(self, layer_padding_bytes=(), expert_padding_bytes=(), output_padding_bytes=0)

    @property
    def total_bytes(self) -> int:
        """What llama.cpp loads, CPU and GPU together."""
        return self.token_embd_bytes + sum(self.layer_bytes) + self.output_bytes


def file_sizes(model: ModelSpec) -> GgufSizes:
    """The sizes of the GGUF file actually given (its tensor infos, oomplan/checkpoint/gguf_file.py), exact."""
    ck = model.checkpoint
    assert ck is not None and ck.kind == "gguf", "file_sizes needs the GGUF's tensor table"
    c = llamacpp_constants()
    layers, experts = [0] * model.num_layers, [0] * model.num_layers
    layer_pad, expert_pad = [0] * model.num_layers, [0] * model.num_layers
    embd = out = embd_pad = out_pad = 0
    for t in ck.tensors:
        layer = layer_index(t.name)
        pad = cuda_row_padding_bytes(t.dtype, t.shape[0] if t.shape else 0, math.prod(t.shape), t.nbytes, c)
        if layer is not None and layer < model.num_layers:
            layers[layer] += t.nbytes
            layer_pad[layer] += pad
            if t.name.removesuffix(".weight").endswith("_exps"):  # common/common.h LLM_FFN_EXPS_REGEX
                experts[layer] += t.nbytes
                expert_pad[layer] += pad
        elif t.name.startswith("token_embd."):
            embd, embd_pad = embd + t.nbytes, embd_pad + pad
        else:  # output_norm, output, rope factors ...
            out, out_pad = out + t.nbytes, out_pad + pad
    file_bytes = ck.tensor_bytes
    if not any(t.name.startswith("output.") for t in ck.tensors):
        out, out_pad = out + embd, out_pad + embd_pad  # llama-model.cpp: no output.weight -> token_embd loaded again (TENSOR_DUPLICATED)
    return GgufSizes(embd, tuple(layers), out, file_bytes, tuple(experts), tuple(layer_pad), tuple(expert_pad), out_pad)


def gguf_sizes(model: ModelSpec, ftype: str) -> GgufSizes:
    """From the GGUF file's own tensor table when one was read; else the tensors llama.cpp's quantize would write."""
    if model.checkpoint is not None and model.checkpoint.kind == "gguf":
        return file_sizes(model)
    c = llamacpp_constants()
    layers, experts = [0] * model.num_layers, [0] * model.num_layers
    layer_pad, expert_pad = [0] * model.num_layers, [0] * model.num_layers
    embd = out = embd_pad = out_pad = 0
    for t in file_tensors(gguf_tensors(model, ftype)):
        nbytes = tensor_bytes(t)
        pad = cuda_row_padding_bytes(t.ggml_type, t.row_elems, t.num_elems, nbytes, c)
        if t.layer is not None:
            layers[t.layer] += nbytes
            layer_pad[t.layer] += pad
            if t.name.endswith("_exps"):  # common/common.h LLM_FFN_EXPS_REGEX: ffn_(up|down|gate|gate_up)_(ch|)exps
                experts[t.layer] += nbytes
                expert_pad[t.layer] += pad
        elif t.name == "token_embd":
            embd, embd_pad = nbytes, pad
        else:
            out, out_pad = out + nbytes, out_pad + pad
    file_bytes = embd + sum(layers) + out
    if model.tie_word_embeddings:
        out, out_pad = out + embd, out_pad + embd_pad  # llama-model.cpp: no output.weight -> token_embd loaded again (TENSOR_DUPLICATED)
    return GgufSizes(embd, tuple(layers), out, file_bytes, tuple(experts), tuple(layer_pad), tuple(expert_pad), out_pad)


def file_tensors(tensors: tuple[GgufTensor, ...]) -> list[GgufTensor]:
    """The tensors as the file stores them: a fused family's q, k and v weights (all named attn_qkv, one type and row
    length) are one tensor, and so are their biases."""
    out: list[GgufTensor] = []
    fused: dict[tuple[int | None, str, int], int] = {}
    for t in tensors:
        key = (t.layer, t.ggml_type, t.row_elems)
        if t.name == "attn_qkv" and key in fused:
            i = fused[key]
            out[i] = replace(out[i], num_elems=out[i].num_elems + t.num_elems)
            continue
        if t.name == "attn_qkv":
            fused[key] = len(out)
        out.append(t)
    return out
