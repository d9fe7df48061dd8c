"""GGUF architectures beyond llama: real files written with gguf.GGUFWriter carrying the metadata llama.cpp's
convert_hf_to_gguf.py writes for each (TextModel.set_gguf_parameters plus the model class's own keys:
GptOssModel, Glm4MoeModel, DeepseekV2Model), read back into the same model as the transformers config they
were converted from: equal parameters per component, KV bytes per token and layer kinds."""
import pytest

from conftest import tiny_llama
from oomplan.errors import InputError
from oomplan.families import parse_hf_config
from oomplan.memory.kv_cache import kv_bytes_per_token_per_layer
from oomplan.memory.params import params_by_component
from oomplan.profiles import load_model
from oomplan.specs.plan import Plan

V = 1000


def write_arch_gguf(path, arch: str, meta: dict, tensors: dict) -> None:
    """A GGUF with `arch`'s metadata ({arch}.KEY: int/float) and F16 tensors of the given numpy shapes."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), arch)
    for key, value in meta.items():
        (w.add_float32 if isinstance(value, float) else w.add_uint32)(f"{arch}.{key}", value)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for name, shape in tensors.items():
        w.add_tensor(name, np.zeros(shape, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _same_model(gguf_spec, hf_cfg):
    hf = parse_hf_config(hf_cfg, "hf", "test")
    assert params_by_component(gguf_spec) == params_by_component(hf)
    assert kv_bytes_per_token_per_layer(gguf_spec, Plan()) == kv_bytes_per_token_per_layer(hf, Plan())
    assert gguf_spec.layer_attention == hf.layer_attention and gguf_spec.num_layers == hf.num_layers
    assert gguf_spec.layers == hf.layers  # per-layer attention (window, MLA, DeltaNet state) and MLP/MoE shapes
    return hf


COMMON = dict(context_length=4096, embedding_length=64, **{"attention.head_count": 4})


def test_gemma3(tmp_path):
    hf = tiny_llama(model_type="gemma3_text", architectures=["Gemma3ForCausalLM"], num_hidden_layers=7, num_attention_heads=4,
                    head_dim=32, sliding_window=16, tie_word_embeddings=True)
    meta = dict(COMMON, block_count=7, feed_forward_length=128, **{"attention.head_count_kv": 2, "attention.key_length": 32,
                "attention.value_length": 32, "attention.sliding_window": 16})
    write_arch_gguf(tmp_path / "g.gguf", "gemma3", meta, {"token_embd.weight": (V, 64)})  # tied: no output.weight
    spec = load_model(str(tmp_path / "g.gguf"))
    _same_model(spec, hf)
    # five sliding layers to one full (llama.cpp set_swa_pattern(6) for gemma3)
    assert spec.layer_attention == ("sliding",) * 5 + ("full", "sliding")


def test_gpt_oss(tmp_path):
    hf = tiny_llama(model_type="gpt_oss", architectures=["GptOssForCausalLM"], num_attention_heads=4, head_dim=16, intermediate_size=32,
                    num_local_experts=4, num_experts_per_tok=2, sliding_window=8, attention_bias=True)
    meta = dict(COMMON, block_count=2, feed_forward_length=32, expert_count=4, expert_used_count=2, expert_feed_forward_length=32,
                **{"attention.head_count_kv": 2, "attention.key_length": 16, "attention.value_length": 16, "attention.sliding_window": 8})
    write_arch_gguf(tmp_path / "o.gguf", "gpt-oss", meta, {"token_embd.weight": (V, 64), "output.weight": (V, 64),
                                                            "blk.0.attn_q.bias": (64,)})
    spec = load_model(str(tmp_path / "o.gguf"))
    _same_model(spec, hf)
    assert spec.layer_attention == ("sliding", "full")


def test_glm4moe_block_count_includes_the_mtp_layer(tmp_path):
    hf = tiny_llama(model_type="glm4_moe", architectures=["Glm4MoeForCausalLM"], num_hidden_layers=3, num_attention_heads=4, head_dim=16,
                    moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1,
                    partial_rotary_factor=0.5, use_qk_norm=True, attention_bias=True, num_nextn_predict_layers=1)
    meta = dict(COMMON, block_count=4, nextn_predict_layers=1, feed_forward_length=128, expert_count=4, expert_used_count=2,
                expert_feed_forward_length=32, expert_shared_count=1, leading_dense_block_count=1,
                **{"attention.head_count_kv": 2, "attention.key_length": 16, "attention.value_length": 16, "rope.dimension_count": 8})
    write_arch_gguf(tmp_path / "z.gguf", "glm4moe", meta, {"token_embd.weight": (V, 64), "output.weight": (V, 64),
                                                            "blk.0.attn_q.bias": (64,), "blk.0.attn_q_norm.weight": (16,)})
    spec = load_model(str(tmp_path / "z.gguf"))
    _same_model(spec, hf)
    assert spec.num_layers == 3 and spec.hf_config["partial_rotary_factor"] == 0.5


@pytest.mark.parametrize("mla_keys", [True, False])
def test_deepseek2_mla_from_the_mqa_form(tmp_path, mla_keys):
    hf = tiny_llama(model_type="deepseek_v3", architectures=["DeepseekV3ForCausalLM"], num_attention_heads=4, num_key_value_heads=4,
                    moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1,
                    kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8, qk_nope_head_dim=12, v_head_dim=16)
    # convert_hf_to_gguf.py DeepseekV2Model: head_count_kv 1, key_length = kv_lora_rank + rope, value_length = kv_lora_rank,
    # the per-head sizes in *_mla (files converted before those keys carry them in key_length / value_length)
    attn = ({"attention.head_count_kv": 1, "attention.key_length": 24, "attention.value_length": 16,
             "attention.key_length_mla": 20, "attention.value_length_mla": 16} if mla_keys else
            {"attention.head_count_kv": 4, "attention.key_length": 20, "attention.value_length": 16})
    meta = dict(COMMON, block_count=2, feed_forward_length=128, expert_count=4, expert_used_count=2, expert_feed_forward_length=32,
                expert_shared_count=1, leading_dense_block_count=1, expert_gating_func=2,
                **{"attention.kv_lora_rank": 16, "attention.q_lora_rank": 24, "rope.dimension_count": 8}, **attn)
    write_arch_gguf(tmp_path / "d.gguf", "deepseek2", meta, {"token_embd.weight": (V, 64), "output.weight": (V, 64)})
    spec = load_model(str(tmp_path / "d.gguf"))
    _same_model(spec, hf)
    assert spec.hf_config["model_type"] == "deepseek_v3"


def test_qwen3next_gated_deltanet_from_the_ssm_keys(tmp_path):
    hf = tiny_llama(model_type="qwen3_next", architectures=["Qwen3NextForCausalLM"], num_hidden_layers=4, num_attention_heads=4, head_dim=32,
                    linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=24, linear_num_key_heads=2,
                    linear_num_value_heads=4, full_attention_interval=4, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                    shared_expert_intermediate_size=48)
    meta = dict(COMMON, block_count=4, feed_forward_length=128, expert_count=4, expert_used_count=2, expert_feed_forward_length=32,
                expert_shared_feed_forward_length=48, full_attention_interval=4,
                **{"attention.head_count_kv": 2, "attention.key_length": 32, "attention.value_length": 32, "ssm.conv_kernel": 4,
                   "ssm.state_size": 16, "ssm.group_count": 2, "ssm.time_step_rank": 4, "ssm.inner_size": 96, "rope.dimension_count": 8})
    write_arch_gguf(tmp_path / "n.gguf", "qwen3next", meta, {"token_embd.weight": (V, 64), "output.weight": (V, 64)})
    spec = load_model(str(tmp_path / "n.gguf"))
    _same_model(spec, hf)
    assert spec.layer_attention == ("linear", "linear", "linear", "full")


def test_llama4_and_unknown_architectures_exit_2_naming_it(tmp_path):
    write_arch_gguf(tmp_path / "l4.gguf", "llama4", dict(COMMON, block_count=2), {"token_embd.weight": (V, 64)})
    with pytest.raises(InputError, match=r"general.architecture 'llama4' is not read by oomplan \(Llama 4: its GGUF metadata .*accepted: llama, .*gemma3, gpt-oss, glm4moe, deepseek2, qwen3next"):
        load_model(str(tmp_path / "l4.gguf"))
    write_arch_gguf(tmp_path / "x.gguf", "rwkv7", dict(COMMON, block_count=2), {"token_embd.weight": (V, 64)})
    with pytest.raises(InputError, match=r"'rwkv7' is not read by oomplan; accepted: llama"):
        load_model(str(tmp_path / "x.gguf"))
