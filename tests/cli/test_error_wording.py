"""One mistake, one line: the library names the FIELD (oomplan/errors.py FieldError), the CLI words it as its flag
(oomplan/cli/common.py FIELD_FLAGS), a plan file as its key. `estimate` and `fit` print the same line and exit 2."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.cli.common import FIELD_FLAGS
from oomplan.errors import FieldError
from oomplan.specs.plan import Plan, Workload
from oomplan.specs.training import TrainingPlan

runner = CliRunner()
MODEL, GPU = "llama-3-8b", "h100"  # 32 attention heads, 32 layers (tests/fixtures profile llama-3-8b)
TP3 = "tensor_parallel (3) must divide num_attention_heads (32) of llama-3-8b"


def error_of(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stderr.strip()


@pytest.mark.parametrize("estimate_args, fit_args, line", [
    (["--weights", "int3"], ["--weights", "int3"],
     "error: --weights: 'int3' is not accepted; use one of auto, fp32, bf16, fp16, fp8, int8, awq, gptq, nf4, w4a16, "
     "fp8-channel, fp8-block, mxfp4, nvfp4, nvfp4-a16"),
    (["--kv-dtype", "fp4"], ["--kv-dtype", "fp4"],
     "error: --kv-dtype: 'fp4' is not accepted; use one of auto, fp32, bf16, fp16, fp8, int8, int4"),
    (["--attention", "flash"], ["--attention", "flash"], "error: --attention: 'flash' is not accepted; use one of sdpa, eager"),
    (["--train", "full", "--tp", "3"], ["--train", "full", "--tp", "3"], f"error: --tp: {TP3}"),
    (["--train", "full", "--pp", "33"], ["--train", "full", "--pp", "33"],
     "error: --pp: pipeline_parallel (33) exceeds num_layers (32) of llama-3-8b"),
])
def test_estimate_and_fit_word_a_mistake_the_same(estimate_args: list[str], fit_args: list[str], line: str) -> None:
    via_estimate = error_of("estimate", MODEL, "--gpu", GPU, *estimate_args)
    via_fit = error_of("fit", MODEL, "--gpu", GPU, *fit_args)
    assert via_estimate == via_fit == (2, line)


def test_inference_tp_names_the_flag() -> None:
    assert error_of("estimate", MODEL, "--gpu", GPU, "--tp", "3") == (2, f"error: --tp: {TP3}")


def _plan_file(tmp_path: Path, section: str, **changes: object) -> str:
    path = tmp_path / "p.yaml"
    args = ["fit", MODEL, "--gpu", GPU, "-o", str(path)] + (["--train", "lora"] if section == "training" else [])
    assert runner.invoke(app, args).exit_code == 0
    data = yaml.safe_load(path.read_text())
    data[section].update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_a_plan_file_names_its_key_not_a_flag(tmp_path: Path) -> None:
    path = _plan_file(tmp_path, "plan", tensor_parallel=3)
    assert error_of("check", path) == (2, f"error: {path}: plan.tensor_parallel: {TP3}")
    assert error_of("export", path, "--to", "vllm") == (2, f"error: {path}: plan.tensor_parallel: {TP3}")


def test_a_training_plan_file_names_its_key(tmp_path: Path) -> None:
    path = _plan_file(tmp_path, "training", pipeline_parallel=33)
    assert error_of("check", path) == (2, f"error: {path}: training.pipeline_parallel: pipeline_parallel (33) exceeds num_layers (32) of llama-3-8b")


def test_field_error_line() -> None:
    err = FieldError("tensor_parallel", TP3)
    assert str(err) == TP3  # the Python API: the field is already in the detail
    assert err.line({"tensor_parallel": "--tp"}) == f"--tp: {TP3}"
    assert err.in_file("p.yaml", "plan.").line({"tensor_parallel": "--tp"}) == f"p.yaml: plan.tensor_parallel: {TP3}"
    assert str(FieldError("weights", "'x' is not accepted")) == "weights: 'x' is not accepted"


def test_every_spec_field_a_flag_sets_is_a_real_field() -> None:
    from oomplan.engines.options import EngineOptions

    fields = set(Plan.model_fields) | set(Workload.model_fields) | set(TrainingPlan.model_fields)
    fields |= {f.name for f in dataclasses.fields(EngineOptions)}
    assert set(FIELD_FLAGS) <= fields, set(FIELD_FLAGS) - fields
