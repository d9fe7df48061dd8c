"""Per-module formats of a declared checkpoint: which weight matrices an exclusion list keeps 16-bit module by module, and
which a module entry gives a format of its own (ModelOpt MIXED_PRECISION quantized_layers, compressed-tensors targets naming
single modules: DeclaredWeights.module_formats, first match in the library's order, oomplan/formats/declared.py).

A checkpoint's quantization_config may keep single projections or single layers unquantised (ModelOpt's DeepSeek-R1
NVFP4 export lists each layer's MLA projections; compressed-tensors `ignore` lists layers one by one). Entries that name a
whole component are priced per component (oomplan/formats/declared.py); the rest (DeclaredWeights.kept_modules) are
matched here against the model's own module names, with the semantics of the library that wrote them (MATCH_STYLES in
oomplan/formats/declared.py, each cited there), and each matrix is priced in the format of the module that owns it.

Module names are the Hugging Face checkpoint's: `<prefix>layers.<i>.<block>.<projection>`, with the prefixes the
text decoder has in a causal LM (model.), a transformers 5 multimodal wrapper (model.language_model.), an older one
(language_model.model.) and Mamba-style backbones (backbone.); the block names come from the family (ModelSpec.module_naming,
oomplan/families/module_naming.py).
Routed experts are `<block>.experts.<j>.<projection>` per expert (or `<block>.experts`, one module, where the checkpoint
stores them fused); a list keeping some experts of a layer 16-bit and others not is refused (engines build one fused MoE
per layer). An entry that names no module of the model, and is not recognisably outside the text decoder (a vision tower,
projector, MTP layer, a layer past the decoder's last), is refused: its module naming is not one oomplan knows, and pricing it quantised would be a guess.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import translate
from functools import lru_cache

from oomplan.errors import InputError
from oomplan.formats.declared import FIELD
from oomplan.memory.params import TensorGroup, inventory
from oomplan.specs.model import ModelSpec, ModuleNaming

PREFIXES = ("model.", "model.language_model.", "language_model.model.", "backbone.")
# entries that name modules oomplan prices in the model dtype always, or does not build: kept 16-bit changes nothing
OUTSIDE_DECODER = re.compile(r"vision|visual|multi_modal|mm_projector|patch_embed|audio|mtp|embed_tokens|lm_head|norm|rotary")
# mixers' projections (oomplan/memory/mixer_params.py); everything else of the attention component is attention's
# standard (q/k/v/o) and MLA (DeepSeek-V2 paper, section 2.1) projection names
ATTENTION_PROJECTIONS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj"})
_PLAIN = re.compile(r"[\w.]+")  # a module name, no pattern syntax
# Qwen3.5's Gated DeltaNet splits Qwen3-Next's in_proj_qkvz / in_proj_ba into four (mixer_params.py gated_deltanet_tensors)
MIXER_NAMES = frozenset({"in_proj", "out_proj", "x_proj", "dt_proj", "in_proj_qkvz", "in_proj_ba",
                         "in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a"})


def _suffixes(t: TensorGroup, naming: ModuleNaming, has_mixer: bool, fused: bool, num_experts: int) -> list[str] | None:
    """The module names (after `layers.<i>.`) of one tensor group: one per expert for routed experts; None for what is
    never a weight matrix of a module (norms, vectors)."""
    n = t.name
    if t.cols <= 1 or n.endswith(".bias") or t.component == "norm":
        return None
    if t.component == "experts":
        proj = n.removeprefix("experts.")
        if fused:
            return [f"{naming.block}.experts"]
        proj = dict(naming.experts).get(proj, proj)
        return [f"{naming.block}.experts.{j}.{proj}" for j in range(num_experts)]
    if t.component == "router":
        return [f"{naming.block}.{naming.router if n == 'router' else n}"]
    if t.component == "mlp":
        for ours, theirs in (("mlp.", ""), ("shared_expert.", naming.shared + ".")):
            if n.startswith(ours):
                return [f"{naming.block}.{theirs}{n.removeprefix(ours)}"]
        return [f"{naming.block}.{n}"]
    if t.component == "attention":
        block = naming.mixer if has_mixer and n in MIXER_NAMES else naming.attention
        return [f"{block}.{n}"]
    return None


def _matcher(entries: tuple[str, ...], style: str) -> Callable[[str], bool]:
    """One function name -> bool for all entries, with the library's semantics (oomplan/formats/declared.py excluded)."""
    exact = frozenset(entries)
    if style == "exact":  # ModelOpt quantized_layers: the module's own name
        return lambda name: name in exact
    if style == "compressed-tensors":  # match_name: "re:" -> re.match, else equality
        regexes = [e[3:] for e in entries if e.startswith("re:")]
        combined = re.compile("|".join(f"(?:{r})" for r in regexes)) if regexes else None
        return lambda name: name in exact or (combined is not None and combined.match(name) is not None)
    if style == "modelopt":  # is_layer_excluded: exact, substring (also without "language_model."), fnmatch
        substring = re.compile("|".join(re.escape(e) for e in entries))
        globs = re.compile("|".join(f"(?:{translate(e)})" for e in entries))
        return lambda name: (name in exact or substring.search(name) is not None
                             or (name.startswith("language_model.") and substring.search(name.removeprefix("language_model.")) is not None)
                             or globs.match(name) is not None)
    # transformers should_convert_module: re.match(rf"(?:{key}){boundary}") or name.endswith(key)
    boundary = r"(?:(?<=\.)|(?=\.|$))"
    combined = re.compile("|".join(f"(?:(?:{e}){boundary})" for e in entries))
    suffixes = tuple(entries)
    return lambda name: combined.match(name) is not None or name.endswith(suffixes)


