"""Error table by engine version: each committed start-up log set (tests/fixtures/engines/<engine>-<X.Y>-*-calibration.yaml)
predicted under its own version's accounting. Run: python benchmarks/engine_versions.py > benchmarks/results/engine_versions.md
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oomplan.engines.vllm.constants import vllm_versions  # noqa: E402
from oomplan.engines.vllm.kv import kv_tokens  # noqa: E402
from oomplan.engines.vllm.settings import VllmGiven  # noqa: E402
from oomplan.engines.vllm.stages import busiest, predict_stages  # noqa: E402
from oomplan.profiles import load_gpu, load_model  # noqa: E402
from oomplan.families import parse_hf_config  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "engines"
GIB = 2**30


def _model(run: dict):
    base = load_model(run["model"])
    if not run.get("config_overrides"):
        return base
    return parse_hf_config(base.hf_config | run["config_overrides"], run["model"], run["source_url"])


def version_rows(path: Path, version: str) -> tuple[list[str], float, float]:
    data = yaml.safe_load(path.read_text())
    rows, w_errs, t_errs = [], [], []
    for run in data["runs"]:
        s = VllmGiven(tensor_parallel=run["tensor_parallel"], pipeline_parallel=run["pipeline_parallel"],
                      engine_version=version, **data["settings"])
        _, stages = predict_stages(_model(run), load_gpu(data.get("gpu", "h100-sxm")), s)
        st, m = busiest(stages), run["measured"]
        w = (stages[0].weights_bytes / GIB / m["weights_gib"] - 1) * 100
        t = (kv_tokens(st.layout, st.num_blocks) / m["kv_tokens"] - 1) * 100
        w_errs.append(abs(w))
        t_errs.append(abs(t))
        rows.append(f"| {version} | {run['id']} | {w:+.2f}% | {t:+.3f}% |")
    return rows, sum(w_errs) / len(w_errs), sum(t_errs) / len(t_errs)


def main() -> None:
    print("| vLLM version | run | weights error | KV tokens error |\n|---|---|---:|---:|")
    summary, covered = [], set()
    for path in sorted(FIXTURES.glob("vllm-*-calibration.yaml")):
        version = re.match(r"vllm-(\d+\.\d+)-", path.name).group(1)  # type: ignore[union-attr]
        rows, w, t = version_rows(path, version)
        covered.add(version)
        print("\n".join(rows))
        summary.append(f"| {version} | {len(rows)} | {w:.2f}% | {t:.3f}% |")
    print("\n| vLLM version | runs | mean abs weights error | mean abs KV tokens error |\n|---|---:|---:|---:|")
    print("\n".join(summary))
    missing = [r for r in vllm_versions().ranges if r not in covered]
    print(f"\nNo committed start-up logs yet for vLLM {', '.join(missing)} (modelled from their source only); SGLang 0.5.23: none.")


if __name__ == "__main__":
    main()
