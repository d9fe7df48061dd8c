"""Cross-checks between model, GPU, workload and plan: errors show the arithmetic."""
from __future__ import annotations

from oomplan import formats
from oomplan.errors import FieldError
from oomplan.memory.kv_cache import resolved_kv_dtype
from oomplan.formats.declared import FIELD
from oomplan.memory.module_formats import DENSE, module_formats
from oomplan.memory.weights import dense_dtype, resolved_weight_format, stored_weight_formats
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.kv_policy import kept_tokens
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload
from oomplan.specs.state import GatedDeltaNetMixer, Mamba1Mixer, Mamba2Mixer


def check_parallel(model: ModelSpec, tensor_parallel: int, pipeline_parallel: int) -> None:
    """FieldError when the TP/PP layout cannot split this model (inference and training alike)."""
    if model.num_attention_heads % tensor_parallel:
        raise FieldError("tensor_parallel", f"tensor_parallel ({tensor_parallel}) must divide num_attention_heads "
                                            f"({model.num_attention_heads}) of {model.name}")
    if pipeline_parallel > model.num_layers:
        raise FieldError("pipeline_parallel", f"pipeline_parallel ({pipeline_parallel}) exceeds num_layers ({model.num_layers}) of {model.name}")


def check_plan(model: ModelSpec, plan: Plan) -> None:
    """Raise FieldError when the plan cannot run this model at all."""
    check_parallel(model, plan.tensor_parallel, plan.pipeline_parallel)
    if plan.kv_policy is not None and model.num_attention_layers == 0:
        raise FieldError("kv_policy", f"{plan.kv_policy.spec}: {model.name} has no KV cache (every layer keeps a fixed "
                         "recurrent state instead), so a KV policy cannot apply")
    if plan.prefill_chunk_tokens is not None and plan.paged and plan.prefill_chunk_tokens % plan.block_size:
        raise FieldError("prefill_chunk_tokens", f"{plan.prefill_chunk_tokens} must be a multiple of block_size ({plan.block_size})")


def context_warnings(model: ModelSpec, tokens: int, flag: str) -> list[str]:
    """A sequence longer than the model's window runs, but past what it was trained for. A model with no attention
    layer (Mamba-2, Mamba-1) has no position limit: its max_position_embeddings is a stand-in, not warned of."""
    if model.num_attention_layers and tokens > model.max_position_embeddings:
        return [f"{flag} {tokens} exceeds {model.name}'s max_position_embeddings ({model.max_position_embeddings})"]
    return []


def tp_span_warnings(gpu: GpuSpec, tensor_parallel: int) -> list[str]:
    """Tensor parallelism beyond one node runs, slowly (inference and training alike)."""
    if tensor_parallel > gpu.num_gpus_per_node:
        return [f"--tp {tensor_parallel} spans more than one node ({gpu.num_gpus_per_node} {gpu.name} per node): TP across nodes is slow"]
    return []


def request_warnings(model: ModelSpec, tokens: int, flag: str) -> tuple[str, ...]:
    """What `fit` warns of before it searches (any plan): the model's own warnings and a context beyond its window."""
    return tuple(model.warnings) + tuple(context_warnings(model, tokens, flag))