def _layer_of(entry: str, style: str) -> int | None:
    """The one decoder layer an entry can name, where that is certain from its text: a literal `layers.N.` in a name,
    substring or glob chunk (every matching name contains it, and a module name holds `layers.<i>.` once), or in a
    transformers regex of plain characters followed by a letter (its dots match one character each, so a name of
    layer 12 cannot match `layers.1.s`). None: tried on every layer."""
    if style == "compressed-tensors" and entry.startswith("re:"):
        return None
    if style == "transformers":  # (exact names: a literal layers.N. below, like modelopt's)
        found = _PLAIN.fullmatch(entry) and re.search(r"layers\.(\d+)\.[A-Za-z_]", entry)
    else:
        found = re.search(r"layers\.(\d+)\.", entry)
    return int(found.group(1)) if found else None


def _layer_matchers(entries: tuple[str, ...], style: str) -> Callable[[int, str], bool]:
    """_matcher split by layer: a name of layer i is tried on the entries that can name layer i only, and on the rest."""
    by_layer: dict[int | None, list[str]] = {}
    for e in entries:
        by_layer.setdefault(_layer_of(e, style), []).append(e)
    everywhere = _matcher(tuple(by_layer.pop(None, ())), style) if None in by_layer else None
    own = {i: _matcher(tuple(es), style) for i, es in by_layer.items() if i is not None}

    def match(layer: int, name: str) -> bool:
        one = own.get(layer)
        return (one is not None and one(name)) or (everywhere is not None and everywhere(name))

    return match


DENSE = ""  # ModuleFormats: the matrix is kept in the model's dense dtype


@dataclass(frozen=True)
class ModuleFormats:
    """Per decoder layer, the tensor groups (by name) a declaration gives a format of their own, module by module: DENSE
    where an exclusion list keeps them in the dense dtype, else the format of the first module entry naming them."""

    groups: dict[int, dict[str, str]]

    def __hash__(self) -> int:
        return hash(tuple(sorted((i, tuple(sorted(g.items()))) for i, g in self.groups.items())))

    def of(self, layer: int, name: str) -> str | None:
        return self.groups.get(layer, {}).get(name)

    def kept(self, layer: int, name: str) -> bool:
        return self.of(layer, name) == DENSE


def _rule_matcher(rules: tuple[tuple[str, str], ...], style: str) -> Callable[[str], str | None]:
    """name -> the format of the first rule naming it (rules come in the library's priority order, declared.py), or None.
    compressed-tensors: an exact name or a `re:` regex (re.match); exact (ModelOpt quantized_layers): the name itself."""
    exact: dict[str, str] = {}
    regexes: list[tuple[re.Pattern[str], str]] = []
    for entry, fmt in rules:
        if style == "compressed-tensors" and entry.startswith("re:"):
            regexes.append((re.compile(entry[3:]), fmt))
        else:
            exact.setdefault(entry, fmt)

    def match(name: str) -> str | None:
        hit = exact.get(name)
        if hit is not None:
            return hit
        return next((f for r, f in regexes if r.match(name) is not None), None)

    return match


def _names(i: int, suffix: str, prefixes: list[str]) -> list[str]:
    return [f"{p}layers.{i}.{suffix}" for p in prefixes]


