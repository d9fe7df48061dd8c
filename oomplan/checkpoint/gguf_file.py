"""GGUF files read with the `gguf` package (llama.cpp's gguf-py): header, metadata and tensor infos,
never the tensor data (GGUFReader memory-maps the file; only the header pages are touched).

A split GGUF (`name-00001-of-00003.gguf`) is every part summed; the metadata come from the first part.
The architecture's metadata ({arch}.block_count, .embedding_length, ...; llama.cpp gguf-py/gguf/constants.py
Keys.LLM / Keys.Attention) are turned into a transformers config.json and read by oomplan/families.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

from oomplan.errors import InputError, RuntimeFailure
from oomplan.specs.checkpoint import Checkpoint, CheckpointFile, CheckpointTensor

SPLIT = re.compile(r"^(?P<stem>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.gguf$")
GGUF_MAGIC = b"GGUF"
MAX_TENSORS = 1 << 20  # DeepSeek-V3 has ~1,000 GGUF tensors per part
MAX_KV = 1 << 20
# general.architecture -> (transformers model_type, architectures[0])
ARCHES = {
    "llama": ("llama", "LlamaForCausalLM"), "qwen2": ("qwen2", "Qwen2ForCausalLM"), "qwen3": ("qwen3", "Qwen3ForCausalLM"),
    "qwen3moe": ("qwen3_moe", "Qwen3MoeForCausalLM"), "gemma2": ("gemma2", "Gemma2ForCausalLM"), "phi3": ("phi3", "Phi3ForCausalLM"),
    "qwen2moe": ("qwen2_moe", "Qwen2MoeForCausalLM"), "gemma3": ("gemma3_text", "Gemma3ForCausalLM"),
    "gpt-oss": ("gpt_oss", "GptOssForCausalLM"), "glm4moe": ("glm4_moe", "Glm4MoeForCausalLM"),
    "deepseek2": ("deepseek_v2", "DeepseekV2ForCausalLM"), "qwen3next": ("qwen3_next", "Qwen3NextForCausalLM"),
}
# gguf 0.19 architectures oomplan has no family for (a reason beats "not read")
NO_FAMILY = {"llama4": "Llama 4: its GGUF metadata (chunked attention, interleaved MoE) is not mapped yet; use its config.json"}


def _gguf():
    try:
        import gguf
    except ImportError:
        raise RuntimeFailure("reading a GGUF file needs the gguf package: pip install 'oomplan[hub]'") from None
    return gguf


def split_parts(path: Path) -> list[Path]:
    """All parts of a split GGUF (from any part), or [path]."""
    m = SPLIT.match(path.name)
    if not m:
        return [path]
    n = int(m.group("n"))
    parts = [path.with_name(f"{m.group('stem')}-{i:05d}-of-{n:05d}.gguf") for i in range(1, n + 1)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise InputError(f"{path}: split GGUF is missing {len(missing)} of {n} parts (first: {missing[0]})")
    return parts


def _check_prefix(path: Path) -> int:
    """Magic and counts before the reader walks them (a hostile count would make it loop for ever)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(24)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise RuntimeFailure(f"{path}: cannot read: {exc.strerror}") from None
    if head[:4] != GGUF_MAGIC:
        raise InputError(f"{path}: not a GGUF file (magic {head[:4]!r}, expected b'GGUF')")
    if len(head) < 24:
        raise InputError(f"{path}: not a valid GGUF file: {size} bytes, shorter than the GGUF header")
    tensors, kvs = struct.unpack("<QQ", head[8:24])
    if tensors > MAX_TENSORS or kvs > MAX_KV:
        raise InputError(f"{path}: not a valid GGUF file: it claims {tensors} tensors and {kvs} metadata keys")
    return size


def _value(reader, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except Exception:  # noqa: BLE001 - a malformed field is reported by the caller as missing
        return None


def read_part(path: Path):
    """(reader, tensors, file) of one GGUF file."""
    gguf = _gguf()
    size = _check_prefix(path)
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, IndexError, KeyError, OverflowError, struct.error) as exc:
        text = str(exc)
        why = ("a tensor's data lies past the end of the file" if "reshape" in text or "size" in text
               else text.encode("ascii", "replace").decode()[:120])
        raise InputError(f"{path}: not a valid GGUF file: {why}") from None
    tensors = []
    for t in reader.tensors:
        end = int(t.data_offset) + int(t.n_bytes)
        if end > size:
            raise InputError(f"{path}: tensor {t.name[:80]!r} ends at byte {end}, past the end of the file ({size} bytes)")
        tensors.append(CheckpointTensor(name=t.name, dtype=t.tensor_type.name, shape=tuple(int(d) for d in t.shape),
                                        nbytes=int(t.n_bytes), file=path.name))
    return reader, tensors, CheckpointFile(name=path.name, size_bytes=size, num_tensors=len(tensors))