def plan_warnings(model: ModelSpec, gpu: GpuSpec, workload: Workload, plan: Plan) -> list[str]:
    """Things that run, but not as the user may think. `--strict` turns them into errors."""
    out: list[str] = []
    out.extend(context_warnings(model, workload.ctx_tokens, "--ctx"))
    emulated = [(what, f) for what, fs in (("weights", stored_weight_formats(model, plan)), ("KV cache", (resolved_kv_dtype(model, plan),)))
                for f in fs if not formats.get(f).runs_natively(gpu.architecture, gpu.supports_fp8)]
    fp8 = list(dict.fromkeys(what for what, f in emulated if formats.get(f).row.native == "supports_fp8"))
    if fp8:
        out.append(
            f"{gpu.display_name} has no fp8 tensor cores: fp8 {' and '.join(fp8)} run emulated "
            "(vLLM: weight-only fp8 via Marlin kernels, fp8 KV stored and upcast), slower than on Hopper/Ada"
        )
    for _what, f in emulated:
        native = formats.get(f).row.native
        if isinstance(native, tuple):
            out.append(f"{gpu.display_name} ({gpu.architecture}) has no native {f} ({f} is native on {', '.join(native)}): "
                       f"{formats.get(f).row.fallback}")
    if not gpu.supports_bf16 and "bf16" in (resolved_weight_format(model, plan), resolved_kv_dtype(model, plan)):
        out.append(f"{gpu.display_name} has no bf16 support; engines fall back to fp16 (same bytes)")
    out.extend(tp_span_warnings(gpu, plan.tensor_parallel))
    return out


def ssm_path_notes(model: ModelSpec) -> list[str]:
    """Which code path the recurrent layers' prefill activations are priced for."""
    states = [model.layers[i].attention.state for i in model.state_layer_indices]
    out = []
    num = sum(isinstance(m, Mamba2Mixer) for m in states)
    if num:
        out.append(f"prefill activations of the {num} Mamba-2 layers priced for transformers 5.24's PyTorch scan (no mamba_ssm / "
                   "causal_conv1d installed); their fused kernels allocate differently and are not priced")
    num = sum(isinstance(m, Mamba1Mixer) for m in states)
    if num:
        out.append(f"prefill activations of the {num} Mamba layers priced for transformers 5.24's PyTorch selective scan (its "
                   "token-by-token loop: no mamba_ssm, no mambapy, not compiled); the fused kernels allocate differently and "
                   "are not priced")
    num = sum(isinstance(m, GatedDeltaNetMixer) for m in states)
    if num:
        out.append(f"prefill activations of the {num} Gated DeltaNet layers priced for transformers 5.24's PyTorch chunked delta "
                   "rule (no flash-linear-attention installed; any CUDA workspace of linalg.solve_triangular not included); "
                   "fla's kernels allocate differently and are not priced")
    return out


def _kept_note(model: ModelSpec, plan: Plan) -> str:
    """'; 52 weight groups in 48 layers kept bf16 by quantization_config.ignore (module by module)' where an exclusion list
    names single modules, and '; 401 weight groups in 64 layers in their own format by quantization_config.quantized_layers'
    where module entries give formats (oomplan/memory/module_formats.py)."""
    d = model.declared_weights
    if d is None or not (d.kept_modules or d.module_formats):
        return ""
    groups = module_formats(model).groups
    out = ""
    for what, field, keep in ((f"kept {dense_dtype(model, plan)}", d.kept_field, True), ("in their own format", d.module_field, False)):
        layers = [sum((f == DENSE) == keep for f in g.values()) for g in groups.values()]
        if sum(layers):
            out += f"; {sum(layers)} weight groups in {sum(1 for n in layers if n)} layers {what} by {FIELD}.{field} (module by module)"
    return out


