"""The transformers path: count any architecture transformers knows, on the meta device (no weights).

For a config.json whose model_type oomplan has no family for, `measure_model` builds the model class
transformers would (the class in `architectures` when transformers has it, else AutoModelForCausalLM's,
else AutoModelForImageTextToText's) from the config under `torch.device("meta")`, then
  1. takes the parameter inventory by component from the module tree (`_component`),
  2. measures each cache layer's storage bytes after a prefill + one decode step (what generate() does)
     at contexts C1 < C2 and batches 1, 2, and solves for bytes per token, per sequence and shared,
  3. runs the StorageTracker probe (oomplan.probe.meta_run) at the requested context and batch: the
     activation transient, and the cache it holds, which must equal what step 2 derives for that shape.
Everything here costs Python time only (seconds; more for very deep or very wide models).
Specs: oomplan/specs/measured.py. Read against transformers 5.24.0 (cache_utils.py DynamicLayer,
DynamicSlidingWindowLayer, LinearAttentionLayer; models/auto/modeling_auto.py).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import warnings
from typing import TYPE_CHECKING, Any, Literal

from oomplan.errors import InputError, RuntimeFailure
from oomplan.families.base import dtype_note
from oomplan.formats.declared import declaring_fields
from oomplan.specs.measured import (
    MEASURED_COMPONENTS, ComponentCount, MeasuredActivations, MeasuredCacheLayer, MeasuredComponent, MeasuredModel,
)
from oomplan.text import clean, shorten

if TYPE_CHECKING:
    from oomplan.probe.meta_run import AttentionName, DtypeName

# the two short contexts of the cache census; halved while a sliding window is shorter than C2
_CONTEXTS = (4, 8)
_VISION = re.compile(r"(^|[._])(vision|visual|image|img|patch_embed|multi_modal_projector|mm_projector|vit|siglip|pixtral)", re.I)
_AUDIO = re.compile(r"(^|[._])(audio|speech|sound)", re.I)
_MIXERS = ("attn", "attention", "mixer", "mamba", "ssm", "linear_attn", "token_mixer", "temporal_block", "conv")
_MLPS = ("mlp", "feed_forward", "ffn", "moe", "block_sparse_moe", "shared_expert", "shared_experts", "dense", "ff")


def transformers_version() -> str | None:
    """The installed transformers' version, without importing it; None when it is absent."""
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
        return None
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


def check_measurable(raw: dict[str, Any], refusal: str) -> None:
    """Before any forward: InputError (one line) when transformers does not know the model_type, or the config declares
    a quantisation the meta model would not hold (`refusal`: oomplan's own refusal, which the message extends)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = raw.get("model_type")
    if model_type is None or model_type == "":
        raise InputError(f"{refusal}; transformers {transformers.__version__} cannot build a model from a config without model_type either")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise InputError(f"{refusal}; transformers {transformers.__version__} does not know model_type {clean(model_type)!r} either")
    declared = declaring_fields(raw)
    if declared:
        raise InputError(f"{refusal}; field {', '.join(repr(f) for f in declared)}: the transformers path counts unquantised "
                         "tensors and would price this checkpoint in the wrong format")


def _component(param_name: str, owner: Any, owners: list[tuple[str, Any]], head_ids: set[int], embed_ids: set[int],
               param: Any) -> MeasuredComponent:
    """The component of one parameter from where it sits in the module tree (`owners`: its ancestors, outermost first)."""
    path = param_name.rsplit(".", 1)[0] if "." in param_name else ""
    if id(param) in head_ids and id(param) not in embed_ids:
        return "lm_head"
    if _VISION.search(path):
        return "vision"
    if _AUDIO.search(path):
        return "audio"
    if id(param) in embed_ids or type(owner).__name__.endswith("Embedding"):
        return "embedding"
    if "norm" in type(owner).__name__.lower():
        return "norm"
    segments = path.split(".")
    leaf = segments[-1] if segments else ""
    if leaf in ("gate", "router", "shared_expert_gate") or "router" in type(owner).__name__.lower():
        return "router"
    if "experts" in segments or any(type(m).__name__.endswith("Experts") for _, m in owners):
        return "experts"
    if any(any(k in s.lower() for k in _MIXERS) for s in segments):
        return "attention"
    if any(s in _MLPS for s in segments):
        return "mlp"
    return "other"


def _components(model: Any) -> tuple[tuple[ComponentCount, ...], int]:
    """Parameters by component (tied tensors once, under the first name transformers gives them) and buffer bytes."""
    modules = dict(model.named_modules())
    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    embed_ids = {id(p) for p in embed.parameters()} if embed is not None else set()
    counts: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        path = name.rsplit(".", 1)[0] if "." in name else ""
        parts = path.split(".") if path else []
        owners = [(".".join(parts[:i]), modules.get(".".join(parts[:i]))) for i in range(1, len(parts) + 1)]
        comp = _component(name, modules.get(path, model), owners, head_ids, embed_ids, p)
        row = counts.setdefault(comp, [0, 0])
        row[0] += p.numel()
        row[1] += p.numel() * p.element_size()
    storages = {b.untyped_storage()._cdata: b.untyped_storage().nbytes() for b in model.buffers()}
    rows = tuple(ComponentCount(component=c, num_params=counts[c][0], bytes=counts[c][1]) for c in MEASURED_COMPONENTS if c in counts)
    return rows, sum(storages.values())


def _layer_bytes(layer: Any) -> int:
    """Distinct storage bytes of the tensors one cache layer holds (K/V, indexer keys, conv/recurrent states, ...)."""
    import torch

    seen: dict[int, int] = {}
    for value in vars(layer).values():
        items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else (value,)
        for t in items:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                seen[st._cdata] = st.nbytes()
    return sum(seen.values())


def _census(model: Any, batch_size: int, ctx_tokens: int) -> tuple[list[int], Any]:
    """Each cache layer's bytes after a prefill of ctx_tokens - 1 tokens and one decode step (a fresh DynamicCache)."""
    import torch
    from transformers import DynamicCache

    from oomplan.probe.meta_run import cache_kwarg

    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        for n in (ctx_tokens - 1, 1):
            ids = torch.zeros(batch_size, n, dtype=torch.long, device="meta")
            model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_kwarg(model): cache})
    return [_layer_bytes(layer) for layer in cache.layers], cache


