"""Wall time of the planning CLI, as a user sees it (fresh processes), and search sizes.

Targets (issues #2, #3): `oomplan estimate llama-3-70b --gpu a100-40g --ctx 32k` under 0.5 s,
`oomplan fit llama-3-70b --gpu a100-40g --ctx 32k` under 0.5 s with >= 20,000 candidates.

Usage: python benchmarks/cli_speed.py [--runs 7] [--out benchmarks/results/cli_speed.md]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [
    ["estimate", "llama-3-70b", "--gpu", "a100-40g", "--ctx", "32k"],
    ["fit", "llama-3-70b", "--gpu", "a100-40g", "--ctx", "32k"],
    ["fit", "llama-3.1-405b", "--gpu", "h100", "--ctx", "32k", "--max-gpus", "16"],
    ["fit", "deepseek-v3", "--gpu", "h200", "--ctx", "32k"],
    ["fit", "llama-3-8b", "--gpu", "a100-40g", "--ctx", "max"],
]


# As installed oomplan runs: Python caches bytecode (this workplace sets PYTHONDONTWRITEBYTECODE,
# which would recompile every module on every run); the warm-up run writes the cache.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall_s(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "oomplan", *args], capture_output=True, check=False, env=ENV)
    return time.perf_counter() - start


def search_size(args: list[str]) -> str:
    if args[0] != "fit":
        return "-"
    out = subprocess.run([sys.executable, "-m", "oomplan", *args, "--json"], capture_output=True, text=True, check=False, env=ENV)
    data = json.loads(out.stdout)
    return f"{data['num_considered']:,} considered / {data['num_evaluated']:,} computed / {data['num_fitting']:,} fit"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args()
    rows = []
    for args in COMMANDS:
        wall_s(args)  # warm the page cache
        times = [wall_s(args) for _ in range(opts.runs)]
        rows.append((" ".join(["oomplan", *args]), statistics.median(times), max(times), search_size(args)))
    lines = [
        f"# CLI wall time ({opts.runs} fresh processes each, median and max)",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}, "
        f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; bytecode cached (a warm-up run first).",
        "",
        "| command | median s | max s | search |",
        "|---|---:|---:|---|",
    ] + [f"| `{cmd}` | {med:.3f} | {worst:.3f} | {size} |" for cmd, med, worst, size in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if opts.out:
        opts.out.write_text(text)


if __name__ == "__main__":
    main()
