"""What the probe can realise of a plan, and the per-GPU shard's config (no torch here)."""
from __future__ import annotations

from typing import Literal

from oomplan.memory.weights import SIXTEEN_BIT, resolved_weight_format
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import ceil_div


def probe_plan(model: ModelSpec, plan: Plan) -> tuple[Plan, tuple[str, ...]]:
    """The plan as the probe runs it (16-bit weights and KV, contiguous KV, one stage, no offload,
    no DMS or KV policy) and the knobs it leaves to the analytic model, one phrase each."""
    left = []
    weights = resolved_weight_format(model, plan)
    if weights not in SIXTEEN_BIT:
        left.append(f"{weights} weights (probed in 16-bit; packed bytes are analytic)")
    if plan.kv_dtype not in ("auto", "bf16", "fp16", "fp32"):
        left.append(f"{plan.kv_dtype} KV cache (probed in the model dtype)")
    if plan.dms_ratio > 1:
        left.append(f"DMS {plan.dms_ratio:g}x (needs a DMS checkpoint)")
    if plan.kv_policy is not None:
        left.append(f"KV policy {plan.kv_policy.spec} (transformers keeps every token; docs/kv-policies.md)")
    if plan.offload_bytes:
        left.append("CPU offload")
    if plan.pipeline_parallel > 1:
        left.append(f"PP {plan.pipeline_parallel} (probed as one stage)")
    if plan.paged:
        left.append(f"paged KV rounding to {plan.block_size}-token blocks")
    probed = plan.model_copy(update=dict(
        weights=weights if weights in SIXTEEN_BIT else "auto", kv_dtype="auto", dms_ratio=1.0, kv_policy=None, offload_bytes=0,
        pipeline_parallel=1, paged=False,
    ))
    return probed, tuple(left)


def probe_dtype(model: ModelSpec, probed: Plan) -> Literal["fp32", "bf16", "fp16"]:
    """The dtype the probe builds the model in, on meta and CUDA alike: the probed plan's 16-bit weights
    (`--weights fp16/bf16` honoured; 'auto' is the checkpoint's, fp32 checkpoints such as Gemma 2 served in bf16,
    as the budget assumes)."""
    fmt = resolved_weight_format(model, probed)
    for dtype in ("fp32", "bf16", "fp16"):  # the 16-bit formats of SIXTEEN_BIT (formats.yaml), fp32 included
        if fmt == dtype:
            return dtype
    return "bf16" if model.dtype == "fp32" else model.dtype  # 'auto': fp32 checkpoints are served in bf16


def shard_config(model: ModelSpec, tensor_parallel: int) -> dict:
    """The HF config of one TP rank: heads, KV heads (replicated past their count), MLP and expert
    widths and the vocabulary split as vLLM's column/row-parallel layers split them. Token ids
    (bos/eos/pad) are dropped: they do not change memory and would fall outside a split vocabulary."""
    cfg = {k: v for k, v in model.hf_config.items() if k not in ("bos_token_id", "eos_token_id", "pad_token_id")}
    if tensor_parallel == 1:
        return cfg
    tp = tensor_parallel
    cfg["num_attention_heads"] = model.num_attention_heads // tp
    if "n_head" in cfg:
        cfg["n_head"] = cfg["num_attention_heads"]
    for key in ("num_key_value_heads", "num_kv_heads"):
        if key in cfg:
            cfg[key] = ceil_div(model.num_kv_heads, tp)
    if model.mla is None:
        cfg["head_dim"] = model.head_dim  # hidden / heads no longer gives it
    for key in ("intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size", "ffn_hidden_size"):
        if cfg.get(key):
            cfg[key] = ceil_div(cfg[key], tp)
    cfg["vocab_size"] = ceil_div(model.vocab_size, tp)
    return cfg
