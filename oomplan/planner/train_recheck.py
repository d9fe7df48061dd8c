"""Re-estimate a training plan file (`check`), optionally on another card, sequence length or micro-batch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oomplan.memory.train_estimate import TrainEstimate, estimate_training
from oomplan.planfile import load_plan_file, named_by_key
from oomplan.planner.verdict import Verdict, check_verdict
from oomplan.planner.train_speed import TrainSpeed, train_speed
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.convert import build
from oomplan.specs.training import TrainingPlan


@dataclass(frozen=True)
class TrainRecheck:
    estimate: TrainEstimate
    speed: TrainSpeed
    warnings: tuple[str, ...]
    predicted_total_bytes: int  # what the file recorded

    def fits_with_margin(self, margin: float) -> bool:
        """Fits (GPU and host memory) and leaves `margin` of the card free."""
        est = self.estimate
        return est.host_fits and est.per_gpu.total_bytes <= est.capacity_bytes * (1.0 - margin)

    def verdict(self, margin: float) -> Verdict:
        """PASS / FAIL with the margin: what `check` prints and exits on."""
        est = self.estimate
        return check_verdict(self.fits_with_margin(margin), est.per_gpu.total_bytes, est.capacity_bytes, est.gpu.name, margin)


def is_training_plan(path: str) -> bool:
    return load_plan_file(path).training is not None


def train_recheck(path: str, gpu: str | None = None, seq_tokens: int | None = None, micro_batch_size: int | None = None,
                  host_memory_bytes: int | None = None) -> TrainRecheck:
    pf = load_plan_file(path)
    assert pf.training is not None
    folder = Path(path).parent  # relative refs are the plan file's, not the current folder's
    model = load_model(pf.model.ref, flag=f"{path}: model.ref", base=folder, revision=pf.model.revision)
    card = load_gpu(gpu, flag="--gpu") if gpu else load_gpu(pf.gpu.ref, flag=f"{path}: gpu.ref", base=folder)
    changes = {k: v for k, v in (("seq_tokens", seq_tokens), ("micro_batch_size", micro_batch_size)) if v is not None}
    plan = build(TrainingPlan, pf.training.model_dump() | changes, flags={"seq_tokens": "--ctx", "micro_batch_size": "--batch"})
    warnings = []
    if model.config_sha256 != pf.model.config_sha256:
        warnings.append(f"{path}: the config of {pf.model.ref!r} changed since the plan was written (config_sha256 differs)")
    with named_by_key(path, {"training": TrainingPlan.model_fields}, changes):
        est = estimate_training(model, card, plan, host_memory_bytes)
    if gpu is None and not changes and est.per_gpu.total_bytes != pf.predicted.total_bytes:
        warnings.append(
            f"{path}: prediction changed since the plan was written ({pf.predicted.total_bytes} -> {est.per_gpu.total_bytes} bytes per GPU; "
            f"written by oomplan {pf.oomplan_version})"
        )
    return TrainRecheck(est, train_speed(model, card, plan), tuple(warnings) + est.warnings, pf.predicted.total_bytes)
