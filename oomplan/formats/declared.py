"""Declared quantisation: a checkpoint's `quantization_config` as the format each component is shipped in.

Read here (not in a family) because it is the same for every architecture; families pass the dict in.
What is read, and from where:
  * fp8 (transformers FineGrainedFP8 / DeepSeek-V3 / Qwen3 FP8): `weight_block_size` [b, b] -> fp8-block (fp32
    weight_scale_inv per block, also with `scale_fmt: ue8m0`: vLLM loads those scales as fp32,
    vllm-project/vllm@0071b24bf8fe8c3d1bc3516d0ff8477f07964aaf:vllm/model_executor/layers/quantization/fp8.py
    create_weights), else per-tensor fp8; `modules_to_not_convert` / `ignored_layers` stay 16-bit.
  * compressed-tensors: each `config_groups` entry's `weights` (type, num_bits, strategy, group_size,
    block_structure, symmetric) and `targets`; `ignore` (names or `re:` regexes) stays 16-bit.
  * awq / gptq (bits 4, group_size; GPTQ always stores g_idx; `lm_head: true` quantises the head),
    bitsandbytes (load_in_8bit -> int8, load_in_4bit nf4 with double quant -> nf4; `llm_int8_skip_modules`).
  * mxfp4 (gpt-oss): MoE experts only; vLLM and transformers keep other linears unquantised
    (vllm-project/vllm@007d50058a06dec0f82472d63c819244d460c40d:vllm/model_executor/layers/quantization/mxfp4.py).
  * modelopt: quant_algo NVFP4 (group_size 16) or FP8; `exclude_modules` / `ignore`. ModelOpt <= 0.29 writes it to a
    separate hf_quant_config.json ({"producer": {"name": "modelopt"}, "quantization": {...}}); oomplan/profiles.py
    read_hf_quant_config merges its `quantization` here when config.json has no quantization_config.
Anything else is refused with the field named: a checkpoint is never priced in a format it is not in.
Embeddings are never nn.Linear, so no method quantises them; lm_head stays 16-bit unless a method says
otherwise (transformers' quantizers add the output embedding to modules_to_not_convert).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from oomplan.errors import InputError
from oomplan.specs.base import Strict

# Components a checkpoint's linear layers belong to (norms and biases are never quantised). HF-style methods
# (fp8, bitsandbytes, awq/gptq, modelopt) leave the MoE router 16-bit: in transformers it is not an nn.Linear
# (DeepSeek MoEGate, Qwen3/Mixtral top-k routers), and the checkpoints ship it 16-bit; compressed-tensors
# quantises it unless `ignore` names it (vLLM builds it as a ReplicatedLinear).
LINEAR_COMPONENTS = ("attention", "mlp", "experts", "router", "lm_head")
HF_QUANTISED = ("attention", "mlp", "experts", "lm_head")
FIELD = "quantization_config"
MATCH_STYLES = ("compressed-tensors", "modelopt", "transformers")  # how each library matches exclusions: see excluded()


# Where checkpoints declare a quantisation in config.json: `quantization_config` (transformers, every HF quantiser),
# `compression_config` (compressed-tensors before it was renamed), `quantization` (MLX: {"group_size", "bits"}, written by
# mlx-lm beside or instead of quantization_config). Multimodal wrappers nest them in a sub-config (Kimi-K2.5's
# text_config.quantization_config holds its int4 experts).
DECLARING_KEYS = (FIELD, "compression_config", "quantization")


def declaring_fields(raw: Any) -> list[str]:
    """The dotted paths of `raw` (a config.json object) that declare a quantisation: a DECLARING_KEYS entry holding a
    non-empty object, at the top level or in a sub-config (any object-valued key, e.g. text_config)."""
    if not isinstance(raw, dict):
        return []
    found = [k for k in DECLARING_KEYS if isinstance(raw.get(k), dict) and raw[k]]
    for key, value in raw.items():
        if isinstance(value, dict) and key not in DECLARING_KEYS:
            found += [f"{key}.{k}" for k in DECLARING_KEYS if isinstance(value.get(k), dict) and value[k]]
    return found


class DeclaredWeights(Strict):
    """The formats a checkpoint ships its weight matrices in, per component (absent: the dense dtype)."""

    method: str = Field(description="quantization_config.quant_method")
    component_weights: dict[str, str]
    group_size: int = Field(default=128, ge=16, le=4096, description="AWQ/GPTQ group, fp8 block edge")
    description: str
    kept_modules: tuple[str, ...] = Field(default=(), description="exclusion entries naming part of a component, matched "
                                          "module by module (oomplan/memory/module_formats.py)")
    kept_field: str = Field(default="", description="the quantization_config field kept_modules came from")
    match: str = Field(default="transformers", description="how kept_modules match module names: " + ", ".join(MATCH_STYLES))
    input_scales: tuple[str, ...] = Field(default=(), description="formats whose every quantised matrix also ships a static "
                                          "fp32 input_scale (activation scheme static, per tensor)")
    module_formats: tuple[tuple[str, str], ...] = Field(default=(), description="(module entry, format) in the priority order of "
                                                         "the library that reads them: the first entry naming a matrix's module gives "
                                                         "its format, over its component's (oomplan/memory/module_formats.py)")
    module_field: str = Field(default="", description="the quantization_config field module_formats came from")
    vision_weights: str | None = Field(default=None, description="the format of the vision tower's nn.Linear weights, where the "
                                       "method quantises the tower (its exclusions name no vision module)")
    module_match: str = Field(default="exact", description="how module_formats entries match: compressed-tensors (exact or re:) or exact")
    kv_cache_dtype: str | None = Field(default=None, description="the KV cache format the checkpoint declares (its k/v scales "
                                       "are shipped: one fp32 each per attention layer)")
    kv_cache_field: str = ""
    kv_cache_default: bool = Field(default=False, description="engines store the KV cache so by default (vLLM resolves "
                                   "--kv-cache-dtype auto to a ModelOpt checkpoint's kv_cache_quant_algo)")

    def __hash__(self) -> int:
        return hash((self.method, tuple(sorted(self.component_weights.items())), self.group_size, self.kept_modules, self.match,
                     self.module_formats, self.module_match, self.vision_weights, self.input_scales, self.kv_cache_dtype,
                     self.kv_cache_default))

    @property
    def formats(self) -> tuple[str, ...]:
        """Every quantised format the checkpoint declares, per component and module by module."""
        return tuple(dict.fromkeys(tuple(self.component_weights.values()) + tuple(f for _, f in self.module_formats)
                                   + ((self.vision_weights,) if self.vision_weights else ())))


@dataclass(frozen=True)
class Layers:
    """The decoder layers a checkpoint's module patterns can name: all of them, and those with experts and a router."""

    num_layers: int
    moe_layers: frozenset[int]
    vision: bool = False  # a multimodal wrapper: a vision tower and projector besides the decoder
    vision_linears: bool = False  # its tower is priced nn.Linear by nn.Linear (Qwen2.5-VL, Qwen3-VL / Qwen3.5: one root, `visual`)

    def having(self, component: str) -> set[int]:
        return set(self.moe_layers) if component in ("experts", "router") else set(range(self.num_layers))


