"""The meta probe's training step (forward, loss, backward, torch.optim step) against the analytic budget.

A tiny llama (2 layers, GQA) runs on the meta device; the second of two steps is measured. The analytic
model (oomplan.memory.training) must match its persistent bytes exactly and its peak within 2%.
"""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from oomplan.memory.training import train_stage_budget  # noqa: E402
from oomplan.probe.train_run import TrainSetup, run_train_probe, setup_from_plan  # noqa: E402
from oomplan.profiles import load_gpu  # noqa: E402
from oomplan.families import parse_hf_config  # noqa: E402
from oomplan.specs.training import TrainingPlan  # noqa: E402

from tests.conftest import tiny_llama  # noqa: E402

SEQ, BATCH = 256, 2


def _both(recompute: str, attention: str = "sdpa", mode: str = "full", precision: str = "mixed"):
    cfg = tiny_llama()
    setup = TrainSetup(seq_tokens=SEQ, micro_batch_size=BATCH, recompute=recompute, attention=attention, mode=mode, precision=precision)
    plan = TrainingPlan(seq_tokens=SEQ, micro_batch_size=BATCH, recompute=recompute, attention=attention, mode=mode, precision=precision)
    budget = train_stage_budget(parse_hf_config(cfg, "tiny", "test"), load_gpu("h100"), plan, 0)
    return run_train_probe(cfg, setup), budget


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_training_step_matches_the_analytic_budget(recompute):
    measured, budget = _both(recompute)
    assert measured.phases[-1].phase == "step" and measured.optimizer_bytes > 0  # a real torch.optim step ran
    assert measured.gradient_bytes == budget.gradient_bytes
    assert measured.optimizer_bytes == budget.optimizer_bytes
    assert measured.weights_bytes + measured.master_bytes - 32 == budget.weights_bytes  # 32 B: RoPE's inv_freq buffers
    predicted = budget.states.gpu_bytes + budget.activation_bytes
    assert predicted == pytest.approx(measured.peak_bytes, rel=0.02)


def test_lora_and_eager_selective():
    measured, budget = _both("selective", attention="eager", mode="lora")
    # r x (in + out) for q (64, 64), k and v (64, 16), o (64, 64), gate and up (64, 128), down (128, 64); 2 layers
    assert measured.num_trainable_params == 2 * 16 * (128 + 2 * 80 + 128 + 2 * 192 + 192)
    assert budget.states.gpu_bytes + budget.activation_bytes == pytest.approx(measured.peak_bytes, rel=0.02)


def test_recompute_lowers_the_measured_peak():
    none, _ = _both("none", attention="eager")
    full, _ = _both("full", attention="eager")
    assert full.activation_bytes < none.activation_bytes


def test_setup_from_a_training_plan():
    plan = TrainingPlan(seq_tokens=SEQ, micro_batch_size=BATCH, mode="lora", recompute="full", lora_targets=("q_proj", "v_proj"))
    assert setup_from_plan(plan) == TrainSetup(SEQ, BATCH, "full", "sdpa", "mixed", "adamw", "lora", 16, ("q_proj", "v_proj"))
    with pytest.raises(ValueError, match="ZeRO/FSDP sharding"):
        setup_from_plan(TrainingPlan(seq_tokens=SEQ, data_parallel=2, zero_stage=2))
