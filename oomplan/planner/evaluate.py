"""Fast, exact evaluation of many plans for one (model, GPU, workload).

Uses the memory model's own component functions with caches keyed by the knobs each
component depends on, so a candidate's total equals `estimate()`'s to the byte
(tests/unit/test_planner.py checks it). The planner offloads whole decoder layers,
largest first: its `offload_bytes` is the sum of the k largest layers of the stage.
Stages of the same shape (`stage_shape`) share one budget, so a deep pipeline costs a few budgets, not one per stage.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate

from oomplan.memory.activations import activation_budget
from oomplan.memory.images import image_load
from oomplan.memory.kv_cache import kv_budget
from oomplan.memory.layout import Stage, pipeline_stages
from oomplan.memory.load_peak import load_peak, load_total_bytes
from oomplan.memory.overhead import allocator_fraction, overhead_budget
from oomplan.memory.params import inventory
from oomplan.memory.state import state_budget
from oomplan.memory.vision_activations import NO_VISION, VisionActivations, qwen_text_only, vision_activations
from oomplan.memory.vision_kv import cross_kv_bytes
from oomplan.memory.weights import dense_dtype, stage_weights, weight_key
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload
from oomplan.units import DTYPE_BYTES


@dataclass(frozen=True)
class StageWeights:
    total_bytes: int  # resident with nothing offloaded
    expert_bytes: int
    largest_first_prefix: tuple[int, ...]  # [0, largest layer, two largest, ...]
    max_layer_bytes: int


@dataclass(frozen=True)
class StageTotal:
    """One stage of one candidate: the components the budget table shows."""

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    offloaded_bytes: int
    expert_bytes: int
    state_bytes: int = 0  # recurrent state (Mamba / Gated DeltaNet layers)
    load_bytes: int = 0  # the load-time peak when there is one (oomplan/memory/load_peak.py), as estimate() has it

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.state_bytes + self.activation_bytes + self.overhead_bytes

    @property
    def peak_bytes(self) -> int:
        """What decides whether the plan fits: the steady total or the load-time peak, whichever is larger."""
        return max(self.total_bytes, self.load_bytes)


def stage_shape(model: ModelSpec, stage: Stage) -> tuple:
    """What one stage's budget depends on: first/last, and how many of its layers are of each
    (tensor inventory, per-layer structure). Stages of one shape have identical budgets, so a
    depth-p pipeline of a uniform model costs at most four budgets, not p."""
    kinds = _layer_signatures(model)
    return (stage.is_first, stage.is_last, frozenset(Counter(kinds[i] for i in stage.layer_indices).items()))


@lru_cache(maxsize=64)
def _layer_signatures(model: ModelSpec) -> tuple[tuple, ...]:
    kind = {i: k.name for k in inventory(model).layer_kinds for i in k.layer_indices}
    return tuple((kind[i], model.layers[i]) for i in range(model.num_layers))


@dataclass(frozen=True)
class Depth:
    """One pipeline depth: its stages, and for each stage the index of the first one of its shape."""

    stages: tuple[Stage, ...]
    representative: tuple[int, ...]  # stage -> first stage of the same shape
    distinct: tuple[int, ...]  # the representatives, in order


# Workload-dependent caches (KV, activations) are dropped past this many entries: --ctx max and
# --batch max probe many workloads, and memory must not grow with the number of probes.
MAX_WORKLOAD_ENTRIES = 20_000


@dataclass
class Evaluator:
    """Memoises each component by the knobs it depends on (plain dicts: the hot path)."""

    model: ModelSpec
    gpu: GpuSpec
    num_images: int = 0  # the workload's images per sequence (--images), for the plain-number paths (worst_total_at)
    image_tokens: int | None = None
    image_size: str | None = None  # --image-size (Pixtral)
    num_evaluated: int = 0
    _depths: dict = field(default_factory=dict)
    _w: dict = field(default_factory=dict)
    _kv: dict = field(default_factory=dict)
    _act: dict = field(default_factory=dict)
    _state: dict = field(default_factory=dict)
    _load: dict = field(default_factory=dict)

    def depth(self, pp: int) -> Depth:
        if pp not in self._depths:
            stages = pipeline_stages(self.model.num_layers, pp)
            first: dict[tuple, int] = {}
            rep = tuple(first.setdefault(stage_shape(self.model, st), st.index) for st in stages)
            self._depths[pp] = Depth(stages, rep, tuple(sorted(set(rep))))
        return self._depths[pp]

    def _num_sliding(self, st: Stage) -> int:
        key = ("sliding", st.layer_indices[0] if st.layer_indices else -1, len(st.layer_indices))
        n = self._w.get(key)
        if n is None:
            n = self._w[key] = sum(self.model.layer_attention[i] == "sliding" for i in st.layer_indices)
        return n

    def stages(self, pp: int) -> tuple[Stage, ...]:
        return self.depth(pp).stages

    def weights(self, plan: Plan, stage: int) -> StageWeights:
        stage = self.depth(plan.pipeline_parallel).representative[stage]
        key = (plan.weights, plan.weight_group_size, plan.quantize_embeddings, plan.tensor_parallel,
               plan.pipeline_parallel, plan.expert_parallel, stage)
        if key not in self._w:
            by_comp, layers = stage_weights(self.model, weight_key(self.model, plan), stage)
            prefix = (0, *accumulate(sorted(layers, reverse=True)))
            self._w[key] = StageWeights(by_comp.total, by_comp.experts, prefix, max(layers, default=0))
        return self._w[key]

    def kv_bytes(self, plan: Plan, workload: Workload, stage: int) -> int:
        return self._kv_bytes(plan, workload.ctx_tokens, workload.batch_size, stage)

    def _kv_bytes(self, plan: Plan, ctx_tokens: int, batch_size: int, stage: int) -> int:
        """kv_budget(...).bytes; it is per_layer x batch x tokens, so one sequence's bytes times the batch, exactly."""
        key = (plan.kv_dtype, plan.dms_ratio, plan.dms_window_tokens, plan.paged, plan.block_size,
               plan.tensor_parallel, plan.pipeline_parallel, stage, ctx_tokens, plan.kv_policy,
               plan.prefill_chunk_tokens if plan.kv_policy is not None else None)  # a policy's peak depends on the chunk
        per_sequence = self._kv.get(key)
        if per_sequence is None:
            if len(self._kv) >= MAX_WORKLOAD_ENTRIES:
                self._kv.clear()
            st = self.stages(plan.pipeline_parallel)[stage]
            per_sequence = self._kv[key] = kv_budget(self.model, plan, ctx_tokens, 1, st).bytes
        return per_sequence * batch_size

    def state_bytes(self, plan: Plan, workload: Workload, stage: int) -> int:
        return self._state_bytes(plan, workload.batch_size, stage)

    def _state_bytes(self, plan: Plan, batch_size: int, stage: int) -> int:
        """state_budget(...).bytes: one sequence's recurrent state (independent of context) times the batch."""
        dtype = dense_dtype(self.model, plan)
        key = (dtype, plan.tensor_parallel, plan.pipeline_parallel, stage)
        per_sequence = self._state.get(key)
        if per_sequence is None:
            st = self.stages(plan.pipeline_parallel)[stage]
            per_sequence = self._state[key] = state_budget(self.model, plan, 1, st, dtype).bytes
        return per_sequence * batch_size

    def activation_bytes(self, plan: Plan, workload: Workload, stage: int) -> int:
        return self._activation_bytes(plan, workload.ctx_tokens, workload.batch_size, stage)

    def _activation_bytes(self, plan: Plan, ctx_tokens: int, batch_size: int, stage: int,
                          vision: VisionActivations | None = None) -> int:
        """The stage's activation peak; vision None: text only (a Qwen VL's generate() inputs on the first stage)."""
        dtype = dense_dtype(self.model, plan)
        st = self.stages(plan.pipeline_parallel)[stage]
        if vision is None:
            vision = self._text_only(plan, ctx_tokens, batch_size, st.is_first)
        num_sliding = self._num_sliding(st)
        # activation_budget sees a stage only as (is_last, num_sliding): one entry serves every depth
        key = (dtype, plan.kv_dtype, plan.tensor_parallel, plan.attention, plan.prefill_chunk_tokens, plan.logits,
               plan.kv_policy, st.is_last, num_sliding, ctx_tokens, batch_size)  # a KV policy bounds what attention reads
        budget = self._act.get(key)
        if budget is None:
            if len(self._act) >= MAX_WORKLOAD_ENTRIES:
                self._act.clear()
            budget = self._act[key] = activation_budget(self.model, plan, ctx_tokens, batch_size, DTYPE_BYTES[dtype],
                                                        st.is_last, num_sliding, fp16=dtype == "fp16")
        return vision.peak(budget)

    def stage_total(self, plan: Plan, workload: Workload, stage: int, offload_bytes: int | None = None) -> StageTotal:
        """Exactly estimate()'s numbers for one stage; `offload_bytes` overrides the plan's."""
        self.num_evaluated += 1
        stage = self.depth(plan.pipeline_parallel).representative[stage]
        w = self.weights(plan, stage)
        asked = plan.offload_bytes if offload_bytes is None else offload_bytes
        offloaded = min(asked, w.largest_first_prefix[-1])  # only decoder layers go to CPU memory
        weights = w.total_bytes - offloaded + (w.max_layer_bytes if offloaded else 0)
        cross, vision = self._images(plan, workload.ctx_tokens, workload.batch_size, stage, workload.num_images, workload.image_tokens,
                                    workload.image_size)
        kv = self._kv_bytes(plan, workload.ctx_tokens, workload.batch_size, stage) + cross
        state = self._state_bytes(plan, workload.batch_size, stage)
        act = self._activation_bytes(plan, workload.ctx_tokens, workload.batch_size, stage, vision)
        overhead = overhead_budget(self.gpu, weights + kv + state + act, plan.num_gpus)
        load = self._load_total(plan, stage, weights)
        return StageTotal(weights, kv, act, overhead.total, offloaded, w.expert_bytes, state, load)

    def _images(self, plan: Plan, ctx_tokens: int, batch_size: int, stage: int, num_images: int,
                image_tokens: int | None, image_size: str | None = None) -> tuple[int, VisionActivations]:
        """(Mllama's cross-attention K/V, the tower's activations) of the images, as estimate() has them; (0, none) without."""
        if not num_images and image_tokens is None and image_size is None:
            return 0, self._text_only(plan, ctx_tokens, batch_size, self.stages(plan.pipeline_parallel)[stage].is_first)
        at = Workload.model_construct(ctx_tokens=ctx_tokens, batch_size=batch_size, engine="hf", num_images=num_images,
                                      image_tokens=image_tokens, image_size=image_size)
        images = image_load(self.model, at, check_context=False)
        st = self.stages(plan.pipeline_parallel)[stage]
        cross = cross_kv_bytes(self.model, plan, images.num_images if images and images.cross_attention else 0, batch_size, st)
        b = DTYPE_BYTES[dense_dtype(self.model, plan)]
        return cross, vision_activations(self.model, plan, images, batch_size, ctx_tokens, b) if st.is_first else NO_VISION

    def _text_only(self, plan: Plan, ctx_tokens: int, batch_size: int, is_first: bool) -> VisionActivations:
        """vision_activations without images, as estimate() has it (a Qwen VL's generate() inputs, first stage only)."""
        if not is_first:
            return NO_VISION
        return qwen_text_only(self.model.vision, batch_size, min(ctx_tokens, plan.prefill_chunk_tokens or ctx_tokens), ctx_tokens)

    def _load_total(self, plan: Plan, stage: int, weights: int) -> int:
        """The load-time peak of the stage (oomplan/memory/load_peak.py), 0 without one; workload-independent."""
        key = (plan.weights, plan.weight_group_size, plan.tensor_parallel, plan.pipeline_parallel, plan.expert_parallel, stage)
        if key not in self._load:
            self._load[key] = load_peak(self.model, plan, stage, self.gpu)
        peak = self._load[key]
        if peak is None:
            return 0
        return load_total_bytes(weights, peak.transient_bytes, self.gpu.overhead.cuda_context_bytes, allocator_fraction(self.gpu))

    def all_stages(self, plan: Plan, workload: Workload) -> tuple[StageTotal, ...]:
        """Every stage of the plan, each distinct shape budgeted once."""
        d = self.depth(plan.pipeline_parallel)
        done = {s: self.stage_total(plan, workload, s) for s in d.distinct}
        return tuple(done[r] for r in d.representative)

    def worst_total_bytes(self, plan: Plan, workload: Workload) -> int:
        """The busiest stage's total (or its load-time peak, when larger): whether the plan fits."""
        return self.worst_total_at(plan, workload.ctx_tokens, workload.batch_size)

    def worst_total_at(self, plan: Plan, ctx_tokens: int, batch_size: int) -> int:
        """worst_total_bytes from plain numbers (the --ctx/--batch max hot path)."""
        if plan.offload_bytes or self.num_images:
            workload = Workload.model_construct(ctx_tokens=ctx_tokens, batch_size=batch_size, engine="hf", num_images=self.num_images,
                                                image_tokens=self.image_tokens, image_size=self.image_size)
            return max(self.stage_total(plan, workload, s).peak_bytes for s in self.depth(plan.pipeline_parallel).distinct)
        worst = 0
        for stage in self.depth(plan.pipeline_parallel).distinct:
            self.num_evaluated += 1
            weights = self.weights(plan, stage).total_bytes
            tensors = (weights + self._kv_bytes(plan, ctx_tokens, batch_size, stage) + self._state_bytes(plan, batch_size, stage)
                       + self._activation_bytes(plan, ctx_tokens, batch_size, stage))
            worst = max(worst, tensors + overhead_budget(self.gpu, tensors, plan.num_gpus).total, self._load_total(plan, stage, weights))
        return worst
