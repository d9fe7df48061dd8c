"""`oomplan fit MODEL --gpu GPU --ctx 32k`: every sensible plan that fits, ranked."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import NoReturn, Optional

import typer

from oomplan import formats
from oomplan.cli.engine_opts import (
    ENGINE, ENGINE_VERSION, GPU_MEMORY_UTILIZATION, MAX_NUM_BATCHED_TOKENS, MAX_NUM_SEQS, MEM_FRACTION_STATIC, check_engine, engine_options,
    refuse_engine_version_without_engine, refuse_unread_engine_knobs,
)
from oomplan.cli.progress import spinner
from oomplan.cli.measured import load_or_unknown
from oomplan.cli.common import (
    FIT_KV_POLICY_HELP, IMAGE_SIZE, IMAGE_TOKENS, IMAGES, build_plan, build_workload, check_pick, handle_errors, image_fields, print_json,
    note, refuse_kv_policy_with_engine, resolve_gpu,
    stdout, warn,
)
from oomplan.cli.train import (
    FIT_PP, FIT_TP, GLOBAL_BATCH, LORA_RANK, LORA_TARGETS, OFFLOAD_OPTIMIZER, OPTIMIZER, PRECISION, RECOMPUTE, SEQ, TRAIN, ZERO,
    TrainFitArgs, TrainFlags, reject_inference_flags, reject_train_only, run_train_fit,
)
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, InputError, UnknownFamilyError
from oomplan.memory.budget import estimate
from oomplan.memory.images import refuse_images_with_engine
from oomplan.memory.validate import request_warnings
from oomplan.planner.diagnose import diagnose
from oomplan.planner.inverse import MAX_BATCH_SIZE, search_max
from oomplan.planner.plan_files import search_plan_file
from oomplan.planner.search import OBJECTIVES, search
from oomplan.planner.space import SearchLimits
from oomplan.report.fit_report import diagnosis_lines, fit_json, fit_table, quality_legend, search_summary
from oomplan.report.plan_yaml import check_output, plan_yaml, write_atomic
from oomplan.specs.kv_policy import searched_kv_policies
from oomplan.units import DEFAULT_HOST_MEMORY_BYTES, GIB, parse_bytes, parse_count, parse_number

MAX_GLOBAL_BATCH = 1 << 20  # TrainingPlan: grad_accum_steps <= 2^20, so every global batch can be written and re-checked


def _choice(value: str, accepted: tuple[str, ...], flag: str) -> str:
    v = value.lower()
    if v not in accepted:
        raise InputError(f"{flag}: {value!r} is not accepted; use one of {', '.join(accepted)}")
    return v


@handle_errors
def fit_command(
    model: str = typer.Argument(..., help="Profile name/alias, Hugging Face repo id org/name[@rev], a checkpoint folder (config.json + safetensors), config.json or profile YAML."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Hugging Face repo revision (branch, tag or commit); same as org/name@REV."),
    gpu: str = typer.Option(..., "--gpu", "-g", help="GPU profile name/alias, a profile YAML, or a raw capacity: 24GiB, 2x80GiB (N = GPUs to use); a comma list (a100-80g,h100,l40s) or 'all' compares cards."),
    ctx: str = typer.Option("4k", "--ctx", help="Tokens per sequence (32k, 32768) or 'max' for the longest that fits."),
    batch: str = typer.Option("1", "--batch", help="Concurrent sequences, or 'max' for the most that fit."),
    images: int = IMAGES,
    image_tokens: Optional[str] = IMAGE_TOKENS,
    image_size: Optional[str] = IMAGE_SIZE,
    objective: str = typer.Option("quality", "--objective", help="quality | throughput | gpus | cost."),
    top: int = typer.Option(5, "--top", help="How many plans to show."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="Use exactly N GPUs."),
    max_gpus: Optional[int] = typer.Option(None, "--max-gpus", help="Use at most N GPUs (default: one node)."),
    host_mem: str = typer.Option(f"{DEFAULT_HOST_MEMORY_BYTES // GIB}GiB", "--host-mem", help="CPU memory available for offloaded weights."),
    price: Optional[list[str]] = typer.Option(None, "--price", help="US$ per GPU-hour, for $ per million tokens: 2.49 (one card), CARD=USD pairs (repeatable or comma-separated: h100=2.49,l40s=0.99) or a prices YAML with a source per price."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Fix the weight format instead of searching it."),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype", help="Fix the KV dtype instead of searching it."),
    dms: bool = typer.Option(True, "--dms/--no-dms", help="Search DMS ratios (need a DMS-retrofitted checkpoint)."),
    kv_policy: Optional[list[str]] = typer.Option(None, "--kv-policy", help=FIT_KV_POLICY_HELP),
    emulated_fp8: bool = typer.Option(False, "--allow-emulated-fp8", help="Also try fp8 on cards without fp8 tensor cores."),
    show_all: bool = typer.Option(False, "--all", help="Also show dominated plans (more pipeline stages or offload for no gain)."),
    attention: str = typer.Option("sdpa", "--attention", help="sdpa or eager."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the chosen plan to this YAML file."),
    pick: int = typer.Option(1, "--pick", help="Which ranked plan -o writes."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing -o file."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the ranked plans as JSON."),
    probe: bool = typer.Option(False, "--probe", help="Check the --pick plan with a real torch run (oomplan probe)."),
    engine: str = ENGINE,
    gpu_memory_utilization: Optional[str] = GPU_MEMORY_UTILIZATION,
    max_num_seqs: Optional[int] = MAX_NUM_SEQS,
    max_num_batched_tokens: Optional[str] = MAX_NUM_BATCHED_TOKENS,
    mem_fraction_static: Optional[str] = MEM_FRACTION_STATIC,
    engine_version: Optional[str] = ENGINE_VERSION,
    train: Optional[str] = TRAIN, optimizer: Optional[str] = OPTIMIZER, precision: Optional[str] = PRECISION,
    seq: Optional[str] = SEQ, global_batch: Optional[int] = GLOBAL_BATCH, zero: Optional[str] = ZERO,
    recompute: Optional[str] = RECOMPUTE, lora_rank: Optional[int] = LORA_RANK, lora_targets: Optional[str] = LORA_TARGETS,
    offload_optimizer: Optional[bool] = OFFLOAD_OPTIMIZER, tp: Optional[int] = FIT_TP, pp: Optional[int] = FIT_PP,
) -> int:
    """Search quantisation, KV dtype, DMS, paging, TP/PP and offload; rank what fits. Exit 0 a plan fits, 1 none."""
    if output is not None:  # outputs are checked before any long work (and before anything is printed)
        check_output(output, force, inputs=(model,))
    if probe and as_json:
        raise InputError("--probe: not available with --json (the probe prints a table); run `oomplan probe PLAN --json` on the -o plan")
    if global_batch is not None:
        parse_number(global_batch, "--global-batch", 1, MAX_GLOBAL_BATCH, integer=True)
    objective = _choice(objective, OBJECTIVES, "--objective")
    attention_kind = build_plan(attention=attention).attention  # refused as estimate refuses it
    from oomplan.cli.cards import card_list, prices_for, resolve_cards

    compared = card_list(gpu)
    # no family: counted by transformers on the meta device when installed (cli/measured.py)
    loaded = load_or_unknown(model, revision, train)
    unknown = loaded if isinstance(loaded, UnknownFamilyError) else None
    spec = None if isinstance(loaded, UnknownFamilyError) else loaded
    from oomplan.cli.cards import resolve_box

    box = resolve_box(gpu) if compared is None else None  # --gpu a+b: one box of different cards (fit --engine llamacpp)
    cards = resolve_cards(compared) if compared is not None else [(gpu, box[0] if box else resolve_gpu(gpu))]
    if box and (train is not None or check_engine(engine) == "hf"):
        raise InputError(f"--gpu: {gpu.strip()} is a box of different cards, priced with --engine llamacpp (its --tensor-split); "
                         "give one card kind for the transformers or training search")
    card = cards[0][1]
    prices = prices_for(price, cards)
    card_price = prices[card.name].usd_per_gpu_hour if card.name in prices else None
    refuse_unread_engine_knobs(check_engine(engine), gpu_memory_utilization, None, max_num_seqs,
                               max_num_batched_tokens, mem_fraction_static)
    if compared is not None and (train is not None or check_engine(engine) != "hf"):
        raise InputError("--gpu: comparing cards (a comma list or 'all') is for inference plans (--engine hf); give one card with --train or --engine")
    limits = SearchLimits(
        max_gpus=max_gpus or gpus or card.num_gpus_per_node, exact_gpus=gpus,
        host_memory_bytes=parse_bytes(host_mem, "--host-mem"), allow_dms=dms, allow_emulated_fp8=emulated_fp8,
        fixed_weights=formats.require(weights, "weights") if weights is not None else None,
        fixed_kv_dtype=formats.require(kv_dtype, "kv") if kv_dtype is not None else None, keep_dominated=show_all,
        kv_policies=searched_kv_policies(kv_policy), allow_prefill_chunks=not images,
    )
    if gpus and max_gpus and gpus > max_gpus:
        raise InputError(f"--gpus {gpus} exceeds --max-gpus {max_gpus}")
    flags = TrainFlags(train, optimizer, precision, seq, zero=zero, recompute=recompute, lora_rank=lora_rank,
                       lora_targets=lora_targets, offload_optimizer=offload_optimizer)
    if train is not None:  # a training plan search: oomplan/cli/train.py
        assert spec is not None  # load_or_unknown refuses --train without a family
        reject_inference_flags({"--images": bool(images), "--image-tokens": image_tokens is not None, "--image-size": image_size is not None,
                                "--weights": weights is not None, "--kv-dtype": kv_dtype is not None, "--engine": engine != "hf",
                                "--kv-policy": bool(kv_policy),
                                "--probe": probe, "--price": price is not None})
        return run_train_fit(spec, card, replace(flags, host_mem=host_mem), TrainFitArgs(
            model, gpu, parse_count(seq or ctx, "--seq" if seq else "--ctx"), global_batch, objective, top, limits.max_gpus, gpus,
            attention, tp, pp, output, pick, force, strict, as_json))
    flags.reject_without_train()
    reject_train_only({"--global-batch": global_batch is not None, "--tp": tp is not None, "--pp": pp is not None})
    want_ctx, want_batch = ctx.strip().lower() == "max", batch.strip().lower() == "max"
    if want_ctx and want_batch:
        raise InputError("--ctx max and --batch max together have no single answer; fix one of them")
    workload = build_workload(
        ctx_tokens=1 if want_ctx else parse_count(ctx, "--ctx"),
        batch_size=1 if want_batch else parse_count(batch, "--batch", maximum=MAX_BATCH_SIZE), **image_fields(images, image_tokens, image_size),
    )
    refuse_images_with_engine(workload.model_copy(update={"engine": check_engine(engine)}))
    if unknown is not None:
        _fit_measured(unknown, card, workload.model_copy(update={"engine": check_engine(engine)}), weights, kv_dtype, attention, as_json, strict, {
            "--ctx max": want_ctx, "--batch max": want_batch, "--gpus": (gpus or 1) > 1, "--output": output is not None,
            "--probe": probe, "--price": price is not None, "--engine-version": engine_version is not None,
            "--gpu (several cards)": compared is not None, "--kv-policy": bool(kv_policy),
            "--images": bool(images) or image_tokens is not None or image_size is not None})
    assert spec is not None
    if limits.kv_policies and check_engine(engine) != "hf":
        refuse_kv_policy_with_engine(kv_policy[0] if kv_policy else None, check_engine(engine))  # not realised: says why
        raise InputError(f"--kv-policy: fit --engine {check_engine(engine)} does not search KV policies; price one with "
                         f"oomplan estimate --engine {check_engine(engine)} --kv-policy SPEC")
    if check_engine(engine) != "hf":
        opts = engine_options(gpu_memory_utilization, None, max_num_seqs, max_num_batched_tokens, mem_fraction_static, None, None, engine_version)
        if box:
            from oomplan.engines.registry import get_engine

            get_engine(engine).with_devices(None, box)  # an InputError where the engine has no box of different cards
            opts = replace(opts, devices=box)
        from oomplan.cli.engine_fit import run_engine_fit

        want = ("ctx", spec.max_position_embeddings) if want_ctx else ("batch", MAX_BATCH_SIZE) if want_batch else None
        return run_engine_fit(check_engine(engine), spec, card, workload.model_copy(update={"engine": check_engine(engine)}), limits, opts,
                       objective, top, as_json, (model, gpu, pick, output, force), want)
    refuse_engine_version_without_engine(engine_version)
    if compared is not None:  # which card should I rent: oomplan/cli/cards.py
        if probe:
            raise InputError("--probe: not available when comparing cards; run fit -o with one --gpu, then oomplan probe")
        from oomplan.cli.cards import run_fit_comparison

        return run_fit_comparison(spec, cards, workload, limits, objective, top, "ctx" if want_ctx else "batch" if want_batch else "",
                           attention, prices, as_json, output, pick, force, model, max_gpus, gpus)
    if not (want_ctx or want_batch):
        warn(request_warnings(spec, workload.ctx_tokens, "--ctx"), strict)
    with spinner(f"searching plans for {spec.name} on {card.name} ...", quiet=as_json):
        if want_ctx:
            result = search_max(spec, card, workload, limits, objective, "ctx", spec.max_position_embeddings, attention)
        elif want_batch:
            result = search_max(spec, card, workload, limits, objective, "batch", MAX_BATCH_SIZE, attention)
        else:
            result = search(spec, card, workload, limits, objective, attention_kind)
    show = "ctx" if want_ctx else "batch" if want_batch else ""
    check_pick(pick, len(result.plans))
    if as_json:
        print_json(fit_json(result, top))
    else:
        _render(result, limits, top, show, card_price, attention)
    if output is not None and result.plans:
        _write(result, model, gpu, pick, output, force)
    if probe and result.plans and not as_json:
        from oomplan.cli.probe import DEFAULT_LOG, run_probe

        chosen = result.plans[min(pick, len(result.plans)) - 1]
        est = estimate(result.model, result.gpu, chosen.workload, chosen.plan)
        return run_probe(est, "auto", "2%", 2, False, DEFAULT_LOG, None)
    return EXIT_OK if result.plans else EXIT_DOES_NOT_FIT


def _fit_measured(unknown: UnknownFamilyError, card, workload, weights, kv_dtype, attention, as_json, strict, flags) -> NoReturn:
    """A model counted by transformers: the one plan priced exactly (one GPU, the checkpoint's dtype), fits or not."""
    from oomplan.cli.measured import run_measured

    plan = build_plan(weights=weights or "auto", kv_dtype=kv_dtype or "auto", attention=attention)
    run_measured(unknown, card, workload, plan, flags, as_json, strict, header=(
        "1 plan priced: one GPU, the checkpoint's dtype (a model counted by transformers: tensor/pipeline splits, "
        "quantisation, DMS and offload are priced only by a family)"))


def _render(result, limits, top, show, price, attention) -> None:
    out = stdout()
    if not result.plans:
        for line in diagnosis_lines(result, diagnose(result, limits, attention)):
            out.print(line)
        return
    out.print(fit_table(result, top, show, price))
    for line in quality_legend(result, top):
        out.print(f"  {line}", soft_wrap=True)
    out.print(search_summary(result, top))


def _write(result, model_ref: str, gpu_ref: str, pick: int, output: Path, force: bool) -> None:
    write_atomic(output, plan_yaml(search_plan_file(model_ref, gpu_ref, result, pick - 1), output), force)
    note(f"wrote plan #{pick} to {output}")
