"""Wall and CPU time of the planning CLI as a user sees it (fresh processes), search sizes, and the
ratios issue #16 targets, all measured side by side in one run.

Targets: issues #2/#3 — `estimate` and `fit llama-3-70b --gpu a100-40g --ctx 32k` under 0.5 s with
>= 20,000 candidates; issue #16 — `estimate` <= 1.3x the bare import of the dependencies
(`import pydantic, typer, rich, yaml`); with 405B on H100s `fit --max-gpus 512` <= 3x one `estimate`
and `fit --ctx max --max-gpus 256` <= 5x one `estimate`; peak memory flat in --max-gpus.
Ratios use CPU seconds (user + sys of the child): on a shared machine wall time mostly measures
the neighbours.

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
BARE = [sys.executable, "-c", "import pydantic, typer, rich, yaml"]
# `import pydantic` is lazy (pydantic/__init__.py's __getattr__): the bare import loads none of the model
# machinery. Any pydantic model needs BaseModel, so this is the floor of a command whose specs are pydantic models.
FLOOR = [sys.executable, "-c", "import pydantic, typer, rich, yaml; from pydantic import BaseModel"]
# The least a command built on these libraries does: one typer command with one option, one pydantic model
# (one field) validated, one rich table printed. Defining a model imports pydantic.fields and validating
# builds a validator (pydantic's plugin loader imports importlib.metadata); typer parses; rich imports its
# console and table: what any command on these libraries pays before doing its own work.
MINIMAL_PROGRAM = """
import os
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")  # as oomplan does: no scan of installed packages
import typer, yaml
from pydantic import BaseModel

class Spec(BaseModel):
    x: int

def main(x: int = typer.Option(1, "--x")) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table("field", "value")
    table.add_row("x", str(Spec(x=x).x))
    Console().print(table)

typer.run(main)
"""
MINIMAL = [sys.executable, "-c", MINIMAL_PROGRAM, "--x", "3"]
ESTIMATE_405B = ["estimate", "llama-3.1-405b", "--gpu", "h100", "--ctx", "32k", "--tp", "8", "--pp", "2"]
FIT_405B = ["fit", "llama-3.1-405b", "--gpu", "h100", "--ctx", "32k", "--max-gpus"]
CTX_MAX_405B = ["fit", "llama-3.1-405b", "--gpu", "h100", "--ctx", "max", "--max-gpus"]
BATCH_MAX_405B = ["fit", "llama-3.1-405b", "--gpu", "h100", "--ctx", "32k", "--batch", "max", "--max-gpus"]

# As installed oomplan runs: Python caches bytecode (this workplace sets PYTHONDONTWRITEBYTECODE,
# which would recompile every module on every run); the warm-up run writes the cache.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# Where one `estimate --json` goes, as cumulative steps in fresh processes (each includes the ones above it;
# oomplan's steps set up as its main() does: the collector off, pydantic's plugin loader stood in for): the
# dependencies, pydantic's model machinery, oomplan's modules for the command, then loading the profiles
# (their validators are built then). Indicative: each row is its own process on a shared machine.
_GC_OFF = ("import gc, os; gc.disable(); os.environ.setdefault('PYDANTIC_DISABLE_PLUGINS', '__all__')\n"
           "from oomplan.cli.app import _skip_plugin_loader; _skip_plugin_loader()\n")
STEPS = [
    ("+ `from pydantic import BaseModel, Field` (what defining any model imports)",
     "import pydantic, typer, rich, yaml\nfrom pydantic import BaseModel, Field"),
    ("+ oomplan's modules for `estimate` (`import oomplan.cli.estimate`)", _GC_OFF + "import oomplan.cli.estimate"),
    ("+ the 405B profile and the H100 profile loaded (HfConfig, ModelSpec, GpuSpec validators built)",
     _GC_OFF + "import oomplan.cli.estimate\nfrom oomplan.cli.common import resolve_gpu\nfrom oomplan.profiles import load_model\n"
     "load_model('llama-3.1-405b'); resolve_gpu('h100')"),
]


def oomplan(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "oomplan", *args]


def run(argv: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS KiB) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def side_by_side(argvs: list[list[str]], runs: int) -> list[tuple[float, float, int]]:
    """median_run of each, the runs interleaved (one of each per round): on a shared machine the load changes
    from second to second, and consecutive runs of one command would see a different machine from the next's."""
    for argv in argvs:
        run(argv)  # warm the page cache and the bytecode
    samples: list[list[tuple[float, float, int]]] = [[] for _ in argvs]
    for _ in range(runs):
        for argv, out in zip(argvs, samples, strict=True):
            out.append(run(argv))
    return [(statistics.median(s[0] for s in out), statistics.median(s[1] for s in out), max(s[2] for s in out)) for out in samples]


def median_run(argv: list[str], runs: int) -> tuple[float, float, int]:
    run(argv)  # warm the page cache and the bytecode
    samples = [run(argv) for _ in range(runs)]
    return (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples), max(s[2] for s in samples))


