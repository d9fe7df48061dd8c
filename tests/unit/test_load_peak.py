"""The load-time peak (transformers from_pretrained): hand-computed transients, the budget row, the verdict
and the planner all respecting it."""
import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from checkpoint_fixtures import write_checkpoint
from conftest import tiny_llama
from oomplan.cli.app import app
from oomplan.families import parse_hf_config
from oomplan.memory.budget import estimate
from oomplan.memory.load_peak import load_peak
from oomplan.planner.space import SearchLimits
from oomplan.planner.search import search
from oomplan.profiles import load_gpu, load_model, raw_gpu
from oomplan.specs.plan import Plan, Workload

runner = CliRunner()
MIB = 2**20


def _moe_cfg(**dims):
    return tiny_llama(model_type="mixtral", architectures=["MixtralForCausalLM"], **({"num_local_experts": 4, "num_experts_per_tok": 2} | dims))


def _tiny_moe():
    return parse_hf_config(_moe_cfg(), "tiny-moe", "test")


def _wide_moe():  # experts large enough (8 x 3 x 1024 x 4096 x 2 B = 192 MiB a layer) to outgrow cuBLAS + KV + activations
    return parse_hf_config(_moe_cfg(hidden_size=1024, intermediate_size=4096, num_local_experts=8), "wide-moe", "test")


def test_moe_experts_stored_per_expert_are_fused_twice():
    m = _tiny_moe()
    peak = load_peak(m, Plan(), 0)
    # one layer's routed experts: 4 experts x (gate + up + down) x 64 x 128 x 2 B (bf16)
    assert peak.transient_bytes == 4 * 3 * 64 * 128 * 2
    assert "fused per layer" in peak.reason
    # TP 2 halves each expert's matrices
    assert load_peak(m, Plan(tensor_parallel=2), 0).transient_bytes == 4 * 3 * 64 * 128 * 2 // 2


def test_quantise_on_load_holds_the_largest_weight_in_bf16(tiny_llama_spec):
    peak = load_peak(tiny_llama_spec, Plan(weights="nf4"), 0)
    assert peak.transient_bytes == 128 * 64 * 2  # gate/up/down: 128 x 64 bf16, the largest matrices
    assert load_peak(tiny_llama_spec, Plan(), 0) is None  # bf16 served as stored: no transient
    assert load_peak(tiny_llama_spec, Plan(weights="awq"), 0) is None  # AWQ is never quantised on load


def test_fp32_checkpoint_cast_on_the_cpu_adds_no_gpu_transient(tmp_path):
    write_checkpoint(tmp_path / "m", dtype=torch.float32)
    assert load_peak(load_model(str(tmp_path / "m")), Plan(), 0) is None


def _apple_card(tmp_path, memory_bytes):
    """The shipped Apple M4 profile with another working-set limit (as `sysctl iogpu.wired_limit_mb` sets it)."""
    import yaml

    data = yaml.safe_load(open(Path(__file__).parents[2] / "hardware_profiles" / "apple-m4-32g.yaml"))
    data.update(name="apple-m4-test", aliases=[], memory_bytes=memory_bytes)
    path = tmp_path / "apple-m4-test.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# The fp32 checkpoint of checkpoint_fixtures planned as bf16: the 4 largest tensors read onto the Apple GPU in fp32
# are embed_tokens and lm_head (1000 x 64 x 4 B each) and two of gate/up/down (128 x 64 x 4 B each).
FP32_CAST_TRANSIENT = 2 * 1000 * 64 * 4 + 2 * 128 * 64 * 4


