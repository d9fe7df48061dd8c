"""`oomplan curve MODEL --gpu GPU`: memory per GPU against context (or batch), and where the cliff is."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import typer

from oomplan.cli.common import (
    FIELD_FLAGS, IMAGE_SIZE, IMAGE_TOKENS, KV_HELP, KV_POLICY_HELP, WEIGHTS_HELP, build_plan, build_workload, handle_errors, image_fields, kv_policy_fields, note, print_json, resolve_gpu, stdout, warn,
)
from oomplan.errors import EXIT_OK, InputError, did_you_mean
from oomplan.text import shorten
from oomplan.planfile import load_plan_file
from oomplan.planner.curve import memory_curves
from oomplan.profiles import load_gpu, load_model
from oomplan.report.plan_yaml import check_outputs
from oomplan.report.curve_json import curve_json
from oomplan.report.curve_text import curve_chart
from oomplan.specs.plan import Plan
from oomplan.units import parse_count, parse_number

MAX_POINTS = 200  # log-spaced points of one curve; more is not a chart
MAX_PLANS = 5  # the base plan and four --compare: still 80 columns
FLAG_TO_FIELD = {flag.lstrip("-").replace("-", "_"): field for field, flag in FIELD_FLAGS.items() if field in Plan.model_fields}


def _compare_fields(text: str) -> dict[str, Any]:
    """'kv_dtype=fp8,dms_ratio=4' (field names or flag names: kv-dtype, dms, tp) -> {field: value};
    kv_policy=window:4096,sinks:4 takes the comma parts that follow it (KEY:VALUE, no '=')."""
    fields: dict[str, Any] = {}
    policy: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if policy and "=" not in part:
            policy.append(part)
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        key = FLAG_TO_FIELD.get(key, key)
        if not sep or not value.strip():
            raise InputError(f"--compare: {part!r} is not KEY=VALUE (e.g. kv_dtype=fp8)")
        if key not in Plan.model_fields:
            raise InputError(f"--compare: {key!r} is not a plan knob{did_you_mean(key, list(Plan.model_fields))}")
        if key in fields or (key == "kv_policy" and policy):
            raise InputError(f"--compare: {key!r} is given twice in {shorten(text, 80)!r}; give each knob once")
        if key == "kv_policy":
            policy = [value.strip()]
            continue
        fields[key] = value.strip()
    if policy:
        fields |= kv_policy_fields(",".join(policy))
    if not fields:
        raise InputError("--compare: empty; give KEY=VALUE, e.g. --compare kv_dtype=fp8")
    return fields


def _plans(base: Plan, compares: list[str]) -> tuple[tuple[str, Plan], ...]:
    if len(compares) + 1 > MAX_PLANS:
        raise InputError(f"--compare: at most {MAX_PLANS - 1} (got {len(compares)})")
    plans = [("base", base)]
    for text in compares:
        plans.append((text, build_plan(**(base.model_dump() | _compare_fields(text)))))
    return tuple(plans)


def _base(plan_path: Optional[str], knobs: dict[str, Any]) -> tuple[Plan, Optional[Any]]:
    """The plan file's plan (or the defaults), with the knobs given on the command line on top."""
    pf = load_plan_file(plan_path) if plan_path else None
    if pf is not None and pf.training is not None:
        raise InputError(f"{plan_path}: a training plan (fit --train); curve takes inference plans")
    given = {k: v for k, v in knobs.items() if v is not None or k == "kv_policy"}  # kv_policy: None is --kv-policy none
    return build_plan(**((pf.plan.model_dump() if pf else {}) | given)), pf