def _refuse(where: str, field: str, value: Any, accepted: str) -> InputError:
    return InputError(f"{where}: {FIELD}.{field} = {value!r} is not priced; accepted: {accepted}")


# The module a pattern ends at -> the components whose every matrix it names (transformers module names).
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"(^|\.)lm_head$", ("lm_head",)),
    (r"(^|\.)(embed_tokens|wte|embed)$", ("embedding",)),
    (r"(^|\.)(self_attn|attn|attention)$", ("attention",)),
    (r"(^|\.)(router|gate)$", ("router",)),
    (r"(^|\.)experts$", ("experts",)),
    (r"(^|\.)(mlp|block_sparse_moe|feed_forward)$", ("mlp", "experts", "router")),
    # a bias vector names no matrix (biases are never quantised): MiniMax-M2's router correction bias, an
    # nn.Buffer of MiniMaxM2SparseMoeBlock (transformers 5.24 models/minimax_m2/modeling_minimax_m2.py)
    (r"(^|\.)e_score_correction_bias$", ()),
    # norms (and their biases) are never quantised either: GLM-5-FP8 lists every layer's layernorms
    (r"(^|\.)\w*norm(\.(weight|bias))?$", ()),
    # the DSA indexer's per-head weights_proj (GLM-5's checkpoint: indexers_proj) is priced in the model dtype
    # always (oomplan/memory/params.py _indexer: not quantizable), so keeping it 16-bit changes nothing
    (r"(^|\.)(indexers_proj|weights_proj)$", ()),
    # a multimodal wrapper's vision tower and projector are priced in the model dtype always (memory/weights.py: the
    # vision component has no quantised format), so keeping them 16-bit changes nothing; in a text-only checkpoint of
    # the same release (Devstral 2 123B, Ministral3ForCausalLM) they name nothing at all
    (r"(^|\.)(vision_tower|multi_modal_projector)$", ()),
)
_LAYER = re.compile(r"layers\.(\d+)\.")


