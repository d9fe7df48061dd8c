"""Real checkpoints for the tests, written with the libraries that write them in the wild:
safetensors files by the `safetensors` package, GGUF files by `gguf.GGUFWriter`, a Hugging Face
cache layout (models--org--name/snapshots/<sha>/, refs/main). Tiny tensors; shapes follow the
HF llama naming (transformers models/llama/modeling_llama.py) for tests/conftest.py tiny_llama."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from conftest import tiny_llama

H, FFN, V, HEADS, KV = 64, 128, 1000, 8, 2
HD = H // HEADS


def llama_shapes(num_layers: int = 2, tied: bool = False) -> dict[str, tuple[int, ...]]:
    shapes = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
    if not tied:
        shapes["lm_head.weight"] = (V, H)
    for i in range(num_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (H, H), p + "self_attn.k_proj.weight": (KV * HD, H),
            p + "self_attn.v_proj.weight": (KV * HD, H), p + "self_attn.o_proj.weight": (H, H),
            p + "mlp.gate_proj.weight": (FFN, H), p + "mlp.up_proj.weight": (FFN, H), p + "mlp.down_proj.weight": (H, FFN),
            p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
        })
    return shapes


def write_checkpoint(folder: Path, dtype=torch.bfloat16, num_shards: int = 1, extra: dict | None = None,
                     config: dict | None = None, num_layers_stored: int = 2, tied: bool = False) -> dict[str, torch.Tensor]:
    """config.json + safetensors (sharded with an index when num_shards > 1); returns the tensors written."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {n: torch.zeros(s, dtype=dtype) for n, s in llama_shapes(num_layers_stored, tied).items()}
    tensors.update(extra or {})
    cfg = config or tiny_llama(torch_dtype={torch.float32: "float32", torch.float16: "float16"}.get(dtype, "bfloat16"),
                               tie_word_embeddings=tied)
    (folder / "config.json").write_text(json.dumps(cfg))
    names = sorted(tensors)
    if num_shards == 1:
        save_file(tensors, str(folder / "model.safetensors"))
        return tensors
    weight_map = {}
    for k in range(num_shards):
        file = f"model-{k + 1:05d}-of-{num_shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[k::num_shards]}
        save_file(part, str(folder / file))
        weight_map.update({n: file for n in part})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return tensors


def nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


GGUF_H, GGUF_I, GGUF_V = 256, 512, 1000  # rows a multiple of 256 so Q4_K blocks fit


def gguf_tensors(weight_type: str, num_layers: int = 2) -> dict[str, tuple[tuple[int, int] | tuple[int], str]]:
    """llama.cpp names -> (numpy shape [rows, cols], ggml type); norms stay F32 as convert_hf_to_gguf writes them."""
    h, i, kv = GGUF_H, GGUF_I, 2 * (GGUF_H // 8)
    out = {"token_embd.weight": ((GGUF_V, h), weight_type), "output_norm.weight": ((h,), "F32"), "output.weight": ((GGUF_V, h), weight_type)}
    for n in range(num_layers):
        p = f"blk.{n}."
        out.update({p + "attn_q.weight": ((h, h), weight_type), p + "attn_k.weight": ((kv, h), weight_type),
                    p + "attn_v.weight": ((kv, h), weight_type), p + "attn_output.weight": ((h, h), weight_type),
                    p + "ffn_gate.weight": ((i, h), weight_type), p + "ffn_up.weight": ((i, h), weight_type),
                    p + "ffn_down.weight": ((h, i), "Q4_K" if weight_type == "Q4_K" else weight_type),
                    p + "attn_norm.weight": ((h,), "F32"), p + "ffn_norm.weight": ((h,), "F32")})
    return out


def write_gguf(path: Path, weight_type: str = "Q8_0", file_type: str = "MOSTLY_Q8_0", split_max_tensors: int = 0) -> int:
    """A real GGUF file written by gguf.GGUFWriter (tiny llama); returns the bytes of its tensors."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_embedding_length(GGUF_H)
    w.add_feed_forward_length(GGUF_I)
    w.add_head_count(8)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(getattr(gguf.LlamaFileType, file_type))
    total = 0
    for name, (shape, ggml) in gguf_tensors(weight_type).items():
        qtype = getattr(gguf.GGMLQuantizationType, ggml)
        if ggml in ("F32", "F16"):
            array = np.zeros(shape, dtype=np.float32 if ggml == "F32" else np.float16)
            w.add_tensor(name, array)
        else:
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            array = np.zeros((*shape[:-1], shape[-1] // block * size), dtype=np.uint8)
            w.add_tensor(name, array, raw_dtype=qtype)
        total += array.nbytes
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return total
