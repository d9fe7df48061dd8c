"""Weights as a vLLM-style engine (vLLM, SGLang) loads them: the memory model's exact tensor bytes,
plus what the engine adds: vocab rows padded to a multiple of 64, and the rotary cos/sin cache.
"""
from __future__ import annotations

from collections.abc import Callable

from oomplan import formats
from oomplan.errors import InputError
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.validate import check_plan
from oomplan.memory.weights import dense_dtype, effective_plan, fp32_kept_extra_bytes, resolved_weight_format, weights_budget
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import DTYPE_BYTES, ceil_div, round_up

# vLLM/SGLang --quantization and --dtype values -> the memory model's weight formats (the registry's spellings)
QUANTIZATION_FORMATS: dict[str, str] = formats.by_engine_name("vllm", "accepts") | formats.by_engine_name("sglang", "accepts")
DTYPE_FORMATS: dict[str, str] = {formats.AUTO: formats.AUTO} | formats.by_engine_name("vllm", "dtype_accepts")


def weight_format(dtype: str, quantization: str | None, flag: str = "--quantization") -> str:
    """(--dtype, --quantization) -> the memory model's weight format ('auto', 'bf16', 'fp8', 'awq', ...)."""
    if dtype not in DTYPE_FORMATS:
        raise InputError(f"--dtype: {dtype!r} is not accepted; use one of {', '.join(DTYPE_FORMATS)}")
    if quantization is None:
        return DTYPE_FORMATS[dtype]
    if quantization not in QUANTIZATION_FORMATS:
        raise InputError(f"{flag}: {quantization!r} is not modelled; accepted: {', '.join(QUANTIZATION_FORMATS)}")
    return QUANTIZATION_FORMATS[quantization]


def served_plan(model: ModelSpec, dtype: str, quantization: str | None, tensor_parallel: int, pipeline_parallel: int,
                expert_parallel: bool = False) -> Plan:
    """The memory model's Plan for what a vLLM-style engine loads: format, TP/PP/EP (the KV pool is the engine's)."""
    plan = Plan(weights=weight_format(dtype, quantization), tensor_parallel=tensor_parallel,
                pipeline_parallel=pipeline_parallel, expert_parallel=expert_parallel)
    check_plan(model, plan)
    return plan


def activation_dtype_bytes(model: ModelSpec, plan: Plan) -> int:
    """Activations run in the 16-bit (or fp32) compute dtype, also with fp8/int4 weights."""
    return int(DTYPE_BYTES[dense_dtype(model, plan)])


def vocab_padding_bytes(model: ModelSpec, plan: Plan, stage_index: int, padding: int) -> int:
    """Extra rows of the embedding / lm_head: VocabParallelEmbedding pads its rows to `padding`, then splits them.
    The embedding has the model's extra rows too (Mllama: vllm/model_executor/models/mllama.py MllamaTextModel
    VocabParallelEmbedding(config.vocab_size + 8, ...)); the lm_head (ParallelLMHead(config.vocab_size)) has not."""
    stage = pipeline_stages(model.num_layers, plan.pipeline_parallel)[stage_index]
    tp = plan.tensor_parallel

    def padded(rows: int) -> int:
        return ceil_div(round_up(rows, padding), tp) - ceil_div(rows, tp)

    embed = padded(model.vocab_size + model.num_extra_embedding_rows) if stage.is_first else 0
    head = padded(model.vocab_size) if stage.is_last and (not model.tie_word_embeddings or not stage.is_first) else 0
    return (embed + head) * model.hidden_size * activation_dtype_bytes(model, plan)


def rotary_dim(model: ModelSpec) -> int:
    if model.mla is not None:
        return model.mla.qk_rope_head_dim
    return int(model.head_dim * model.rope.partial_rotary_factor)


