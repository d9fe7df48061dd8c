"""`python -m sglang.launch_server` command lines and planner plans, read into SGLang's given settings."""
from __future__ import annotations

from oomplan.engines.cmdline import (
    BLOCK, CONTEXT, FRACTION, float_range, PARALLEL, SEQUENCES, TOKENS, Converter, choice, int_range,
    python_module_args, read_served_launch, text_value,
)
from oomplan import formats
from oomplan.engines.options import EngineOptions, engine_kv, refuse_expert_offload
from oomplan.engines.protocol import EngineLaunch
from oomplan.engines.sglang.settings import SglangGiven
from oomplan.errors import InputError
from oomplan.specs.plan import Plan, Workload

def _disabled(text: str, flag: str) -> bool:
    """--cuda-graph-backend-{decode,prefill} full|breakable|disabled (arg_groups/fields/exec_.py 0.5.23)."""
    return choice(("full", "breakable", "disabled"))(text, flag) == "disabled"


def _ratio(text: str, flag: str) -> float:
    """--swa-full-tokens-ratio: kv_cache_hook.py 0.5.23 accepts 0 < ratio <= 1."""
    value = float_range(0.0, 1.0)(text, flag)
    if value <= 0:
        raise InputError(f"{flag}: {value:g} is out of range; SGLang 0.5.23 accepts a ratio in (0, 1]")
    return value


def _positive(text: str, flag: str) -> float:
    """--mamba-full-memory-ratio: a state/KV memory ratio (kv_cache_configurator.py 0.5.23 r / (1 + r) of the budget)."""
    value = float_range(0.0, 1000.0)(text, flag)
    if value <= 0:
        raise InputError(f"{flag}: {value:g} is out of range; use a ratio above 0 (at most 1000)")
    return value


# arg_groups/fields/exec_.py 0.5.23 dsa_prefill_backend / dsa_decode_backend choices
DSA_BACKENDS = ("flashmla_sparse", "flashmla_sparse_q8", "flashmla_kv", "flashmla_auto", "flashinfer_sparse_mla",
                "triton_sparse_mla", "fa3", "tilelang", "triton", "aiter", "trtllm", "intel_xpu")

FLAGS: dict[str, tuple[str, Converter]] = {
    "--model-path": ("model", text_value), "--model": ("model", text_value),
    "--tp-size": ("tp_size", PARALLEL), "--tp": ("tp_size", PARALLEL), "--tensor-parallel-size": ("tp_size", PARALLEL),
    "--pp-size": ("pp_size", PARALLEL), "--pipeline-parallel-size": ("pp_size", PARALLEL),
    "--dtype": ("dtype", choice(("auto", "half", "float16", "bfloat16", "float", "float32"))),
    "--quantization": ("quantization", choice(tuple(formats.by_engine_name("sglang", "accepts")))),
    "--kv-cache-dtype": ("kv_cache_dtype", choice(("auto",) + tuple(formats.engine_kv_names("sglang")))),
    "--context-length": ("context_length", CONTEXT), "--mem-fraction-static": ("mem_fraction_static", FRACTION),
    "--page-size": ("page_size", BLOCK), "--max-running-requests": ("max_running_requests", SEQUENCES),
    "--max-total-tokens": ("max_total_tokens", int_range(1, 2**40)), "--chunked-prefill-size": ("chunked_prefill_size", TOKENS),
    "--cuda-graph-max-bs": ("cuda_graph_max_bs", SEQUENCES), "--cuda-graph-max-bs-decode": ("cuda_graph_max_bs", SEQUENCES),
    "--cuda-graph-max-bs-prefill": ("cuda_graph_max_bs_prefill", SEQUENCES),
    "--cuda-graph-backend-decode": ("disable_decode_cuda_graph", _disabled),
    "--cuda-graph-backend-prefill": ("disable_prefill_cuda_graph", _disabled),
    # hybrid and windowed pools (pools.py)
    "--swa-full-tokens-ratio": ("swa_full_tokens_ratio", _ratio),
    "--mamba-ssm-dtype": ("mamba_ssm_dtype", choice(("float32", "bfloat16", "float16"))),
    "--max-mamba-cache-size": ("max_mamba_cache_size", int_range(1, 2**31)),
    "--mamba-full-memory-ratio": ("mamba_full_memory_ratio", _positive),
    "--mamba-radix-cache-strategy": ("mamba_radix_cache_strategy", choice(("auto", "no_buffer", "extra_buffer", "extra_buffer_lazy"))),
    "--dsa-prefill-backend": ("dsa_prefill_backend", choice(DSA_BACKENDS)),
    "--dsa-decode-backend": ("dsa_decode_backend", choice(tuple(b for b in DSA_BACKENDS if b != "triton_sparse_mla"))),
}
SWITCHES = {"--disable-cuda-graph": "disable_cuda_graph", "--disable-decode-cuda-graph": "disable_decode_cuda_graph",
            "--disable-prefill-cuda-graph": "disable_prefill_cuda_graph",
            "--disable-hybrid-swa-memory": "disable_hybrid_swa_memory", "--disable-radix-cache": "disable_radix_cache",
            "--disable-overlap-schedule": "disable_overlap_schedule"}