def search_size(args: list[str]) -> str:
    if args[0] != "fit":
        return "-"
    out = subprocess.run(oomplan([*args, "--json"]), capture_output=True, text=True, check=False, env=ENV)
    data = json.loads(out.stdout)
    return f"{data['num_considered']:,} considered / {data['num_evaluated']:,} computed / {data['num_fitting']:,} fit"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args()
    rows = []
    for args in COMMANDS:
        wall, cpu, _ = median_run(oomplan(args), opts.runs)
        rows.append((" ".join(["oomplan", *args]), wall, cpu, search_size(args)))
    # the ratios' terms, interleaved
    bare, floor, minimal, est, est_json, fit512, ctx256, *stepped = side_by_side(
        [BARE, FLOOR, MINIMAL, oomplan(ESTIMATE_405B), oomplan([*ESTIMATE_405B, "--json"]), oomplan([*FIT_405B, "512"]),
         oomplan([*CTX_MAX_405B, "256"]), *[[sys.executable, "-c", code] for _, code in STEPS]], opts.runs)
    steps = [(label, result) for (label, _), result in zip(STEPS, stepped, strict=True)]
    scale = [(n, median_run(oomplan([*FIT_405B, str(n)]), 3), median_run(oomplan([*CTX_MAX_405B, str(n)]), 3)) for n in (64, 256, 1024)]
    batch512 = median_run(oomplan([*BATCH_MAX_405B, "512"]), 3)
    ratios = [
        ("`oomplan estimate` (405B, TP8 x PP2) / bare `import pydantic, typer, rich, yaml`", est[1] / bare[1], "<= 1.3"),
        ("`oomplan estimate --json` (nothing imported to render) / bare import", est_json[1] / bare[1], "<= 1.3"),
        ("floor: bare import + `from pydantic import BaseModel` / bare import", floor[1] / bare[1], "-"),
        ("floor: a minimal typer command validating one pydantic model and printing one rich table / bare import", minimal[1] / bare[1], "-"),
        ("`oomplan estimate` / that minimal program", est[1] / minimal[1], "-"),
        ("`fit 405B --gpu h100 --ctx 32k --max-gpus 512` / one estimate", fit512[1] / est[1], "<= 3"),
        ("`fit 405B --gpu h100 --ctx max --max-gpus 256` / one estimate", ctx256[1] / est[1], "<= 5"),
    ]
    lines = [
        f"# CLI speed ({opts.runs} fresh processes each, medians)",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores (shared); bytecode cached as users have it (PYTHONDONTWRITEBYTECODE, which the development machine sets, "
        "is removed for the children; a warm-up run writes the cache). CPU s = user + sys of the process.",
        "",
        "## Ratios (issue #16), measured side by side in this run",
        "",
        "| ratio | measured (CPU) | target |",
        "|---|---:|---:|",
        *[f"| {name} | {value:.2f}x | {target} |" for name, value, target in ratios],
        "",
        f"Bare dependency import: {bare[1]:.3f} CPU s ({bare[0]:.3f} s wall); with BaseModel: {floor[1]:.3f} CPU s; "
        f"the minimal program: {minimal[1]:.3f} CPU s; "
        f"one estimate: {est[1]:.3f} CPU s ({est[0]:.3f} s wall), with --json {est_json[1]:.3f} CPU s.",
        "",
        "## Where `estimate` goes (cumulative steps, fresh processes, CPU s; indicative)",
        "",
        "| step | CPU s | / bare import |",
        "|---|---:|---:|",
        f"| `import pydantic, typer, rich, yaml` (the bare import) | {bare[1]:.3f} | 1.00x |",
        *[f"| {label} | {cpu:.3f} | {cpu / bare[1]:.2f}x |" for label, (_, cpu, _) in steps],
        f"| the whole `oomplan estimate ... --json` (typer parses 50 options, Plan/Workload, the estimate, the JSON) | {est_json[1]:.3f} | {est_json[1] / bare[1]:.2f}x |",
        f"| the whole `oomplan estimate ...` (rich imports its console and table and renders) | {est[1]:.3f} | {est[1] / bare[1]:.2f}x |",
        "",
        "## Scaling in --max-gpus (405B on H100, ctx 32k; 3 runs each)",
        "",
        "| --max-gpus | fit CPU s | fit peak RSS MiB | fit --ctx max CPU s | --ctx max peak RSS MiB |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {n} | {f[1]:.2f} | {f[2] / 1024:.0f} | {c[1]:.2f} | {c[2] / 1024:.0f} |" for n, f, c in scale],
        "",
        f"`fit 405B --gpu h100 --ctx 32k --batch max --max-gpus 512`: {batch512[1]:.2f} CPU s, {batch512[2] / 1024:.0f} MiB peak.",
        "",
        "## Commands",
        "",
        "| command | median wall s | median CPU s | search |",
        "|---|---:|---:|---|",
        *[f"| `{cmd}` | {wall:.3f} | {cpu:.3f} | {size} |" for cmd, wall, cpu, size in rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if opts.out:
        opts.out.write_text(text)


if __name__ == "__main__":
    main()