def _pattern_text(entry: str) -> str:
    """A name, glob or `re:` regex reduced to the dotted module path it names ('*' and regex syntax dropped)."""
    text = entry[3:] if entry.startswith("re:") else entry
    text = text.replace(r"\.", ".").replace(".*", "*").replace("$", "").replace("^", "")
    return re.sub(r"\*+", "*", text).removesuffix(".*").removesuffix("*").rstrip(".")


MAX_PATTERN_CHARS = 1024  # module names are a few dozen characters; a longer pattern is not a module name
MAX_PATTERNS = 100_000
# How each library matches its exclusion entries against module names (oomplan/memory/module_formats.py applies them):
#  * compressed-tensors (`ignore`): "re:<regex>" is re.match (anchored at the start only), anything else the exact name
#    (vllm-project/compressed-tensors@0186d7ae2fe969fbfc5934ba1cf9896e6a6fda65:src/compressed_tensors/utils/match.py match_name);
#  * modelopt (`exclude_modules` / `ignore`): the exact name, a substring of it (also with "language_model." removed),
#    or fnmatch (vllm-project/vllm@00155cdecca722d98e34234c3d172725b7720b7d:vllm/model_executor/layers/quantization/modelopt.py
#    ModelOptQuantConfigBase.is_layer_excluded);
#  * transformers (`modules_to_not_convert`, `llm_int8_skip_modules`, fp8 `ignored_layers`): the entry as a regex matched
#    from the start up to a module boundary, or a suffix of the name (transformers 5.24 quantizers/quantizers_utils.py
#    should_convert_module).


def check_pattern(entry: Any, style: str, where: str, field: str) -> str:
    """One exclusion entry, validated so matching cannot fail later: a string of at most MAX_PATTERN_CHARS, whose regex
    (compressed-tensors `re:`, every transformers entry) compiles. Refused with exit 2 naming the field otherwise."""
    if not isinstance(entry, str):
        raise InputError(f"{where}: {FIELD}.{field} entries must be module names or patterns (strings), got {type(entry).__name__}")
    if len(entry) > MAX_PATTERN_CHARS:
        raise InputError(f"{where}: {FIELD}.{field} has an entry of {len(entry):,} characters; accepted: module names or "
                         f"patterns of at most {MAX_PATTERN_CHARS} characters")
    regex = entry[3:] if style == "compressed-tensors" and entry.startswith("re:") else entry if style == "transformers" else None
    if regex is not None:
        try:
            re.compile(regex)
        except (re.error, RecursionError, OverflowError) as exc:
            raise InputError(f"{where}: {FIELD}.{field} entry {entry[:80]!r} is not a regular expression that compiles "
                             f"({str(exc).split(' at position')[0]}); accepted: module names or valid patterns") from None
    return entry


def excluded(entries: list[Any], layers: Layers, where: str, field: str, style: str) -> tuple[set[str], tuple[str, ...]]:
    """Entries that keep modules 16-bit -> (the components they keep 16-bit whole, the entries that name only part of a
    component: some projections, some layers). The second are matched module by module against the model's own module
    names when it is priced (oomplan/memory/module_formats.py), with `style`'s semantics. A pattern in a layer past the
    decoder's last (a checkpoint's MTP / next-n layer, e.g. GLM-5's layer 78: not built for generation) names nothing priced."""
    if len(entries) > MAX_PATTERNS:
        raise InputError(f"{where}: {FIELD}.{field} has {len(entries):,} entries; accepted: at most {MAX_PATTERNS:,}")
    out: set[str] = set()
    partial: list[str] = []
    per_layer: dict[str, dict[int, list[str]]] = {}
    for entry in entries:
        entry = check_pattern(entry, style, where, field)
        text = _pattern_text(entry)
        layer = _LAYER.search(text)
        if layer and int(layer.group(1)) >= layers.num_layers:
            continue
        comps = next((c for key, c in _KEYWORDS if re.search(key, text)), None)
        if comps is None:
            partial.append(entry)
        elif layer:  # one layer's module: collect, a component counts once every layer is named
            for c in comps:
                per_layer.setdefault(c, {}).setdefault(int(layer.group(1)), []).append(entry)
        else:
            out.update(comps)
    for c, named in per_layer.items():
        if c in out:
            continue
        if layers.having(c) <= set(named):  # naming a layer that lacks the component (a dense layer's router) changes nothing
            out.add(c)
        else:
            partial += [e for es in named.values() for e in es]
    return out, tuple(dict.fromkeys(partial))


