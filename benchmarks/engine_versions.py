"""vLLM calibration and the error table by engine version, against the committed start-up logs
(tests/fixtures/engines/vllm-<X.Y>-calibration.yaml, X.Y the oomplan range; each run names its real release),
each predicted under its own range's accounting.

  python benchmarks/engine_versions.py > benchmarks/results/engine_versions.md   # the table by version
  python benchmarks/engine_versions.py --fit      # refit the calibrated constants on the 0.19 runs
  python benchmarks/engine_versions.py --loo      # leave-one-out: refit without each 0.19 run, predict it

Only what vLLM's mechanics do not give is fitted (oomplan/data/engines/vllm/0.19.yaml, fields marked CALIBRATED):
profile_extra_bytes (mean residual of the activation peak), non_torch_bytes (mean of the TP=1 runs),
allreduce_bytes + allreduce_bytes_per_peer (least squares over TP 2/4), cuda_graph_bytes (mean). Every later
range reuses them; its logs check them (docs/engines.md, "Calibration by release").
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oomplan.engines.vllm.constants import VllmConstants, vllm_constants, vllm_versions  # noqa: E402
from oomplan.engines.vllm.kv import kv_tokens  # noqa: E402
from oomplan.engines.vllm.settings import VllmGiven  # noqa: E402
from oomplan.engines.vllm.stages import busiest, predict_stages  # noqa: E402
from oomplan.families import parse_hf_config  # noqa: E402
from oomplan.profiles import load_gpu, load_model  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "engines"
CALIBRATED = "0.19"  # the range whose runs the constants are fitted on
GIB = 2**30


def calibration_model(run: dict[str, Any]):
    """The shipped profile for the run's HF id, with the run's config overrides (e.g. Qwen Instruct's max positions)."""
    base = load_model(run["model"])
    if not run.get("config_overrides"):
        return base
    return parse_hf_config(base.hf_config | run["config_overrides"], run["model"], run["source_url"])


def calibration_gpu(run: dict[str, Any], data: dict[str, Any]):
    """The run's card profile; with the total memory the log prints where the file gives one (logged_total_memory_gib)."""
    gpu = load_gpu(run.get("gpu", data.get("gpu", "h100-sxm")))
    logged = run.get("logged_total_memory_gib", data.get("logged_total_memory_gib"))
    return gpu if logged is None else gpu.model_copy(update={"memory_bytes": round(logged * GIB)})


def predict_run(run: dict[str, Any], data: dict[str, Any], version: str, constants: VllmConstants | None = None):
    """(weights GiB of the first stage, KV-pool tokens of the busiest stage, the busiest stage)."""
    s = VllmGiven(tensor_parallel=run["tensor_parallel"], pipeline_parallel=run["pipeline_parallel"],
                  engine_version=version, **(data.get("settings", {}) | run.get("flags", {})))
    _, stages = predict_stages(calibration_model(run), calibration_gpu(run, data), s, constants)
    st = busiest(stages)
    return stages[0].weights_bytes / GIB, kv_tokens(st.layout, st.num_blocks), st


def logs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(FIXTURES.glob("vllm-*-calibration.yaml")):
        version = re.match(r"vllm-(\d+\.\d+)-", path.name).group(1)  # type: ignore[union-attr]
        out.append((version, yaml.safe_load(path.read_text())))
    return out


def _mean(xs: list[float]) -> str:
    return f"{sum(xs) / len(xs):.2f}%" if xs else "-"


def table() -> str:
    rows = ["| range | release | run | card | weights GiB logged | predicted | error | KV tokens logged | predicted | error | status |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    summary, covered = [], set()
    for version, data in logs():
        w_errs, t_errs, t_modelled = [], [], []
        for run in data["runs"]:
            m, status = run["measured"], run.get("status", "modelled")
            weights, tokens, _ = predict_run(run, data, version)
            w_cell = t_cell = ["-", f"{weights:.3f}", "-"]
            if "weights_gib" in m:
                w = (weights / m["weights_gib"] - 1) * 100
                w_errs.append(abs(w))
                w_cell = [f"{m['weights_gib']:.2f}", f"{weights:.3f}", f"{w:+.2f}%"]
            t_cell = ["-", f"{tokens:,}", "-"]
            if "kv_tokens" in m:
                t = (tokens / m["kv_tokens"] - 1) * 100
                t_errs.append(abs(t))
                if status == "modelled":
                    t_modelled.append(abs(t))
                t_cell = [f"{m['kv_tokens']:,}", f"{tokens:,}", f"{t:+.2f}%"]
            rows.append(f"| {version} | {run.get('engine_release', data.get('engine_release', version + '.0'))} | {run['id']} | "
                        f"{run.get('gpu', data.get('gpu', 'h100-sxm'))} | " + " | ".join(w_cell + t_cell) + f" | {status} |")
        covered.add(version)
        summary.append(f"| {version} | {len(data['runs'])} | {_mean(w_errs)} ({len(w_errs)}) | {_mean(t_errs)} ({len(t_errs)}) | "
                       f"{_mean(t_modelled)} ({len(t_modelled)}) |")
    missing = [r for r in vllm_versions().ranges if r not in covered]
    return "\n".join([*rows, "", "| range | runs | mean abs weights error (runs) | mean abs KV tokens error, all (runs) | "
                      "KV, status modelled (runs) |", "|---|---:|---:|---:|---:|", *summary, "",
                      "Status: modelled = the golden test holds the run to 2%; gap = a stated model gap (the fixture says "
                      "which; tests/golden/test_vllm_release_logs.py keeps it a strict xfail); refused = the engine did not "
                      f"start and oomplan says so. No committed start-up logs yet for vLLM {', '.join(missing)}; SGLang 0.5.23: "
                      "none. Searches and what was found unusable: docs/engines.md (Calibration by release)."])


def fit(runs: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, int]:
    """The calibrated constants from the measured runs (the mechanistic parts come from the model itself)."""
    residuals, tp1, tp_many, graphs = [], [], [], []
    for run in runs:
        m, prof = run["measured"], predict_run(run, data, CALIBRATED)[2].profile
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


def leave_one_out(data: dict[str, Any]) -> str:
    """Refit without each run, then predict it: how the constants generalise beyond the runs they came from."""
    runs, base, lines = data["runs"], vllm_constants(CALIBRATED), []
    for i, run in enumerate(runs):
        fitted = base.model_copy(update=fit(runs[:i] + runs[i + 1:], data))
        tokens = predict_run(run, data, CALIBRATED, fitted)[1]
        err = (tokens / run["measured"]["kv_tokens"] - 1) * 100
        lines.append(f"| {run['id']} | {run['measured']['kv_tokens']:,} | {tokens:,} | {err:+.3f}% |")
    return "\n".join(["| run (left out) | KV tokens measured | predicted | error |", "|---|---:|---:|---:|", *lines])


def main() -> None:
    calibrated = next(data for version, data in logs() if version == CALIBRATED)
    if "--fit" in sys.argv:
        for key, value in fit(calibrated["runs"], calibrated).items():
            print(f"{key}: {value}  # {value / GIB:.4f} GiB")
        return
    if "--loo" in sys.argv:
        print(leave_one_out(calibrated))
        return
    print(table())


if __name__ == "__main__":
    main()
