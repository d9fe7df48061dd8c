"""Long fuzz run of the config loader, the plan loader and the CLI's argument parsing (issue #8).

Same targets and strategies as tests/fuzz (CI runs a few hundred each). Every input must end in
success or a clean oomplan error; the first failure stops the run and is printed.

Usage: python benchmarks/fuzz_long.py [--config 60000] [--plan 30000] [--cli 10000] [--out docs/fuzzing-results.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from fuzz_targets import argvs, cli_target, config_target, configs, plan_target, plan_texts  # noqa: E402


def run(name: str, strategy, target, count: int) -> str:
    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(strategy)
    def fuzz(value):
        target(value)

    start = time.perf_counter()
    fuzz()
    line = f"| {name} | {count:,} | {time.perf_counter() - start:.0f} | 0 |"
    print(line, flush=True)
    return line


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", type=int, default=60_000)
    p.add_argument("--plan", type=int, default=30_000)
    p.add_argument("--cli", type=int, default=10_000)
    p.add_argument("--out", type=Path, default=None)
    o = p.parse_args()
    targets = [("config.json loader + estimate", configs, config_target, o.config),
               ("plan-file loader + re-estimate", plan_texts, plan_target, o.plan),
               ("CLI argument parsing (CliRunner)", argvs, cli_target, o.cli)]
    rows = [run(*t) for t in targets if t[3] > 0]
    text = "\n".join(["| target | inputs | seconds | failures |", "|---|---:|---:|---:|", *rows]) + "\n"
    if o.out:
        o.out.write_text(text)


if __name__ == "__main__":
    main()