# an exclusion entry naming a vision tower or projector (Qwen2.5-VL `visual`, Gemma 3 / Mistral 3 `vision_tower`,
# Llama 4 `vision_model`, `multi_modal_projector`)
_VISION = re.compile(r"vision|visual|multi_modal_projector|mm_projector")


_TOWER_ROOTS = ("visual", "vision_tower", "vision_model", "multi_modal_projector", "mm_projector")


def _vision_format(entries: list[Any], layers: Layers, where: str, field: str, method: str, fmt: str | None) -> str | None:
    """The format a method that quantises every nn.Linear not excluded (transformers fp8 and bitsandbytes, compressed-tensors
    `targets: [Linear]`) ships a multimodal checkpoint's vision tower in: None where its exclusions name a vision module
    (the tower kept 16-bit), else `fmt`, the tower's linears priced in it, for towers priced nn.Linear by nn.Linear
    (Layers.vision_linears). Refused, naming the field, where the tower is quantised and is not priced so (other towers, or
    `fmt` None: the caller cannot tell which of its linears are quantised), and where an exclusion names only part of a
    tower priced per linear ("visual.merger"). (ModelOpt needs no entry: vLLM keeps vision_tower / vision_model / visual
    unquantised whatever the list says, ModelOptQuantConfigBase.get_quant_method in the modelopt.py cited above.)"""
    if not layers.vision:
        return None
    named = [e for e in entries if isinstance(e, str) and _VISION.search(e)]
    if named:
        part = next((e for e in named if _pattern_text(e).split(".")[-1].lstrip("*") not in _TOWER_ROOTS), None)
        if layers.vision_linears and part is not None:
            raise InputError(f"{where}: {FIELD}.{field} entry {part[:120]!r} keeps part of the vision tower 16-bit; oomplan prices "
                             "the tower either quantised whole or 16-bit whole (e.g. \"re:visual.*\" or \"model.visual\"), refused rather than guessed")
        return None
    if layers.vision_linears and fmt is not None:
        return fmt
    raise InputError(f"{where}: {FIELD}.{field} names no vision module, so this {method} checkpoint quantises its vision "
                     "tower too; oomplan prices this tower 16-bit only, refused rather than guessed "
                     "(a checkpoint that keeps it 16-bit lists it, e.g. \"re:visual.*\" or \"model.vision_tower\")")


def _formats_for(fmt: str, quantised: tuple[str, ...], ignored: set[str]) -> dict[str, str]:
    return {c: fmt for c in quantised if c not in ignored}


def _list(qc: dict[str, Any], *keys: str) -> tuple[str, list[Any]]:
    for k in keys:
        if qc.get(k) is not None:
            value = qc[k]
            return k, list(value) if isinstance(value, (list, tuple)) else [value]
    return keys[0], []


def _fp8(qc: dict[str, Any], layers: Layers, where: str) -> DeclaredWeights:
    field, entries = _list(qc, "modules_to_not_convert", "ignored_layers")
    ignored, kept = excluded(entries, layers, where, field, "transformers")
    ignored.add("lm_head")
    block = qc.get("weight_block_size")
    if block is None:
        # activation_scheme static: one fp32 input_scale per linear besides its weight_scale (vLLM Fp8LinearMethod.create_weights,
        # vllm-project/vllm@0071b24bf8fe8c3d1bc3516d0ff8477f07964aaf:vllm/model_executor/layers/quantization/fp8.py)
        static = qc.get("activation_scheme") == "static"
        return DeclaredWeights(method="fp8", component_weights=_formats_for("fp8", HF_QUANTISED, ignored), kept_modules=kept, kept_field=field,
                               input_scales=("fp8",) if static else (), vision_weights=_vision_format(entries, layers, where, field, "fp8", "fp8"),
                               description="fp8 e4m3, one fp32 scale per tensor" + (", static fp32 input scales" if static else ""))
    if not (isinstance(block, list) and len(block) == 2 and block[0] == block[1] and isinstance(block[0], int) and 16 <= block[0] <= 4096):
        raise _refuse(where, "weight_block_size", block, "[b, b] with 16 <= b <= 4096")
    scales = qc.get("scale_fmt") or "fp32"
    return DeclaredWeights(method="fp8", component_weights=_formats_for("fp8-block", HF_QUANTISED, ignored), group_size=block[0],
                           kept_modules=kept, kept_field=field, vision_weights=_vision_format(entries, layers, where, field, "fp8", "fp8-block"),
                           description=f"fp8 e4m3 in {block[0]}x{block[0]} blocks ({scales} scales, loaded as fp32)")


