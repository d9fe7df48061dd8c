"""Declared quantisation module by module: ModelOpt MIXED_PRECISION `quantized_layers`, compressed-tensors targets naming
single modules, Qwen3.5's split Gated DeltaNet projections. Each against a hand count and, for the real Qwen3.6 layout, a
checkpoint written by the safetensors library with the tensor names transformers 5.24 builds and the dtypes/shapes the
libraries store (vLLM ModelOptMixedPrecisionConfig: FP8 weight + weight_scale + input_scale; W4A16_NVFP4 uint8 [out, in/2]
+ fp8 weight_scale [out, in/16] + weight_scale_2, no input_scale)."""
import json

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from conftest import FIXTURES, tiny_llama
from oomplan.cli.app import app
from oomplan.errors import InputError
from oomplan.families import parse_hf_config
from oomplan.memory.weights import weights_budget
from oomplan.specs.plan import Plan

runner = CliRunner()
QWEN36 = FIXTURES / "configs" / "sweep" / "nvidia--Qwen3.6-27B-NVFP4.json"  # nvidia/Qwen3.6-27B-NVFP4, SOURCES.md


def fp8(r, c):  # F8_E4M3 weight + fp32 weight_scale + fp32 input_scale (static)
    return r * c + 8


def nvfp4_a16(r, c):  # packed e2m1 + one e4m3 scale per 16 + fp32 weight_scale_2
    return r * c // 2 + r * (c // 16) + 4


def bf16(r, c):
    return 2 * r * c


def test_qwen36_nvfp4_mixed_precision_is_priced_module_by_module_to_a_hand_count():
    """nvidia/Qwen3.6-27B-NVFP4: quant_algo MIXED_PRECISION, quantized_layers FP8 for every linear_attn in_proj_qkv / in_proj_z /
    out_proj and self_attn projection, W4A16_NVFP4 for every MLP projection and lm_head; in_proj_b / in_proj_a, the vision tower
    and the embedding are not listed, so 16-bit (vLLM leaves a linear not in quantized_layers unquantised)."""
    raw = json.loads(QWEN36.read_text())
    m = parse_hf_config(raw, "q", "test")
    plain = parse_hf_config({k: v for k, v in raw.items() if k != "quantization_config"}, "q", "test")
    got, base = weights_budget(m, Plan()).by_component, weights_budget(plain, Plan()).by_component
    h, ffn, v = 5120, 17408, 248320
    key, val = 16 * 128, 48 * 128  # linear_num_key_heads x key dim, linear_num_value_heads x value dim
    q, kv, o = 24 * 256 * 2, 4 * 256, 24 * 256  # attn_output_gate doubles q_proj
    linear = [(2 * key + val, h), (val, h), (h, val)]  # in_proj_qkv, in_proj_z, out_proj
    full = [(q, h), (kv, h), (kv, h), (h, o)]
    saved_attention = 48 * sum(bf16(*s) - fp8(*s) for s in linear) + 16 * sum(bf16(*s) - fp8(*s) for s in full)
    kv_scales = 16 * 2 * 4  # kv_cache_scheme FP8: k_scale and v_scale per full-attention layer
    assert base.attention - got.attention == saved_attention - kv_scales
    mlp = [(ffn, h), (ffn, h), (h, ffn)]
    assert base.mlp - got.mlp == 64 * sum(bf16(*s) - nvfp4_a16(*s) for s in mlp)
    assert got.lm_head == nvfp4_a16(v, h) and base.lm_head == bf16(v, h)
    assert (got.embedding, got.vision, got.norm) == (base.embedding, base.vision, base.norm)
    r = runner.invoke(app, ["estimate", str(QWEN36), "--gpu", "h100", "--json"])
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["per_gpu"]["weights_bytes"] == got.total
    assert any("400 weight groups in 64 layers in their own format by quantization_config.quantized_layers" in n for n in out["notes"])


