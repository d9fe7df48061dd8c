"""Run a real transformers model at full depth on the `meta` device and measure the live tensor bytes.

`run_meta_probe` builds the model from an HF config dict with `AutoModelForCausalLM.from_config` under
`torch.device("meta")` (no data, so a 405B config at 32k takes seconds), then does what `generate()`
does: a prefill of `batch x (ctx_tokens - num_decode_steps)` tokens into a `DynamicCache` with
`logits_to_keep`, then `num_decode_steps` single-token steps. A `StorageTracker` sees every aten op;
at each new peak it classifies what is alive into weights / kv_cache / activations / logits (see
`oomplan.probe.watch`).

Choices (see docs/probe-findings.md for why):
  * `torch.no_grad()`, not `inference_mode()`: with autograd keys present, composite ops (softmax with
    dtype=, linear, matmul) decompose before the tracker sees them, so intra-op copies such as
    softmax's fp32 up-cast are counted, as they are on a GPU.
  * `F.scaled_dot_product_attention` is replaced by a fused-kernel emulation (`fused_sdpa`): meta
    would take the math path and materialise the score matrix, a GPU does not. fp16 softmax with
    dtype=float32 takes CUDA's half_to_float path (`oomplan.probe.gpu_kernels`).
  * MoE experts keep transformers' default `experts_implementation` ("grouped_mm" in 5.x), which
    runs on meta: sort + histc + grouped_mm, no `.nonzero()` / `.tolist()`.
  * `quantization_config` is dropped: weights are counted at `dtype`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

AttentionName = Literal["sdpa", "eager"]
DtypeName = Literal["bf16", "fp16", "fp32"]
Phase = Literal["prefill", "decode"]

_DROPPED_CONFIG_KEYS = ("quantization_config", "auto_map", "torch_dtype", "dtype", "_name_or_path")
_NUM_TOP_TENSORS = 5


@dataclass(frozen=True)
class TensorAtPeak:
    """One non-weight storage alive at a peak, for diagnosis."""

    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    op_name: str  # aten op that allocated it
    origin: str  # module that was running (e.g. "model.layers.31.mlp.up_proj")
    component: str  # kv_cache | activations | logits


@dataclass(frozen=True)
class StepPeak:
    """The peak of one forward call (one prefill chunk or one decode step)."""

    phase: Phase
    step_index: int  # 0-based within its phase
    num_query_tokens: int  # tokens fed per sequence in this call
    peak_bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    logits_bytes: int
    peak_op: str  # aten op whose output set the peak
    peak_origin: str  # module running at that moment
    top_tensors: tuple[TensorAtPeak, ...]  # largest non-weight storages alive at the peak


@dataclass(frozen=True)
class MetaProbeResult:
    peak_bytes: int
    peak_phase: Phase
    weights_bytes: int  # parameters + buffers (buffer_bytes of it)
    buffer_bytes: int
    kv_cache_bytes_at_peak: int
    activation_bytes_at_peak: int
    logits_bytes_at_peak: int
    kv_cache_bytes_final: int  # storage bytes the cache holds after the last step
    prefill_peak_bytes: int
    decode_peak_bytes: int  # 0 when num_decode_steps == 0
    num_params: int
    torch_version: str
    transformers_version: str
    elapsed_s: float
    top_tensors_at_peak: tuple[TensorAtPeak, ...]
    steps: tuple[StepPeak, ...]  # every forward call, in order
    attn_implementation: str  # what the model actually ran with (e.g. "oomplan_fused_attention" for Gemma 2)
    experts_implementation: str | None  # MoE dispatch used, None for dense models


@dataclass(frozen=True)
class _Run:
    """A loaded meta model and its instrumentation."""

    model: Any
    cache: Any
    watch: Any  # oomplan.probe.watch.ProbeWatch
    tracker: Any
    attn_implementation: str


def run_meta_probe(
    hf_config: dict,
    *,
    ctx_tokens: int,
    batch_size: int,
    attention: AttentionName,
    dtype: DtypeName = "bf16",
    num_decode_steps: int = 2,
    prefill_chunk_tokens: int | None = None,
    logits_to_keep: int = 1,
    model_class: Any = None,
) -> MetaProbeResult:
    """Prefill `ctx_tokens - num_decode_steps` tokens, then decode `num_decode_steps`; measure peaks.
    `model_class`: the transformers class to build (default: AutoModelForCausalLM's class for the config)."""
    import torch
    import transformers

    num_prompt_tokens = ctx_tokens - num_decode_steps
    if num_prompt_tokens < 1 or batch_size < 1 or num_decode_steps < 0:
        raise ValueError("need ctx_tokens > num_decode_steps >= 0 and batch_size >= 1")
    if prefill_chunk_tokens is not None and prefill_chunk_tokens < 1:
        raise ValueError("prefill_chunk_tokens must be >= 1")
    start = time.perf_counter()
    run = _load(hf_config, attention, dtype, model_class)
    chunk = prefill_chunk_tokens or num_prompt_tokens
    prefill = [min(chunk, num_prompt_tokens - i) for i in range(0, num_prompt_tokens, chunk)]
    steps: list[StepPeak] = []
    with torch.no_grad(), run.tracker, _gpu_kernel_mode():
        for i, n in enumerate(prefill):
            steps.append(_forward(run, "prefill", i, batch_size, n, logits_to_keep))
        for i in range(num_decode_steps):
            steps.append(_forward(run, "decode", i, batch_size, 1, logits_to_keep))
        kv_final = run.watch.cache_bytes()
    elapsed_s = time.perf_counter() - start
    return _result(run, steps, kv_final, elapsed_s, torch.__version__, transformers.__version__)


def _gpu_kernel_mode():
    from oomplan.probe.gpu_kernels import GpuKernelMode

    return GpuKernelMode()


def _forward(
    run: _Run, phase: Phase, index: int, batch_size: int, num_tokens: int, logits_to_keep: int
) -> StepPeak:
    """One model call on fresh meta input ids; returns its peak (the outputs are dropped before returning)."""
    import torch

    run.tracker.reset_peak()
    input_ids = torch.zeros(batch_size, num_tokens, dtype=torch.long, device="meta")  # (B, n)
    # attention_mask=None: a 2D mask would be checked with .item()/.all() (data-dependent, fails on meta)
    cache = {cache_kwarg(run.model): run.cache}
    out = run.model(input_ids=input_ids, use_cache=True, logits_to_keep=logits_to_keep, **cache)
    run.watch.end_forward()
    del out, input_ids
    return _step_peak(run, phase, index, num_tokens)


def _step_peak(run: _Run, phase: Phase, index: int, num_tokens: int) -> StepPeak:
    from oomplan.probe import watch as _w

    snap = run.tracker.peak
    by_label = snap.bytes_by_label()
    ranked = sorted(zip(snap.live, snap.labels, strict=True), key=lambda p: -p[0].nbytes)[:_NUM_TOP_TENSORS]
    top = tuple(
        TensorAtPeak(i.shape, i.dtype, i.nbytes, i.op_name, i.origin, label) for i, label in ranked
    )
    return StepPeak(
        phase=phase, step_index=index, num_query_tokens=num_tokens, peak_bytes=snap.peak_bytes,
        weights_bytes=run.tracker.preexisting_bytes, kv_cache_bytes=by_label.get(_w.KV_CACHE, 0),
        activation_bytes=by_label.get(_w.ACTIVATIONS, 0), logits_bytes=by_label.get(_w.LOGITS, 0),
        peak_op=snap.op_name, peak_origin=snap.origin, top_tensors=top,
    )


def _result(
    run: _Run, steps: list[StepPeak], kv_final: int, elapsed_s: float, torch_v: str, tf_v: str
) -> MetaProbeResult:
    top = max(steps, key=lambda s: s.peak_bytes)
    prefill_peak = max(s.peak_bytes for s in steps if s.phase == "prefill")
    decode_peak = max((s.peak_bytes for s in steps if s.phase == "decode"), default=0)
    buffers = {b.untyped_storage()._cdata: b.untyped_storage().nbytes() for b in run.model.buffers()}
    return MetaProbeResult(
        peak_bytes=top.peak_bytes, peak_phase=top.phase, weights_bytes=top.weights_bytes,
        buffer_bytes=sum(buffers.values()), kv_cache_bytes_at_peak=top.kv_cache_bytes,
        activation_bytes_at_peak=top.activation_bytes, logits_bytes_at_peak=top.logits_bytes,
        kv_cache_bytes_final=kv_final, prefill_peak_bytes=prefill_peak, decode_peak_bytes=decode_peak,
        num_params=sum(p.numel() for p in run.model.parameters()), torch_version=torch_v,
        transformers_version=tf_v, elapsed_s=elapsed_s, top_tensors_at_peak=top.top_tensors,
        steps=tuple(steps), attn_implementation=run.attn_implementation,
        experts_implementation=_experts_implementation(run.model),
    )


def _experts_implementation(model) -> str | None:
    uses_experts = any(type(m).__name__.endswith("Experts") for m in model.modules())
    return getattr(model.config, "_experts_implementation", None) if uses_experts else None


# --- loading -------------------------------------------------------------------------------
def _load(hf_config: dict, attention: AttentionName, dtype: DtypeName, model_class: Any = None) -> _Run:
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from oomplan.probe import watch as _w
    from oomplan.probe.tracker import StorageTracker

    cfg = build_config(hf_config)
    impl = _attn_implementation(cfg, attention, model_class)
    with torch.device("meta"):
        if model_class is None:
            model = AutoModelForCausalLM.from_config(cfg, dtype=_torch_dtype(dtype), attn_implementation=impl)
        else:  # what AutoModel*.from_config does once it has picked the class
            model = model_class._from_config(cfg, dtype=_torch_dtype(dtype), attn_implementation=impl)
    model.eval()
    watch = _w.ProbeWatch()
    tracker = StorageTracker(classifier=watch.classify, context=watch.context, device_type="meta")
    watch.tracker = tracker
    tracker.register_existing([*model.parameters(), *model.buffers()], origin="weights")
    watch.hook_modules(model, model.get_output_embeddings())
    cache = DynamicCache(config=model.config)  # what generate() builds for these models
    watch.watch_cache(cache)
    return _Run(model, cache, watch, tracker, model.config._attn_implementation)


def cache_kwarg(model) -> str:
    """The forward argument that takes the KV cache: `cache` from transformers 5.24 (where `past_key_values` is
    deprecated, to be removed in 5.40: transformers 5.24.0 utils/generic.py:1036, modeling_layers.py:143),
    `past_key_values` before. Read from the model's signature, not guessed from the version."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def build_config(hf_config: dict):
    """`AutoConfig.for_model(model_type, **rest)`, minus keys that would quantise or remap the model."""
    from transformers import AutoConfig

    if "model_type" not in hf_config:
        raise ValueError("hf_config has no 'model_type'")
    rest = {k: v for k, v in hf_config.items() if k not in _DROPPED_CONFIG_KEYS and k != "model_type"}
    return AutoConfig.for_model(hf_config["model_type"], **rest)


def _attn_implementation(cfg, attention: AttentionName, model_class: Any = None) -> str:
    """"eager" / "sdpa"; models that refuse sdpa (Gemma 2: softcapping) get the softcap-tolerant copy."""
    from transformers import AutoModelForCausalLM

    from oomplan.probe.gpu_kernels import register_softcap_tolerant_sdpa

    if attention == "eager":
        return "eager"
    model_class = model_class or AutoModelForCausalLM._model_mapping[type(cfg)]
    return "sdpa" if getattr(model_class, "_supports_sdpa", True) else register_softcap_tolerant_sdpa()


def _torch_dtype(name: DtypeName):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]
