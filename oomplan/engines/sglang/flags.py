"""`python -m sglang.launch_server` command lines and planner plans, read into SGLang's given settings."""
from __future__ import annotations

from oomplan.engines.cmdline import (
    BLOCK, CONTEXT, FRACTION, PARALLEL, SEQUENCES, TOKENS, Converter, build_settings, split_ignored, choice, int_range,
    python_module_args, read_flags, text_value,
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
}
SWITCHES = {"--disable-cuda-graph": "disable_cuda_graph", "--disable-decode-cuda-graph": "disable_decode_cuda_graph",
            "--disable-prefill-cuda-graph": "disable_prefill_cuda_graph"}
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
    "--swa-full-tokens-ratio", "--disable-hybrid-swa-memory", "--max-mamba-cache-size", "--mamba-ssm-dtype",
    "--mamba-full-memory-ratio", "--max-prefill-tokens", "--enable-mixed-chunk", "--enable-torch-compile", "--torch-compile-max-bs",
    "--cuda-graph-bs-decode", "--cuda-graph-bs-prefill", "--cuda-graph-config", "--num-reserved-decode-tokens",
    "--enable-kv-cache-sharding", "--c128-page-size", "--mm-preprocess-cache-size-mb", "--attention-backend",
    "--prefill-attention-backend", "--decode-attention-backend",
})


def command_args(args: list[str]) -> list[str] | None:
    module = python_module_args(args)
    return module[1] if module and module[0] in ("sglang.launch_server", "sglang.launch_server.py") else None


def read_launch(args: list[str], gguf_type: str | None = None) -> EngineLaunch:
    values, ignored = read_flags(args, FLAGS, SWITCHES, None)
    if not values.get("model"):
        raise InputError("sglang: no model in the command; pass it as --model-path MODEL")
    irrelevant, unmodelled = split_ignored(ignored, UNMODELLED)
    return EngineLaunch("sglang", values["model"], build_settings(SglangGiven, values), irrelevant, unmodelled)


def settings_for_plan(plan: Plan, workload: Workload, o: EngineOptions) -> SglangGiven:
    refuse_expert_offload(plan.moe_layers_on_cpu, "SGLang")
    dtype, quant = formats.served_weights("sglang", plan.weights)
    return SglangGiven(
        tp_size=plan.tensor_parallel, pp_size=plan.pipeline_parallel, dtype=dtype, quantization=quant,
        kv_cache_dtype=engine_kv(PLAN_KV, plan.kv_dtype, "SGLang"), context_length=o.max_model_len or workload.ctx_tokens,
        mem_fraction_static=o.mem_fraction_static, max_running_requests=o.max_num_seqs,
        chunked_prefill_size=o.max_num_batched_tokens, engine_version=o.engine_version)
