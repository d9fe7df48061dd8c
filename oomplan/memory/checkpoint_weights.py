"""Weights from the checkpoint's own tensor table (safetensors headers, GGUF tensor infos), exact.

What a GPU holds is what the runtime loads: every stored tensor at its stored bytes, except
- layers past num_hidden_layers (DeepSeek-V3's MTP layer 61; transformers skips them:
  models/deepseek_v3/modeling_deepseek_v3.py DeepseekV3PreTrainedModel._keys_to_ignore_on_load_unexpected),
- a stored lm_head when the config ties it to the embedding (one tensor is held),
- floats the runtime casts: an unquantised checkpoint served in another float dtype (an fp32
  checkpoint served as bf16, `--weights fp16` ...) is priced at the dtype it is held in,
- GGUF under transformers (`--engine hf`): every tensor is dequantised to the torch dtype at load
  (transformers 5.24 modeling_gguf_pytorch_utils.py load_gguf_checkpoint: gguf.dequantize per tensor).
  llama.cpp itself holds the GGUF types as stored (oomplan/engines/llamacpp/gguf.py).
Pipeline stages get the tensors of their layers; tensor parallelism divides each component as the
config's inventory divides it (oomplan/memory/params.py + layout.shard), exact at TP 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from oomplan.checkpoint.naming import component, layer_index
from oomplan.memory.layout import pipeline_stages, stage_at
from oomplan.memory.params import COMPONENTS
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import DTYPE_BYTES

if TYPE_CHECKING:
    from oomplan.memory.weights import ComponentBytes

SAFETENSORS_FLOATS = {"F32": "fp32", "F16": "fp16", "BF16": "bf16", "F64": "fp64"}
GGUF_FLOATS = ("F32", "F16", "BF16")


@dataclass(frozen=True)
class HeldTensor:
    component: str
    layer: int | None
    held_bytes: int


@dataclass(frozen=True)
class HeldWeights:
    """The tensors the runtime holds, with why they differ from the files."""

    tensors: tuple[HeldTensor, ...]
    stored_bytes: int  # every tensor in the files
    held_bytes: int  # what the runtime holds (TP 1, PP 1)
    reasons: tuple[str, ...]


def applies(model: ModelSpec, plan: Plan) -> bool:
    """The table describes what is held unless the plan re-quantises (or a quantised checkpoint is asked for another format)."""
    ck = model.checkpoint
    if ck is None:
        return False
    declared = model.declared_weights.component_weights if model.declared_weights is not None else {}
    if plan.component_weights and not (plan.weights == "auto" and plan.component_weights == declared):
        return False  # a per-component re-quantisation: the stored table does not describe it
    if ck.kind == "gguf":  # dequantised by transformers to the float dtype asked for
        return plan.weights in ("auto", "fp32", "bf16", "fp16")
    if ck.quant_method:
        return plan.weights == "auto"
    return plan.weights in ("auto", "fp32", "bf16", "fp16")


def _held_dtype(model: ModelSpec, plan: Plan) -> str:
    from oomplan.memory.weights import dense_dtype

    return dense_dtype(model, plan)


@lru_cache(maxsize=256)
def held_weights(model: ModelSpec, weights: str) -> HeldWeights:
    """Cached per (model, --weights): the cast depends only on the weight format."""
    ck = model.checkpoint
    assert ck is not None, "held_weights needs a checkpoint table (applies() checked it)"
    plan = Plan(weights=weights)
    target = _held_dtype(model, plan)
    cast = ck.kind == "safetensors" and not ck.quant_method
    dequantise = ck.kind == "gguf"
    dequantised = 0
    names = {t.name for t in ck.tensors}
    has_embedding = any(component(n) == "embedding" for n in names)
    held, reasons = [], []
    skipped_layers = skipped_tied = 0
    skipped_layer_bytes = skipped_tied_bytes = cast_from = cast_delta = 0
    cast_dtypes: set[str] = set()
    for t in ck.tensors:
        comp, layer = component(t.name), layer_index(t.name)
        if layer is not None and layer >= model.num_layers:
            skipped_layers += 1
            skipped_layer_bytes += t.nbytes
            continue
        if comp == "lm_head" and model.tie_word_embeddings and has_embedding:
            skipped_tied += 1
            skipped_tied_bytes += t.nbytes
            continue
        nbytes = t.nbytes
        if dequantise:
            nbytes = int(math.prod(t.shape) * DTYPE_BYTES[target])
            dequantised += 1
        elif cast and t.dtype in SAFETENSORS_FLOATS and SAFETENSORS_FLOATS[t.dtype] != target:
            nbytes = int(math.prod(t.shape) * DTYPE_BYTES[target])
            cast_from += t.nbytes
            cast_delta += t.nbytes - nbytes
            cast_dtypes.add(t.dtype)
        held.append(HeldTensor(comp, layer, nbytes))
    if skipped_layers:
        reasons.append(f"{skipped_layers} tensors ({skipped_layer_bytes:,} B) of layers beyond num_hidden_layers={model.num_layers} "
                       "(multi-token-prediction layers) are shipped but not loaded")
    if skipped_tied:
        reasons.append(f"lm_head is tied to the embedding: the stored copy ({skipped_tied_bytes:,} B) is not held twice")
    if dequantised:
        reasons.append(f"transformers dequantises GGUF tensors to {target} at load: {dequantised} tensors held at "
                       f"{DTYPE_BYTES[target]:g} bytes per weight ({ck.tensor_bytes:,} B stored as {ck.quant_method or 'GGUF types'})")
    if cast_from:
        reasons.append(f"{'/'.join(sorted(cast_dtypes))} tensors ({cast_from:,} B on disk) are cast to {target} at load: "
                       f"{abs(cast_delta):,} B {'less' if cast_delta > 0 else 'more'} held than stored")
    return HeldWeights(tuple(held), ck.tensor_bytes, sum(h.held_bytes for h in held), tuple(reasons))


def _tp_ratios(model: ModelSpec, plan: Plan, stage_index: int, layers: tuple[int, ...] | None = None) -> dict[str, float]:
    """Per component: the share of its bytes one GPU holds under the plan's TP/EP, from the config inventory."""
    from oomplan.memory.weights import _stage_weights

    if plan.tensor_parallel == 1:
        return {c: 1.0 for c in COMPONENTS}
    stage = stage_at(model.num_layers, plan.pipeline_parallel, stage_index, layers)
    dense = Plan(weights="bf16", tensor_parallel=plan.tensor_parallel, pipeline_parallel=plan.pipeline_parallel,
                 expert_parallel=plan.expert_parallel)
    split, whole = _stage_weights(model, dense, stage)[0], _stage_weights(model, dense.model_copy(update={"tensor_parallel": 1}), stage)[0]
    return {c: (getattr(split, c) / getattr(whole, c) if getattr(whole, c) else 1.0) for c in COMPONENTS}