def _solve(index: int, layer: Any, b11: int, b12: int, b21: int, c1: int, c2: int, where: str) -> MeasuredCacheLayer:
    """bytes(B, c) = S + B * (F + T * c): from (1, c1), (1, c2), (2, c1)."""
    per_token, rem = divmod(b12 - b11, c2 - c1)
    per_sequence = b21 - b11 - per_token * c1
    shared = 2 * b11 - b21
    if rem or per_token < 0 or per_sequence < 0 or shared < 0:
        raise InputError(f"{where}: cache layer {index} ({type(layer).__name__}) does not grow linearly with context and "
                         f"batch ({b11}, {b12}, {b21} bytes); refusing rather than guessing")
    window = getattr(layer, "sliding_window", None)
    return MeasuredCacheLayer(index=index, kind=type(layer).__name__, bytes_per_token=per_token, per_sequence_bytes=per_sequence,
                              shared_bytes=shared, window_tokens=window if isinstance(window, int) and window >= 1 else None)


def derived_cache_bytes(layers: tuple[MeasuredCacheLayer, ...], ctx_tokens: int, batch_size: int) -> int:
    """What the cache layers hold after ctx_tokens (unpaged), from their measured per-token/sequence/shared bytes."""
    total = 0
    for layer in layers:
        tokens = min(ctx_tokens, layer.window_tokens) if layer.window_tokens else ctx_tokens
        total += layer.shared_bytes + batch_size * (layer.per_sequence_bytes + layer.bytes_per_token * tokens)
    return total


def _model_class(cfg: Any, raw: dict[str, Any], where: str) -> Any:
    """The class transformers builds: `architectures[0]` when it is a transformers generative class for this config,
    else AutoModelForCausalLM's, else AutoModelForImageTextToText's (multimodal wrappers, text-only use)."""
    import transformers

    archs = raw.get("architectures") or []
    named = getattr(transformers, archs[0], None) if archs and isinstance(archs[0], str) else None
    if named is not None and getattr(named, "config_class", None) is type(cfg) and hasattr(named, "_from_config"):
        if archs[0].endswith(("ForCausalLM", "ForConditionalGeneration")):
            return named
    for auto in ("AutoModelForCausalLM", "AutoModelForImageTextToText"):
        mapping = getattr(transformers, auto)._model_mapping
        if type(cfg) in mapping:
            return mapping[type(cfg)]
    raise InputError(f"{where}: transformers {transformers.__version__} knows model_type {clean(raw.get('model_type'))!r} "
                     "but has no causal-LM or image-text-to-text class for it; oomplan plans generative decoders")


def _build(raw: dict[str, Any], dtype: DtypeName, where: str) -> tuple[Any, Any]:
    import torch
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from oomplan.probe.meta_run import _torch_dtype, build_config

    model_type = raw.get("model_type")
    if model_type is None or model_type == "":
        raise InputError(f"{where}: the config has no model_type: oomplan ships no family for it, and transformers "
                         f"{transformers.__version__} cannot build a model without one; refusing rather than guessing")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise InputError(f"{where}: model_type {clean(model_type)!r} is not a family oomplan ships, and transformers "
                         f"{transformers.__version__} does not know it either; refusing rather than guessing")
    try:
        cfg = build_config(raw)
        cls = _model_class(cfg, raw, where)
        with torch.device("meta"):
            model = cls._from_config(cfg, dtype=_torch_dtype(dtype))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - transformers raises anything on a config it cannot build
        raise InputError(f"{where}: transformers {transformers.__version__} could not build {clean(model_type)!r} from this "
                         f"config ({type(exc).__name__}: {shorten(clean(exc), 160)})") from None
    model.eval()
    return model, cls