@handle_errors
def curve_command(
    model: Optional[str] = typer.Argument(None, help="Profile name/alias or config.json (default with --plan: the plan's model)."),
    gpu: Optional[str] = typer.Option(None, "--gpu", "-g", help="GPU profile, a profile YAML, or auto (default with --plan: the plan's GPU); a comma list or 'all': each card's cliff, one row per card."),
    plan_file: Optional[str] = typer.Option(None, "--plan", help="Start from a plan file (fit -o); knobs given here override it."),
    x_axis: str = typer.Option("ctx", "--x", help="ctx: sweep context length; batch: sweep batch size."),
    from_x: Optional[str] = typer.Option(None, "--from", help="First x (default: 1k tokens, or 1 sequence)."),
    to_x: Optional[str] = typer.Option(None, "--to", help="Last x (default: the model's max context, or 256 sequences)."),
    points: int = typer.Option(24, "--points", help="How many log-spaced points."),
    ctx: Optional[str] = typer.Option(None, "--ctx", help="With --x batch: tokens per sequence (default: 4k)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Concurrent sequences (with --x ctx; default 1)."),
    images: Optional[int] = typer.Option(None, "--images", help="Images per sequence at every point (default: the plan's, else 0); "
                                         "their tokens are part of the context."),
    image_tokens: Optional[str] = IMAGE_TOKENS,
    image_size: Optional[str] = IMAGE_SIZE,
    tp: Optional[int] = typer.Option(None, "--tp", help="Tensor-parallel GPUs (default 1)."),
    pp: Optional[int] = typer.Option(None, "--pp", help="Pipeline stages (default 1); the busiest stage is drawn."),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype", help=KV_HELP),
    dms: Optional[float] = typer.Option(None, "--dms", help="DMS KV compression ratio (1 = off)."),
    kv_policy: Optional[str] = typer.Option(None, "--kv-policy", help=KV_POLICY_HELP),
    paged: Optional[bool] = typer.Option(None, "--paged/--no-paged", help="Paged KV (default) or contiguous."),
    block_size: Optional[int] = typer.Option(None, "--block-size", help="Paged-KV block size in tokens (default 16)."),
    attention: Optional[str] = typer.Option(None, "--attention", help="sdpa (default) or eager."),
    compare: list[str] = typer.Option([], "--compare", help="Overlay another plan: KEY=VALUE[,KEY=VALUE] on top of this one, e.g. kv_dtype=fp8 (repeatable)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also write the chart as a PNG (needs the plot extra)."),
    svg: Optional[Path] = typer.Option(None, "--svg", help="Also write the chart as an SVG (needs the plot extra)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --png/--svg files."),
    as_json: bool = typer.Option(False, "--json", help="Print the points and cliffs as JSON instead of the chart."),
) -> int:
    """Memory per GPU against context length (or batch size), with the card's capacity and the cliff marked."""
    check_outputs(((png, "--png"), (svg, "--svg")), force, inputs=(plan_file, model))  # outputs first, before any work
    parse_number(points, "--points", 2, MAX_POINTS, integer=True)
    knobs = {"tensor_parallel": tp, "pipeline_parallel": pp, "weights": weights, "kv_dtype": kv_dtype, "dms_ratio": dms, "paged": paged,
             "block_size": block_size, "attention": attention}
    if kv_policy is not None and dms is not None:
        raise InputError("--kv-policy and --dms: give one (--kv-policy dms:R is the same as --dms R)")
    knobs |= kv_policy_fields(kv_policy)
    base, pf = _base(plan_file, knobs)
    if model is None and pf is None:
        raise InputError("MODEL: give a model (or --plan plan.yaml)")
    if gpu is None and pf is None:
        raise InputError("--gpu: give a GPU profile (or --plan plan.yaml)")
    folder = Path(plan_file).parent if plan_file else None  # a plan's relative refs are its folder's
    def from_plan(key: str) -> str:  # model or GPU ref from the plan file (refused above when there is none)
        assert pf is not None
        return str(getattr(pf, key).ref)

    spec = load_model(model) if model else load_model(from_plan("model"), f"{plan_file}: model.ref", base=folder)
    from oomplan.cli.cards import card_list

    compared = card_list(gpu) if gpu is not None else None
    if compared is not None and (png is not None or svg is not None):
        raise InputError("--png/--svg: one chart is one card; comparing cards prints one row per card (drop --png/--svg or give one --gpu)")
    card = resolve_gpu(gpu if compared is None else compared[0]) if gpu is not None else load_gpu(from_plan("gpu"), f"{plan_file}: gpu.ref", base=folder)
    axis: Literal["ctx", "batch"]
    if x_axis.strip().lower() == "ctx":
        axis = "ctx"
    elif x_axis.strip().lower() == "batch":
        axis = "batch"
    else:
        raise InputError(f"--x: {x_axis!r} is not ctx or batch")
    if axis == "ctx":
        fixed = batch if batch is not None else (pf.workload.batch_size if pf else 1)  # 0 is 0, refused below
        parse_count(fixed, "--batch", 1, 2**20)  # Workload's bounds, named by the flag
        start = parse_count(from_x if from_x is not None else "1k", "--from")
        end = parse_count(to_x, "--to") if to_x is not None else spec.max_position_embeddings
    else:
        fixed = parse_count(ctx, "--ctx") if ctx is not None else (pf.workload.ctx_tokens if pf else 4096)
        start = parse_count(from_x if from_x is not None else "1", "--from", 1, 2**20)
        end = parse_count(to_x if to_x is not None else "256", "--to", 1, 2**20)  # Workload.batch_size <= 2^20
    shown = _images(images, image_tokens, image_size, pf)
    if compared is not None:  # one row per card: each plan's cliff (oomplan/cli/cards.py)
        from oomplan.cli.cards import resolve_cards, run_curve_comparison

        if shown is not None:
            raise InputError("--images: comparing cards draws text-only curves; give one --gpu to draw them with images")
        return run_curve_comparison(spec, resolve_cards(compared), _plans(base, compare), axis, fixed, start, end, points, as_json)
    cs = memory_curves(spec, card, _plans(base, compare), axis, fixed, start, end, points, shown)
    warn(sorted({w for c in cs.curves for w in c.warnings}), strict=False)
    _write_files(cs, png, svg, force)
    if as_json:
        print_json(curve_json(cs))
    else:
        stdout().print(curve_chart(cs))
    return EXIT_OK


def _images(images: Optional[int], image_tokens: Optional[str], image_size: Optional[str], pf) -> Any:
    """The images every point keeps (a Workload carrying them), from the flags or the plan file; None: text only."""
    num = images if images is not None else (pf.workload.num_images if pf else 0)
    tokens = image_tokens if image_tokens is not None else (pf.workload.image_tokens if pf and images is None else None)
    size = image_size if image_size is not None else (pf.workload.image_size if pf and images is None else None)
    fields = image_fields(num, str(tokens) if tokens is not None else None, size)
    return build_workload(ctx_tokens=1, **fields) if fields else None


def _write_files(cs, png: Optional[Path], svg: Optional[Path], force: bool) -> None:
    if png is None and svg is None:
        return
    from oomplan.report.curve_plot import write_figure

    for path, flag in ((png, "--png"), (svg, "--svg")):
        if path is not None:
            write_figure(cs, path, force, flag)
            note(f"wrote {path}")
