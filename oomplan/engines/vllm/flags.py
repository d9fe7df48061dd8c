"""`vllm serve` command lines and planner plans, read into vLLM's given settings."""
from __future__ import annotations

from pathlib import PurePath

from oomplan import formats
from oomplan.engines.cmdline import (
    BLOCK, BYTES, CONTEXT, FRACTION, PARALLEL, SEQUENCES, TOKENS, Converter, choice, gib_value, int_range,
    python_module_args, read_served_launch, text_value,
)
from oomplan.engines.options import EngineOptions, engine_kv, refuse_expert_offload
from oomplan.engines.protocol import EngineLaunch
from oomplan.engines.vllm.constants import vllm_constants, vllm_versions
from oomplan.engines.vllm.settings import VllmGiven
from oomplan.specs.plan import Plan, Workload

# --quantization / --kv-cache-dtype values: each format's vLLM spellings (oomplan/data/formats.yaml)
QUANTIZATIONS = tuple(formats.by_engine_name("vllm", "accepts"))
# --kv-cache-dtype: what any modelled release accepts (each release's CacheDType, oomplan/data/engines/vllm/); the
# release in use then prices it, refuses a packed format it does not model, or says the release does not take it
KV_CACHE_DTYPES = tuple(dict.fromkeys(d for r in vllm_versions().ranges for d in vllm_constants(r).kv_cache_dtypes))
MAMBA_DTYPES = tuple(dict.fromkeys(d for r in vllm_versions().ranges for d in vllm_constants(r).mamba_cache_dtypes))
FLAGS: dict[str, tuple[str, Converter]] = {
    "--model": ("model", text_value), "--tensor-parallel-size": ("tensor_parallel", PARALLEL), "-tp": ("tensor_parallel", PARALLEL),
    "--pipeline-parallel-size": ("pipeline_parallel", PARALLEL), "-pp": ("pipeline_parallel", PARALLEL),
    "--dtype": ("dtype", choice(("auto", "half", "float16", "bfloat16", "float", "float32"))),
    "--quantization": ("quantization", choice(QUANTIZATIONS)), "-q": ("quantization", choice(QUANTIZATIONS)),
    "--kv-cache-dtype": ("kv_cache_dtype", choice(KV_CACHE_DTYPES)),
    "--max-model-len": ("max_model_len", CONTEXT), "--gpu-memory-utilization": ("gpu_memory_utilization", FRACTION),
    "--max-num-seqs": ("max_num_seqs", SEQUENCES), "--max-num-batched-tokens": ("max_num_batched_tokens", TOKENS),
    "--block-size": ("block_size", BLOCK), "--cpu-offload-gb": ("cpu_offload_bytes", gib_value),
    "--kv-cache-memory-bytes": ("kv_cache_memory_bytes", BYTES), "--kv-cache-memory": ("kv_cache_memory_bytes", BYTES),
    "--num-gpu-blocks-override": ("num_gpu_blocks_override", int_range(1, 2**31)),
    "--performance-mode": ("performance_mode", choice(("balanced", "interactivity", "throughput"))),
    # hybrid (Mamba / GDN) state: vllm/config/cache.py MambaDType / MambaCacheMode (each release checks its own list)
    "--mamba-cache-dtype": ("mamba_cache_dtype", choice(MAMBA_DTYPES)),
    "--mamba-ssm-cache-dtype": ("mamba_ssm_cache_dtype", choice(MAMBA_DTYPES)),
    "--mamba-cache-mode": ("mamba_cache_mode", choice(("all", "align", "none"))),
    "--mamba-block-size": ("mamba_block_size", BLOCK),
}
SWITCHES = {"--enforce-eager": "enforce_eager", "--enable-expert-parallel": "enable_expert_parallel", "-ep": "enable_expert_parallel",
            "--no-async-scheduling": "no_async_scheduling", "--enable-prefix-caching": "enable_prefix_caching",
            "--no-enable-prefix-caching": "disable_prefix_caching", "--disable-prefix-caching": "disable_prefix_caching"}
