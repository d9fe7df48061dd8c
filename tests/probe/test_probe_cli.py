"""`oomplan probe`: predicted vs measured on the meta probe, verdicts, exit codes, the JSONL log."""
import json

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.memory.budget import estimate
from oomplan.probe.compare import ComponentCheck, ProbeReport
from oomplan.probe.shard import probe_plan, shard_config
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
runner = CliRunner()


def test_shard_config_splits_like_tensor_parallel():
    cfg = shard_config(load_model("llama-3-70b"), 8)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]) == (8, 1, 3584)
    assert cfg["vocab_size"] == 128256 // 8 and cfg["head_dim"] == 128
    assert "bos_token_id" not in cfg


def test_probe_plan_names_what_stays_analytic():
    probed, left = probe_plan(load_model("llama-3-8b"), Plan(weights="awq", kv_dtype="fp8", dms_ratio=4, offload_bytes=1))
    assert probed.weights == "auto" and probed.kv_dtype == "auto" and probed.dms_ratio == 1 and not probed.paged
    assert any("awq weights" in x for x in left) and any("fp8 KV" in x for x in left) and any("DMS 4x" in x for x in left)


def test_only_under_prediction_fails():
    def report(pred, meas):
        return ProbeReport("meta", "", (ComponentCheck("total", pred, meas),), 2.0, (), None, True)

    assert report(100, 101).within_tolerance  # 1% over prediction: within 2%
    assert not report(100, 103).within_tolerance  # under-predicted by 3%
    assert report(110, 100).within_tolerance  # over-prediction is safe
    oom = ProbeReport("cuda", "", (ComponentCheck("total", 1, 1),), 2.0, (), "prefill chunk 1", False)
    assert not oom.passed and oom.verdict() == "does not fit: OOM at prefill chunk 1"


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "plan.yaml"
    r = runner.invoke(app, ["fit", "qwen2.5-0.5b", "--gpu", "l4", "--ctx", "2k", "--batch", "2", "--no-dms", "-o", str(path)])
    assert r.exit_code == 0, r.output
    return path


def test_probe_cli_meta_passes_and_logs(plan_file, tmp_path):
    log = tmp_path / "log.jsonl"
    r = runner.invoke(app, ["probe", str(plan_file), "--device", "meta", "--log", str(log)])
    assert r.exit_code == 0, r.output
    assert "probe on meta: qwen2.5-0.5b" in r.stdout and "PASS: measured" in r.stdout
    runner.invoke(app, ["probe", str(plan_file), "--device", "meta", "--log", str(log)])
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 2 and records[0]["device"] == "meta" and records[0]["passed"] is True
    total = records[0]["components"][-1]
    assert abs(total["error_pct"]) < 2


def test_probe_json_matches_estimate(plan_file):
    data = json.loads(runner.invoke(app, ["probe", str(plan_file), "--device", "meta", "--no-log", "--json"]).stdout)
    est = estimate(load_model("qwen2.5-0.5b"), load_gpu("l4"), Workload(**data["workload"]), Plan(**data["plan"]).model_copy(update={"paged": False}))
    s = est.per_gpu
    assert data["components"][0]["predicted_bytes"] == s.weights_bytes


def test_probe_exit_3_when_cuda_is_missing(plan_file):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = runner.invoke(app, ["probe", str(plan_file), "--device", "cuda", "--no-log"])
    assert r.exit_code == 3 and "torch sees no CUDA GPU" in r.stderr


def test_probe_bad_tolerance_is_exit_2(plan_file):
    r = runner.invoke(app, ["probe", str(plan_file), "--device", "meta", "--no-log", "--tolerance", "lots"])
    assert r.exit_code == 2 and "--tolerance" in r.stderr


@pytest.mark.cuda
def test_cuda_probe_small_plan(plan_file):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    r = runner.invoke(app, ["probe", str(plan_file), "--device", "cuda", "--no-log", "--json", "--tolerance", "5%"])
    data = json.loads(r.stdout)
    assert data["device"] != "meta" and data["oom_at"] is None
    allocated = data["components"][-1]
    assert abs(allocated["error_pct"]) < 5
    assert torch.cuda.memory_allocated() < 64 * 2**20  # released afterwards
