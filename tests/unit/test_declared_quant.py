"""Declared quantisation (quantization_config): checkpoints priced as shipped, hand-computed; refusals name the field."""
import json

import pytest
from conftest import FIXTURES, tiny_llama
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.errors import InputError
from oomplan.families import parse_hf_config
from oomplan.memory.weights import weights_budget
from oomplan.specs.plan import Plan

GPT_OSS_QC = {  # https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json
    "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
    "quant_method": "mxfp4",
}


def _mixtral(**qc):
    cfg = tiny_llama(model_type="mixtral", architectures=["MixtralForCausalLM"], num_local_experts=4, num_experts_per_tok=2)
    if qc:
        cfg["quantization_config"] = qc
    return parse_hf_config(cfg, "tiny-mixtral", "test")


def _llama(**qc):
    return parse_hf_config(tiny_llama(quantization_config=qc), "tiny", "test")


def test_deepseek_v3_fp8_block_checkpoint_priced_as_shipped():
    raw = json.loads((FIXTURES / "configs" / "deepseek-v3-fp8.json").read_text())
    m = parse_hf_config(raw, "deepseek-v3-fp8", "test")
    assert m.declared_weights.method == "fp8" and m.declared_weights.group_size == 128
    b = weights_budget(m, Plan()).by_component
    # 58 MoE layers x 256 experts x 3 matrices of 2048 x 7168 e4m3 + an fp32 scale per 128x128 block (16 x 56)
    assert b.experts == 58 * 256 * 3 * (2048 * 7168 + 4 * 16 * 56)
    # dense MLP: 3 layers x 3 x [18432, 7168]; shared expert: 58 layers x 3 x [2048, 7168]
    assert b.mlp == 3 * 3 * (18432 * 7168 + 4 * 144 * 56) + 58 * 3 * (2048 * 7168 + 4 * 16 * 56)
    bf16 = weights_budget(m, Plan(weights="bf16")).by_component
    assert (b.embedding, b.lm_head, b.router, b.norm) == (bf16.embedding, bf16.lm_head, bf16.router, bf16.norm)
    assert b.total < 0.52 * bf16.total  # about one byte per parameter, not two


def test_gpt_oss_mxfp4_block_on_a_mixtral_shaped_config():
    m = _mixtral(**GPT_OSS_QC)
    assert m.declared_weights.component_weights == {"experts": "mxfp4"}
    b, bf16 = weights_budget(m, Plan()).by_component, weights_budget(m, Plan(weights="bf16")).by_component
    # 2 layers x 4 experts x (gate, up [128, 64]: 2 blocks of 32 per row; down [64, 128]: 4 blocks), 17 bytes a block
    assert b.experts == 2 * 4 * (2 * 128 * 2 * 17 + 64 * 4 * 17)
    assert (b.attention, b.router, b.embedding, b.lm_head) == (bf16.attention, bf16.router, bf16.embedding, bf16.lm_head)


def test_awq_and_gptq_configs():
    awq = _llama(quant_method="awq", bits=4, group_size=32, zero_point=True, version="gemm")
    b = weights_budget(awq, Plan()).by_component
    # q_proj [64, 64], group 32: 2048 packed + 2 groups x 64 rows x fp16 scale + int4 zeros; 2 layers
    q = 64 * 64 // 2 + 2 * 64 * 2 + 2 * 64 // 2
    k = 16 * 64 // 2 + 2 * 16 * 2 + 2 * 16 // 2
    assert b.attention == 2 * (2 * q + 2 * k)  # q, o [64, 64]; k, v [16, 64]
    assert b.lm_head == 1000 * 64 * 2  # lm_head stays 16-bit
    gptq = _llama(quant_method="gptq", bits=4, group_size=32, desc_act=True, sym=True, lm_head=False)
    assert gptq.declared_weights.component_weights["mlp"] == "gptq"
    g = weights_budget(gptq, Plan()).by_component
    assert g.attention == b.attention + 2 * 4 * 64 * 4  # + g_idx: one int32 per input channel of 4 matrices