def file_type_name(reader) -> str | None:
    """general.file_type as llama.cpp names it (LlamaFileType.MOSTLY_Q8_0 -> 'Q8_0')."""
    gguf = _gguf()
    value = _value(reader, "general.file_type")
    try:
        return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_") if value is not None else None
    except ValueError:
        return None


def config_from_metadata(reader, tensors: list[CheckpointTensor], where: str) -> dict[str, Any]:
    """A transformers config.json from the GGUF metadata (keys as convert_hf_to_gguf.py writes them)."""
    arch = _value(reader, "general.architecture")
    if not isinstance(arch, str) or arch not in ARCHES:
        why = f" ({NO_FAMILY[arch]})" if isinstance(arch, str) and arch in NO_FAMILY else ""
        raise InputError(f"{where}: general.architecture {str(arch)[:40]!r} is not read by oomplan{why}; accepted: {', '.join(ARCHES)}")
    model_type, cls = ARCHES[arch]

    def need(key: str) -> int:
        value = _value(reader, f"{arch}.{key}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{where}: metadata {arch}.{key} is missing or not a positive integer (got {str(value)[:40]!r})")
        return value

    def opt(key: str):
        return _value(reader, f"{arch}.{key}")

    names = {t.name: t for t in tensors}
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = len(tokens.data) if tokens is not None else (names["token_embd.weight"].shape[-1] if "token_embd.weight" in names else None)
    if not vocab:
        raise InputError(f"{where}: no vocabulary size (neither tokenizer.ggml.tokens nor token_embd.weight)")
    cfg: dict[str, Any] = {
        "model_type": model_type, "architectures": [cls], "hidden_size": need("embedding_length"),
        "num_hidden_layers": need("block_count"), "num_attention_heads": need("attention.head_count"),
        "num_key_value_heads": opt("attention.head_count_kv") or need("attention.head_count"),
        "intermediate_size": opt("feed_forward_length") or need("expert_feed_forward_length"),
        "max_position_embeddings": need("context_length"), "vocab_size": int(vocab),
        "tie_word_embeddings": "output.weight" not in names, "torch_dtype": "bfloat16",
    }
    for key, hf in (("attention.key_length", "head_dim"), ("rope.freq_base", "rope_theta"), ("attention.layer_norm_rms_epsilon", "rms_norm_eps"),
                    ("attention.sliding_window", "sliding_window")):
        if opt(key) is not None:
            cfg[hf] = opt(key)
    experts = opt("expert_count")
    if experts:
        cfg.update(num_experts=experts, num_local_experts=experts, num_experts_per_tok=opt("expert_used_count") or 1,
                   moe_intermediate_size=opt("expert_feed_forward_length") or cfg["intermediate_size"])
        if arch == "llama":
            cfg.update(model_type="mixtral", architectures=["MixtralForCausalLM"])
    if arch in ARCH_KEYS:
        ARCH_KEYS[arch](cfg, opt, need, names)
    return cfg


# What llama.cpp's convert_hf_to_gguf.py writes for each architecture beyond the common keys (TextModel.
# set_gguf_parameters: block_count, embedding_length, feed_forward_length, head_count(_kv), key_length = head_dim,
# expert_count, expert_used_count), turned back into the transformers config keys oomplan/families reads.
# Layer patterns are llama.cpp's own (src/llama-model.cpp load_hparams: gemma3 set_swa_pattern(6), gpt-oss 2),
# which are also the families' defaults.

def _moe_keys(cfg: dict[str, Any]) -> None:
    for k in ("num_experts", "num_local_experts", "moe_intermediate_size"):
        cfg.pop(k, None)


def _gpt_oss(cfg: dict[str, Any], opt, need, names) -> None:
    """GptOssModel: sliding_window, expert_feed_forward_length = intermediate_size; q/k/v/o biases as tensors."""
    experts = need("expert_count")
    _moe_keys(cfg)
    cfg.update(num_local_experts=experts, num_experts_per_tok=need("expert_used_count"),
               intermediate_size=opt("expert_feed_forward_length") or cfg["intermediate_size"],
               attention_bias="blk.0.attn_q.bias" in names)


def _glm4moe(cfg: dict[str, Any], opt, need, names) -> None:
    """Glm4MoeModel: block_count = num_hidden_layers + nextn_predict_layers (the MTP layer is written too);
    expert_count = n_routed_experts, expert_feed_forward_length = moe_intermediate_size, expert_shared_count,
    leading_dense_block_count = first_k_dense_replace, rope.dimension_count = head_dim x partial_rotary_factor."""
    nextn = opt("nextn_predict_layers") or 0
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    rope = opt("rope.dimension_count")
    experts, used = need("expert_count"), need("expert_used_count")
    _moe_keys(cfg)
    cfg.update(num_hidden_layers=cfg["num_hidden_layers"] - nextn, num_mtp_layers=nextn, head_dim=head_dim,
               n_routed_experts=experts, num_experts_per_tok=used, moe_intermediate_size=need("expert_feed_forward_length"),
               n_shared_experts=opt("expert_shared_count") or 0, first_k_dense_replace=opt("leading_dense_block_count") or 0,
               partial_rotary_factor=(rope / head_dim) if rope else 0.5, use_qk_norm="blk.0.attn_q_norm.weight" in names,
               attention_bias="blk.0.attn_q.bias" in names)
    if cfg["num_hidden_layers"] < 1:
        raise InputError(f"metadata glm4moe.nextn_predict_layers={nextn} leaves no decoder layers of block_count")