def _int4(method: str, qc: dict[str, Any], layers: Layers, where: str) -> DeclaredWeights:
    bits, group = qc.get("bits", qc.get("w_bit")), qc.get("group_size", qc.get("q_group_size"))
    if bits != 4:
        raise _refuse(where, "bits", bits, "4")
    if not isinstance(group, int) or not 16 <= group <= 4096:
        raise _refuse(where, "group_size", group, "16..4096 (per-channel -1 is not priced)")
    field, entries = _list(qc, "modules_to_not_convert")
    ignored, kept = excluded(entries, layers, where, field, "transformers")
    if not qc.get("lm_head"):
        ignored.add("lm_head")
    return DeclaredWeights(method=method, component_weights=_formats_for(method, HF_QUANTISED, ignored), group_size=group,
                           kept_modules=kept, kept_field=field, description=f"int4 {method.upper()}, group {group}")


def _bitsandbytes(qc: dict[str, Any], layers: Layers, where: str) -> DeclaredWeights:
    field, entries = _list(qc, "llm_int8_skip_modules", "modules_to_not_convert")
    ignored, kept = excluded(entries, layers, where, field, "transformers")
    ignored.add("lm_head")
    if qc.get("load_in_8bit"):
        return DeclaredWeights(method="bitsandbytes", component_weights=_formats_for("int8", HF_QUANTISED, ignored),
                               vision_weights=_vision_format(entries, layers, where, field, "bitsandbytes", "int8"),
                               kept_modules=kept, kept_field=field, description="bitsandbytes LLM.int8")
    if qc.get("load_in_4bit"):
        if qc.get("bnb_4bit_quant_type", "fp4") != "nf4":
            raise _refuse(where, "bnb_4bit_quant_type", qc.get("bnb_4bit_quant_type", "fp4"), "nf4")
        if not qc.get("bnb_4bit_use_double_quant"):
            raise _refuse(where, "bnb_4bit_use_double_quant", qc.get("bnb_4bit_use_double_quant"), "true (nf4 with double quantisation)")
        return DeclaredWeights(method="bitsandbytes", component_weights=_formats_for("nf4", HF_QUANTISED, ignored),
                               vision_weights=_vision_format(entries, layers, where, field, "bitsandbytes", "nf4"), kept_modules=kept, kept_field=field, description="bitsandbytes nf4, double quantisation")
    raise _refuse(where, "load_in_4bit", qc.get("load_in_4bit"), "load_in_4bit or load_in_8bit true")


def _mxfp4(qc: dict[str, Any], layers: Layers, where: str) -> DeclaredWeights:
    field, entries = _list(qc, "modules_to_not_convert")
    ignored, kept = excluded(entries, layers, where, field, "transformers")
    return DeclaredWeights(method="mxfp4", component_weights=_formats_for("mxfp4", ("experts",), ignored), kept_modules=kept, kept_field=field,
                           description="MXFP4 experts (32-element blocks, e8m0 scales), other weights 16-bit")


MODELOPT_ALGOS = "NVFP4, FP8, MIXED_PRECISION"


def modelopt_priced(algo: Any) -> bool:
    """A ModelOpt quant_algo oomplan prices (NVFP4 and its variants, FP8, MIXED_PRECISION per module); others (W4A8_AWQ, INT8_SQ, ...) are refused."""
    return isinstance(algo, str) and (algo.upper().startswith("NVFP4") or algo.upper() in ("FP8", "MIXED_PRECISION"))


# ModelOpt MIXED_PRECISION: each quantized_layers entry's quant_algo -> its format. FP8 (ModelOptFp8Config: weight_scale and a
# static input_scale per linear), NVFP4 (W4A4: weight_scale_2 and input_scale) and W4A16_NVFP4 (weight-only: weight_scale_2, no
# input_scale) are the sub-configs vLLM builds (ModelOptMixedPrecisionConfig._from_config, as in
# local-inference-lab/vllm@08fe538f66e30856658ddc4d66859219c8a6285c:vllm/model_executor/layers/quantization/modelopt.py);
# its MXFP8 and block-FP8 MoE entries are not priced.
MIXED_ALGOS = {"FP8": "fp8", "NVFP4": "nvfp4", "W4A16_NVFP4": "nvfp4-a16"}