def test_compressed_tensors_w4a16_and_fp8_dynamic():
    w4a16 = _llama(quant_method="compressed-tensors", format="pack-quantized", ignore=["lm_head"], config_groups={
        "group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32, "symmetric": True}}})
    b = weights_budget(w4a16, Plan()).by_component
    # q_proj [64, 64]: int4 packed, 16-bit scale per 32 inputs, int64[2] weight_shape; no zero points
    q, k = 64 * 64 // 2 + 64 * 2 * 2 + 16, 16 * 64 // 2 + 16 * 2 * 2 + 16
    assert b.attention == 2 * (2 * q + 2 * k) and b.lm_head == 1000 * 64 * 2
    fp8 = _llama(quant_method="compressed-tensors", format="float-quantized", ignore=["lm_head"], config_groups={
        "group_0": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}})
    # per layer: gate, up [128, 64] and down [64, 128] e4m3 with one fp32 scale per output channel
    assert weights_budget(fp8, Plan()).by_component.mlp == 2 * (2 * (128 * 64 + 128 * 4) + (64 * 128 + 64 * 4))


def test_nvfp4_and_bitsandbytes():
    nv = _llama(quant_method="modelopt", quant_algo="NVFP4", group_size=16, exclude_modules=["lm_head"])
    assert weights_budget(nv, Plan()).by_component.attention == 2 * (2 * (64 * 4 * 9 + 8) + 2 * (16 * 4 * 9 + 8))
    bnb = _llama(quant_method="bitsandbytes", load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
    assert bnb.declared_weights.component_weights["attention"] == "nf4"
    with pytest.raises(InputError, match="quantization_config.bnb_4bit_quant_type = 'fp4'"):
        _llama(quant_method="bitsandbytes", load_in_4bit=True, bnb_4bit_quant_type="fp4")


@pytest.mark.parametrize("qc,message", [
    ({"quant_method": "hqq"}, "quantization_config.quant_method = 'hqq' is not priced"),
    ({}, "quantization_config.quant_method = None is not priced"),
    ({"quant_method": "awq", "bits": 3, "group_size": 128}, "quantization_config.bits = 3"),
    ({"quant_method": "fp8", "weight_block_size": [128, 64]}, "quantization_config.weight_block_size"),
    ({"quant_method": "fp8", "modules_to_not_convert": ["model.layers.0.mlp.gate_projection"]}, "names no module oomplan knows"),
])
def test_unpriceable_configs_are_refused_naming_the_field(qc, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace(".", r"\.")):
        weights_budget(_llama(**qc), Plan())  # module-by-module entries are matched when the model is priced


def test_every_layer_named_counts_as_the_whole_component():
    m = _mixtral(quant_method="fp8", weight_block_size=[128, 128], modules_to_not_convert=["model.layers.0.mlp.gate", "model.layers.1.mlp.gate", "lm_head"])
    assert "router" not in m.declared_weights.component_weights


def _config_file(tmp_path, qc):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_llama(quantization_config=qc)))
    return str(path)


def test_cli_unknown_method_exits_2_naming_the_field(tmp_path):
    r = CliRunner().invoke(app, ["estimate", _config_file(tmp_path, {"quant_method": "eetq"}), "--gpu", "h100"])
    assert r.exit_code == 2 and "quantization_config.quant_method = 'eetq' is not priced" in r.stderr


def test_cli_as_shipped_note_and_weights_override(tmp_path):
    path = _config_file(tmp_path, {"quant_method": "fp8", "weight_block_size": [128, 128]})
    r = CliRunner().invoke(app, ["estimate", path, "--gpu", "h100", "--json"])
    out = json.loads(r.stdout)
    assert out["plan"]["declared_weights"]["method"] == "fp8"
    # lm_head stays 16-bit (transformers' quantizers keep the output embedding); a dense model has no experts to price
    assert out["plan"]["resolved_component_weights"] == {"attention": "fp8-block", "mlp": "fp8-block", "experts": "fp8-block"}
    assert any("priced as shipped" in n for n in out["notes"])
    r = CliRunner().invoke(app, ["estimate", path, "--gpu", "h100", "--weights", "awq", "--json"])
    assert any("--weights awq overrides the checkpoint's declared" in n for n in json.loads(r.stdout)["notes"])


def test_declared_mxfp4_before_blackwell_says_what_the_runtime_does():
    from oomplan.memory.validate import plan_warnings
    from oomplan.profiles import load_gpu
    from oomplan.specs.plan import Workload
    m = _mixtral(**GPT_OSS_QC)
    hopper = plan_warnings(m, load_gpu("h100"), Workload(ctx_tokens=4096), Plan())
    assert any("has no native mxfp4" in w and "get_mxfp4_backend" in w for w in hopper)
    assert not any("mxfp4" in w for w in plan_warnings(m, load_gpu("b200"), Workload(ctx_tokens=4096), Plan()))