def test_fp32_checkpoint_cast_on_an_apple_gpu_holds_the_stored_tensors(tmp_path):
    write_checkpoint(tmp_path / "m", dtype=torch.float32)
    m = load_model(str(tmp_path / "m"))
    apple = load_gpu("apple-m4-32g")
    peak = load_peak(m, Plan(weights="bf16"), 0, apple)
    assert peak.transient_bytes == FP32_CAST_TRANSIENT == 577_536
    assert "F32" in peak.reason and "bf16" in peak.reason
    assert load_peak(m, Plan(weights="fp32"), 0, apple) is None  # held as stored: nothing cast
    assert load_peak(m, Plan(weights="bf16"), 0, load_gpu("h100")) is None  # CUDA: cast on the CPU before the copy
    s = estimate(m, apple, Workload(ctx_tokens=16), Plan(weights="bf16")).stages[0]
    assert s.load_total_bytes == (s.weights_bytes + FP32_CAST_TRANSIENT + 512 * MIB
                                  + int((s.weights_bytes + FP32_CAST_TRANSIENT) * 0.02))
    assert s.load_exceeds_steady


def test_fp32_checkpoint_planned_bf16_fits_steady_but_not_while_loading(tmp_path):
    """Issue 17's done-means: steady state fits, the load peak does not; the row is shown and the verdict is 1."""
    write_checkpoint(tmp_path / "m", dtype=torch.float32)
    m = load_model(str(tmp_path / "m"))
    s = estimate(m, load_gpu("apple-m4-32g"), Workload(ctx_tokens=16), Plan(weights="bf16")).stages[0]
    card = _apple_card(tmp_path, (s.total_bytes + s.load_total_bytes) // 2)
    args = ["estimate", str(tmp_path / "m"), "--gpu", str(card), "--weights", "bf16", "--ctx", "16"]
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "load peak" in r.stdout and "does not fit while loading" in r.stdout
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["fits"] is False and data["per_gpu"]["load_peak"]["total_bytes"] == s.load_total_bytes
    assert data["per_gpu"]["load_peak"]["transient_bytes"] == FP32_CAST_TRANSIENT
    # held as stored (fp32) nothing is cast: no load-peak row
    r = runner.invoke(app, ["estimate", str(tmp_path / "m"), "--gpu", str(_apple_card(tmp_path, 2**40)), "--weights", "fp32",
                            "--ctx", "16", "--json"])
    assert json.loads(r.stdout)["per_gpu"]["load_peak"] is None


def test_verdict_and_row_when_only_the_load_peak_does_not_fit():
    m = _wide_moe()
    w = Workload(ctx_tokens=16)
    steady = estimate(m, load_gpu("h100"), w, Plan())
    s = steady.stages[0]
    assert s.load_exceeds_steady and s.load_total_bytes > s.total_bytes
    assert s.load_total_bytes == s.weights_bytes + s.load.transient_bytes + s.overhead.cuda_context_bytes + int(
        (s.weights_bytes + s.load.transient_bytes) * 0.02)
    # a card between the steady total and the load peak
    card = raw_gpu(1, (s.total_bytes + s.load_total_bytes) // 2)
    est = estimate(m, card, w, Plan())
    assert est.headroom_bytes >= 0 and not est.fits
    limits = SearchLimits(max_gpus=1)
    result = search(m, card, w, limits)
    assert all(c.plan.weights != "bf16" or c.plan.offload_bytes for c in result.plans)  # bf16 as is: not offered


def test_cli_shows_the_load_peak_row(tmp_path):
    m = _wide_moe()
    s = estimate(m, load_gpu("h100"), Workload(ctx_tokens=16), Plan()).stages[0]
    cfg = tmp_path / "moe.json"
    cfg.write_text(json.dumps(_moe_cfg(hidden_size=1024, intermediate_size=4096, num_local_experts=8)))
    size = f"{(s.total_bytes + s.load_total_bytes) // 2}B"
    r = runner.invoke(app, ["estimate", str(cfg), "--gpu", size, "--ctx", "16"])
    assert r.exit_code == 1, r.output
    assert "load peak" in r.stdout and "does not fit while loading" in r.stdout
    r = runner.invoke(app, ["estimate", str(cfg), "--gpu", size, "--ctx", "16", "--json"])
    data = json.loads(r.stdout)
    assert data["fits"] is False and data["per_gpu"]["load_peak"]["exceeds_steady"] is True
    assert data["per_gpu"]["load_peak"]["total_bytes"] == s.load_total_bytes