def _modelopt_mixed(qc: dict[str, Any], layers: Layers, where: str, field: str, ignored: set[str],
                    kept: tuple[str, ...]) -> DeclaredWeights:
    """quant_algo MIXED_PRECISION: `quantized_layers` maps module names to {quant_algo, group_size}. vLLM gives a linear
    the algo of its exact name (or, for the text decoder of a multimodal wrapper, its name under the other of
    model.language_model. / language_model.model.; lm_head also as plain `lm_head`), and leaves every linear not listed
    unquantised (UnquantizedLinearMethod); exclude_modules wins over both (get_quant_method, the file cited above)."""
    table = qc.get("quantized_layers")
    if not isinstance(table, dict) or not table:
        raise _refuse(where, "quantized_layers", type(table).__name__ if table is not None else None,
                      "a non-empty mapping of module names to {quant_algo, group_size} (quant_algo MIXED_PRECISION)")
    if len(table) > MAX_PATTERNS:
        raise InputError(f"{where}: {FIELD}.quantized_layers has {len(table):,} entries; accepted: at most {MAX_PATTERNS:,}")
    rules: list[tuple[str, str]] = []
    components: dict[str, str] = {}
    for name, info in table.items():
        name = check_pattern(name, "exact", where, "quantized_layers")
        at = f"quantized_layers[{name[:80]!r}]"
        algo = info.get("quant_algo") if isinstance(info, dict) else None
        fmt = MIXED_ALGOS.get(algo.upper()) if isinstance(algo, str) else None
        if fmt is None:
            raise _refuse(where, at + ".quant_algo", algo if isinstance(algo, (str, int, float, type(None))) else type(algo).__name__,
                          ", ".join(MIXED_ALGOS))
        if fmt != "fp8" and info.get("group_size", 16) != 16:
            raise _refuse(where, at + ".group_size", info.get("group_size"), "16 (NVFP4)")
        if _VISION.search(name):
            raise InputError(f"{where}: {FIELD}.{at} quantises a vision-tower module ({algo}); oomplan prices vision towers in "
                             "the model dtype only, refused rather than guessed")
        if re.search(r"(^|\.)lm_head$", name):
            if "lm_head" not in ignored:
                components["lm_head"] = fmt
            continue
        if re.search(r"(^|\.)(embed_tokens|wte|embed)$", name):
            raise InputError(f"{where}: {FIELD}.{at} names the token embedding, which no ModelOpt format quantises "
                             "(not a linear layer); refused rather than guessed")
        layer = _LAYER.search(name)
        if layer and int(layer.group(1)) >= layers.num_layers:
            continue  # an MTP / next-n layer past the decoder: not built for generation
        rules.append((name, fmt))
    fmts = sorted(set(components.values()) | {f for _, f in rules})
    return DeclaredWeights(method="modelopt", component_weights=components, kept_modules=kept, kept_field=field, match="modelopt",
                           module_formats=tuple(rules), module_field="quantized_layers", module_match="exact",
                           input_scales=("fp8",) if "fp8" in fmts else (),
                           description=f"ModelOpt MIXED_PRECISION, per module ({', '.join(fmts)}; modules not listed 16-bit)")


def _modelopt(qc: dict[str, Any], layers: Layers, where: str) -> DeclaredWeights:
    algo = str(qc.get("quant_algo", "")).upper()
    field, entries = _list(qc, "exclude_modules", "ignore")
    ignored, kept = excluded(entries, layers, where, field, "modelopt")
    if algo == "MIXED_PRECISION":
        return _modelopt_mixed(qc, layers, where, field, ignored, kept)
    if algo.startswith("NVFP4"):
        if qc.get("group_size", 16) != 16:
            raise _refuse(where, "group_size", qc.get("group_size"), "16")
        return DeclaredWeights(method="modelopt", component_weights=_formats_for("nvfp4", HF_QUANTISED, ignored), kept_modules=kept, kept_field=field,
                               match="modelopt", description="NVFP4 (16-element blocks, e4m3 scales, fp32 global scale)")
    if algo == "FP8":
        # ModelOptFp8LinearMethod: weight_scale and a static input_scale, one fp32 each per linear (vllm-project/vllm@
        # 00155cdecca722d98e34234c3d172725b7720b7d:vllm/model_executor/layers/quantization/modelopt.py create_weights)
        return DeclaredWeights(method="modelopt", component_weights=_formats_for("fp8", HF_QUANTISED, ignored), kept_modules=kept, kept_field=field,
                               match="modelopt", input_scales=("fp8",), description="fp8 e4m3, one fp32 weight and input scale per tensor")
    raise _refuse(where, "quant_algo", qc.get("quant_algo"), MODELOPT_ALGOS)


