"""A plan written and read back estimates identically; fit never returns a plan check rejects."""
import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.memory.budget import estimate
from oomplan.planfile import load_plan_file
from oomplan.planner.search import search
from oomplan.planner.space import SearchLimits
from oomplan.profiles import load_gpu, load_model
from oomplan.planner.plan_files import inference_plan_file
from oomplan.report.plan_yaml import plan_yaml
from oomplan.specs.plan import Plan, Workload

runner = CliRunner()
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.sampled_from(["llama-3-8b", "gemma-2-9b", "mixtral-8x7b", "deepseek-v2-lite"]),
       st.sampled_from(["auto", "fp8", "awq", "nf4"]), st.sampled_from(["auto", "fp8", "int4"]),
       st.sampled_from([1, 2, 4]), st.integers(1, 32768), st.integers(1, 8), st.booleans())
def test_plan_written_and_read_back_estimates_identically(tmp_path_factory, name, weights, kv, tp, ctx, batch, paged):
    model, gpu = load_model(name), load_gpu("h100")
    plan, work = Plan(weights=weights, kv_dtype=kv, tensor_parallel=tp, paged=paged), Workload(ctx_tokens=ctx, batch_size=batch)
    before = estimate(model, gpu, work, plan)
    s = before.per_gpu
    path = tmp_path_factory.mktemp("plans") / "plan.yaml"
    path.write_text(plan_yaml(inference_plan_file(name, "h100", before, "x", 1.0), path))
    back = load_plan_file(path)
    after = estimate(load_model(back.model.ref), load_gpu(back.gpu.ref), back.workload, back.plan)
    assert after.per_gpu == before.per_gpu
    assert yaml.safe_load(path.read_text())["predicted"]["total_bytes"] == s.total_bytes


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["llama-3-8b", "qwen2.5-14b", "mixtral-8x7b", "gemma-2-27b"]),
       st.sampled_from(["a100-40g", "l4", "h100", "rtx-4090"]), st.sampled_from([2048, 8192, 32768]), st.integers(1, 8))
def test_fit_never_returns_a_plan_that_check_rejects(name, gpu, ctx, batch):
    model, card = load_model(name), load_gpu(gpu)
    result = search(model, card, Workload(ctx_tokens=ctx, batch_size=batch), SearchLimits(max_gpus=card.num_gpus_per_node))
    for c in result.plans[:10]:
        assert estimate(model, card, c.workload, c.plan).fits


def test_fit_plan_file_passes_check(tmp_path):
    path = tmp_path / "p.yaml"
    assert runner.invoke(app, ["fit", "qwen2.5-7b", "--gpu", "l4", "--ctx", "4k", "--pick", "3", "-o", str(path)]).exit_code == 0
    r = runner.invoke(app, ["check", str(path), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["check"]["pass"] is True
