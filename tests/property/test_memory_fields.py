"""Property (issue 13 part 7): no accepted config is priced while a memory-relevant field is ignored.

For each family, the config transformers' configuration class gives by default (its to_dict(), 4 decoder layers to
keep the meta builds short) is an accepted config. Changing one memory-relevant field of it (experts, layer_types,
windows, linear/SSM keys, head_dim, KV heads, widths, ...; in a wrapper's text_config for wrappers) must either
change what oomplan prices (parameters, weights, KV, state, activations at ctx 8k and 300) or be refused (exit 2).
When oomplan's answer does not change, transformers is the referee: the same change must leave the meta-built
model's sum(p.numel()) and its cache after a meta forward (oomplan.probe.cache_census) unchanged too (a field the
model class ignores for this config, e.g. a window of a model without sliding layers), else the family ignored it.
Adding a quantization_config must change the weights priced or be refused (the meta model is not quantised).
"""
from __future__ import annotations

import copy
import json
import warnings
from functools import cache

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from oomplan.errors import InputError  # noqa: E402
from oomplan.families import REGISTRY, UNPRICED_BY_LLAMA, parse_hf_config  # noqa: E402
from oomplan.memory.budget import estimate  # noqa: E402
from oomplan.memory.params import num_params  # noqa: E402
from oomplan.profiles import load_gpu  # noqa: E402
from oomplan.specs.plan import Plan, Workload  # noqa: E402

NUM_LAYERS = 4
SHAPE_KEYS = ("num_key_value_heads", "head_dim", "intermediate_size", "hidden_size", "vocab_size", "tie_word_embeddings",
              "num_attention_heads", "attention_bias", "mlp_bias")
MEMORY_KEYS = tuple(k for k in UNPRICED_BY_LLAMA if k not in ("text_config", "vision_config", "audio_config", "quantization_config")) + SHAPE_KEYS
FP8_BLOCK = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
KNOWN_AS = {"kimi_k2": "deepseek_v3"}  # Kimi-K2 is DeepSeek-V3's architecture (families/deepseek.py)


def _per_layer(value, n):
    return value[:n] if isinstance(value, list) and len(value) > n else value


def _shrink(cfg: dict) -> dict:
    """NUM_LAYERS decoder layers, per-layer lists cut to match; JSON round trip (what a config.json holds)."""
    out = json.loads(json.dumps(cfg, default=str))
    n = min(out.get("num_hidden_layers") or NUM_LAYERS, NUM_LAYERS)
    out["num_hidden_layers"] = n
    for key in ("layer_types", "layers_block_type", "no_rope_layers", "mlp_only_layers"):
        if isinstance(out.get(key), list):
            out[key] = [x for x in out[key] if not isinstance(x, int) or isinstance(x, bool) or key != "mlp_only_layers" or x < n]
            out[key] = _per_layer(out[key], n)
    if isinstance(out.get("hybrid_override_pattern"), str):
        out["hybrid_override_pattern"] = out["hybrid_override_pattern"][:n]
    return out


@cache
def _default(model_type: str) -> dict | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cfg = transformers.AutoConfig.for_model(KNOWN_AS.get(model_type, model_type)).to_dict()
        except Exception:  # noqa: BLE001 - a model_type this transformers lacks
            return None
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_") and k not in ("transformers_version", "architectures", "dtype", "torch_dtype")}
    cfg["model_type"] = model_type
    family = REGISTRY[model_type]
    if family.text_config and isinstance(cfg.get("text_config"), dict):
        cfg["text_config"] = _shrink(cfg["text_config"])
        cfg["architectures"] = list(family.architectures[:1])
        return cfg
    return _shrink(cfg)


def _text(cfg: dict) -> dict:
    return cfg["text_config"] if isinstance(cfg.get("text_config"), dict) else cfg


def _accepted(model_type: str) -> dict | None:
    cfg = _default(model_type)
    if cfg is None:
        return None
    try:
        _priced(json.dumps(cfg, sort_keys=True))
    except InputError:
        return None
    return cfg