def checkpoint_stage_weights(model: ModelSpec, plan: Plan, stage_index: int,
                             layers: tuple[int, ...] | None = None) -> tuple[ComponentBytes, tuple[int, ...]]:
    """(ComponentBytes, per-layer bytes) of one stage from the held tensors; same shape as weights.stage_weights."""
    from oomplan.memory.weights import ComponentBytes

    stage = stage_at(model.num_layers, plan.pipeline_parallel, stage_index, layers)
    hw = held_weights(model, plan.weights)
    ratios = _tp_ratios(model, plan, stage_index, layers)
    on_stage = set(stage.layer_indices)
    totals: dict[str, float] = {c: 0.0 for c in COMPONENTS}
    per_layer = {i: 0.0 for i in stage.layer_indices}
    tied_copy = stage.is_last and not stage.is_first and model.tie_word_embeddings
    for t in hw.tensors:
        share = t.held_bytes * ratios.get(t.component, 1.0)
        if t.layer is not None:
            if t.layer in on_stage:
                totals[t.component] += share
                per_layer[t.layer] += share
        elif t.component == "embedding":
            if stage.is_first:
                totals["embedding"] += share
            if tied_copy:  # a tied lm_head on the last stage needs its own copy
                totals["embedding"] += share
        elif stage.is_last:
            totals[t.component] += share
    return ComponentBytes(**{c: int(round(v)) for c, v in totals.items()}), tuple(int(round(per_layer[i])) for i in stage.layer_indices)


