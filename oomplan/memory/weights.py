"""Weight memory per GPU: quantisation formats, TP/EP sharding, PP stages, CPU offload."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from oomplan import formats
from oomplan.memory.layout import Stage, shard, stage_at
from oomplan.memory.module_formats import DENSE, module_formats
from oomplan.memory.params import COMPONENTS, Component, TensorGroup, inventory
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import FP32

KV_ATTENTION = ("full", "sliding", "chunked", "mla")  # attention kinds with a per-token KV cache (and its k/v scales)
SIXTEEN_BIT = tuple(n for n, f in formats.registry().items() if f.is_sixteen_bit)  # fp32, bf16, fp16


def resolved_weight_format(model: ModelSpec, plan: Plan) -> str:
    """'auto' is the checkpoint dtype; fp32 checkpoints (e.g. Gemma 2) are served in bf16."""
    if plan.weights != "auto":
        return plan.weights
    return "bf16" if model.dtype == "fp32" else model.dtype


def dense_dtype(model: ModelSpec, plan: Plan) -> str:
    """The dtype of tensors that are never quantised (norms, biases, embeddings by default)."""
    fmt = resolved_weight_format(model, plan)
    return fmt if fmt in SIXTEEN_BIT else ("bf16" if model.dtype == "fp32" else model.dtype)


def effective_plan(model: ModelSpec, plan: Plan) -> Plan:
    """The plan as the weights are stored: with weights 'auto', a checkpoint's declared quantisation
    (quantization_config, oomplan/formats/declared.py) gives its components their shipped formats; the plan's
    own component_weights still win. An explicit --weights prices a re-quantised checkpoint instead."""
    d = model.declared_weights
    if d is None or plan.weights != "auto":
        return plan
    return plan.model_copy(update={"component_weights": d.component_weights | plan.component_weights, "weight_group_size": d.group_size})


def stored_weight_formats(model: ModelSpec, plan: Plan) -> tuple[str, ...]:
    """Every format the plan stores weight matrices in: the plan's (or checkpoint's) and each component's own."""
    declared = model.declared_weights.formats if model.declared_weights is not None and plan.weights == "auto" else ()
    plan = effective_plan(model, plan)
    return tuple(dict.fromkeys((resolved_weight_format(model, plan),) + tuple(plan.component_weights.values()) + declared))


def weights_label(model: ModelSpec, plan: Plan) -> str:
    """'bf16', or for a declared checkpoint 'fp8-block (as shipped)', 'mxfp4+bf16 (as shipped)'."""
    d = model.declared_weights
    if d is None or plan.weights != "auto":
        return resolved_weight_format(model, plan)
    return "+".join(stored_weight_formats(model, plan)[1:] + (resolved_weight_format(model, plan),)) + " (as shipped)"


def matrix_bytes(rows: int, cols: int, fmt: str, group_size: int) -> int:
    """Bytes of one [rows, cols] weight (out, in) stored in `fmt`, scales and zeros included (oomplan/formats)."""
    return formats.get(fmt).matrix_bytes(rows, cols, group_size)


def tensor_format(t: TensorGroup, fmt: str, dense: str, plan: Plan) -> str:
    """The format one tensor group is stored in: its component's own format (matrices only), else the plan's
    format for quantisable matrices (and embeddings with quantize_embeddings), else the dense dtype; fp32-kept
    tensors (TensorGroup.fp32: DeepSeek's router in transformers >= 5.24) are fp32 unless their component has its own."""
    own = plan.component_weights.get(t.component) if t.cols > 1 else None  # type: ignore[arg-type]  # norm/vision: no entry, None
    if own is not None:
        return own
    if t.fp32:
        return "fp32"
    quantize = t.quantizable or (plan.quantize_embeddings and t.component in ("embedding", "lm_head"))
    return fmt if quantize else dense


def group_bytes(t: TensorGroup, fmt: str, dense: str, plan: Plan) -> int:
    """Bytes one GPU holds of a tensor group under the plan's format and TP/EP split."""
    rows, cols, count = shard(t, plan.tensor_parallel, plan.expert_parallel)
    return matrix_bytes(rows, cols, tensor_format(t, fmt, dense, plan), plan.weight_group_size) * count