def _ct_format(w: dict[str, Any], where: str, group: str) -> tuple[str, int]:
    """One compressed-tensors weights scheme -> (format, group size)."""
    kind, bits, strategy = w.get("type"), w.get("num_bits"), w.get("strategy")
    size = w.get("group_size")
    at = f"config_groups.{group}.weights"
    if kind == "float" and bits == 8:
        if strategy == "tensor":
            return "fp8", 128
        if strategy == "channel":
            return "fp8-channel", 128
        if strategy == "block":
            block = w.get("block_structure")
            if isinstance(block, list) and len(block) == 2 and block[0] == block[1] and isinstance(block[0], int) and 16 <= block[0] <= 4096:
                return "fp8-block", block[0]
            raise _refuse(where, at + ".block_structure", block, "[b, b]")
    if kind == "float" and bits == 4 and strategy in ("group", "tensor_group"):
        if size == 16:
            return "nvfp4", 128
        if size == 32:
            return "mxfp4", 128
    if kind == "int" and bits == 8 and strategy == "channel":
        return "int8", 128
    if kind == "int" and bits == 4 and strategy == "group" and isinstance(size, int) and 16 <= size <= 4096:
        if not w.get("symmetric", True):
            raise _refuse(where, at + ".symmetric", False, "true (asymmetric int4 zero points are not priced)")
        return "w4a16", size
    raise _refuse(where, at, {k: w.get(k) for k in ("type", "num_bits", "strategy", "group_size")},
                  "float 8-bit tensor/channel/block, float 4-bit group 16 (nvfp4) or 32 (mxfp4), int 8-bit channel, int 4-bit group")


def _compressed_tensors(qc: dict[str, Any], layers: Layers, where: str) -> DeclaredWeights:
    """Each config_groups entry's scheme applies to the modules its `targets` name: the class name Linear (every linear
    layer), exact module names and `re:` regexes. Where a module matches several, compressed-tensors takes exact names
    first, then regexes (each sorted), class names last, and the first match's scheme (match_targets and
    _scheme_from_targets, vllm-project/compressed-tensors@018ef5d0b143f1e677d0d5f581e1af3ee565f612:
    src/compressed_tensors/quantization/lifecycle/apply.py; vLLM's find_matched_target keeps the same order); a target
    listed by two groups takes the later (target_to_scheme is built in group order); `ignore` wins over every target
    (match_named_modules). Module-name targets are matched module by module (DeclaredWeights.module_formats), Linear is the
    format of every component."""
    groups = qc.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise _refuse(where, "config_groups", groups, "one or more quantisation groups")
    field, entries = _list(qc, "ignore")
    ignored, kept = excluded(entries, layers, where, field, "compressed-tensors")
    linear: str | None = None
    sizes: set[int] = set()
    static: set[str] = set()
    by_target: dict[str, str] = {}  # a module-name target -> its group's format
    regexes = False
    for name, g in groups.items():
        w = (g or {}).get("weights") if isinstance(g, dict) or g is None else None
        if not isinstance(w, dict):
            raise _refuse(where, f"config_groups.{name}.weights", w if not isinstance(w, (dict, list)) else type(w).__name__, "a weights scheme")
        fmt, size = _ct_format(w, where, name)
        acts = g.get("input_activations")
        # static per-tensor fp8 activations: one fp32 input_scale per linear (vLLM CompressedTensorsW8A8Fp8.create_weights,
        # vllm/model_executor/layers/quantization/compressed_tensors/schemes/compressed_tensors_w8a8_fp8.py); NVFP4's
        # input_global_scale is part of the nvfp4 layout already
        if (fmt.startswith("fp8") and isinstance(acts, dict) and acts.get("dynamic") is False
                and acts.get("strategy", "tensor") == "tensor"):
            static.add(fmt)
        at = f"config_groups.{name}.targets"
        targets = g.get("targets") or []
        if not isinstance(targets, list):
            raise _refuse(where, at, type(targets).__name__, "a list of module names, re: regexes or Linear")
        named = [check_pattern(t, "compressed-tensors", where, at) for t in targets if t != "Linear"]
        vision = next((t for t in named if _VISION.search(t)), None)
        if vision is not None:
            raise InputError(f"{where}: {FIELD}.{at} entry {vision[:120]!r} quantises a vision-tower module; oomplan prices vision "
                             "towers in the model dtype only, refused rather than guessed")
        regexes = regexes or any(t.startswith("re:") for t in named)  # a regex may name the tower's linears too
        if "Linear" in targets:
            linear = fmt
        for t in named:
            layer = _LAYER.search(_pattern_text(t))
            if not (layer and int(layer.group(1)) >= layers.num_layers):  # an MTP layer past the decoder names nothing built
                by_target[t] = fmt
        if fmt in ("w4a16", "fp8-block"):
            sizes.add(size)
    if len(sizes) > 1:
        raise _refuse(where, "config_groups", sorted(sizes), "one group/block size across groups")
    # the tower's linears take the Linear group's format; which a regex target names is not priced (refused unless kept)
    vision = _vision_format(entries, layers, where, field, "compressed-tensors", None if regexes else linear) if (
        linear is not None or regexes) else None
    out = {c: linear for c in LINEAR_COMPONENTS if c not in ignored} if linear is not None else {}
    rules = tuple(sorted(by_target.items(), key=lambda kv: ("re:" in kv[0], kv[0])))
    head = next((f for t, f in rules if (re.match(t[3:], "lm_head") if t.startswith("re:") else t == "lm_head")), None)
    if head is not None and "lm_head" not in ignored:
        out["lm_head"] = head
    fmts = ", ".join(sorted(set(out.values()) | {f for _, f in rules}))
    return DeclaredWeights(method="compressed-tensors", component_weights=out, group_size=sizes.pop() if sizes else 128,
                           kept_modules=kept, kept_field=field, match="compressed-tensors", module_formats=rules, vision_weights=vision,
                           module_field="config_groups.*.targets", module_match="compressed-tensors",
                           input_scales=tuple(sorted(static)), description=f"compressed-tensors {qc.get('format', '')} ({fmts})".replace(" ()", ""))