# vllm/engine/arg_utils.py 0.33.0 flags that change memory but are not modelled: vet names them, the
# prediction assumes their defaults (LoRA, speculative decoding, multimodal encoders, KV offloading/transfer,
# context/data parallelism, graph capture sizes, hybrid/Mamba caches, weight offloading variants, the weight
# loader: --load-format fastsafetensors puts a whole shard per rank on the GPU in its stored dtype,
# model_executor/model_loader/weight_utils.py fastsafetensors_weights_iterator `copy_files_to_device`)
UNMODELLED = frozenset({
    "--enable-lora", "--max-lora-rank", "--max-loras", "--max-cpu-loras", "--fully-sharded-loras", "--lora-dtype",
    "--speculative-config", "--spec-model", "--spec-method", "--spec-tokens",
    "--limit-mm-per-prompt", "--mm-processor-cache-gb", "--mm-ipc-gpu-memory-gb", "--skip-mm-profiling", "--mm-encoder-tp-mode",
    "--kv-offloading-size", "--kv-offloading-backend", "--kv-transfer-config", "--kv-cache-dtype-skip-layers",
    "--data-parallel-size", "-dp", "--decode-context-parallel-size", "-dcp", "--prefill-context-parallel-size", "-pcp",
    "--enable-eplb", "--eplb-config", "--enable-dbo", "--ubatch-size",
    "--compilation-config", "-cc", "--cudagraph-capture-sizes", "--max-cudagraph-capture-size", "--optimization-level", "-O",
    "--disable-sliding-window", "--disable-hybrid-kv-cache-manager", "--attention-backend",
    "--cpu-offload-params", "--offload-backend", "--offload-group-size", "--offload-num-in-group", "--offload-prefetch-step",
    "--offload-params", "--enable-sleep-mode", "--quantization-config", "--hf-overrides", "--max-num-scheduled-tokens",
    "--no-enable-chunked-prefill", "--device-memory-utilization", "--max-num-active-seqs",
    # the rest of vllm serve 0.33.0's memory-relevant flags (tests/fixtures/engines/vllm-0.33.0-serve-flags.txt, from
    # vllm/entrypoints/common/cli_args.py make_arg_parser): parallel/EP/DBO layouts, LoRA and multimodal variants,
    # loaders, model configs and implementations, Mamba/replay caches, pooling runners, kernel backends with workspaces
    "--additional-config", "--all2all-backend", "--attention-config", "--aux-output-config", "--convert",
    "--cp-kv-cache-interleave-size", "--data-parallel-size-local", "--dbo-decode-token-threshold",
    "--dbo-prefill-token-threshold", "--dcp-kv-cache-interleave-size", "--dcp-q-replicate", "--default-mm-loras",
    "--diffusion-config", "--disable-batch-sharded-sampling", "--disable-cascade-attn", "--disable-chunked-prefill",
    "--disable-cumem-allocator", "--disable-custom-all-reduce", "--disable-elastic-ep", "--disable-ep-weight-filter",
    "--disable-eplb", "--disable-flash-late-interaction", "--disable-flashinfer-autotune", "--disable-hc-sp",
    "--disable-mamba-shared-prefix-checkpoint", "--disable-mixed-moe-lora-format", "--disable-mm-embeds",
    "--disable-moe-shared-loras", "--disable-prompt-embeds", "--disable-return-routed-experts",
    "--disable-shm-tensor-arena", "--disable-tower-connector-lora", "--distributed-executor-backend",
    "--ec-manager-config", "--ec-transfer-config", "--elastic-ep-max-dp-size", "--enable-batch-sharded-sampling",
    "--enable-cascade-attn", "--enable-cumem-allocator", "--enable-elastic-ep", "--enable-ep-weight-filter",
    "--enable-flash-late-interaction", "--enable-flashinfer-autotune", "--enable-hc-sp",
    "--enable-mamba-shared-prefix-checkpoint", "--enable-mixed-moe-lora-format", "--enable-mm-embeds",
    "--enable-moe-shared-loras", "--enable-prompt-embeds", "--enable-return-routed-experts",
    "--enable-shm-tensor-arena", "--enable-tower-connector-lora", "--engram-config", "--expert-placement-strategy",
    "--gdn-prefill-backend", "--hf-config-path", "--kda-decode-backend", "--kda-prefill-backend", "--kernel-config",
    "--kv-events-config", "--kv-sharing-fast-prefill", "--language-model-only", "--linear-backend", "--load-format",
    "--logprobs-mode", "--lora-modules", "--lora-target-modules", "--mamba-backend", "--max-logprobs",
    "--max-lora-cls-labels", "--mm-encoder-attn-backend", "--mm-encoder-attn-dtype", "--mm-encoder-only",
    "--mm-processor-cache-type", "--mm-processor-device", "--mm-shm-cache-max-object-size-mb", "--mm-tensor-ipc",
    "--model-class-overrides", "--model-impl", "--model-loader-extra-config", "--moe-backend", "--monokernel",
    "--no-dcp-q-replicate", "--no-fully-sharded-loras", "--no-kv-sharing-fast-prefill", "--no-language-model-only",
    "--no-mm-encoder-only", "--no-monokernel", "--no-return-sampling-mask", "--no-scheduler-reserve-full-isl",
    "--no-skip-mm-profiling", "--no-sleep-mode-offload-cudagraph", "--no-specialize-active-lora",
    "--no-swa-bounded-replay", "--no-use-fp64-gumbel", "--no-use-replayssm", "--pooler-config", "--prefix-match-unit",
    "--replayssm-buffer-len", "--return-sampling-mask", "--runner", "--scheduler-reserve-full-isl",
    "--sleep-mode-offload-cudagraph", "--sparse-indexer-topk-backend", "--specialize-active-lora",
    "--swa-bounded-replay", "--use-fp64-gumbel", "--use-replayssm", "--video-pruning-method", "--video-pruning-rate",
    "--weight-transfer-config", "--worker-cls", "--worker-extension-cls", "-ac", "-dc", "-dpl", "-sc",
})
# Flags that state the default the prediction already assumes (vllm serve 0.33.0): read, nothing changes
DEFAULTS = frozenset({
    "--async-scheduling", "--disable-expert-parallel", "--enable-chunked-prefill", "--enable-custom-all-reduce",
    "--enable-hybrid-kv-cache-manager", "--enable-sliding-window", "--no-enforce-eager",
})
PLAN_KV = formats.plan_kv_table("vllm")