def test_awq_checkpoint_of_mistral_7b_priced_as_shipped():
    """TheBloke/zephyr-7B-alpha-AWQ's quantization_config, as quoted by huggingface/transformers@52b642e42b0e7b18d45d81cf8fe0d926c4dd3306:
    docs/source/en/quantization/awq.md, on Mistral-7B-v0.1's architecture (the shipped profile's config)."""
    import yaml
    cfg = dict(yaml.safe_load(_profile_path("mistral-7b-v0.1").read_text())["config"])
    cfg["quantization_config"] = {"quant_method": "awq", "zero_point": True, "group_size": 128, "bits": 4, "version": "gemm"}
    m = parse_hf_config(cfg, "zephyr-7b-alpha-awq", "test")

    def awq(rows, cols):  # int4 qweight + fp16 scales + int4 zeros per 128 inputs
        groups = -(-cols // 128)
        return rows * cols // 2 + groups * rows * 2 + -(-groups * rows // 2)

    layer = 2 * awq(4096, 4096) + 2 * awq(1024, 4096) + 2 * awq(14336, 4096) + awq(4096, 14336) + 2 * 4096 * 2
    expected = 32 * layer + 2 * 32000 * 4096 * 2 + 4096 * 2  # 16-bit embed_tokens and lm_head, final norm
    assert weights_budget(m, Plan()).gpu_bytes == expected == 4_150_796_288


def _profile_path(name):
    from pathlib import Path
    return Path(__file__).resolve().parents[2] / "model_profiles" / f"{name}.yaml"


def test_shipped_gpt_oss_20b_priced_as_its_published_checkpoint():
    """The shipped profile keeps the published quantization_config (MXFP4 experts, the rest bf16), so its
    weights equal the checkpoint's published size byte for byte: metadata.total_size = 13,761,264,768 in
    https://huggingface.co/openai/gpt-oss-20b/blob/main/model.safetensors.index.json"""
    from oomplan.profiles import load_model

    m = load_model("openai/gpt-oss-20b")
    assert m.declared_weights.component_weights == {"experts": "mxfp4"}
    assert weights_budget(m, Plan()).resident_bytes == 13_761_264_768
    # the override still prices the dequantised model: 20.91B params x 2 bytes
    assert weights_budget(m, Plan(weights="bf16")).resident_bytes > 2.9 * 13_761_264_768


def test_glm_5_fp8_modules_to_not_convert_priced_as_shipped():
    """zai-org/GLM-5-FP8 (tests/fixtures/configs/glm-5-fp8.json) lists 712 modules: every layer's norms, the
    indexer's weights_proj (16-bit in oomplan always), the routers of the 75 MoE layers with their correction
    biases, and its MTP layer 78 (not built for generation). All of it is consistent with FP8 attention, MLP and
    experts and a 16-bit router, lm_head and embedding."""
    m = parse_hf_config(json.loads((FIXTURES / "configs" / "glm-5-fp8.json").read_text()), "glm-5-fp8", "test")
    assert m.declared_weights.component_weights == {"attention": "fp8-block", "mlp": "fp8-block", "experts": "fp8-block"}
    b, bf16 = weights_budget(m, Plan()).by_component, weights_budget(m, Plan(weights="bf16")).by_component
    assert (b.router, b.lm_head, b.embedding, b.norm) == (bf16.router, bf16.lm_head, bf16.embedding, bf16.norm)


def test_router_named_in_every_moe_layer_but_not_all_layers():
    """DeepSeek-shaped: layers 0-2 dense, so a router named in layers 3..N is the whole router; with one MoE layer
    missing the routers are matched module by module (HF fp8 keeps every router 16-bit anyway: the same bytes)."""
    raw = json.loads((FIXTURES / "configs" / "deepseek-v3-fp8.json").read_text())
    gates = [f"model.layers.{i}.mlp.gate" for i in range(3, 61)]
    ok = parse_hf_config(dict(raw, quantization_config=dict(raw["quantization_config"], modules_to_not_convert=gates)), "d", "test")
    assert "router" not in ok.declared_weights.component_weights
    some = parse_hf_config(dict(raw, quantization_config=dict(raw["quantization_config"], modules_to_not_convert=gates[1:] + ["model.layers.0.self_attn.q_a_layernorm"])), "d", "test")
    assert some.declared_weights.kept_modules == tuple(gates[1:])
    assert weights_budget(some, Plan()).resident_bytes == weights_budget(ok, Plan()).resident_bytes


def test_declaring_fields_top_level_and_nested():
    """The dotted paths of every quantisation a config.json declares (formats/declared.py DECLARING_KEYS); empty or
    non-object values declare nothing."""
    from oomplan.formats.declared import declaring_fields

    assert declaring_fields({"quantization_config": {"quant_method": "fp8"}}) == ["quantization_config"]
    assert declaring_fields({"quantization": {"bits": 4}, "text_config": {"quantization_config": {"x": 1}, "compression_config": {}},
                             "vision_config": {"quantization": {"bits": 8}}}) == [
        "quantization", "text_config.quantization_config", "vision_config.quantization"]
    assert declaring_fields({"quantization_config": None, "quantization": 4, "text_config": {"hidden_size": 8}}) == []


@pytest.mark.parametrize("declared", [{"quantization": {"group_size": 64, "bits": 4}},
                                      {"text_config": {"compression_config": {"quant_method": "compressed-tensors"}}}])
def test_known_family_with_an_unread_declaration_is_refused(declared):
    """MLX's `quantization` (modinired/Dell-Boca-Boys_v2's GLM-4.5-Air 4-bit) or the old `compression_config` is not read by
    any reader: a known family refuses naming it rather than pricing the checkpoint as 16-bit."""
    cfg = tiny_llama(model_type="qwen3", **declared)
    with pytest.raises(InputError) as err:
        parse_hf_config(cfg, "x", "cfg.json")
    key = next(iter(declared))
    field = "text_config.compression_config" if key == "text_config" else key
    assert f"field '{field}' declares a quantisation" in str(err.value) and "\n" not in str(err.value)
