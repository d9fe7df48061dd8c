"""The family registry: per-layer structure, family defaults, wrappers, and refusals (issues 12.1, 13.2, 13.7)."""
import json

import pytest
from conftest import FIXTURES, tiny_llama
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.errors import InputError
from oomplan.families import BY_ARCHITECTURE, REGISTRY, UNPRICED_BY_LLAMA, parse_hf_config
from oomplan.memory.params import num_params


def test_every_model_type_has_one_family_and_cites_transformers():
    for model_type, family in REGISTRY.items():
        assert model_type in family.model_types
        assert "transformers/models/" in family.source and "(5.24.0)" in family.source, family.name
    assert set(BY_ARCHITECTURE) >= {"Gemma3ForConditionalGeneration", "Mistral3ForConditionalGeneration"}


def test_lazy_tables_name_every_family_in_the_package():
    """families/__init__.py's BY_TYPE/BY_WRAPPER tables (imports only the family a config names) against every
    Family object defined in a module of the package: a new family module must be added to the tables."""
    import importlib
    import pkgutil

    import oomplan.families as package
    from oomplan.families import BY_TYPE, BY_WRAPPER
    from oomplan.families.base import Family

    from oomplan.families import family_named

    types, wrappers = set(), set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"oomplan.families.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Family):
                types.update(value.model_types)
                wrappers.update(value.architectures)
                assert all(family_named(t) is value for t in value.model_types), value.name
    assert set(BY_TYPE) == types
    assert set(BY_WRAPPER) == wrappers


def test_per_layer_structure_gemma3_text():
    spec = parse_hf_config({"model_type": "gemma3_text", "num_hidden_layers": 12, "sliding_window": 512}, "g", "t")
    kinds = [(layer.attention.kind, layer.attention.window_tokens) for layer in spec.layers]
    assert kinds == ([("sliding", 512)] * 5 + [("full", None)]) * 2  # sliding_window_pattern 6
    assert spec.tie_word_embeddings and spec.qk_norm and spec.vocab_size == 262_208  # Gemma3TextConfig defaults


def test_gemma3_and_olmo3_keep_a_rotary_table_per_layer_type():
    """modeling_gemma3.py / modeling_olmo3.py (5.24.0): position_embeddings[layer_type] for each distinct layer type,
    all alive for the whole forward: a sliding + full model holds two cos/sin pairs, [1, S, head_dim] each."""
    from oomplan.memory.activations import dims, forward_bytes, mask_bytes
    from oomplan.specs.plan import Plan

    gemma = parse_hf_config({"model_type": "gemma3_text", "num_hidden_layers": 12, "sliding_window": 512}, "g", "t")
    only_full = parse_hf_config({"model_type": "gemma3_text", "num_hidden_layers": 12, "layer_types": ["full_attention"] * 12}, "g", "t")
    olmo3 = parse_hf_config({**tiny_llama(), "model_type": "olmo3", "num_hidden_layers": 4, "sliding_window": 64}, "o", "t")
    assert (gemma.rope.num_tables, only_full.rope.num_tables, olmo3.rope.num_tables) == (2, 1, 2)
    assert parse_hf_config(tiny_llama(), "l", "t").rope.num_tables == 1
    plan, s = Plan(), 32768
    d = dims(gemma, plan, 2)
    # Gemma 3: head_dim 256, bf16; 2 tables x (cos + sin) x 32,768 x 256 x 2 bytes = 64 MiB, + ids and positions (int64)
    tables = 2 * 2 * s * 256 * 2
    assert tables == 64 * 2**20
    assert forward_bytes(gemma, plan, d, 1, s, s) == mask_bytes(gemma, plan, d, 1, s, s) + tables + 8 * (s + s)


def test_gemma_ties_embeddings_by_default_llama_does_not():
    gemma = parse_hf_config({"model_type": "gemma3_text"}, "g", "t")
    llama = parse_hf_config(tiny_llama(tie_word_embeddings=None), "l", "t")
    assert gemma.tie_word_embeddings and not llama.tie_word_embeddings


def test_dense_first_layers_and_shared_experts_glm4_moe():
    spec = parse_hf_config({"model_type": "glm4_moe", "num_hidden_layers": 5, "first_k_dense_replace": 2}, "g", "t")
    assert [layer.mlp.kind for layer in spec.layers] == ["gated", "gated", "moe", "moe", "moe"]
    assert spec.moe.num_shared_experts == 1 and spec.moe.shared_expert_intermediate_size == 1408
    assert any("multi-token-prediction" in n for n in spec.notes)