PLAN_KV = formats.plan_kv_table("sglang")
# SGLang 0.5.23 (arg_groups/fields/*.py) flags that change memory but are not modelled: vet names them
UNMODELLED = frozenset({
    "--dp-size", "--dp", "--attn-dp-size", "--enable-dp-attention", "--ep-size", "--moe-dp-size", "--attn-cp-size", "--dcp-size",
    "--enable-eplb", "--ep-num-redundant-experts", "--moe-a2a-backend", "--deepep-mode",
    "--speculative-algorithm", "--speculative-draft-model-path", "--speculative-num-steps", "--speculative-eagle-topk",
    "--speculative-num-draft-tokens", "--speculative-draft-kv-cache-dtype",
    "--enable-lora", "--lora-paths", "--max-lora-rank", "--max-loras-per-batch", "--max-loaded-loras",
    "--enable-hierarchical-cache", "--hicache-ratio", "--hicache-size", "--enable-lmcache", "--enable-flexkv",
    "--cpu-offload-gb", "--offload-group-size", "--offload-num-in-group", "--offload-prefetch-step", "--offload-mode",
    "--enable-paged-experts", "--paged-experts-num-resident", "--enable-memory-saver", "--enable-symm-mem",
    "--max-prefill-tokens", "--enable-mixed-chunk", "--enable-torch-compile", "--torch-compile-max-bs",
    "--cuda-graph-bs-decode", "--cuda-graph-bs-prefill", "--cuda-graph-config", "--num-reserved-decode-tokens",
    "--enable-kv-cache-sharding", "--c128-page-size", "--mm-preprocess-cache-size-mb", "--attention-backend",
    "--prefill-attention-backend", "--decode-attention-backend",
    # the rest of sglang 0.5.23's memory-relevant flags (tests/fixtures/engines/sglang-0.5.23-launch-server-flags.txt, from
    # sglang/srt/server_args.py ServerArgs.add_cli_args): parallel/CP/EP layouts, overlap schedules, HiCache/HiSparse and
    # ktransformers expert offload, LoRA, Mamba/replay caches, speculative drafts, multimodal caches, loaders, DSA/SWA
    # cache variants, all-reduce/MoE backends with buffers
    "--attention-context-parallel-size", "--attention-data-parallel-size", "--cp-strategy",
    "--cuda-graph-max-seq-len-prefill", "--cuda-graph-prefill-max-context", "--custom-weight-loader",
    "--data-parallel-size", "--dcp-replicate-q-proj", "--decode-context-parallel-size", "--deepep-config",
    "--deepep-dispatcher-output-dtype", "--deepep-v2-mode", "--delete-ckpt-after-loading", "--disable-attn-tp-gather",
    "--disable-chunked-prefix-cache", "--disable-cuda-graph-padding", "--disable-custom-all-reduce",
    "--disable-shared-experts-fusion", "--disaggregation-decode-enable-offload-kvcache",
    "--disaggregation-decode-extra-slots", "--disaggregation-mode", "--dllm-algorithm", "--dllm-algorithm-config",
    "--dwdp-size", "--elastic-ep-backend", "--elastic-ep-initial-size", "--enable-aiter-allreduce-fusion",
    "--enable-amd-monokernel", "--enable-attn-tp-input-scattered", "--enable-cp-decode-attn-tp",
    "--enable-decoder-swa-bounded-replay", "--enable-deepseek-v4-fp4-indexer", "--enable-dense-mlp-attn-tp",
    "--enable-dp-attention-local-control-broadcast", "--enable-dp-lm-head", "--enable-draft-weights-cpu-backup",
    "--enable-dsa-cache-layer-split", "--enable-dsa-fused-indexer", "--enable-dynamic-chunking",
    "--enable-elastic-expert-backup", "--enable-encoder-swa-bounded-replay", "--enable-flashinfer-allreduce-fusion",
    "--enable-fp32-lm-head", "--enable-fused-moe-sum-all-reduce", "--enable-hicache", "--enable-hisparse",
    "--enable-int8-mamba-checkpoint", "--enable-layernorm-sp", "--enable-lean-attention", "--enable-linear-replayssm",
    "--enable-linear-replayssm-spec", "--enable-linker-mla-dedup", "--enable-lora-overlap-loading",
    "--enable-megamoe-for-layernorm-sp", "--enable-mm-global-cache", "--enable-mscclpp", "--enable-multi-layer-eagle",
    "--enable-multimodal", "--enable-nccl-nvls", "--enable-nvidia-megakernel", "--enable-page-major-kv-layout",
    "--enable-pdmux", "--enable-prefill-cp", "--enable-prefix-mm-cache", "--enable-quant-communications",
    "--enable-return-aux-hidden-states", "--enable-return-hidden-states", "--enable-session-radix-cache",
    "--enable-shared-experts-attn-tp", "--enable-single-batch-overlap", "--enable-streaming-session",
    "--enable-torch-symm-mem", "--enable-tp-lm-head-all-to-all", "--enable-two-batch-overlap",
    "--enable-unified-cache-external-linker", "--enable-unified-memory", "--enable-w4a4-mxfp4-megamoe",
    "--enable-weights-cpu-backup", "--encoder-only", "--enforce-shared-experts-fusion", "--ep", "--eplb-algorithm",
    "--expert-parallel-size", "--experts-shared-outer-loras", "--flashinfer-a2a-dispatch-type", "--fuseep-mode",
    "--hicache-host-memory-fraction", "--hicache-host-memory-mode", "--hicache-io-backend", "--hicache-mem-layout",
    "--hicache-storage-backend", "--hicache-write-policy", "--hierarchical-sparse-attention-extra-config",
    "--hisparse-config", "--init-expert-location", "--int8-mamba-ckpt-size", "--is-embedding",
    "--json-model-override-args", "--kt-cpuinfer", "--kt-max-deferred-experts-per-token", "--kt-method",
    "--kt-num-gpu-experts", "--kt-threadpool-count", "--kt-weight-path", "--kv-canary", "--kv-canary-real-data",
    "--language-model-only", "--language-only", "--limit-mm-data-per-request", "--linear-replayssm-cache-len",
    "--load-format", "--lora-backend", "--lora-target-modules", "--lora-use-virtual-experts", "--mamba-backend",
    "--mamba-max-states-per-path", "--mamba-track-interval", "--max-ep-size",
    "--max-lora-chunk-size", "--mm-enable-dp-encoder", "--mm-global-cache-backend", "--model-impl",
    "--modelexpress-config", "--modelopt-quant", "--moe-data-parallel-size", "--moe-dense-tp-size",
    "--moe-runner-backend", "--monokernel-backend", "--no-dcp-replicate-q-proj",
    "--no-enable-decoder-swa-bounded-replay", "--no-enable-dsa-fused-indexer", "--no-enable-tp-lm-head-all-to-all",
    "--no-experts-shared-outer-loras", "--no-mm-enable-dp-encoder", "--no-ple-offload-embedding",
    "--no-speculative-enable-w4a4-mxfp4-megamoe", "--num-continuous-decode-steps", "--pdmux-config-path",
    "--ple-offload-backend", "--ple-offload-dir", "--ple-offload-embedding", "--pp-async-batch-depth",
    "--pp-max-micro-batch-size", "--prefill-kv-cache-dequant-dtype", "--prefill-max-requests",
    "--prefill-only-disable-kv-cache", "--qsa-indexer-dtype", "--quantize-and-serve", "--radix-cache-backend",
    "--rl-quant-profile", "--shared-experts-tp-size", "--sm-group-num", "--speculative-adaptive",
    "--speculative-adaptive-config", "--speculative-attention-mode", "--speculative-dflash-block-size",
    "--speculative-domino-candidate-pool-size", "--speculative-draft-attention-backend", "--speculative-draft-model",
    "--speculative-draft-model-quantization", "--speculative-draft-sink-size", "--speculative-draft-window-size",
    "--speculative-dspark-block-size", "--speculative-enable-w4a4-mxfp4-megamoe", "--speculative-moe-a2a-backend",
    "--speculative-moe-runner-backend", "--speculative-ngram-capacity", "--speculative-token-map",
    "--swa-prefix-tails", "--triton-attention-num-kv-splits", "--unified-cache-external-linker-backend",
    "--unified-cache-external-linker-config", "--uno-lora-path", "--weight-cache-mode", "--weight-loader-disable-mmap",
})


def command_args(args: list[str]) -> list[str] | None:
    module = python_module_args(args)
    return module[1] if module and module[0] in ("sglang.launch_server", "sglang.launch_server.py") else None


def read_launch(args: list[str], gguf_type: str | None = None) -> EngineLaunch:
    return read_served_launch("sglang", args, FLAGS, SWITCHES, None, SglangGiven, UNMODELLED,
                              "sglang: no model in the command; pass it as --model-path MODEL")


def settings_for_plan(plan: Plan, workload: Workload, o: EngineOptions) -> SglangGiven:
    refuse_expert_offload(plan.moe_layers_on_cpu, "SGLang")
    dtype, quant = formats.served_weights("sglang", plan.weights)
    return SglangGiven(
        tp_size=plan.tensor_parallel, pp_size=plan.pipeline_parallel, dtype=dtype, quantization=quant,
        kv_cache_dtype=engine_kv(PLAN_KV, plan.kv_dtype, "SGLang"), context_length=o.max_model_len or workload.ctx_tokens,
        mem_fraction_static=o.mem_fraction_static, max_running_requests=o.max_num_seqs,
        chunked_prefill_size=o.max_num_batched_tokens, engine_version=o.engine_version)
