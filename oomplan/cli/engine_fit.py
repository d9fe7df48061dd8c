"""`fit --engine`: rank the engine configurations that serve the workload; write the chosen one as a plan."""
from __future__ import annotations

from pathlib import Path


from oomplan.cli.common import check_pick, note, print_json, stdout
from oomplan.engines.options import EngineOptions
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK
from oomplan.planner.engine_search import EngineSearchResult, engine_search
from oomplan.planner.plan_files import engine_plan_file
from oomplan.planner.space import SearchLimits
from oomplan.report.engine_report import engine_fit_json, engine_fit_table, engine_name, engine_plan_short
from oomplan.report.plan_yaml import plan_yaml, write_atomic
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Workload


def run_engine_fit(engine: str, model: ModelSpec, gpu: GpuSpec, workload: Workload, limits: SearchLimits, opts: EngineOptions,
                   objective: str, top: int, as_json: bool, write: tuple[str, str, int, Path | None, bool],
                   want: tuple[str, int] | None = None) -> int:
    """`want`: ("ctx" | "batch", the largest value searched) for --ctx max / --batch max."""
    if want is None:
        result = engine_search(engine, model, gpu, workload, limits, opts, objective)
    else:
        from oomplan.cli.progress import spinner
        from oomplan.planner.engine_search import engine_search_max

        with spinner(f"searching the largest {want[0]} for {model.name} on {gpu.name} ...", quiet=as_json):
            result = engine_search_max(engine, model, gpu, workload, limits, opts, objective, *want)
    model_ref, gpu_ref, pick, output, force = write
    check_pick(pick, len(result.plans))
    if as_json:
        print_json(engine_fit_json(result, top))
    else:
        _render(result, top)
    if output is not None and result.plans:
        _write(result, model_ref, gpu_ref, pick, output, force)
    return EXIT_OK if result.plans else EXIT_DOES_NOT_FIT


def _render(result: EngineSearchResult, top: int) -> None:
    out = stdout()
    name = engine_name(result.engine)
    if result.plans:
        out.print(engine_fit_table(result, top))
        out.print(f"{result.num_considered} {name} configurations considered, {len(result.plans)} serve the workload")
        return
    if result.want:
        fixed = f"{result.workload.batch_size} sequence(s)" if result.want == "ctx" else f"{result.workload.ctx_tokens:,} tokens"
        out.print(f"nothing fits with {name}: none of {result.num_considered} configurations serves {fixed} with every layer "
                  "on the GPU", style="bold red", soft_wrap=True)
        return
    out.print(f"nothing fits with {name}: none of {result.num_considered} configurations serves "
              f"{result.workload.batch_size} x {result.workload.ctx_tokens:,} tokens", style="bold red")
    c = result.closest
    if c is not None:
        p = c.prediction
        why = "; ".join(p.failures) or f"the pool holds {p.max_concurrency:.2f} sequences at once"
        out.print(f"closest: {engine_plan_short(result.engine, c.plan, result.model)} on {c.num_gpus} GPU(s): {why}", soft_wrap=True)
        if p.fixes:
            out.print("fix: " + " | ".join(p.fixes), soft_wrap=True)


def _write(result: EngineSearchResult, model_ref: str, gpu_ref: str, pick: int, output: Path, force: bool) -> None:
    write_atomic(output, plan_yaml(engine_plan_file(model_ref, gpu_ref, result, pick - 1), output), force)
    note(f"wrote plan #{pick} ({engine_name(result.engine)}) to {output}")