def _tiny_qwen36() -> dict:
    """The real config shrunk (4 layers: 3 Gated DeltaNet + 1 full attention, a 1-block vision tower), its quantized_layers and
    targets kept for those layers: the same module names and formats at a size a test can write."""
    cfg = json.loads(QWEN36.read_text())
    t = cfg["text_config"]
    t.update(hidden_size=64, intermediate_size=128, num_hidden_layers=4, layer_types=t["layer_types"][:4], num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, linear_key_head_dim=16, linear_value_head_dim=16, linear_num_key_heads=2,
             linear_num_value_heads=4, vocab_size=256, bos_token_id=None, eos_token_id=None)
    cfg["vision_config"].update(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, num_position_embeddings=16)
    q = cfg["quantization_config"]

    def kept(name):
        return name == "lm_head" or int(name.split(".")[3]) < 4

    q["quantized_layers"] = {k: v for k, v in q["quantized_layers"].items() if kept(k)}
    for g in q["config_groups"].values():
        g["targets"] = [x for x in g["targets"] if kept(x)]
    return cfg


def test_qwen36_layout_written_by_safetensors_equals_the_config_arithmetic(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = _tiny_qwen36()
    config = transformers.Qwen3_5Config(**{k: v for k, v in cfg.items() if k != "quantization_config"})
    with torch.device("meta"):
        model = transformers.Qwen3_5ForConditionalGeneration(config)
    table = cfg["quantization_config"]["quantized_layers"]
    tensors = {}
    for name, p in model.named_parameters():
        module = name.removesuffix(".weight")
        algo = table.get(module, {}).get("quant_algo") if name.endswith(".weight") else None
        if algo == "FP8":
            tensors[name] = torch.zeros(p.shape, dtype=torch.float8_e4m3fn)
            tensors[module + ".weight_scale"] = torch.ones((), dtype=torch.float32)
            tensors[module + ".input_scale"] = torch.ones((), dtype=torch.float32)
        elif algo == "W4A16_NVFP4":
            rows, cols = p.shape
            tensors[name] = torch.zeros((rows, cols // 2), dtype=torch.uint8)
            tensors[module + ".weight_scale"] = torch.zeros((rows, cols // 16), dtype=torch.float8_e4m3fn)
            tensors[module + ".weight_scale_2"] = torch.ones((), dtype=torch.float32)
        else:
            assert algo is None
            tensors[name] = torch.zeros(p.shape, dtype=torch.float32 if p.dtype == torch.float32 else torch.bfloat16)
    for s in ("k_scale", "v_scale"):  # kv_cache_scheme FP8 on the one full-attention layer (index 3)
        tensors[f"model.language_model.layers.3.self_attn.{s}"] = torch.ones((), dtype=torch.float32)
    assert sum(1 for n in tensors if n.endswith("weight_scale_2")) == 3 * 4 + 1  # 4 layers' MLPs and lm_head
    folder = tmp_path / "ck"
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(cfg))
    stored = sum(t.numel() * t.element_size() for t in tensors.values())
    for path in (folder, folder / "config.json"):  # headers, then the config arithmetic alone
        r = runner.invoke(app, ["estimate", str(path), "--gpu", "h100", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["per_gpu"]["weights_bytes"] == stored


def test_qwen35_split_projections_in_an_exclusion_list_are_the_modules_priced():
    """transformers 5.24 Qwen3_5GatedDeltaNet has four input projections (in_proj_qkv, in_proj_z, in_proj_b, in_proj_a): an fp8
    list keeping layer 0's in_proj_z 16-bit prices exactly that matrix 16-bit."""
    cfg = _tiny_qwen36()
    qc = {"quant_method": "fp8", "activation_scheme": "dynamic",
          "modules_to_not_convert": ["lm_head", "model.visual", "model.language_model.layers.0.linear_attn.in_proj_z"]}
    every = weights_budget(parse_hf_config(dict(cfg, quantization_config=dict(qc, modules_to_not_convert=["lm_head", "model.visual"])), "q", "t"), Plan())
    one = weights_budget(parse_hf_config(dict(cfg, quantization_config=qc), "q", "t"), Plan())
    val, h = 4 * 16, 64
    assert one.layer_bytes[0] - every.layer_bytes[0] == bf16(val, h) - (val * h + 4)
    assert one.layer_bytes[1:] == every.layer_bytes[1:]


H, FFN, KVD = 64, 128, 16  # tiny_llama


def _ct(groups, ignore=("lm_head",)):
    return {"quant_method": "compressed-tensors", "format": "mixed-precision", "ignore": list(ignore), "config_groups": groups}


FP8_T = {"type": "float", "num_bits": 8, "strategy": "tensor"}
W4 = {"type": "int", "num_bits": 4, "strategy": "group", "group_size": 32, "symmetric": True}


def w4(r, c):  # compressed-tensors W4A16: packed int4 + fp16 scale per group of 32 + int64[2] weight_shape
    return r * c // 2 + r * (c // 32) * 2 + 16


def _layers(qc):
    return weights_budget(parse_hf_config(tiny_llama(quantization_config=qc), "t", "test"), Plan()).layer_bytes


def test_compressed_tensors_targets_naming_single_modules_follow_the_library_order():
    """compressed-tensors match_targets: an exact name beats a regex, a regex beats the class name Linear, whatever the group
    order; `ignore` beats every target."""
    dense_norms = 2 * H * 2
    linears = {"q": (H, H), "k": (KVD, H), "v": (KVD, H), "o": (H, H), "gate": (FFN, H), "up": (FFN, H), "down": (H, FFN)}
    qc = _ct({"a": {"targets": ["model.layers.0.self_attn.q_proj"], "weights": FP8_T},  # exact: fp8, over both below
              "b": {"targets": ["re:.*proj$"], "weights": W4},  # every projection w4a16 ...
              "c": {"targets": ["Linear"], "weights": FP8_T}},  # ... over Linear
             ignore=["lm_head", "model.layers.1.mlp.down_proj"])
    got = _layers(qc)
    fp8t = {k: r * c + 4 for k, (r, c) in linears.items()}
    w4a16 = {k: w4(r, c) for k, (r, c) in linears.items()}
    assert got[0] - dense_norms == fp8t["q"] + sum(w4a16[k] for k in linears if k != "q")
    assert got[1] - dense_norms == sum(w4a16[k] for k in linears if k != "down") + bf16(H, FFN)
    regex_only = _layers(_ct({"b": {"targets": ["re:.*proj$"], "weights": W4}}))  # no Linear group: only what the regex names
    assert regex_only[0] - dense_norms == sum(w4a16.values())
    none = _layers(_ct({"a": {"targets": ["model.layers.0.self_attn.q_proj"], "weights": FP8_T}}))
    assert none[0] - dense_norms == fp8t["q"] + sum(bf16(*linears[k]) for k in linears if k != "q")
    assert none[1] - dense_norms == sum(bf16(*s) for s in linears.values())


@pytest.mark.parametrize("qc, message", [
    ({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "quantized_layers": {"model.layers.0.mlp.up_proj": {"quant_algo": "MXFP8"}}},
     "quantization_config.quantized_layers['model.layers.0.mlp.up_proj'].quant_algo = 'MXFP8' is not priced; accepted: FP8, NVFP4, W4A16_NVFP4"),
    ({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "quantized_layers": []},
     "quantization_config.quantized_layers = 'list' is not priced"),
    ({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "quantized_layers": {"model.layers.0.mlp.up_proj": {"quant_algo": "NVFP4", "group_size": 32}}},
     "quantization_config.quantized_layers['model.layers.0.mlp.up_proj'].group_size = 32 is not priced; accepted: 16"),
    ({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "quantized_layers": {"model.layers.0.mlp.upp_proj": {"quant_algo": "FP8"}}},
     "quantization_config.quantized_layers entry 'model.layers.0.mlp.upp_proj' names no module oomplan knows"),
    ({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "quantized_layers": {"model.visual.blocks.0.attn.qkv": {"quant_algo": "FP8"}}},
     "quantises a vision-tower module"),
    (_ct({"a": {"targets": ["model.layers.0.self_attn.qq_proj"], "weights": FP8_T}}),
     "quantization_config.config_groups.*.targets entry 'model.layers.0.self_attn.qq_proj' names no module oomplan knows"),
    (_ct({"a": {"targets": "Linear", "weights": FP8_T}}), "quantization_config.config_groups.a.targets = 'str' is not priced"),
])
def test_malformed_module_entries_exit_2_in_one_line_naming_the_field(tmp_path, qc, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_llama(quantization_config=qc)))
    r = runner.invoke(app, ["estimate", str(path), "--gpu", "h100"])
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split()), r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_some_experts_in_another_format_are_refused():
    cfg = dict(model_type="mixtral", architectures=["MixtralForCausalLM"], num_local_experts=4, num_experts_per_tok=2)
    qc = _ct({"a": {"targets": ["model.layers.0.block_sparse_moe.experts.1.w1"], "weights": FP8_T},
              "b": {"targets": ["Linear"], "weights": W4}})
    with pytest.raises(InputError, match="gives the experts of layer 0 .* different formats"):
        weights_budget(parse_hf_config(tiny_llama(quantization_config=qc, **cfg), "t", "test"), Plan())


QWEN3_VL = FIXTURES / "configs" / "sweep" / "Qwen--Qwen3-VL-2B-Instruct.json"  # Qwen/Qwen3-VL-2B-Instruct, SOURCES.md


def test_a_quantised_qwen3_vl_tower_is_priced_linear_by_linear():
    """Qwen3-VL-2B (real config) under a declared fp8 128x128 block quantisation whose modules_to_not_convert names no vision
    module: transformers' FP8 quantizer replaces every nn.Linear of the tower too (patch_embed is a Conv3d, pos_embed an
    nn.Embedding: not quantised), so each of the tower's linears is e4m3 with an fp32 scale per 128x128 block; keeping
    "model.visual" prices it bf16, and keeping only part of it is refused."""
    transformers = pytest.importorskip("transformers")
    raw = json.loads(QWEN3_VL.read_text())
    qc = {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128], "modules_to_not_convert": ["lm_head"]}
    got = weights_budget(parse_hf_config(dict(raw, quantization_config=qc), "v", "test"), Plan()).by_component
    kept = weights_budget(parse_hf_config(dict(raw, quantization_config=dict(qc, modules_to_not_convert=["lm_head", "model.visual"])), "v", "t"), Plan())
    config = transformers.AutoConfig.for_model(**{k: v for k, v in raw.items() if k != "quantization_config"})
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(config)
    tower = [(n, m) for n, m in model.named_modules() if n.startswith("model.visual")]
    linears = [m for _, m in tower if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 * raw["vision_config"]["depth"] + 2 + 2 * len(raw["vision_config"]["deepstack_visual_indexes"])
    total = sum(p.numel() for _, m in tower for p in m.parameters(recurse=False))
    weights = sum(m.weight.numel() for m in linears)

    def block(o, i):
        return o * i + -(-o // 128) * -(-i // 128) * 4

    assert got.vision == sum(block(m.out_features, m.in_features) for m in linears) + 2 * (total - weights)
    assert kept.by_component.vision == 2 * total
    with pytest.raises(InputError, match="keeps part of the vision tower 16-bit"):
        parse_hf_config(dict(raw, quantization_config=dict(qc, modules_to_not_convert=["lm_head", "model.visual.merger"])), "v", "t")


def test_towers_not_priced_linear_by_linear_stay_refused_when_quantised():
    raw = json.loads((FIXTURES / "configs" / "devstral-small-2-24b-instruct.json").read_text())  # Pixtral: qkvo priced merged
    qc = dict(raw["quantization_config"], modules_to_not_convert=["lm_head"])
    with pytest.raises(InputError, match="names no vision module, so this fp8 checkpoint quantises its vision tower"):
        parse_hf_config(dict(raw, quantization_config=qc), "d", "test")


def test_awq_keeping_qwen35_in_proj_b_and_a_16_bit_by_suffix():
    """An AWQ list for Qwen3.5 as AutoAWQ recipes write it, ["visual", "mtp", "in_proj_b", "in_proj_a"]: transformers'
    should_convert_module matches "in_proj_b" as a suffix of every layer's linear_attn.in_proj_b, so those [v_heads, hidden]
    matrices stay bf16 (AWQ int4, group 16: packed + fp16 scales + int4 zeros otherwise)."""
    cfg = _tiny_qwen36()
    qc = {"bits": 4, "group_size": 16, "quant_method": "awq", "version": "gemm", "zero_point": True,
          "modules_to_not_convert": ["visual", "mtp", "in_proj_b", "in_proj_a"]}
    kept = weights_budget(parse_hf_config(dict(cfg, quantization_config=qc), "q", "t"), Plan()).layer_bytes
    every = weights_budget(parse_hf_config(dict(cfg, quantization_config=dict(qc, modules_to_not_convert=["visual", "mtp"])), "q", "t"), Plan()).layer_bytes
    heads, h = 4, 64
    awq = heads * h // 2 + (h // 16) * heads * 2 + (h // 16) * heads // 2
    assert [a - b for a, b in zip(kept, every, strict=True)] == [2 * (bf16(heads, h) - awq)] * 3 + [0]  # layer 3: full attention