def _kv_scheme(qc: dict[str, Any], method: str, where: str) -> dict[str, Any]:
    """The declared KV cache format: ModelOpt's kv_cache_quant_algo ("FP8") or kv_cache_scheme (a compressed-tensors style
    {"type": "float", "num_bits": 8} or the string "FP8"), compressed-tensors' kv_cache_scheme. ModelOpt's is the KV dtype vLLM
    uses by default (resolve_kv_cache_dtype_string maps 'auto' to it for quant_method modelopt,
    vllm-project/vllm@959009b402c329c7b885afe7d459726db919a41f:vllm/utils/torch_utils.py); compressed-tensors' only with
    --kv-cache-dtype fp8, so it is not the default. Anything else declared is refused naming the field."""
    for key in ("kv_cache_quant_algo", "kv_cache_scheme") if method == "modelopt" else ("kv_cache_scheme",):
        value = qc.get(key)
        if value is None:
            continue
        fp8 = (isinstance(value, str) and value.upper() == "FP8") or (
            isinstance(value, dict) and value.get("type") == "float" and value.get("num_bits") == 8)
        if not fp8:
            raise _refuse(where, key, value if not isinstance(value, dict) else {k: value.get(k) for k in ("type", "num_bits")},
                          "FP8 (8-bit float KV cache) or null")
        return {"kv_cache_dtype": "fp8", "kv_cache_field": key, "kv_cache_default": method == "modelopt"}
    return {}


READERS = {"fp8": _fp8, "mxfp4": _mxfp4, "bitsandbytes": _bitsandbytes, "modelopt": _modelopt,
           "compressed-tensors": _compressed_tensors}


def declared_weights(qc: Any, layers: Layers, where: str) -> DeclaredWeights:
    """A config's quantization_config -> the format of each component as shipped; refuses what it cannot price."""
    if not isinstance(qc, dict):
        raise InputError(f"{where}: {FIELD} must be an object, got {type(qc).__name__}")
    method = qc.get("quant_method")
    if method in ("awq", "gptq"):
        return _int4(method, qc, layers, where)
    if method in READERS:
        declared = READERS[method](qc, layers, where)
        kv = _kv_scheme(qc, method, where) if method in ("modelopt", "compressed-tensors") else {}
        return declared.model_copy(update=kv) if kv else declared
    accepted = ", ".join(sorted(("awq", "gptq") + tuple(READERS)))
    raise InputError(f"{where}: {FIELD}.quant_method = {method!r} is not priced (never priced as 16-bit); accepted: {accepted}")
