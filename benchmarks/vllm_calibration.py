"""Fit the vLLM engine model's calibrated constants to the measured vLLM 0.19 H100 runs, and print the
calibration table (measured vs predicted). Usage: python benchmarks/vllm_calibration.py [--fit] [--loo]

Only what vLLM's mechanics do not give is fitted (data/engines/vllm.yaml, fields marked CALIBRATED):
profile_extra_bytes (mean residual of the activation peak), non_torch_bytes (mean of the TP=1 runs),
allreduce_bytes + allreduce_bytes_per_peer (least squares over TP 2/4), cuda_graph_bytes (mean).
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oomplan.engines.vllm.settings import VllmGiven  # noqa: E402
from oomplan.engines.vllm.stages import busiest, predict_stages  # noqa: E402
from oomplan.engines.vllm.constants import VllmConstants, vllm_constants  # noqa: E402
from oomplan.engines.vllm.kv import kv_tokens, max_concurrency  # noqa: E402
from oomplan.profiles import load_gpu, load_model  # noqa: E402
from oomplan.families import parse_hf_config  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "engines" / "vllm-0.19-h100-calibration.yaml"
GIB = 2**30


def calibration_model(run: dict):
    """The shipped profile for the run's HF id, with the run's config overrides (e.g. Qwen Instruct's max positions)."""
    base = load_model(run["model"])
    if not run.get("config_overrides"):
        return base
    return parse_hf_config(base.hf_config | run["config_overrides"], run["model"], run["source_url"])


def predict_run(run: dict, settings: dict, constants: VllmConstants | None = None):
    s = VllmGiven(engine_version="0.19", tensor_parallel=run["tensor_parallel"], pipeline_parallel=run["pipeline_parallel"], **settings)
    resolved, stages = predict_stages(calibration_model(run), load_gpu("h100-sxm"), s, constants)
    st = busiest(stages)
    blocks = st.num_blocks
    return {
        "stages": stages, "busiest": st, "weights_gib": stages[0].weights_bytes / GIB,
        "kv_tokens": kv_tokens(st.layout, blocks),
        "max_concurrency": max_concurrency(st.layout, blocks, resolved.max_model_len, resolved.max_num_batched_tokens),
    }


def fit(runs: list[dict], settings: dict) -> dict[str, int]:
    """The calibrated constants from the measured runs (the mechanistic parts come from the model itself)."""
    residuals, tp1, tp_many, graphs = [], [], [], []
    for run in runs:
        m, prof = run["measured"], predict_run(run, settings)["busiest"].profile
        if "activation_peak_gib" in m:
            residuals.append(m["activation_peak_gib"] - max(prof.forward_bytes, prof.sampler_bytes) / GIB)
        if "non_torch_gib" in m:
            (tp1 if run["tensor_parallel"] == 1 else tp_many).append((run["tensor_parallel"], m["non_torch_gib"]))
        graphs.append(m["cuda_graph_gib"])
    base = sum(v for _, v in tp1) / len(tp1)
    xs, ys = [tp - 1 for tp, _ in tp_many], [v - base for _, v in tp_many]
    xm, ym = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - xm) ** 2 for x in xs)
    slope = sum((x - xm) * (y - ym) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0  # one TP degree: a constant
    return {"profile_extra_bytes": round(sum(residuals) / len(residuals) * GIB), "non_torch_bytes": round(base * GIB),
            "allreduce_bytes": round((ym - slope * xm) * GIB), "allreduce_bytes_per_peer": round(slope * GIB),
            "cuda_graph_bytes": round(sum(graphs) / len(graphs) * GIB)}


def table(runs: list[dict], settings: dict) -> str:
    rows = ["| run | weights GiB measured | predicted | error | KV tokens measured | predicted | error |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        m, p = run["measured"], predict_run(run, settings)
        w_err = (p["weights_gib"] / m["weights_gib"] - 1) * 100
        t_err = (p["kv_tokens"] / m["kv_tokens"] - 1) * 100
        rows.append(f"| {run['id']} | {m['weights_gib']:.2f} | {p['weights_gib']:.4f} | {w_err:+.2f}% | "
                    f"{m['kv_tokens']:,} | {p['kv_tokens']:,} | {t_err:+.3f}% |")
    return "\n".join(rows)


def leave_one_out(runs: list[dict], settings: dict) -> str:
    """Refit without each run, then predict it: how the constants generalise beyond the runs they came from."""
    base, lines = vllm_constants("0.19"), []
    for i, run in enumerate(runs):
        fitted = base.model_copy(update=fit(runs[:i] + runs[i + 1:], settings))
        tokens = predict_run(run, settings, fitted)["kv_tokens"]
        err = (tokens / run["measured"]["kv_tokens"] - 1) * 100
        lines.append(f"| {run['id']} | {run['measured']['kv_tokens']:,} | {tokens:,} | {err:+.3f}% |")
    return "\n".join(["| run (left out) | KV tokens measured | predicted | error |", "|---|---:|---:|---:|", *lines])


def main() -> None:
    data = yaml.safe_load(FIXTURE.read_text())
    settings = {k: v for k, v in data["settings"].items()}
    if "--fit" in sys.argv:
        for key, value in fit(data["runs"], settings).items():
            print(f"{key}: {value}  # {value / GIB:.4f} GiB")
    print(table(data["runs"], settings))
    if "--loo" in sys.argv:
        print(leave_one_out(data["runs"], settings))


if __name__ == "__main__":
    main()