@dataclass(frozen=True)
class ComponentBytes:
    """Bytes per model component (parameters or weights)."""

    embedding: int = 0
    attention: int = 0
    mlp: int = 0
    experts: int = 0
    router: int = 0
    norm: int = 0
    lm_head: int = 0
    vision: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, c) for c in COMPONENTS)


@dataclass(frozen=True)
class WeightsBudget:
    """Weights of one pipeline stage on one GPU of its TP group."""

    stage: int
    resident_bytes: int  # on the GPU
    offloaded_bytes: int  # kept in CPU memory
    staging_bytes: int  # GPU buffer that offloaded layers stream through
    by_component: ComponentBytes  # resident + offloaded, per component
    layer_bytes: tuple[int, ...]  # bytes of each decoder layer on this stage, in order

    @property
    def gpu_bytes(self) -> int:
        return self.resident_bytes + self.staging_bytes


def _as_declared(model: ModelSpec, plan: Plan) -> bool:
    """The plan prices the checkpoint as shipped (weights 'auto' with its declared formats), so its per-module exclusions
    and static input scales apply."""
    d = model.declared_weights
    return d is not None and plan.weights == "auto" and all(plan.component_weights.get(c) == f for c, f in d.component_weights.items())  # type: ignore[call-overload]


def input_scale_bytes(t: TensorGroup, fmt: str, dense: str, plan: Plan, formats_with_scales: tuple[str, ...]) -> int:
    """A static per-tensor activation scale: one fp32 per stored quantised matrix (each expert's own), replicated over TP."""
    if t.cols <= 1 or tensor_format(t, fmt, dense, plan) not in formats_with_scales:
        return 0
    return FP32 * shard(t, plan.tensor_parallel, plan.expert_parallel)[2]


def _stage_weights(model: ModelSpec, plan: Plan, stage: Stage) -> tuple[ComponentBytes, tuple[int, ...]]:
    inv, fmt, dense = inventory(model), resolved_weight_format(model, plan), dense_dtype(model, plan)
    totals: dict[Component, int] = {c: 0 for c in COMPONENTS}
    declared = model.declared_weights if _as_declared(model, plan) else None
    scales = declared.input_scales if declared is not None else ()
    vision = declared.vision_weights if declared is not None else None

    def held(t: TensorGroup) -> int:
        if vision is not None and t.linear:  # a vision-tower nn.Linear the declared method quantised (DeclaredWeights.vision_weights)
            rows, cols, count = shard(t, plan.tensor_parallel, plan.expert_parallel)
            return matrix_bytes(rows, cols, vision, plan.weight_group_size) * count + (FP32 * count if vision in scales else 0)
        return group_bytes(t, fmt, dense, plan) + (input_scale_bytes(t, fmt, dense, plan, scales) if scales else 0)

    globals_ = (inv.embedding if stage.is_first else ()) + (inv.head if stage.is_last else ())
    if stage.is_last and not stage.is_first and model.tie_word_embeddings:
        globals_ += inv.embedding  # a tied lm_head on the last stage needs its own copy
    for t in globals_:
        totals[t.component] += held(t)
    own = module_formats(model) if declared is not None and (declared.kept_modules or declared.module_formats) else None
    kind_bytes, kind_tensors, layer_bytes = {}, {}, []
    for kind in inv.layer_kinds:
        per = {t.name: (t.component, held(t)) for t in kind.tensors}
        kind_bytes.update({i: per for i in kind.layer_indices})
        kind_tensors.update({i: kind.tensors for i in kind.layer_indices})
    for i in stage.layer_indices:
        per = kind_bytes[i]
        if own is not None and own.groups.get(i):  # modules with a format of their own (oomplan/memory/module_formats.py)
            per = dict(per)
            for t in kind_tensors[i]:
                module = own.of(i, t.name)
                if module is None or (module == DENSE and tensor_format(t, fmt, dense, plan) in SIXTEEN_BIT):
                    continue
                rows, cols, count = shard(t, plan.tensor_parallel, plan.expert_parallel)
                stored = ("fp32" if t.fp32 else dense) if module == DENSE else module  # DENSE: as the tensor is without a declared format
                scale = FP32 * count if stored in scales else 0  # the module format's static input scales
                per[t.name] = (t.component, matrix_bytes(rows, cols, stored, plan.weight_group_size) * count + scale)
        kv_scales = 2 * FP32 if declared is not None and declared.kv_cache_dtype and model.layers[i].attention.kind in KV_ATTENTION else 0
        totals["attention"] += kv_scales  # the checkpoint's k_scale and v_scale of this attention layer
        for comp, b in per.values():
            totals[comp] += b
        layer_bytes.append(sum(b for _, b in per.values()) + kv_scales)
    return ComponentBytes(**totals), tuple(layer_bytes)


