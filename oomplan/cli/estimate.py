"""`oomplan estimate MODEL --gpu GPU ...`: the itemised per-GPU budget and a verdict."""
from __future__ import annotations

from typing import Optional

import typer

from oomplan.cli.engine_opts import (
    ENGINE, GGUF_TYPE, GPU_MEMORY_UTILIZATION, MAX_MODEL_LEN, MAX_NUM_BATCHED_TOKENS, MAX_NUM_SEQS, MEM_FRACTION_STATIC,
    ENGINE_VERSION, N_GPU_LAYERS, check_engine, refuse_engine_version_without_engine, refuse_unread_engine_knobs, engine_options, engine_prediction, render_engine,
)
from oomplan.cli.measured import load_or_unknown
from oomplan.cli.common import (
    IMAGE_SIZE, IMAGE_TOKENS, IMAGES, KV_HELP, KV_POLICY_HELP, WEIGHTS_HELP, build_plan, image_fields, kv_policy_fields, refuse_kv_policy_with_engine, build_workload, handle_errors, parse_component_weights, print_json, raw_gpu_parallel, resolve_gpu, stdout, warn,
)
from oomplan.cli.train import (
    DP, FSDP, GRAD_ACCUM, HOST_MEM, LORA_RANK, LORA_TARGETS, OFFLOAD_OPTIMIZER, OFFLOAD_PARAMS, OPTIMIZER, PRECISION, RECOMPUTE, SEQ,
    SP, TRAIN, ZERO, TrainFlags, reject_inference_flags, run_train_estimate,
)
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, InputError, UnknownFamilyError
from oomplan.memory.budget import estimate
from oomplan.memory.images import refuse_images_with_engine
from oomplan.report.estimate_json import estimate_json
from oomplan.units import parse_bytes, parse_count


