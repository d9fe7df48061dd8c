"""`--engine` and the engine knobs shared by estimate, fit and check; rendering of an engine verdict."""
from __future__ import annotations

from typing import Any, Optional

import typer

from typing import TYPE_CHECKING

from oomplan.cli.common import print_json, stdout, warn
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, InputError
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload
from oomplan.units import parse_count, parse_fraction

if TYPE_CHECKING:
    from oomplan.engines.options import EngineOptions
    from oomplan.engines.result import EnginePrediction

# The engine models and reports are imported by the functions that use them, so that commands
# run without --engine start as fast as before.

ENGINE = typer.Option("hf", "--engine", help="hf (transformers generate), vllm, sglang or llamacpp: predict that engine's own accounting.")
GPU_MEMORY_UTILIZATION = typer.Option(None, "--gpu-memory-utilization", help="vLLM: share of the card's total memory (default 0.9).")
MAX_MODEL_LEN = typer.Option(None, "--max-model-len", help="vLLM/SGLang: context the engine is configured for (default: --ctx).")
MAX_NUM_SEQS = typer.Option(None, "--max-num-seqs", help="vLLM: scheduler cap on running sequences (default: vLLM's, 1024 on >= 70 GiB cards, else 256).")
MAX_NUM_BATCHED_TOKENS = typer.Option(None, "--max-num-batched-tokens", help="vLLM: tokens per step, sizes the profile run (default: vLLM's, 8192 or 2048).")
MEM_FRACTION_STATIC = typer.Option(None, "--mem-fraction-static", help="SGLang: share for weights + KV pool (default: SGLang's heuristic).")
GGUF_TYPE = typer.Option(None, "--gguf-type", help="llama.cpp: GGUF file type (Q4_K_M, Q8_0, F16, ...; default from --weights).")
N_GPU_LAYERS = typer.Option(None, "--n-gpu-layers", "-ngl", help="llama.cpp: layers on the GPU (default: --fit's choice).")
ENGINE_VERSION = typer.Option(None, "--engine-version", help="vLLM/SGLang release whose accounting to use, X.Y (default: the newest modelled, stated in the output).")


def engine_options(gpu_memory_utilization: Optional[str], max_model_len: Optional[str], max_num_seqs: Optional[int],
                   max_num_batched_tokens: Optional[str], mem_fraction_static: Optional[str], gguf_type: Optional[str],
                   n_gpu_layers: Optional[int], engine_version: Optional[str] = None) -> EngineOptions:
    from oomplan.engines.options import EngineOptions

    def frac(v: Optional[str], flag: str) -> Optional[float]:
        return parse_fraction(v, flag, 0.01, 1.0) if v is not None else None

    # zero is zero (refused where the engine refuses it), never "the default": only an absent flag (None) is
    return EngineOptions(
        gpu_memory_utilization=frac(gpu_memory_utilization, "--gpu-memory-utilization"),
        max_model_len=parse_count(max_model_len, "--max-model-len") if max_model_len is not None else None,
        max_num_seqs=parse_count(max_num_seqs, "--max-num-seqs", 1, 2**20) if max_num_seqs is not None else None,
        max_num_batched_tokens=parse_count(max_num_batched_tokens, "--max-num-batched-tokens") if max_num_batched_tokens is not None else None,
        mem_fraction_static=frac(mem_fraction_static, "--mem-fraction-static"), gguf_type=gguf_type,
        n_gpu_layers=parse_count(n_gpu_layers, "--n-gpu-layers", -1, 2**20) if n_gpu_layers is not None else None,
        engine_version=engine_version,
    )


# Which engines read each engine knob (engines/*/flags.py settings_for_plan); any other engine would drop it.
KNOB_ENGINES: dict[str, tuple[str, ...]] = {
    "--gpu-memory-utilization": ("vllm",), "--max-model-len": ("vllm", "sglang"), "--max-num-seqs": ("vllm", "sglang"),
    "--max-num-batched-tokens": ("vllm", "sglang"), "--mem-fraction-static": ("sglang",), "--gguf-type": ("llamacpp",),
    "--n-gpu-layers": ("llamacpp",),
}