def command_args(args: list[str]) -> list[str] | None:
    if PurePath(args[0]).name == "vllm" and len(args) > 1 and args[1] == "serve":
        return args[2:]
    module = python_module_args(args)
    return module[1] if module and module[0].startswith("vllm.entrypoints") else None


def read_launch(args: list[str], gguf_type: str | None = None) -> EngineLaunch:
    return read_served_launch("vllm", args, FLAGS, SWITCHES, "model", VllmGiven, UNMODELLED,
                              "vllm: no model in the command; pass it as vllm serve MODEL", DEFAULTS)


def settings_for_plan(plan: Plan, workload: Workload, o: EngineOptions) -> VllmGiven:
    refuse_expert_offload(plan.moe_layers_on_cpu, "vLLM")
    dtype, quant = formats.served_weights("vllm", plan.weights)
    return VllmGiven(
        tensor_parallel=plan.tensor_parallel, pipeline_parallel=plan.pipeline_parallel, dtype=dtype, quantization=quant,
        kv_cache_dtype=engine_kv(PLAN_KV, plan.kv_dtype, "vLLM"), max_model_len=o.max_model_len or workload.ctx_tokens,
        gpu_memory_utilization=o.gpu_memory_utilization, max_num_seqs=o.max_num_seqs,
        max_num_batched_tokens=o.max_num_batched_tokens,
        # the plan's default block (16) is vLLM's default: left unset, so a backend may pick its own (FLASHMLA_SPARSE: 64)
        block_size=None if plan.block_size == Plan.model_fields["block_size"].default else plan.block_size,
        enable_expert_parallel=plan.expert_parallel, cpu_offload_bytes=plan.offload_bytes, engine_version=o.engine_version)