def measure_model(raw: dict[str, Any], *, name: str, source: str, config_sha256: str, ctx_tokens: int, batch_size: int,
                  attention: AttentionName = "sdpa", logits: Literal["last", "all"] = "last", prefill_chunk_tokens: int | None = None,
                  dtype: DtypeName = "bf16", where: str | None = None) -> MeasuredModel:
    """Count `raw` with transformers on the meta device (module docstring); InputError (exit 2) when it cannot."""
    import time

    import torch
    import transformers

    from oomplan.probe.meta_run import run_meta_probe

    where = where or source
    check_measurable(raw, f"{where}: model_type {clean(raw.get('model_type'))!r} is not a family oomplan ships")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            model, cls = _build(raw, dtype, where)
            components, buffer_bytes = _components(model)
            layers = _cache_layers(model, where)
            try:
                probe = run_meta_probe(raw, ctx_tokens=ctx_tokens, batch_size=batch_size, attention=attention, dtype=dtype,
                                       num_decode_steps=1 if ctx_tokens > 1 else 0, prefill_chunk_tokens=prefill_chunk_tokens,
                                       logits_to_keep=0 if logits == "all" else 1, model_class=cls)
            except Exception as exc:  # noqa: BLE001 - a forward transformers cannot run on meta
                raise InputError(f"{where}: transformers {transformers.__version__} could not run {clean(raw.get('model_type'))!r} "
                                 f"on the meta device ({type(exc).__name__}: {shorten(clean(exc), 160)})") from None
        finally:
            transformers.logging.set_verbosity(verbosity)
    derived = derived_cache_bytes(layers, ctx_tokens, batch_size)
    if ctx_tokens > 1 and derived != probe.kv_cache_bytes_final:
        raise RuntimeFailure(f"{where}: the cache derived from the short forwards ({derived:,} B) differs from the cache a "
                             f"forward at ctx {ctx_tokens} x batch {batch_size} holds ({probe.kv_cache_bytes_final:,} B); refusing")
    acts = MeasuredActivations(
        ctx_tokens=ctx_tokens, batch_size=batch_size, attention=attention, logits=logits, prefill_chunk_tokens=prefill_chunk_tokens,
        peak_bytes=probe.peak_bytes, kv_and_state_bytes_final=probe.kv_cache_bytes_final,
        transient_bytes=max(0, probe.peak_bytes - probe.weights_bytes - probe.kv_cache_bytes_final), peak_phase=probe.peak_phase,
    )
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    num_layers = getattr(text, "num_hidden_layers", None)
    max_pos = getattr(text, "max_position_embeddings", None)
    return MeasuredModel(
        name=name, model_type=str(raw.get("model_type")), architecture=cls.__name__, source=source, config_sha256=config_sha256,
        transformers_version=transformers.__version__, torch_version=torch.__version__, dtype=dtype,
        max_position_embeddings=max_pos if isinstance(max_pos, int) and max_pos >= 1 else None,
        num_layers=num_layers if isinstance(num_layers, int) and num_layers >= 0 else len(layers),
        components=components, buffer_bytes=buffer_bytes, cache_layers=layers, activations=acts,
        elapsed_s=time.perf_counter() - start,
        notes=dtype_note(raw.get("torch_dtype"), raw.get("dtype")) if dtype == "bf16" else (),
    )


def _cache_layers(model: Any, where: str) -> tuple[MeasuredCacheLayer, ...]:
    """Each cache layer from three short forwards: (batch 1, C1), (1, C2), (2, C1)."""
    import transformers

    c1, c2 = _CONTEXTS
    try:
        b11, cache = _census(model, 1, c1)
        windows = [w for layer in cache.layers if isinstance(w := getattr(layer, "sliding_window", None), int)]
        while windows and c2 > min(windows) and c1 > 1:
            c1, c2 = c1 // 2, c2 // 2
            b11, cache = _census(model, 1, c1)
        if c1 < 2 or (windows and c2 > min(windows)):
            raise InputError(f"{where}: a sliding window of {min(windows)} tokens is too short to measure; refusing")
        b12, _ = _census(model, 1, c2)
        b21, _ = _census(model, 2, c1)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a forward transformers cannot run on meta
        raise InputError(f"{where}: transformers {transformers.__version__} could not run {clean(model.config.model_type)!r} on "
                         f"the meta device ({type(exc).__name__}: {shorten(clean(exc), 160)})") from None
    if not (len(b11) == len(b12) == len(b21)):
        raise InputError(f"{where}: the cache's layers change with context; refusing rather than guessing")
    return tuple(_solve(i, layer, b11[i], b12[i], b21[i], c1, c2, where) for i, layer in enumerate(cache.layers))


def meta_counts(raw: dict[str, Any], ctx_tokens: int, batch_size: int = 1, dtype: DtypeName = "bf16") -> tuple[str, int, int]:
    """(class built, sum(p.numel()), cache storage bytes after a prefill of ctx_tokens - 1 and one decode step) of the
    model transformers builds from `raw` on the meta device: the referee of benchmarks/families_table.py."""
    model, cls = _build(raw, dtype, "config")
    per_layer, _ = _census(model, batch_size, ctx_tokens)
    return cls.__name__, sum(p.numel() for p in model.parameters()), sum(per_layer)