def refuse_unread_engine_knobs(engine: str | None, gpu_memory_utilization: object = None, max_model_len: object = None,
                               max_num_seqs: object = None, max_num_batched_tokens: object = None, mem_fraction_static: object = None,
                               gguf_type: object = None, n_gpu_layers: object = None) -> None:
    """An engine knob the chosen engine does not read is an error (exit 2), never silently dropped.
    `engine`: the checked engine name (hf without --engine); the knobs as the flags gave them (None: not given)."""
    given = dict(zip(KNOB_ENGINES, (gpu_memory_utilization, max_model_len, max_num_seqs, max_num_batched_tokens,
                                    mem_fraction_static, gguf_type, n_gpu_layers), strict=True))
    for flag, engines in KNOB_ENGINES.items():
        if given[flag] is not None and engine not in engines:
            from oomplan.engines.kv_policy_support import ENGINE_TITLES

            owners = "/".join(ENGINE_TITLES[e] for e in engines)
            needed = " or ".join(f"--engine {e}" for e in engines)
            why = "without --engine nothing reads it" if engine in (None, "hf") else f"--engine {engine} does not read it"
            raise InputError(f"{flag}: an engine setting read only by {owners}; it needs {needed} ({why})")


def refuse_engine_version_without_engine(engine_version: Optional[str]) -> None:
    if engine_version is not None:
        raise InputError(f"--engine-version: {engine_version!r} needs --engine vllm or sglang (the hf model has no release versions)")


def check_engine(engine: str) -> str:
    value = engine.strip().lower().replace(".", "").replace("-", "")
    if value in ("hf", "transformers"):
        return "hf"
    from oomplan.engines.registry import get_engine

    return get_engine(engine).name


def engine_prediction(engine: str, model: ModelSpec, gpu: GpuSpec, plan: Plan, workload: Workload, opts: EngineOptions) -> EnginePrediction:
    from oomplan.engines.registry import get_engine
    e = get_engine(engine)
    return e.predict(model, gpu, e.settings_for_plan(plan, workload, opts))


def render_engine(p: EnginePrediction, workload: Workload, extra_json: dict[str, Any], as_json: bool, strict: bool) -> int:
    """Print the engine table (or the JSON with its `engine` object) and exit 0 when the workload fits."""
    from oomplan.report.engine_report import engine_json, engine_table, verdict_lines
    warn(p.warnings, strict)
    from oomplan.planner.gate import workload_verdict

    ok, line = workload_verdict(p, workload)
    if as_json:
        print_json(extra_json | {"engine": engine_json(p), "fits": ok})
    else:
        out = stdout()
        out.print(engine_table(p))
        for note in p.notes:
            out.print(f"note: {note}", soft_wrap=True)
        for text in verdict_lines(p):
            out.print(text, soft_wrap=True)
        out.print(line, style="green" if ok else "bold red", soft_wrap=True)
    return EXIT_OK if ok else EXIT_DOES_NOT_FIT


def check_engine_plan(engine: str, est: Any, opts: EngineOptions, required: float, plan_path: str, as_json: bool, strict: bool) -> int:
    """`check --engine`: PASS when the engine serves the plan's workload and its process leaves `required` of the card."""
    from oomplan.report.engine_report import engine_json, engine_name, engine_table, verdict_lines
    from oomplan.report.estimate_json import estimate_json
    workload = est.workload.model_copy(update={"engine": engine})
    p = engine_prediction(engine, est.model, est.gpu, est.plan, workload, opts)
    warn(p.warnings, strict)
    from oomplan.planner.gate import engine_line, workload_verdict

    ok, verdict = engine_line(engine_name(engine), p, workload, required)
    fits = workload_verdict(p, workload)[0]
    if as_json:
        print_json(estimate_json(est) | {"engine": engine_json(p), "fits": fits,
                                         "check": {"pass": ok, "margin": required, "plan_file": plan_path}})
    else:
        out = stdout()
        out.print(engine_table(p))
        for text in verdict_lines(p):
            out.print(text, soft_wrap=True)
        out.print(verdict, style="green" if ok else "bold red", soft_wrap=True)
    return EXIT_OK if ok else EXIT_DOES_NOT_FIT