@cache
def _priced(cfg_json: str) -> tuple:
    """What oomplan prices for a config (raises InputError when it refuses)."""
    spec = parse_hf_config(json.loads(cfg_json), "p", "property")
    gpu = load_gpu("h100")
    out: list[int] = [num_params(spec)]
    for ctx in (8192, 300):
        s = estimate(spec, gpu, Workload(ctx_tokens=ctx, batch_size=1), Plan(paged=False)).per_gpu
        out += [s.weights_bytes, s.kv_cache_bytes, s.state_bytes, s.activation_bytes]
    return tuple(out)


@cache
def _transformers_counts(cfg_json: str) -> tuple | None:
    """sum(p.numel()) and the cache after a meta forward at ctx 8k and 300; None when transformers refuses the config."""
    from oomplan.probe.cache_census import cache_census

    cfg = json.loads(cfg_json)
    cfg["model_type"] = KNOWN_AS.get(cfg["model_type"], cfg["model_type"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            a, b = cache_census(cfg, 8192), cache_census(cfg, 300)
        except Exception:  # noqa: BLE001 - a mutated config transformers cannot build or run
            return None
    return a.num_params, a.kv_cache_bytes, a.state_bytes, b.kv_cache_bytes, b.state_bytes


def _mutations(value):
    """Changed values for one field: counts doubled and halved, flags flipped, one layer's type flipped."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [v for v in (value * 2, value // 2, value + 1) if v >= 1 and v != value]
    if isinstance(value, float):
        return [value / 2]
    if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        kinds = sorted(set(value))
        if len(kinds) > 1:
            first = value.index(kinds[0])
            return [value[:first] + [kinds[1]] + value[first + 1:]]
        return []
    if isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        return [sorted(set(value) ^ {0})]
    if isinstance(value, str) and len(value) > 1 and len(set(value)) > 1:  # hybrid_override_pattern: swap two layer kinds
        i = next(i for i in range(1, len(value)) if value[i] != value[0])
        return [value[i] + value[1:i] + value[0] + value[i + 1:]]
    return []


CASES = [(t, k) for t in sorted(REGISTRY) if (cfg := _accepted(t)) is not None for k in MEMORY_KEYS
         if _text(cfg).get(k) is not None]


def test_every_family_has_an_accepted_default_config():
    missing = sorted(t for t in REGISTRY if _default(t) is not None and _accepted(t) is None)
    assert not missing, f"families whose transformers default config is refused: {missing}"


def _check(model_type: str, key: str, index: int) -> None:
    base = _accepted(model_type)
    assert base is not None
    options = _mutations(_text(base)[key])
    if not options:
        return
    changed = copy.deepcopy(base)
    _text(changed)[key] = options[index % len(options)]
    before, after_json = _priced(json.dumps(base, sort_keys=True)), json.dumps(changed, sort_keys=True)
    try:
        after = _priced(after_json)
    except InputError:
        return  # refused: never a silent guess
    if after != before:
        return
    theirs_before, theirs_after = _transformers_counts(json.dumps(base, sort_keys=True)), _transformers_counts(after_json)
    assert theirs_after is None or theirs_before == theirs_after, (
        f"{model_type}: {key} {_text(base)[key]!r} -> {_text(changed)[key]!r} changes transformers' model "
        f"({theirs_before} -> {theirs_after}) but not what oomplan prices")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CASES), st.integers(min_value=0, max_value=2))
def test_no_accepted_config_is_priced_while_a_memory_field_is_ignored(case, index):
    _check(*case, index)


@pytest.mark.parametrize("model_type", sorted(t for t in REGISTRY if _accepted(t) is not None))
def test_a_declared_quantisation_changes_the_weights_or_is_refused(model_type):
    base = _accepted(model_type)
    quantised = copy.deepcopy(base)
    _text(quantised)["quantization_config"] = FP8_BLOCK
    try:
        after = _priced(json.dumps(quantised, sort_keys=True))
    except InputError:
        return
    assert after[1] < _priced(json.dumps(base, sort_keys=True))[1]
