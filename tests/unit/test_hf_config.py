"""config.json -> ModelSpec: families, defaults, unknown types, and bad input."""
import json

import pytest
from conftest import FIXTURES, tiny_llama

from oomplan.errors import InputError
from oomplan.profiles import load_model
from oomplan.families import parse_hf_config


def test_family_features():
    assert load_model("gemma-2-9b").head_dim == 256  # explicit, not 3584 / 16
    assert load_model("gemma-2-9b").tie_word_embeddings
    assert not load_model("llama-3-8b").tie_word_embeddings
    assert load_model("llama-3.2-1b").tie_word_embeddings
    assert load_model("qwen2.5-7b").qkv_bias and not load_model("qwen2.5-7b").o_bias
    assert load_model("qwen3-8b").qk_norm
    falcon = load_model("falcon-40b")
    assert (falcon.num_kv_heads, falcon.norm_kind, falcon.mlp_kind) == (8, "layer", "plain")
    assert load_model("deepseek-v2-lite").mla.q_lora_rank is None
    assert load_model("qwen3-30b-a3b").moe.num_experts == 128


def test_aliases_resolve_case_insensitively():
    assert load_model("META-LLAMA/Meta-Llama-3-70B").name == "llama-3-70b"


def test_config_json_path_and_folder(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps(tiny_llama()))
    assert load_model(str(tmp_path)).num_layers == 2
    assert load_model(str(tmp_path / "config.json")).name == tmp_path.name


def test_unknown_llama_shaped_type_is_refused_not_guessed():
    # llama-shaped keys do not make a llama (phi-2 and gpt_neox have plain MLPs and biases): exit 2, no guess
    with pytest.raises(InputError, match="model_type 'mystery' is not a known family; refusing rather than guessing"):
        load_model(str(FIXTURES / "configs" / "mystery-llama.json"))
    phi2 = {"architectures": ["PhiForCausalLM"], "model_type": "phi", "hidden_size": 2560, "intermediate_size": 10240,
            "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 51200}
    with pytest.raises(InputError, match="'phi' is not a known family.*set \"model_type\": \"llama\""):
        parse_hf_config(phi2, "phi-2", "test")


def test_config_without_model_type_is_read_as_llama_and_says_so():
    raw = json.loads((FIXTURES / "configs" / "mystery-llama.json").read_text())
    del raw["model_type"], raw["architectures"]
    spec = parse_hf_config(raw, "unnamed", "test")
    assert spec.num_layers == 4
    assert any("names no model_type; read as llama" in w for w in spec.warnings)


def test_unsupported_multimodal_wrapper_is_refused_as_such():
    raw = {"architectures": ["Idefics3ForConditionalGeneration"], "model_type": "idefics3",
           "text_config": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                           "vocab_size": 128259}}
    with pytest.raises(InputError, match="Idefics3ForConditionalGeneration .*multimodal wrapper of a decoder that oomplan does not read yet"):
        parse_hf_config(raw, "idefics3", "test")


def test_not_a_causal_lm_is_an_error():
    with pytest.raises(InputError, match="BertForMaskedLM .* is not a decoder-only causal LM"):
        load_model(str(FIXTURES / "configs" / "bert.json"))


@pytest.mark.parametrize("overrides,fragment", [
    ({"hidden_size": None}, "missing required field"),
    ({"num_hidden_layers": "many"}, "num_hidden_layers"),
    ({"num_key_value_heads": 3}, r"num_attention_heads \(8\) must be a multiple of num_key_value_heads \(3\)"),
    ({"vocab_size": -5}, "vocab_size"),
    # found by benchmarks/fuzz_long.py: a layer count this large used to exhaust memory
    ({"num_hidden_layers": 16842512920.0}, r"field 'num_hidden_layers': Input should be less than or equal to 10000"),
    ({"hidden_size": 2**40}, "hidden_size"),
])
def test_bad_fields_name_the_field(overrides, fragment):
    cfg = {k: v for k, v in {**tiny_llama(), **overrides}.items() if v is not None}
    with pytest.raises(InputError, match=fragment):
        parse_hf_config(cfg, "t", "cfg.json")


def test_unknown_name_suggests():
    with pytest.raises(InputError, match="did you mean: llama-3-8b"):
        load_model("llama-3-8")


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        load_model(str(empty))
    broken = tmp_path / "broken.json"
    broken.write_text('{"model_type": "llama",')
    with pytest.raises(InputError, match="invalid JSON at line 1"):
        load_model(str(broken))
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not UTF-8"):
        load_model(str(binary))
    with pytest.raises(InputError, match="holds no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(InputError, match="expected a config.json mapping at the top level, got list"):
        (tmp_path / "list.json").write_text("[1, 2]")
        load_model(str(tmp_path / "list.json"))