@handle_errors
def estimate_command(
    model: str = typer.Argument(..., help="Profile name/alias, Hugging Face repo id org/name[@rev], a checkpoint folder (config.json + safetensors), config.json or profile YAML."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Hugging Face repo revision (branch, tag or commit); same as org/name@REV."),
    gpu: str = typer.Option(..., "--gpu", "-g", help="GPU profile name/alias (oomplan gpus), a profile YAML, or a raw capacity: 24GiB, 2x80GiB; a comma list (a100-80g,h100,l40s) or 'all': one row per card."),
    ctx: str = typer.Option("4k", "--ctx", help="Tokens per sequence, prompt + generated: 32k, 32K or 32768 (k = 1024)."),
    batch: int = typer.Option(1, "--batch", help="Concurrent sequences."),
    images: int = IMAGES,
    image_tokens: Optional[str] = IMAGE_TOKENS,
    image_size: Optional[str] = IMAGE_SIZE,
    tp: int = typer.Option(1, "--tp", help="Tensor-parallel GPUs."),
    pp: int = typer.Option(1, "--pp", help="Pipeline stages."),
    ep: bool = typer.Option(False, "--ep/--no-ep", help="Expert parallelism: split routed experts across the TP group."),
    weights: str = typer.Option("auto", "--weights", help="All quantisable tensors: " + WEIGHTS_HELP),
    component_weights: Optional[str] = typer.Option(None, "--component-weights", help="A format per component over --weights, e.g. experts=mxfp4,attention=bf16 (embedding, attention, mlp, experts, router, lm_head)."),
    group_size: int = typer.Option(128, "--group-size", help="int4 AWQ/GPTQ quantisation group size."),
    kv_dtype: str = typer.Option("auto", "--kv-dtype", help=KV_HELP),
    dms: float = typer.Option(1.0, "--dms", help="DMS KV compression ratio (1 = off; needs a DMS checkpoint)."),
    dms_window: int = typer.Option(512, "--dms-window", help="DMS delayed-eviction window in tokens."),
    kv_policy: Optional[str] = typer.Option(None, "--kv-policy", help=KV_POLICY_HELP),
    paged: bool = typer.Option(True, "--paged/--no-paged", help="Paged KV (rounded to blocks) or contiguous."),
    block_size: int = typer.Option(16, "--block-size", help="Paged-KV block size in tokens."),
    offload_gib: str = typer.Option("0", "--offload-gib", help="Weights kept in CPU memory per GPU (GiB, or with a unit: 10GiB)."),
    attention: str = typer.Option("sdpa", "--attention", help="sdpa (fused, no N^2 term) or eager."),
    prefill_chunk: Optional[str] = typer.Option(None, "--prefill-chunk", help="Chunked prefill size in tokens (default: whole prompt)."),
    logits: str = typer.Option("last", "--logits", help="last (generate) or all positions."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings (ctx beyond the model's max, emulated fp8) as errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the documented JSON object instead of the table."),
    engine: str = ENGINE,
    gpu_memory_utilization: Optional[str] = GPU_MEMORY_UTILIZATION,
    max_model_len: Optional[str] = MAX_MODEL_LEN,
    max_num_seqs: Optional[int] = MAX_NUM_SEQS,
    max_num_batched_tokens: Optional[str] = MAX_NUM_BATCHED_TOKENS,
    mem_fraction_static: Optional[str] = MEM_FRACTION_STATIC,
    gguf_type: Optional[str] = GGUF_TYPE,
    n_gpu_layers: Optional[int] = N_GPU_LAYERS,
    engine_version: Optional[str] = ENGINE_VERSION,
    train: Optional[str] = TRAIN, optimizer: Optional[str] = OPTIMIZER, precision: Optional[str] = PRECISION,
    seq: Optional[str] = SEQ, grad_accum: Optional[int] = GRAD_ACCUM, dp: Optional[int] = DP, zero: Optional[str] = ZERO,
    fsdp: Optional[str] = FSDP, sp: Optional[bool] = SP, recompute: Optional[str] = RECOMPUTE, lora_rank: Optional[int] = LORA_RANK,
    lora_targets: Optional[str] = LORA_TARGETS, offload_optimizer: Optional[bool] = OFFLOAD_OPTIMIZER,
    offload_params: Optional[bool] = OFFLOAD_PARAMS, host_mem: Optional[str] = HOST_MEM,
) -> int:
    """How much memory, where it goes, and whether it fits. Exit 0 fits, 1 does not, 2 bad input."""
    # no family: counted by transformers on the meta device when installed (cli/measured.py)
    loaded = load_or_unknown(model, revision, train)
    unknown = loaded if isinstance(loaded, UnknownFamilyError) else None
    spec = None if isinstance(loaded, UnknownFamilyError) else loaded
    from oomplan.cli.cards import card_list

    compared = card_list(gpu)
    if compared is not None and (train is not None or engine != "hf"):
        raise InputError("--gpu: comparing cards (a comma list or 'all') is for inference estimates (--engine hf); give one card with --train or --engine")
    refuse_unread_engine_knobs(check_engine(engine), gpu_memory_utilization, max_model_len, max_num_seqs,
                               max_num_batched_tokens, mem_fraction_static, gguf_type, n_gpu_layers)
    from oomplan.cli.cards import resolve_box

    box = resolve_box(gpu) if compared is None else None  # --gpu a+b: one box of different cards (--engine llamacpp)
    if box and (train is not None or check_engine(engine) == "hf"):
        raise InputError(f"--gpu: {gpu.strip()} is a box of different cards, priced with --engine llamacpp (its --tensor-split); "
                         "give one card kind for the transformers or training estimate")
    if box and tp == 1 and pp == 1:
        pp = len(box)  # the whole box, llama.cpp's default --split-mode layer
    card = box[0] if box else resolve_gpu(gpu if compared is None else compared[0])
    tp_asked, pp_asked = tp, pp
    card, tp, pp = raw_gpu_parallel(card, tp, pp)
    flags = TrainFlags(train, optimizer, precision, seq, grad_accum, dp, zero, fsdp, sp, recompute, lora_rank, lora_targets,
                       offload_optimizer, offload_params, host_mem)
    if train is not None:  # a training step: oomplan/cli/train.py
        assert spec is not None  # load_or_unknown refuses --train without a family
        reject_inference_flags({"--images": bool(images), "--image-tokens": image_tokens is not None, "--image-size": image_size is not None, "--weights": weights != "auto", "--component-weights": component_weights is not None, "--kv-dtype": kv_dtype != "auto", "--dms": dms != 1.0, "--kv-policy": kv_policy is not None, "--ep": ep,
                                "--offload-gib": offload_gib != "0", "--prefill-chunk": prefill_chunk is not None, "--engine": engine != "hf"})
        return run_train_estimate(spec, card, flags, parse_count(seq or ctx, "--seq" if seq else "--ctx"), batch, tp, pp, attention, strict, as_json)
    flags.reject_without_train()
    workload = build_workload(ctx_tokens=parse_count(ctx, "--ctx"), batch_size=batch, engine=check_engine(engine),
                              **image_fields(images, image_tokens, image_size))
    refuse_kv_policy_with_engine(kv_policy, workload.engine)
    refuse_images_with_engine(workload)
    if kv_policy is not None and (dms != 1.0 or dms_window != 512):
        raise InputError("--kv-policy and --dms/--dms-window: give one (--kv-policy dms:R,window:W is the same as --dms R --dms-window W)")
    plan = build_plan(
        weights=weights, weight_group_size=group_size, component_weights=parse_component_weights(component_weights), kv_dtype=kv_dtype,
        paged=paged, block_size=block_size, tensor_parallel=tp, pipeline_parallel=pp, expert_parallel=ep,
        offload_bytes=parse_bytes(offload_gib, "--offload-gib"), attention=attention,
        prefill_chunk_tokens=parse_count(prefill_chunk, "--prefill-chunk") if prefill_chunk else None, logits=logits,
        **({"dms_ratio": dms, "dms_window_tokens": dms_window} | kv_policy_fields(kv_policy)),
    )
    if unknown is not None:
        from oomplan.cli.measured import run_measured

        run_measured(unknown, card, workload, plan, {"--engine-version": engine_version is not None, "--gpu (several cards)": compared is not None,
                      "--kv-policy": kv_policy is not None,
                      "--images": bool(images) or image_tokens is not None or image_size is not None},
                     as_json, strict)
    assert spec is not None
    if compared is not None:  # one row per card: oomplan/cli/cards.py
        from oomplan.cli.cards import resolve_cards, run_estimate_comparison

        refuse_engine_version_without_engine(engine_version)
        return run_estimate_comparison(spec, resolve_cards(compared), tp_asked, pp_asked, workload, plan, strict, as_json)
    est = estimate(spec, card, workload, plan)
    warn(est.warnings, strict)
    if workload.engine != "hf":
        opts = engine_options(gpu_memory_utilization, max_model_len, max_num_seqs, max_num_batched_tokens,
                              mem_fraction_static, gguf_type, n_gpu_layers, engine_version)
        if box:
            from dataclasses import replace

            from oomplan.engines.registry import get_engine

            get_engine(workload.engine).with_devices(None, box)  # an InputError where the engine has no box of different cards
            opts = replace(opts, devices=box)
        pred = engine_prediction(workload.engine, spec, card, plan, workload, opts)
        return render_engine(pred, workload, estimate_json(est) if as_json else {}, as_json, strict)
    refuse_engine_version_without_engine(engine_version)
    if as_json:
        print_json(estimate_json(est))
    else:
        from oomplan.report.estimate_table import budget_table, verdict
        from oomplan.report.weights_source import weights_source_lines

        out = stdout()
        out.print(budget_table(est))
        for note in est.notes:
            out.print(f"note: {note}")
        peak = est.load_peak_stage
        if peak is not None and peak.load is not None:
            out.print(f"note: load peak (transformers from_pretrained): {peak.load.reason}", soft_wrap=True)
        for i, line in enumerate(weights_source_lines(est)):
            out.print(f"note: {line}" if i == 0 else f"     {line}", soft_wrap=True)
        out.print(verdict(est))
    return EXIT_OK if est.fits else EXIT_DOES_NOT_FIT
