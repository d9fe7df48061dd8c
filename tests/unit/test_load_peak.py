"""The load-time peak (transformers from_pretrained): hand-computed transients, the budget row, the verdict
and the planner all respecting it."""
import json

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
