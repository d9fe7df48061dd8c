"""Re-estimate a plan file, optionally on another card or with another ctx/batch (`check`, `export`)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from oomplan.engines.options import EngineOptions
from oomplan.memory.budget import Estimate, estimate
from oomplan.errors import InputError
from oomplan.planner.verdict import Verdict, check_verdict
from oomplan.planfile import load_plan_file, named_by_key
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.convert import build
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.plan import Plan, Workload


@dataclass(frozen=True)
class Recheck:
    estimate: Estimate
    warnings: tuple[str, ...]
    predicted_total_bytes: int  # what the file recorded
    box: tuple[GpuSpec, ...] = ()  # gpu.ref names a box of different cards (rtx-5090+rtx-4090): every card, GPU 0 first

    def fits_with_margin(self, margin: float) -> bool:
        """Fits (steady state and the load-time peak) and leaves `margin` of the card free."""
        est = self.estimate
        peak = est.load_peak_stage
        need = max(est.per_gpu.total_bytes, peak.load_total_bytes if peak is not None else 0)
        return need <= est.capacity_bytes * (1.0 - margin)

    def verdict(self, margin: float) -> Verdict:
        """PASS / FAIL with the margin: what `check` prints and exits on."""
        est = self.estimate
        return check_verdict(self.fits_with_margin(margin), est.per_gpu.total_bytes, est.capacity_bytes, est.gpu.name, margin)


def refuse_kv_policy_for_engine(path: str, plan: Plan, engine: str) -> None:
    """A plan's kv_policy is checked against an engine's own KV pool only where the engine realises it."""
    if plan.kv_policy is not None:
        from oomplan.engines.kv_policy_support import refuse_unrealised

        refuse_unrealised(plan.kv_policy.spec, plan.kv_policy.kind, engine, f"{path}: plan.kv_policy")


def recheck(path: str, gpu: str | None = None, ctx_tokens: int | None = None, batch_size: int | None = None) -> Recheck:
    pf = load_plan_file(path)
    if pf.training is not None:
        raise InputError(f"{path}: a training plan (fit --train): check it with `oomplan check`; it has no inference estimate or serving command")
    folder = Path(path).parent  # relative refs are the plan file's, not the current folder's
    model = load_model(pf.model.ref, flag=f"{path}: model.ref", base=folder, revision=pf.model.revision)
    ref, flag = (gpu, "--gpu") if gpu else (pf.gpu.ref, f"{path}: gpu.ref")
    box = tuple(load_gpu(part.strip(), flag=flag, base=folder) for part in ref.split("+")) if "+" in ref else ()
    card = box[0] if box else load_gpu(ref, flag=flag, base=folder)
    workload = build(Workload, dict(
        ctx_tokens=pf.workload.ctx_tokens if ctx_tokens is None else ctx_tokens,
        batch_size=pf.workload.batch_size if batch_size is None else batch_size,
        engine=pf.workload.engine, num_images=pf.workload.num_images, image_tokens=pf.workload.image_tokens,
        image_size=pf.workload.image_size,
    ), flags={"ctx_tokens": "--ctx", "batch_size": "--batch"})
    warnings = []
    if model.config_sha256 != pf.model.config_sha256:
        warnings.append(f"{path}: the config of {pf.model.ref!r} changed since the plan was written (config_sha256 differs)")
    overridden = [f for f, v in (("ctx_tokens", ctx_tokens), ("batch_size", batch_size)) if v is not None]
    with named_by_key(path, {"plan": Plan.model_fields, "workload": Workload.model_fields}, overridden):
        est = estimate(model, card, workload, pf.plan)
    unchanged = gpu is None and ctx_tokens is None and batch_size is None
    if unchanged and est.per_gpu.total_bytes != pf.predicted.total_bytes:
        warnings.append(
            f"{path}: prediction changed since the plan was written ({pf.predicted.total_bytes} -> {est.per_gpu.total_bytes} bytes per GPU; "
            f"written by oomplan {pf.oomplan_version})"
        )
    return Recheck(est, tuple(warnings) + est.warnings, pf.predicted.total_bytes, box)


def box_options(path: str, result: Recheck, engine: str, opts: EngineOptions) -> EngineOptions:
    """The engine options with the plan's box of cards (gpu.ref a+b); a box is refused where it cannot be priced."""
    if not result.box:
        return opts
    names = "+".join(g.name for g in result.box)
    if engine == "hf":
        raise InputError(f"{path}: gpu.ref {names} is a box of different cards; the transformers estimate prices one card kind: "
                         "check it with --engine llamacpp")
    from oomplan.engines.registry import get_engine

    get_engine(engine).with_devices(None, result.box)  # an InputError where the engine has no box
    return replace(opts, devices=result.box)