QUANT_FORMATS = {"awq": "awq", "gptq": "gptq", "mxfp4": "mxfp4", "modelopt": "nvfp4"}


def stored_format(model: ModelSpec) -> str | None:
    """The checkpoint's weight format in oomplan's format names (oomplan/data/formats.yaml), from the header
    dtypes and tensor names; GGUF files give their llama.cpp file type. None without a table."""
    ck = model.checkpoint
    if ck is None:
        return None
    if ck.kind == "gguf":
        return ck.quant_method or "gguf"
    dtypes = {t.dtype for t in ck.tensors}
    names = [t.name for t in ck.tensors]
    method = (ck.quant_method or "").lower()
    if not method:
        floats = {t.dtype: 0 for t in ck.tensors}
        for t in ck.tensors:
            floats[t.dtype] += t.nbytes
        top = max(floats, key=lambda d: floats[d]) if floats else "BF16"
        return SAFETENSORS_FLOATS.get(top, top.lower())
    if method in QUANT_FORMATS:
        return QUANT_FORMATS[method]
    if "F8_E4M3" in dtypes or method in ("fp8", "fbgemm_fp8"):
        return "fp8-block" if any(n.endswith("weight_scale_inv") for n in names) else "fp8-channel" if any(
            n.endswith("weight_scale") for n in names) else "fp8"
    if method == "bitsandbytes":
        return "nf4" if any(n.endswith(".absmax") for n in names) else "int8"
    if method == "compressed-tensors" and "I32" in dtypes:
        return "int4"
    return method


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights figure came from, and how it compares with config arithmetic."""

    kind: str  # "checkpoint headers" | "config arithmetic"
    description: str
    checkpoint_bytes: int | None  # held, from the table (TP 1, PP 1)
    arithmetic_bytes: int  # the config inventory under the same format (TP 1, PP 1)
    reasons: tuple[str, ...]
    stored_format: str | None = None  # the checkpoint's format, in oomplan's format names

    @property
    def difference_bytes(self) -> int | None:
        return None if self.checkpoint_bytes is None else self.checkpoint_bytes - self.arithmetic_bytes


def weights_source(model: ModelSpec, plan: Plan) -> WeightsSource:
    from oomplan.memory.weights import _stage_weights, resolved_weight_format, weight_key

    single = weight_key(model, Plan(weights=plan.weights, weight_group_size=plan.weight_group_size,
                                    quantize_embeddings=plan.quantize_embeddings, component_weights=plan.component_weights))
    arithmetic = _stage_weights(model, single, pipeline_stages(model.num_layers, 1)[0])[0].total
    ck = model.checkpoint
    if ck is None:
        return WeightsSource("config arithmetic", "from config arithmetic", None, arithmetic, ())
    files = f"{ck.num_tensors} tensors in {len(ck.files)} file{'s' if len(ck.files) != 1 else ''}"
    if not applies(model, weight_key(model, plan)):
        why = (f"--weights {plan.weights} re-quantises on load; the stored table ({files}, {ck.tensor_bytes:,} B) does not describe what is held"
               if not ck.quant_method and ck.kind == "safetensors" else
               f"--weights {plan.weights} differs from the stored {ck.quant_method or 'format'}; the stored table does not apply")
        return WeightsSource("config arithmetic", "from config arithmetic", None, arithmetic, (why,), stored_format(model))
    hw = held_weights(model, plan.weights)
    reasons = list(hw.reasons)
    if ck.quant_method and ck.kind == "safetensors":
        reasons.append(f"stored as {ck.quant_method} (scales, zero points and packed blocks included); the arithmetic prices "
                       f"{resolved_weight_format(model, plan)}")
    if hw.held_bytes != arithmetic and not reasons:
        reasons.append("the files hold tensors the config inventory does not count (or lacks some it does), e.g. biases or buffers")
    return WeightsSource("checkpoint headers", f"from checkpoint headers, {files}", hw.held_bytes, arithmetic, tuple(reasons),
                         stored_format(model))