def _deepseek2(cfg: dict[str, Any], opt, need, names) -> None:
    """DeepseekV2Model (V2, V3, Kimi-K2, GLM-4.7-Flash): MLA written as MQA (head_count_kv 1, key_length =
    kv_lora_rank + rope); the per-head sizes in key_length_mla / value_length_mla (older files: key_length /
    value_length), rope.dimension_count = qk_rope_head_dim; MTP layers skipped. Sigmoid gating with a score
    bias (expert_gating_func 2, exp_probs_b tensors) is V3's router."""
    rope = need("rope.dimension_count")
    kv_rank = need("attention.kv_lora_rank")
    mla = opt("attention.key_length_mla") is not None
    key = need("attention.key_length_mla") if mla else need("attention.key_length")
    value = need("attention.value_length_mla") if mla else need("attention.value_length")
    v3 = opt("expert_gating_func") == 2 or any(n.endswith("exp_probs_b.bias") for n in names)
    heads = cfg["num_attention_heads"]
    experts = opt("expert_count")
    _moe_keys(cfg)
    cfg.pop("head_dim", None)
    cfg.update(model_type="deepseek_v3" if v3 else "deepseek_v2",
               architectures=["DeepseekV3ForCausalLM" if v3 else "DeepseekV2ForCausalLM"], num_key_value_heads=heads,
               kv_lora_rank=kv_rank, q_lora_rank=opt("attention.q_lora_rank") or None, qk_rope_head_dim=rope,
               qk_nope_head_dim=key - rope, v_head_dim=value, first_k_dense_replace=opt("leading_dense_block_count") or 0,
               moe_intermediate_size=need("expert_feed_forward_length"))
    if experts:
        cfg.update(n_routed_experts=experts, num_experts_per_tok=need("expert_used_count"),
                   n_shared_experts=opt("expert_shared_count") or 0)


def _qwen3next(cfg: dict[str, Any], opt, need, names) -> None:
    """Qwen3NextModel (on Qwen2MoeModel's expert keys): ssm.conv_kernel = linear_conv_kernel_dim, ssm.state_size =
    linear_key_head_dim, ssm.group_count = linear_num_key_heads, ssm.time_step_rank = linear_num_value_heads,
    ssm.inner_size = linear_value_head_dim x linear_num_value_heads, full_attention_interval; expert_shared_
    feed_forward_length = shared_expert_intermediate_size; MTP layers (nextn_predict_layers) out of block_count."""
    value_heads, inner = need("ssm.time_step_rank"), need("ssm.inner_size")
    if inner % value_heads:
        raise InputError(f"metadata qwen3next.ssm.inner_size={inner} is not a multiple of ssm.time_step_rank={value_heads}")
    nextn = opt("nextn_predict_layers") or 0
    cfg.update(num_hidden_layers=cfg["num_hidden_layers"] - nextn, linear_conv_kernel_dim=need("ssm.conv_kernel"),
               linear_key_head_dim=need("ssm.state_size"), linear_num_key_heads=need("ssm.group_count"),
               linear_num_value_heads=value_heads, linear_value_head_dim=inner // value_heads,
               full_attention_interval=opt("full_attention_interval") or 4,
               shared_expert_intermediate_size=opt("expert_shared_feed_forward_length") or 0)
    if cfg["num_hidden_layers"] < 1:
        raise InputError(f"metadata qwen3next.nextn_predict_layers={nextn} leaves no decoder layers of block_count")


ARCH_KEYS = {"gpt-oss": _gpt_oss, "glm4moe": _glm4moe, "deepseek2": _deepseek2, "qwen3next": _qwen3next}


def read_gguf(path: Path) -> tuple[dict[str, Any], Checkpoint]:
    """(config dict, tensor table) of a GGUF file or split set."""
    parts = split_parts(path)
    tensors: list[CheckpointTensor] = []
    files = []
    first = None
    for part in parts:
        reader, t, f = read_part(part)
        first = first or reader
        tensors += t
        files.append(f)
    cfg = config_from_metadata(first, tensors, str(parts[0]))
    ck = Checkpoint(kind="gguf", location=str(parts[0]), files=tuple(files), tensors=tuple(tensors), quant_method=file_type_name(first))
    return cfg, ck
