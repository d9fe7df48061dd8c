"""What every family shares: the registry record, common fields, per-layer builders.

No transformers import: the defaults mirror each family's configuration class in transformers
(the file named in each family module) for keys a config.json may omit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping

from oomplan.errors import InputError
from oomplan.text import shorten
from oomplan.families.config import HfConfig
from oomplan.units import finite_or_none
from oomplan.specs.model import LayerAttention, LayerMlp, LayerSpec, MoeSpec, RopeSpec

# a config's torch dtype name -> ours (torch.float is float32 and torch.half float16: getattr(torch, name) in transformers)
DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "float": "fp32", "half": "fp16"}
# the other torch dtype names a config may carry (quantised checkpoints; transformers' "auto"): read as the default, as before
OTHER_TORCH_DTYPES = frozenset({"auto", "float64", "double", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                                "float8_e8m0fnu", "float4_e2m1fn_x2", "int8", "uint8", "int16", "int32", "int64"})
Fields = dict[str, Any]  # ModelSpec keyword arguments, validated by ModelSpec itself
# A builder takes its family's own HfConfig subclass (Family.config); Callable is contravariant in its
# arguments, so the registry can only name that parameter as Any.
Builder = Callable[[Any, str], Fields]


@dataclass(frozen=True)
class Family:
    """One architecture family: the model_types (and wrapper architectures) it reads, and how."""

    name: str
    model_types: tuple[str, ...]
    build: Builder
    source: str  # the transformers files its defaults and structure come from
    architectures: tuple[str, ...] = ()  # wrapper classes that name this family
    notes: tuple[str, ...] = field(default=())
    config: type[HfConfig] = HfConfig  # a family's own keys (and its config class's defaults): an HfConfig subclass
    defaults: Mapping[str, Any] = field(default_factory=dict)  # the config class's values for absent keys
    text_config: bool = False  # a multimodal wrapper: the decoder is described by raw["text_config"]
    text_model_type: str | None = None  # the text config's model_type when the wrapper's text_config omits it
    # set: the wrapper's own tie_word_embeddings (this when absent) ties lm_head, whatever text_config says (Qwen3-VL)
    wrapper_tie_default: bool | None = None
    # a wrapper's vision tower + projector from the raw wrapper config and the text decoder's hidden size
    vision: Callable[[Mapping[str, Any], int, str], Any] | None = None


def require(cfg: HfConfig, where: str, *keys: str) -> None:
    missing = [k for k in keys if getattr(cfg, k) is None]
    if missing:
        raise InputError(f"{where}: missing required field(s) {', '.join(missing)} for model_type {cfg.model_type!r}")


def model_dtype(torch_dtype: object, dtype: object, where: str) -> str:
    """A config's torch_dtype / dtype as oomplan names it ('bfloat16' -> 'bf16'; absent or 'auto': bf16, dtype_note says so).
    A name torch does not have (float7) is a broken config, and a torch dtype that is no model dtype (float64, float8_*,
    int8) is not priced: both refused, never read as bf16."""
    for key, value in (("torch_dtype", torch_dtype), ("dtype", dtype)):
        name = str(value or "bfloat16").replace("torch.", "")
        if name not in DTYPE_NAMES and name not in OTHER_TORCH_DTYPES:
            raise InputError(f"{where}: field {key!r}: {shorten(repr(name), 60)} is not a torch dtype; accepted: {', '.join(DTYPE_NAMES)} "
                             "(or another torch dtype name)")
        if name in OTHER_TORCH_DTYPES and name != "auto":
            raise InputError(f"{where}: field {key!r}: {name!r} is a torch dtype oomplan does not price a model in; accepted: "
                             f"{', '.join(DTYPE_NAMES)} (absent or 'auto': bf16); a quantised checkpoint declares its format in "
                             "quantization_config")
    return dtype_name(torch_dtype or dtype or "bfloat16", "bf16")


def dtype_note(torch_dtype: object, dtype: object) -> tuple[str, ...]:
    """The model dtype is a stand-in when the config declares none (or 'auto': the loader takes the checkpoint's)."""
    if str(torch_dtype or dtype or "auto").replace("torch.", "") != "auto":
        return ()
    return ("the config declares no torch_dtype (nor dtype): the model is priced in bf16, the dtype 2024-26 checkpoints ship; "
            "set torch_dtype in a copy of the config if the checkpoint holds another",)


def dtype_name(torch_name: object, default: str) -> str:
    """'torch.float32' / 'float32' -> 'fp32'; `default` for a name we do not know."""
    return DTYPE_NAMES.get(str(torch_name).replace("torch.", ""), default)


def rope(cfg: HfConfig) -> RopeSpec:
    """rope_scaling is free-form: a string, a list, a factor of "big" or NaN mean no usable scaling (never a crash)."""
    scaling = cfg.rope_scaling if isinstance(cfg.rope_scaling, dict) else {}
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = finite_or_none(scaling.get("factor"))
    original = scaling.get("original_max_position_embeddings")
    return RopeSpec(
        partial_rotary_factor=cfg.partial_rotary_factor or 1.0,
        scaling_type=str(kind)[:40] if isinstance(kind, str) else None,
        scaling_factor=factor if factor is not None and 0 < factor <= 2**20 else None,
        original_max_position_embeddings=original if isinstance(original, int) and not isinstance(original, bool) and 1 <= original <= 2**31 else None,
    )


def dense_layers(num_layers: int, width: int, mlp_kind: str = "gated") -> tuple[LayerSpec, ...]:
    """Every layer full attention with a dense MLP of `width`."""
    layer = LayerSpec(attention=LayerAttention(kind="full"), mlp=LayerMlp(kind=mlp_kind, intermediate_size=width))
    return (layer,) * num_layers


def base_fields(cfg: HfConfig, where: str, tie_default: bool) -> Fields:
    """Fields shared by every family; head_dim explicit when the config gives it."""
    require(cfg, where, "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    assert cfg.num_attention_heads is not None and cfg.hidden_size is not None and cfg.num_hidden_layers is not None
    # transformers 5.24 configuration_utils.py validate_layer_type (a @strict validator) refuses a layer_types list whose length
    # differs from num_hidden_layers (mlp_layer_types is read up to the layers, deepseek.py: a shortened default config keeps it)
    if cfg.layer_types is not None and len(cfg.layer_types) != cfg.num_hidden_layers:
        raise InputError(f"{where}: layer_types has {len(cfg.layer_types)} entries for {cfg.num_hidden_layers} layers (num_hidden_layers); "
                         "transformers refuses a config whose lengths differ")
    num_heads = cfg.num_attention_heads
    head_dim = cfg.head_dim or cfg.hidden_size // num_heads
    width = cfg.intermediate_size or 4 * cfg.hidden_size
    return dict(
        dtype=model_dtype(cfg.torch_dtype, cfg.dtype, where),
        num_layers=cfg.num_hidden_layers,
        hidden_size=cfg.hidden_size,
        vocab_size=cfg.vocab_size,
        num_attention_heads=num_heads,
        num_kv_heads=cfg.num_key_value_heads or num_heads,
        head_dim=head_dim,
        intermediate_size=width,
        max_position_embeddings=cfg.max_position_embeddings or 2048,
        tie_word_embeddings=tie_default if cfg.tie_word_embeddings is None else cfg.tie_word_embeddings,
        rope=rope(cfg),
        layers=dense_layers(cfg.num_hidden_layers, width),
        notes=dtype_note(cfg.torch_dtype, cfg.dtype) + mtp_note(cfg),
    )


def set_attention(f: Fields, kinds: Callable[[int], LayerAttention]) -> None:
    """Replace each layer's attention with kinds(i)."""
    f["layers"] = tuple(layer.model_copy(update={"attention": kinds(i)}) for i, layer in enumerate(f["layers"]))


def set_mlp(f: Fields, mlps: Callable[[int], LayerMlp]) -> None:
    f["layers"] = tuple(layer.model_copy(update={"mlp": mlps(i)}) for i, layer in enumerate(f["layers"]))


def sliding(cfg: HfConfig, where: str, f: Fields, pattern: Callable[[int], bool]) -> None:
    """Mark sliding-window layers: layer_types when given, else pattern(i); none without a window."""
    if not cfg.sliding_window:
        return
    n = f["num_layers"]
    if cfg.layer_types:
        if len(cfg.layer_types) < n:
            raise InputError(f"{where}: layer_types has {len(cfg.layer_types)} entries for {n} layers (num_hidden_layers)")
        flags = [("sliding" in t) for t in cfg.layer_types[:n]]
    else:
        flags = [pattern(i) for i in range(n)]
    window = cfg.sliding_window
    set_attention(f, lambda i: LayerAttention(kind="sliding", window_tokens=window) if flags[i] else f["layers"][i].attention)


def sliding_every(cfg: HfConfig, where: str, f: Fields, pattern: int) -> None:
    """Gemma 3 / EXAONE 4 / OLMo 3 / gpt-oss: without layer_types, layer i slides unless (i + 1) % pattern == 0."""
    sliding(cfg, where, f, lambda i: pattern <= 0 or bool((i + 1) % pattern))


def rope_table_per_layer_type(f: Fields) -> None:
    """Gemma 3 / OLMo 3 (modeling_gemma3.py / modeling_olmo3.py Gemma3TextModel/Olmo3Model.forward, 5.24.0): the rotary
    embedding makes one cos/sin pair per distinct entry of config.layer_types (`position_embeddings[layer_type]`), each
    alive for the whole forward; with sliding and full layers that is two pairs."""
    kinds = {layer.attention.kind for layer in f["layers"]}
    f["rope"] = f["rope"].model_copy(update={"num_tables": max(1, len(kinds))})


def mtp_note(cfg: HfConfig) -> tuple[str, ...]:
    """Multi-token-prediction layers ship in the checkpoint but transformers' *ForCausalLM does not build them."""
    modules = cfg.num_mtp_modules if cfg.use_mtp is not False else 0
    n = cfg.num_nextn_predict_layers or cfg.num_mtp_layers or cfg.mtp_num_hidden_layers or modules or 0
    if not n:
        return ()
    return (f"{n} multi-token-prediction (MTP) layer(s) ship in the checkpoint but are not instantiated for plain "
            "generation (transformers *ForCausalLM; engines load them only for speculative decoding): not counted",)


def sliding_from_max_window_layers(cfg: HfConfig, where: str, f: Fields) -> None:
    """Qwen2/Qwen3: sliding windows only with use_sliding_window, on layers max_window_layers and up."""
    if cfg.use_sliding_window:
        first = cfg.max_window_layers or 0
        sliding(cfg, where, f, lambda i: i >= first)


def moe(f: Fields, layer_indices: tuple[int, ...], **spec: Any) -> None:
    """Routed experts on `layer_indices` (their mlp kind becomes 'moe'); the others keep their dense MLP."""
    chosen = set(layer_indices)
    set_mlp(f, lambda i: LayerMlp(kind="moe") if i in chosen else f["layers"][i].mlp)
    f["moe"] = MoeSpec(moe_layer_indices=tuple(sorted(chosen)), **spec)


def qwen_style_moe(cfg: HfConfig, where: str, f: Fields, **spec: Any) -> None:
    """Qwen2/3-MoE style: num_experts of moe_intermediate_size, top num_experts_per_tok, on the
    decoder_sparse_step layers that are not mlp_only_layers; routing weights in the hidden dtype."""
    require(cfg, where, "num_experts", "num_experts_per_tok", "moe_intermediate_size")
    moe(f, sparse_layers(f["num_layers"], cfg.decoder_sparse_step or 1, cfg.mlp_only_layers or []),
        num_experts=cfg.num_experts, num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=cfg.moe_intermediate_size, routing_weights_fp32=False, **spec)


def sparse_layers(num_layers: int, step: int, dense_only: list[int]) -> tuple[int, ...]:
    # modeling_qwen3_moe.py: a layer is sparse when (i + 1) % decoder_sparse_step == 0
    return tuple(i for i in range(num_layers) if i not in dense_only and (i + 1) % step == 0)