@lru_cache(maxsize=64)
def module_formats(model: ModelSpec) -> ModuleFormats:
    """The groups the declared kept_modules keep 16-bit and the module_formats entries give a format; refuses entries that
    name no module of the model, and some but not all experts of a layer kept 16-bit or given another format (engines
    build one fused MoE per layer)."""
    d = model.declared_weights
    if d is None or not (d.kept_modules or d.module_formats):
        return ModuleFormats({})
    match = _layer_matchers(d.kept_modules, d.match) if d.kept_modules else None
    rule = _rule_matcher(d.module_formats, d.module_match) if d.module_formats else None
    naming = model.module_naming
    text = " ".join(d.kept_modules + tuple(e for e, _ in d.module_formats))
    prefixes = [p for p in PREFIXES if p.rstrip(".") in text] or ["model."]
    fused = model.moe is not None and model.moe.stored_fused
    num_experts = model.moe.num_experts if model.moe is not None else 0
    out: dict[int, dict[str, str]] = {}
    inv = inventory(model)
    for kind in inv.layer_kinds:
        for i in kind.layer_indices:
            has_mixer = model.layers[i].attention.state is not None
            for t in kind.tensors:
                suffixes = _suffixes(t, naming, has_mixer, fused, num_experts)
                if not suffixes:
                    continue
                if match is not None:
                    hits = [any(match(i, n) for n in _names(i, s, prefixes)) for s in suffixes]
                    if all(hits):
                        out.setdefault(i, {})[t.name] = DENSE
                        continue
                    if any(hits):
                        raise InputError(f"{model.source}: {FIELD}.{d.kept_field} keeps {sum(hits)} of the {len(hits)} experts of layer {i} "
                                         f"16-bit ({t.name}); engines build one fused MoE per layer, so oomplan does not price that; refused rather than guessed")
                if rule is not None:
                    found = {next((f for f in map(rule, _names(i, s, prefixes)) if f is not None), None) for s in suffixes}
                    if len(found) > 1:
                        raise InputError(f"{model.source}: {FIELD}.{d.module_field} gives the experts of layer {i} ({t.name}) different "
                                         f"formats ({', '.join(sorted(f or 'none' for f in found))}); engines build one fused MoE per layer, "
                                         "so oomplan does not price that; refused rather than guessed")
                    fmt = found.pop()
                    if fmt is not None:
                        out.setdefault(i, {})[t.name] = fmt
    if d.kept_modules:
        _check_every_entry_names_a_module(model, d.kept_modules, d.match, d.kept_field, prefixes, naming, fused, num_experts)
    if d.module_formats:
        _check_every_entry_names_a_module(model, tuple(e for e, _ in d.module_formats), "exact" if d.module_match == "exact" else
                                          "compressed-tensors", d.module_field, prefixes, naming, fused, num_experts)
    return ModuleFormats(out)


def _beyond_the_decoder(entry: str, num_layers: int) -> bool:
    """An entry whose layer number N is at least the number of decoder layers (`model.layers.78*` of GLM-5.1-NVFP4, whose 78
    layers are 0-77) can match only layers N, N0-N9, ..., none of which the model builds: the multi-token-prediction layers
    DeepSeek-V3 and GLM-4.5+ checkpoints append after the decoder (num_nextn_predict_layers), which transformers does not
    instantiate and vLLM loads only for speculative decoding. Keeping them 16-bit changes nothing priced."""
    found = re.search(r"layers\.(\d+)", entry)
    return found is not None and int(found.group(1)) >= num_layers


def _check_every_entry_names_a_module(model: ModelSpec, entries: tuple[str, ...], style: str, field: str, prefixes: list[str],
                                      naming: ModuleNaming, fused: bool, num_experts: int) -> None:
    """An entry that matches no module name oomplan generates, and is not recognisably outside the text decoder, is
    refused: the checkpoint names its modules in a way oomplan does not know. An entry naming one layer is tried on that
    layer's modules only (_layer_of), others on every layer's (the first expert stands for all).
    A plain name of an attention projection another attention layout has (ATTENTION_PROJECTIONS), under a module that
    exists, is one this architecture lacks, which exporters list anyway (ModelOpt 0.23's DeepSeek-R1 list names
    self_attn.q_proj beside q_a_proj/q_b_proj): it keeps nothing, as in vLLM."""
    per_layer: dict[int, list[str]] = {}
    for kind in inventory(model).layer_kinds:
        for i in kind.layer_indices:
            has_mixer = model.layers[i].attention.state is not None
            for t in kind.tensors:
                for s in (_suffixes(t, naming, has_mixer, fused, min(num_experts, 1)) or ()):
                    per_layer.setdefault(i, []).extend(f"{p}layers.{i}.{s}" for p in prefixes)
    every = [n for names in per_layer.values() for n in names]
    for entry in entries:
        if OUTSIDE_DECODER.search(entry):
            continue
        layer = _layer_of(entry, style)
        names = every if layer is None else per_layer.get(layer, [])
        one = _matcher((entry,), style)
        if any(one(n) for n in names):
            continue
        parent, _, leaf = entry.rpartition(".")
        if _PLAIN.fullmatch(entry) and leaf in ATTENTION_PROJECTIONS and any(n.startswith(parent + ".") for n in names):
            continue
        if _beyond_the_decoder(entry, len(model.layers)):
            continue
        raise InputError(f"{model.source}: {FIELD}.{field} entry {entry[:120]!r} names no module oomplan knows in this model "
                         f"({model.model_type}: e.g. {every[0] if every else 'none'}); refused rather than priced as if quantised")