def test_glm5_indexer_only_on_full_indexer_layers():
    spec = parse_hf_config({"model_type": "glm_moe_dsa", "num_hidden_layers": 6, "index_topk_freq": 2}, "g", "t")
    # configuration_glm_moe_dsa: full when max(i - offset + 1, 0) % freq == 0, offset 2
    assert [layer.attention.indexed for layer in spec.layers] == [True, True, False, True, False, True]


def test_starcoder2_plain_mlp_with_biases():
    spec = parse_hf_config({"model_type": "starcoder2", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 256,
                            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}, "s", "t")
    h, i, d = 64, 256, 16
    attn = 2 * h * h + 2 * (2 * d) * h + h + 2 * 2 * d + h  # q, o; k, v; biases
    mlp = 2 * h * i + i + h
    assert num_params(spec) == 100 * h + 2 * (attn + mlp + 2 * 2 * h) + 2 * h  # tied; LayerNorms with bias


def test_bamba_attention_by_index_and_a_disagreeing_layer_list_refused():
    """BambaConfig.layers_block_type: full attention exactly on attn_layer_indices; a layer_types / layers_block_type
    list that says otherwise is refused naming the field (transformers 5.24 cannot set either, so it would be a guess)."""
    cfg = {"model_type": "bamba", "num_hidden_layers": 5, "attn_layer_indices": [1, 4], "hidden_size": 64, "num_attention_heads": 4,
           "num_key_value_heads": 2, "mamba_n_heads": 8, "vocab_size": 100}
    spec = parse_hf_config(cfg, "b", "t")
    assert [layer.attention.kind for layer in spec.layers] == ["linear", "full", "linear", "linear", "full"]
    assert not spec.tie_word_embeddings and spec.rope.partial_rotary_factor == 0.5  # forced by BambaConfig.__post_init__
    agreeing = ["mamba", "attention", "mamba", "mamba", "attention"]
    assert parse_hf_config(dict(cfg, layer_types=agreeing), "b", "t").layers == spec.layers
    for field in ("layer_types", "layers_block_type"):
        with pytest.raises(InputError, match=f"{field} disagrees with attn_layer_indices"):
            parse_hf_config(dict(cfg, **{field: ["mamba"] * 5}), "b", "cfg.json")


@pytest.mark.parametrize("extra", [{"num_local_experts": 8}, {"layer_types": ["sliding_attention"] * 2}, {"sliding_window": 4096},
                                   {"text_config": {"hidden_size": 64}}, {"quantization_config": {"quant_method": "fp8"}}, {"kv_lora_rank": 512},
                                   {"linear_num_value_heads": 32}, {"cross_attention_layers": [1]}, {"attention_chunk_size": 8192}])
def test_unknown_type_with_unpriced_fields_is_refused(extra):
    cfg = dict(tiny_llama(model_type="brand_new"), **extra)
    with pytest.raises(InputError) as err:
        parse_hf_config(cfg, "x", "cfg.json")
    message = str(err.value)
    assert f"({next(iter(extra))})" in message and "gemma3_text" in message and "refusing rather than guessing" in message


def test_unknown_type_refused_by_the_cli_with_exit_2(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(tiny_llama(model_type="brand_new"), num_experts=16, sliding_window=128)))
    result = CliRunner().invoke(app, ["estimate", str(path), "--gpu", "h100"])
    assert result.exit_code == 2
    assert "num_experts, sliding_window" in result.output and "Traceback" not in result.output


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(UNPRICED_BY_LLAMA), min_size=1, max_size=4, unique=True))
def test_no_unknown_config_is_priced_while_a_memory_field_is_ignored(keys):
    """Property: an unknown model_type carrying any memory-relevant key the llama reader cannot price is refused
    (exit 2), and the refusal names the key(s): all of them, or the one whose value is malformed."""
    cfg = dict(tiny_llama(model_type="brand_new"), **{k: 2 for k in keys})
    with pytest.raises(InputError) as err:
        parse_hf_config(cfg, "x", "cfg.json")
    message = str(err.value)
    assert all(k in message for k in keys) or (message.count("field '") == 1 and any(f"field '{k}'" in message for k in keys))


def _parsed_keys(config) -> set[str]:
    """The keys a config model parses, its nested models' (a wrapper's text_config) included."""
    import typing

    from pydantic import BaseModel

    keys = set(config.model_fields)
    for field in config.model_fields.values():
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys |= set(arg.model_fields)
    return keys