def rope_cache_bytes(model: ModelSpec, plan: Plan) -> int:
    """vllm/model_executor/layers/rotary_embedding: one cos_sin_cache [max_position, rotary_dim] buffer, model dtype."""
    return model.max_position_embeddings * rotary_dim(model) * activation_dtype_bytes(model, plan)


def stage_weight_bytes(model: ModelSpec, plan: Plan, stage_index: int, padding: int,
                       layers: tuple[int, ...] | None = None) -> int:
    """What 'Model loading took X GiB' reports for one GPU of one pipeline stage (`layers`: its decoder layers
    where the engine splits them its own way, as SGLang does; None: vLLM's get_pp_indices).

    vLLM/SGLang load DeepSeek's router (gate.weight) in the model dtype, not in fp32 as transformers >= 5.24 does.
    """
    tensors = (weights_budget(model, plan, stage_index, layers).gpu_bytes
               - fp32_kept_extra_bytes(model, plan, stage_index, layers))
    return tensors + vocab_padding_bytes(model, plan, stage_index, padding) + rope_cache_bytes(model, plan)


def _mxfp4_expert_bytes(num_experts: int, hidden: int, intermediate: int, bias: bool) -> int:
    """One FusedMoE layer's MXFP4 tensors as Mxfp4MoEMethod.create_weights allocates them (vLLM 0.19.0
    vllm/model_executor/layers/quantization/mxfp4.py): w13 [E, 2I, H/2] + scale [E, 2I, H/32], w2 [E, H, I/2] +
    scale [E, H, I/32] (uint8), and with moe.has_bias bf16 w13_bias [E, 2I], w2_bias [E, H]."""
    bias_bytes = 2 if bias else 0
    w13 = 2 * intermediate * (hidden // 2 + hidden // 32 + bias_bytes)
    w2 = hidden * (intermediate // 2 + intermediate // 32 + bias_bytes)
    return num_experts * (w13 + w2)


def has_mxfp4_experts(model: ModelSpec, plan: Plan) -> bool:
    """The MoE experts are stored in MXFP4 (gpt-oss as published) under this plan."""
    eff = effective_plan(model, plan)
    return model.moe is not None and eff.component_weights.get("experts", resolved_weight_format(model, eff)) == "mxfp4"


def mxfp4_expert_padding_bytes(model: ModelSpec, plan: Plan, stage_index: int, intermediate_multiple: int,
                               hidden_multiple: int,
                               stored_bytes: Callable[[int, int, int, bool], int] = _mxfp4_expert_bytes) -> int:
    """What the MXFP4 MoE backend's padding adds to one GPU of one stage: FusedMoE rounds hidden_size and
    intermediate_size_per_partition up before create_weights (vLLM 0.19.0 fused_moe/layer.py ->
    Mxfp4MoEMethod.maybe_roundup_sizes -> fused_moe/oracle/mxfp4.py mxfp4_round_up_hidden_size_and_intermediate_size);
    `stored_bytes(num_experts, hidden, intermediate, bias)` is what the backend keeps at the rounded sizes after
    process_weights_after_loading (default: the create_weights tensors, kept in shape). 0 unless the experts are
    stored in MXFP4."""
    moe = model.moe
    if moe is None or not has_mxfp4_experts(model, plan):
        return 0
    tp = plan.tensor_parallel
    num_experts, intermediate = (ceil_div(moe.num_experts, tp), moe.expert_intermediate_size) if plan.expert_parallel \
        else (moe.num_experts, moe.expert_intermediate_size // tp)
    hidden = model.hidden_size
    padded = stored_bytes(num_experts, round_up(hidden, hidden_multiple),
                          round_up(intermediate, intermediate_multiple), moe.expert_bias)
    extra = padded - _mxfp4_expert_bytes(num_experts, hidden, intermediate, moe.expert_bias)
    stage = pipeline_stages(model.num_layers, plan.pipeline_parallel)[stage_index]
    return extra * len(set(stage.layer_indices) & set(moe.moe_layer_indices))