@lru_cache(maxsize=4096)
def stage_weights(model: ModelSpec, plan_key: Plan, stage_index: int,
                  layers: tuple[int, ...] | None = None) -> tuple[ComponentBytes, tuple[int, ...]]:
    """Cached per (model, weight-relevant knobs, stage): the planner asks many times. From the checkpoint's
    tensor table when it describes what is held (oomplan/memory/checkpoint_weights.py), else the config inventory.
    `layers`: the stage's decoder layers where an engine splits them its own way (layout.stage_at)."""
    if model.checkpoint is not None:
        from oomplan.memory.checkpoint_weights import applies, checkpoint_stage_weights

        if applies(model, plan_key):
            return checkpoint_stage_weights(model, plan_key, stage_index, layers)
    stage = stage_at(model.num_layers, plan_key.pipeline_parallel, stage_index, layers)
    return _stage_weights(model, plan_key, stage)


def fp32_kept_extra_bytes(model: ModelSpec, plan: Plan, stage_index: int = 0, layers: tuple[int, ...] | None = None) -> int:
    """Bytes the fp32-kept tensors (TensorGroup.fp32, e.g. DeepSeek's router in transformers >= 5.24) of one stage
    add over the same tensors in the dense dtype: what an engine loading them in the model dtype does not hold.
    `layers`: the stage's decoder layers where an engine splits them its own way (layout.stage_at)."""
    stage = stage_at(model.num_layers, plan.pipeline_parallel, stage_index, layers)
    plan = effective_plan(model, plan)
    fmt, dense = resolved_weight_format(model, plan), dense_dtype(model, plan)
    extra = 0
    for kind in inventory(model).layer_kinds:
        num_layers = len(set(kind.layer_indices) & set(stage.layer_indices))
        for t in kind.tensors:
            if t.fp32 and num_layers and tensor_format(t, fmt, dense, plan) == "fp32":
                rows, cols, count = shard(t, plan.tensor_parallel, plan.expert_parallel)
                held = group_bytes(t, fmt, dense, plan) - matrix_bytes(rows, cols, dense, plan.weight_group_size) * count
                extra += held * num_layers
    return extra


def weight_key(model: ModelSpec, plan: Plan) -> Plan:
    """The plan reduced to the knobs weights depend on (a cache key), with any declared quantisation applied."""
    plan = effective_plan(model, plan)
    return Plan(
        weights=plan.weights, weight_group_size=plan.weight_group_size, quantize_embeddings=plan.quantize_embeddings,
        component_weights=plan.component_weights,
        tensor_parallel=plan.tensor_parallel, pipeline_parallel=plan.pipeline_parallel, expert_parallel=plan.expert_parallel,
    )


def weights_budget(model: ModelSpec, plan: Plan, stage_index: int = 0, layers: tuple[int, ...] | None = None) -> WeightsBudget:
    """Weights one GPU holds; offloaded bytes come out of the decoder layers only.

    Offloaded layers stream through one layer-sized GPU buffer (accelerate's cpu offload hooks).
    `layers`: the stage's decoder layers where an engine splits them its own way (layout.stage_at).
    """
    by_comp, layer_bytes = stage_weights(model, weight_key(model, plan), stage_index, layers)
    offloaded = min(plan.offload_bytes, sum(layer_bytes))
    staging = max(layer_bytes, default=0) if offloaded else 0
    return WeightsBudget(stage_index, by_comp.total - offloaded, offloaded, staging, by_comp, layer_bytes)