def plan_notes(model: ModelSpec, plan: Plan, ctx_tokens: int | None = None) -> list[str]:
    """Facts the user must know to realise the plan: the model's own (read from its config) first."""
    out: list[str] = [*model.notes, *ssm_path_notes(model)]
    if plan.dms_ratio > 1:
        out.append(f"DMS {plan.dms_ratio:g}x needs a DMS-retrofitted checkpoint of {model.name} (Łańcucki et al. 2025); stock checkpoints do not compress")
    out += kv_policy_notes(model, plan, ctx_tokens)
    d = model.declared_weights
    if d is not None and plan.weights == "auto":
        out.append(f"weights priced as shipped: {d.description} (quantization_config, quant_method {d.method}); "
                   f"{', '.join(f'{c} {f}' for c, f in d.component_weights.items())}"
                   + (f", the vision tower's linears {d.vision_weights}" if d.vision_weights else "")
                   + f", the rest {resolved_weight_format(model, plan)}"
                   + _kept_note(model, plan))
    if d is not None and d.kv_cache_dtype and plan.weights == "auto":
        if d.kv_cache_default and plan.kv_dtype == formats.AUTO:
            out.append(f"KV cache priced {d.kv_cache_dtype}: the checkpoint declares {FIELD}.{d.kv_cache_field} {d.kv_cache_dtype.upper()} "
                       "and vLLM stores the cache so with --kv-cache-dtype auto; --kv-dtype overrides")
        elif plan.kv_dtype == formats.AUTO:
            out.append(f"the checkpoint ships {d.kv_cache_dtype} KV scales ({FIELD}.{d.kv_cache_field}); engines use them only when "
                       f"asked (vLLM --kv-cache-dtype {d.kv_cache_dtype}): --kv-dtype {d.kv_cache_dtype} prices that")
    if d is not None and plan.weights != "auto":
        out.append(f"--weights {plan.weights} overrides the checkpoint's declared {d.description} (quant_method {d.method}): "
                   f"priced as a {plan.weights} re-quantisation, which this checkpoint is not; drop --weights to price it as shipped")
    stored = [("weights", f, f"{f} weights") for f in stored_weight_formats(model, plan)]
    kv = resolved_kv_dtype(model, plan)
    if plan.kv_dtype != formats.AUTO or kv != ("bf16" if model.dtype == "fp32" else model.dtype):  # given, or declared
        stored.append(("kv", kv, f"{kv} KV cache"))
    for use, f, what in stored:
        grade = formats.get(f).grade(use)  # type: ignore[arg-type]
        if grade is not None and grade.note:
            out.append(f"{what}: {grade.note}")
    return out


def kv_policy_notes(model: ModelSpec, plan: Plan, ctx_tokens: int | None = None) -> list[str]:
    """What the KV policy needs and how its peak is priced (docs/kv-policies.md); at a context it keeps whole
    (`ctx_tokens` <= kept_tokens) it evicts nothing: lossless, a no-op."""
    p = plan.kv_policy
    if p is None:
        return []
    kept = kept_tokens(p)
    if ctx_tokens is not None and kept is not None and kept >= ctx_tokens:
        return [f"KV policy {p.label} (docs/kv-policies.md): lossless here, a no-op: it keeps {kept:,} tokens per layer and "
                f"the context is {ctx_tokens:,}, so nothing is evicted and the KV cache is the full context's"]
    out = [f"KV policy {p.label} (docs/kv-policies.md): lossy, priced per layer as the KV kept at its peak"]
    num_state = len(model.state_layer_indices)
    if num_state:
        out.append(f"--kv-policy applies to the {model.num_attention_layers} attention layers; the {num_state} recurrent-state layers keep their fixed state")
    chunked = plan.prefill_chunk_tokens is not None
    if p.kind == "budget":
        out.append("budget (H2O / SnapKV): each layer holds its whole prompt during its own prefill attention before it compresses; "
                   + ("with --prefill-chunk nothing is compressed until the last chunk, so the peak is the full KV"
                      if chunked else "that one layer's prompt is priced on top (prefill transient), and in its attention "
                      "SnapKV's selection scores (32 observation queries against every prompt key, fp32 softmax)"))
    elif not chunked:
        out.append(f"{p.kind}: one forward pass writes the whole prompt into every layer before eviction, so the peak "
                   "holds the prompt; --prefill-chunk bounds it")
    if p.kind == "slots":
        out.append("slots (CAMELoT): the associative-memory module is research code (arXiv:2402.13449); no serving engine ships it")
    if p.kind == "episodic":
        from oomplan.units import format_bytes

        out.append(f"episodic (Larimar): the {format_bytes(p.host_bytes)} store lives in host or remote memory, not on the GPU; "
                   "it needs a Larimar-style memory-conditioned model (arXiv:2403.11901)")
    return out