def test_known_families_read_every_memory_field_their_config_class_defines():
    """Property over the registry: each memory-relevant key that transformers' configuration class of a family
    defines is parsed by our reader (none is silently dropped by the lenient HfConfig)."""
    transformers = pytest.importorskip("transformers")
    import warnings

    ignored = {}
    for model_type, family in REGISTRY.items():
        known_as = "deepseek_v3" if model_type == "kimi_k2" else model_type  # Kimi-K2 is DeepSeek-V3 (deepseek.py)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keys = set(transformers.AutoConfig.for_model(known_as).to_dict())
        relevant = keys & set(UNPRICED_BY_LLAMA) - _parsed_keys(family.config)  # HfConfig or the family's subclass
        if family.text_config:
            relevant -= {"text_config", "vision_config"}  # the wrapper resolves text_config; hybrids count the vision tower
        if family.name == "qwen3_5":  # reads its Gated DeltaNet keys from the raw (text) config itself; exact in its golden tests
            relevant -= {k for k in relevant if k.startswith("linear_")}
        if relevant:
            ignored[model_type] = sorted(relevant)
    assert not ignored


def test_unknown_model_type_with_a_key_in_another_form_is_an_unknown_family():
    """MiniMax-M3 / MiMo-V2-Flash give `moe_layer_freq` as a per-layer list (DeepSeek's is an int): for a model_type no
    family reads that is the unknown family's own key (UnknownFamilyError: refused, or counted by transformers by the
    CLI), not a bad value; for a model_type a family reads it stays a bad value."""
    from oomplan.errors import UnknownFamilyError

    cfg = {"model_type": "somebody_moe", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "moe_layer_freq": [0, 1]}
    with pytest.raises(UnknownFamilyError, match="somebody_moe.*moe_layer_freq"):
        parse_hf_config(cfg, "x", "x.json")
    with pytest.raises(InputError, match="moe_layer_freq") as known:
        parse_hf_config(dict(cfg, model_type="deepseek_v3"), "x", "x.json")
    assert not isinstance(known.value, UnknownFamilyError)


def test_mtp_layers_are_noted_under_every_key_families_use():
    """DeepSeek-V3 / GLM (num_nextn_predict_layers), Qwen3-Next / Qwen3.5 (mtp_num_hidden_layers, in text_config too) and
    MiniMax-M2 (num_mtp_modules with use_mtp) ship MTP layers that *ForCausalLM does not build: the estimate says so."""
    from oomplan.memory.budget import estimate
    from oomplan.profiles import load_gpu
    from oomplan.specs.plan import Plan, Workload

    def mtp(raw: dict) -> list[str]:
        spec = parse_hf_config(raw, "m", "t")
        notes = estimate(spec, load_gpu("h100"), Workload(ctx_tokens=256, batch_size=1), Plan()).notes
        return [n for n in notes if "multi-token-prediction" in n]

    assert mtp(tiny_llama(model_type="deepseek_v3", num_nextn_predict_layers=1, q_lora_rank=None, kv_lora_rank=16,
                          qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, n_routed_experts=None))[0].startswith("1 multi")
    qwen35 = json.loads((FIXTURES / "configs" / "qwen3.5-27b.json").read_text())  # mtp_num_hidden_layers 1 in text_config
    qwen35["text_config"] = {**qwen35["text_config"], "mtp_num_hidden_layers": 2}
    assert mtp(qwen35)[0].startswith("2 multi")
    minimax = tiny_llama(model_type="minimax_m2", num_local_experts=4, num_experts_per_tok=2, num_mtp_modules=3)
    assert mtp(minimax)[0].startswith("3 multi")
    assert mtp({**minimax, "use_mtp": False}) == []
    assert mtp(tiny_llama()) == []


def test_model_dtype_absent_is_noted_and_an_unpriced_torch_dtype_refused():
    assert any("declares no torch_dtype" in n for n in parse_hf_config(tiny_llama(torch_dtype=None), "l", "t").notes)
    assert any("declares no torch_dtype" in n for n in parse_hf_config(tiny_llama(torch_dtype="auto"), "l", "t").notes)
    assert not any("torch_dtype" in n for n in parse_hf_config(tiny_llama(torch_dtype="float16"), "l", "t").notes)
    for name in ("float64", "float8_e4m3fn", "int8"):  # real torch dtypes, but not a model dtype: never bf16 silently
        with pytest.raises(InputError, match=rf"field 'torch_dtype': '{name}' is a torch dtype oomplan does not price"):
            parse_hf_config(tiny_llama(torch_dtype=name), "l", "t")
