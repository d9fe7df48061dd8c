"""Memory per GPU against context length (or batch size): the curve and its cliff.

Each point is `estimate()` itself (per component, the busiest GPU); the cliff is found by
the exact inverse search (oomplan.planner.inverse), so it is the first context -- a whole
KV block past the longest one that fits -- or the first batch size that no longer fits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from oomplan.errors import InputError
from oomplan.memory.budget import estimate
from oomplan.planner.evaluate import Evaluator
from oomplan.planner.inverse import fits, max_batch_size, max_ctx_tokens
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload

Axis = Literal["ctx", "batch"]


@dataclass(frozen=True)
class CurvePoint:
    """One x (tokens per sequence, or sequences) and the busiest GPU's components there."""

    x: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    state_bytes: int = 0  # recurrent state (Mamba / Gated DeltaNet layers): flat in context, grows with batch

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.state_bytes + self.activation_bytes + self.overhead_bytes


@dataclass(frozen=True)
class Cliff:
    """last_fit: the largest x that fits (0: none does); first_oom: None when all of [.., to_x] fits."""

    last_fit: int
    first_oom: int | None


@dataclass(frozen=True)
class Curve:
    label: str
    plan: Plan
    points: tuple[CurvePoint, ...]
    cliff: Cliff
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class CurveSet:
    """One or more plans' curves over the same x values, for one model on one card."""

    model: ModelSpec
    gpu: GpuSpec
    axis: Axis
    fixed: int  # batch size for a ctx sweep, ctx tokens for a batch sweep
    from_x: int
    to_x: int
    capacity_bytes: int
    curves: tuple[Curve, ...]


def log_points(from_x: int, to_x: int, num_points: int) -> tuple[int, ...]:
    """num_points integers log-spaced from from_x to to_x (both included), without repeats."""
    if from_x < 1 or to_x < from_x:
        raise InputError(f"--from/--to: need 1 <= from <= to, got {from_x:,} and {to_x:,}")
    if num_points < 2:
        raise InputError(f"--points: need at least 2, got {num_points}")
    ratio = math.log(to_x / from_x) / (num_points - 1)
    xs = {round(from_x * math.exp(ratio * i)) for i in range(num_points)}
    return tuple(sorted(xs | {from_x, to_x}))


def _workload(axis: Axis, x: int, fixed: int, images: Workload | None = None) -> Workload:
    """The workload at x; `images`: a workload whose images (--images, --image-tokens) every point keeps."""
    ctx, batch = (x, fixed) if axis == "ctx" else (fixed, x)
    if images is None:
        return Workload(ctx_tokens=ctx, batch_size=batch)
    return Workload(ctx_tokens=ctx, batch_size=batch, num_images=images.num_images, image_tokens=images.image_tokens,
                    image_size=images.image_size)


def curve_point(model: ModelSpec, gpu: GpuSpec, plan: Plan, axis: Axis, x: int, fixed: int,
                images: Workload | None = None) -> tuple[CurvePoint, tuple[str, ...]]:
    est = estimate(model, gpu, _workload(axis, x, fixed, images), plan)
    g = est.per_gpu
    return CurvePoint(x, g.weights_bytes, g.kv_cache_bytes, g.activation_bytes, g.overhead_bytes, g.state_bytes), est.warnings


def find_cliff(ev: Evaluator, plan: Plan, axis: Axis, fixed: int, to_x: int) -> Cliff:
    """Exact: the largest x <= to_x that fits, and the next step (one KV block, or one sequence); the images are the evaluator's."""
    at = _workload(axis, to_x, fixed)
    if fits(ev, plan, at.model_copy(update={"num_images": ev.num_images, "image_tokens": ev.image_tokens,
                                             "image_size": ev.image_size})):
        return Cliff(to_x, None)
    if axis == "ctx":
        step = plan.block_size if plan.paged else 1
        last = max_ctx_tokens(ev, plan, fixed, to_x)
        return Cliff(last, last + step)
    last = max_batch_size(ev, plan, fixed, to_x)
    return Cliff(last, last + 1)


def plan_curve(model: ModelSpec, gpu: GpuSpec, plan: Plan, label: str, axis: Axis, fixed: int,
               xs: tuple[int, ...], with_cliff_point: bool = False, images: Workload | None = None) -> Curve:
    """The plan at every x (and, with_cliff_point, also at the first x that does not fit)."""
    ev = Evaluator(model, gpu, images.num_images, images.image_tokens, images.image_size) if images is not None else Evaluator(model, gpu)
    cliff = find_cliff(ev, plan, axis, fixed, xs[-1])
    if with_cliff_point and cliff.first_oom is not None and cliff.first_oom <= xs[-1]:
        xs = tuple(sorted(set(xs) | {cliff.first_oom}))
    results = [curve_point(model, gpu, plan, axis, x, fixed, images) for x in xs]
    warnings = results[-1][1]  # the largest x warns about everything a smaller one does
    return Curve(label, plan, tuple(point for point, _ in results), cliff, warnings)


def memory_curves(model: ModelSpec, gpu: GpuSpec, plans: tuple[tuple[str, Plan], ...], axis: Axis, fixed: int,
                  from_x: int, to_x: int, num_points: int, images: Workload | None = None) -> CurveSet:
    """Every (label, plan) at the same log-spaced x values, each with its exact cliff.

    A single plan also gets a point at its cliff, so the chart shows the first row that does not fit.
    """
    xs = log_points(from_x, to_x, num_points)
    single = len(plans) == 1
    curves = tuple(plan_curve(model, gpu, plan, label, axis, fixed, xs, single, images) for label, plan in plans)
    return CurveSet(model, gpu, axis, fixed, from_x, to_x, gpu.memory_bytes, curves)
