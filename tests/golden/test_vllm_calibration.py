"""vLLM engine model vs measured vLLM 0.19.0 runs on H100 (tests/fixtures/engines/vllm-0.19-h100-calibration.yaml).

Done means: weights within 0.5% and KV pool tokens within 2% of the logged values on every run.
"""
from pathlib import Path

import pytest
import yaml

from oomplan.engines.vllm.settings import VllmGiven
from oomplan.engines.vllm.stages import busiest, predict_stages
from oomplan.engines.vllm.kv import kv_tokens, max_concurrency
from oomplan.engines.vllm.predict import predict_vllm
from oomplan.profiles import load_gpu, load_model
from oomplan.families import parse_hf_config

FIXTURE = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "engines" / "vllm-0.19-h100-calibration.yaml").read_text())
RUNS = FIXTURE["runs"]
GIB = 2**30


def _model(run):
    base = load_model(run["model"])  # the HF id is an alias of a shipped profile
    if not run.get("config_overrides"):
        return base
    return parse_hf_config(base.hf_config | run["config_overrides"], run["model"], run["source_url"])


def _predict(run):
    s = VllmGiven(engine_version="0.19", tensor_parallel=run["tensor_parallel"], pipeline_parallel=run["pipeline_parallel"], **FIXTURE["settings"])
    resolved, stages = predict_stages(_model(run), load_gpu("h100-sxm"), s)
    return resolved, stages, busiest(stages)


def test_h100_profile_is_the_logged_total_memory():
    assert round(load_gpu("h100-sxm").memory_bytes / GIB, 2) == FIXTURE["total_memory_gib"]


@pytest.mark.parametrize("run", RUNS, ids=[r["id"] for r in RUNS])
def test_weights_within_half_a_percent(run):
    _, stages, _ = _predict(run)
    predicted = stages[0].weights_bytes / GIB
    assert abs(predicted / run["measured"]["weights_gib"] - 1) < 0.005, predicted


@pytest.mark.parametrize("run", RUNS, ids=[r["id"] for r in RUNS])
def test_kv_tokens_within_two_percent(run):
    _, _, st = _predict(run)
    predicted = kv_tokens(st.layout, st.num_blocks)
    assert abs(predicted / run["measured"]["kv_tokens"] - 1) < 0.02, predicted


@pytest.mark.parametrize("run", RUNS, ids=[r["id"] for r in RUNS])
def test_max_concurrency_and_defaults(run):
    s, _, st = _predict(run)
    assert (s.max_num_seqs, s.max_num_batched_tokens) == (1024, 8192)  # vllm serve's defaults on H100
    conc = max_concurrency(st.layout, st.num_blocks, s.max_model_len, s.max_num_batched_tokens)
    assert abs(conc / run["measured"]["max_concurrency"] - 1) < 0.02


@pytest.mark.parametrize("run", [r for r in RUNS if "activation_peak_gib" in r["measured"]], ids=lambda r: r["id"])
def test_profile_parts(run):
    """Not the done criterion, but the parts should be close too: activation peak and non-torch memory."""
    _, _, st = _predict(run)
    assert abs(st.profile.activation_peak_bytes / GIB - run["measured"]["activation_peak_gib"]) < 0.04
    assert abs(st.non_torch_bytes / GIB - run["measured"]["non_torch_gib"]) < 0.02


def test_pipeline_stages_match_both_logged_totals():
    run = next(r for r in RUNS if r["pipeline_parallel"] == 2)
    _, stages, st = _predict(run)
    for stage in stages:
        logged = run["measured"][f"total_non_kv_gib_stage_{stage.stage}"]
        assert abs(stage.non_kv_bytes / GIB - logged) < 0.07
    assert st.stage == 1  # the last stage (lm_head + sampler) has the fewest blocks and decides the pool


def test_vet_path_reports_the_same_pool():
    run = RUNS[0]
    p = predict_vllm(_model(run), load_gpu("h100-sxm"), VllmGiven(**FIXTURE["settings"]))
    assert p.ok and abs(p.kv_cache_tokens / run["measured"]["kv_tokens"] - 1) < 0.02
    assert p.num_kv_blocks * 16 == p.kv_cache_tokens
