"""Exclusion lists matched module by module (oomplan/memory/module_formats.py) and static fp8 input scales: real
safetensors checkpoints written with the safetensors library, whose header bytes the config arithmetic must equal, and
each library's matching semantics (compressed-tensors exact/`re:`, ModelOpt substring/fnmatch, transformers regex/suffix)."""
import json

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from checkpoint_fixtures import llama_shapes
from conftest import tiny_llama
from oomplan.cli.app import app
from oomplan.errors import InputError
from oomplan.families import parse_hf_config
from oomplan.memory.weights import weights_budget
from oomplan.specs.plan import Plan

runner = CliRunner()
H, FFN, KVD = 64, 128, 16  # tiny_llama: hidden, intermediate, 2 KV heads x head_dim 8
LINEARS = {"self_attn.q_proj": (H, H), "self_attn.k_proj": (KVD, H), "self_attn.v_proj": (KVD, H), "self_attn.o_proj": (H, H),
           "mlp.gate_proj": (FFN, H), "mlp.up_proj": (FFN, H), "mlp.down_proj": (H, FFN)}


def _estimate(path):
    r = runner.invoke(app, ["estimate", str(path), "--gpu", "h100", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _fp8_checkpoint(folder, qc, kept, static):
    """A tiny llama as an fp8 per-tensor checkpoint: every linear F8_E4M3 with an fp32 weight_scale (and input_scale when
    static) except the modules in `kept` and lm_head, which stay bf16 (transformers' FP8 export / vLLM's loader layout)."""
    folder.mkdir(parents=True)
    tensors = {}
    for name, shape in llama_shapes().items():
        module = name.removesuffix(".weight")
        quantised = name.endswith("proj.weight") and module not in kept
        tensors[name] = torch.zeros(shape, dtype=torch.float8_e4m3fn if quantised else torch.bfloat16)
        if quantised:
            tensors[module + ".weight_scale"] = torch.ones((), dtype=torch.float32)
            if static:
                tensors[module + ".input_scale"] = torch.ones((), dtype=torch.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(tiny_llama(quantization_config=qc)))
    return sum(t.numel() * t.element_size() for t in tensors.values())


@pytest.mark.parametrize("static", [True, False])
def test_per_module_exclusions_and_static_scales_equal_the_checkpoint_headers(tmp_path, static):
    """modules_to_not_convert keeps layer 0's whole MLP (a regex up to a module boundary) and layer 1's q_proj (a suffix):
    the config arithmetic equals the bytes of a real checkpoint with exactly those modules bf16, scales included."""
    qc = {"quant_method": "fp8", "activation_scheme": "static" if static else "dynamic",
          "modules_to_not_convert": ["model.layers.0.mlp", "layers.1.self_attn.q_proj"]}
    kept = {"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj"}
    stored = _fp8_checkpoint(tmp_path / "ck", qc, kept, static)
    from_headers = _estimate(tmp_path / "ck")
    assert from_headers["weights_source"]["description"].startswith("from checkpoint headers")
    assert from_headers["per_gpu"]["weights_bytes"] == stored
    assert _estimate(tmp_path / "ck" / "config.json")["per_gpu"]["weights_bytes"] == stored  # config arithmetic alone
    # and by hand: 14 linears, 4 of them kept bf16; fp8 = 1 byte/weight + a 4-byte scale (+ a 4-byte input scale if static)
    m = parse_hf_config(tiny_llama(quantization_config=qc), "t", "test")
    dense = sum(r * c for r, c in LINEARS.values()) * 2
    b = weights_budget(m, Plan())
    per = 4 + (4 if static else 0)
    fp8 = {k: r * c + per for k, (r, c) in LINEARS.items()}
    assert b.layer_bytes[0] - 2 * H * 2 == sum(v for k, v in fp8.items() if not k.startswith("mlp.")) + (FFN * H * 2) * 2 + H * FFN * 2
    assert b.layer_bytes[1] - 2 * H * 2 == sum(v for k, v in fp8.items() if k != "self_attn.q_proj") + H * H * 2
    assert dense > sum(fp8.values())


def _weights(qc, **cfg):
    return weights_budget(parse_hf_config(tiny_llama(quantization_config=qc, **cfg), "t", "test"), Plan())


CT_FP8 = {"quant_method": "compressed-tensors", "format": "float-quantized",
          "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"type": "float", "num_bits": 8, "strategy": "tensor"},
                                        "input_activations": {"type": "float", "num_bits": 8, "dynamic": True}}}}


def _ct(ignore, static=False):
    qc = json.loads(json.dumps(CT_FP8))
    qc["ignore"] = ignore
    qc["config_groups"]["group_0"]["input_activations"]["dynamic"] = not static
    return qc


def test_compressed_tensors_regex_is_anchored_at_the_start_and_names_are_exact():
    base = _weights(_ct(["lm_head"])).layer_bytes
    one_q = _weights(_ct(["lm_head", "re:model\\.layers\\.0\\..*q_proj"])).layer_bytes
    assert one_q[0] - base[0] == H * H * 2 - (H * H + 4) and one_q[1] == base[1]  # layer 0's q_proj bf16, layer 1's fp8
    with pytest.raises(InputError, match="ignore entry 're:layers"):  # re.match is anchored: names nothing, refused
        weights_budget(parse_hf_config(tiny_llama(quantization_config=_ct(["re:layers\\.0\\..*q_proj"])), "t", "test"), Plan())
    # the same suffix, exact in compressed-tensors (names nothing: refused), a suffix in transformers (every q_proj)
    with pytest.raises(InputError, match="names no module oomplan knows"):
        _weights(_ct(["lm_head", "self_attn.q_proj"]))
    hf = _weights({"quant_method": "fp8", "modules_to_not_convert": ["self_attn.q_proj"]}).layer_bytes
    every = _weights({"quant_method": "fp8"}).layer_bytes
    assert [a - b for a, b in zip(hf, every, strict=True)] == [H * H * 2 - (H * H + 4)] * 2


def test_compressed_tensors_static_input_activations_add_one_fp32_per_linear():
    dynamic, static = _weights(_ct(["lm_head"])), _weights(_ct(["lm_head"], static=True))
    assert static.resident_bytes - dynamic.resident_bytes == 2 * len(LINEARS) * 4


def test_modelopt_fnmatch_and_substring():
    def nvfp4(exclude):
        return _weights({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "exclude_modules": exclude}).layer_bytes

    base = nvfp4(["lm_head"])

    def fp4(r, c):
        return r * (c // 16) * 9 + 8

    attention = sum(r * c * 2 - fp4(r, c) for k, (r, c) in LINEARS.items() if k.startswith("self_attn"))
    glob = nvfp4(["lm_head", "model.layers.1.self_attn*"])  # fnmatch, as ModelOpt writes it
    assert (glob[0], glob[1] - base[1]) == (base[0], attention)
    sub = nvfp4(["lm_head", "layers.0.mlp.down_proj"])  # a substring of the module name
    assert (sub[0] - base[0], sub[1]) == (H * FFN * 2 - fp4(H, FFN), base[1])


def test_an_entry_past_the_last_decoder_layer_keeps_nothing_priced():
    """GLM-5.1-NVFP4 (nvidia, 78 layers 0-77) excludes `model.layers.78*`, its MTP layer: it names no module the model
    builds, so it changes nothing (it was refused as an unknown module name); a layer the model has still must match."""
    qc = {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}
    base = _weights(dict(qc, exclude_modules=["lm_head"])).layer_bytes  # tiny_llama: 2 layers
    assert _weights(dict(qc, exclude_modules=["lm_head", "model.layers.2*", "model.layers.2.mlp.gate_proj"])).layer_bytes == base
    with pytest.raises(InputError, match="entry 'model.layers.1.mlp.gate_prj' names no module"):
        _weights(dict(qc, exclude_modules=["lm_head", "model.layers.1.mlp.gate_prj"]))


def test_some_experts_of_a_layer_kept_16_bit_is_refused():
    cfg = dict(model_type="mixtral", architectures=["MixtralForCausalLM"], num_local_experts=4, num_experts_per_tok=2)
    qc = _ct(["lm_head", "model.layers.0.block_sparse_moe.experts.1.w1"])
    with pytest.raises(InputError, match="keeps 1 of the 4 experts of layer 0 16-bit"):
        _weights(qc, **cfg)
    every = _ct(["lm_head", "re:model\\.layers\\.0\\.block_sparse_moe\\.experts\\..*"])
    assert _weights(every, **cfg).layer_bytes[0] > _weights(_ct(["lm_head"]), **cfg).layer_bytes[0]


@pytest.mark.parametrize("qc, message", [
    (_ct(["re:(unclosed"]), "quantization_config.ignore entry 're:(unclosed' is not a regular expression that compiles"),
    (_ct(["x" * 100_000]), "quantization_config.ignore has an entry of 100,000 characters"),
    (_ct([1]), "quantization_config.ignore entries must be module names or patterns (strings), got int"),
    (_ct({"a": 1}), "quantization_config.ignore entries must be module names or patterns (strings), got dict"),
    ({"quant_method": "fp8", "modules_to_not_convert": ["model.layers.[0"]}, "quantization_config.modules_to_not_convert entry 'model.layers.[0' is not a regular expression"),
    (_ct(["lm_head", "model.layers.0.self_attn.qq_proj"]), "quantization_config.ignore entry 'model.layers.0.self_attn.qq_proj' names no module"),
])
def test_hostile_exclusion_lists_exit_2_one_line_naming_the_field(tmp_path, qc, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_llama(quantization_config=qc)))
    r = runner.invoke(app, ["estimate", str(path), "--gpu", "h100"])
    assert r.exit_code == 2, r.output
    assert message in r.output.replace("\n", " ") or message in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output and "x" * 200 not in r.output


SWEEP = __import__("conftest").FIXTURES / "configs" / "sweep"


def _json_estimate(path, *args):
    r = runner.invoke(app, ["estimate", str(path), "--gpu", "h100", "--json", *args])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


def test_modelopt_kv_cache_scheme_is_the_kv_default_with_its_scales(tmp_path):
    """nvidia/MiniMax-M2.5-NVFP4 (real config.json, tests/fixtures/configs/sweep/SOURCES.md) declares kv_cache_scheme
    {float, 8 bits}: vLLM's --kv-cache-dtype auto resolves to fp8 for ModelOpt, so the default KV is fp8 (half of bf16),
    --kv-dtype still overrides, and the checkpoint's k_scale/v_scale (one fp32 each per attention layer) are weights."""
    raw = json.loads((SWEEP / "nvidia--MiniMax-M2.5-NVFP4.json").read_text())
    (tmp_path / "no-kv.json").write_text(json.dumps(dict(raw, quantization_config={
        k: v for k, v in raw["quantization_config"].items() if k != "kv_cache_scheme"})))
    shipped = _json_estimate(SWEEP / "nvidia--MiniMax-M2.5-NVFP4.json")
    bf16 = _json_estimate(SWEEP / "nvidia--MiniMax-M2.5-NVFP4.json", "--kv-dtype", "bf16")
    plain = _json_estimate(tmp_path / "no-kv.json")
    assert shipped["plan"]["resolved_kv_dtype"] == "fp8" and bf16["plan"]["resolved_kv_dtype"] == "bf16"
    assert plain["plan"]["resolved_kv_dtype"] == "bf16"
    assert 2 * shipped["per_gpu"]["kv_cache_bytes"] == bf16["per_gpu"]["kv_cache_bytes"] == plain["per_gpu"]["kv_cache_bytes"]
    layers = raw["num_hidden_layers"]
    m = parse_hf_config(raw, "m", "test")
    assert weights_budget(m, Plan()).by_component.attention - weights_budget(
        parse_hf_config(json.loads((tmp_path / "no-kv.json").read_text()), "m", "test"), Plan()).by_component.attention == layers * 2 * 4
    assert any("KV cache priced fp8" in n and "kv_cache_scheme" in n for n in shipped["notes"] + shipped["warnings"])


def test_compressed_tensors_kv_cache_scheme_ships_scales_but_stays_opt_in():
    qc = _ct(["lm_head"])
    with_kv = dict(qc, kv_cache_scheme={"type": "float", "num_bits": 8, "strategy": "tensor", "dynamic": False})
    a, b = _weights(qc), _weights(with_kv)
    assert b.resident_bytes - a.resident_bytes == 2 * 2 * 4  # 2 layers, k_scale + v_scale
    from oomplan.memory.kv_cache import resolved_kv_dtype

    m = parse_hf_config(tiny_llama(quantization_config=with_kv), "t", "test")
    assert resolved_kv_dtype(m, Plan()) == "bf16" and resolved_kv_dtype(m, Plan(kv_dtype="fp8")) == "fp8"


@pytest.mark.parametrize("qc, message", [
    ({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "kv_cache_quant_algo": "NVFP4"},
     "quantization_config.kv_cache_quant_algo = 'NVFP4' is not priced; accepted: FP8"),
    (dict(CT_FP8, kv_cache_scheme=5), "quantization_config.kv_cache_scheme = 5 is not priced"),
    (dict(CT_FP8, kv_cache_scheme={"type": "int", "num_bits": 8}), "quantization_config.kv_cache_scheme = {'type': 'int', 'num_bits': 8}"),
])
def test_unpriced_kv_schemes_exit_2_naming_the_field(tmp_path, qc, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_llama(quantization_config=qc)))
    r = runner.invoke(app, ["estimate", str(path), "--gpu", "h100"])
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_a_quantised_vision_tower_is_refused_not_priced_16_bit():
    """Devstral Small 2 (real config, tests/fixtures/configs/SOURCES.md) keeps model.vision_tower and the projector 16-bit
    in modules_to_not_convert: priced. The same fp8 declaration without them quantises every nn.Linear of the tower
    (transformers FP8 replaces each one not excluded), which oomplan does not price: refused naming the field."""
    raw = json.loads((__import__("conftest").FIXTURES / "configs" / "devstral-small-2-24b-instruct.json").read_text())
    assert parse_hf_config(raw, "d", "test").vision is not None
    qc = dict(raw["quantization_config"], modules_to_not_convert=["lm_head"])
    with pytest.raises(InputError, match="quantization_config.modules_to_not_convert names no vision module, so this fp8 checkpoint quantises its vision tower"):
        parse_hf_config(dict(raw, quantization_config=qc), "d", "test")
    ct = _ct(["lm_head"])  # compressed-tensors targets: [Linear] likewise
    with pytest.raises(InputError, match="quantization_config.ignore names no vision module"):
        parse_hf_config(dict(raw, quantization_config=ct), "d", "test")
    parse_hf_config(dict(raw, quantization_config=_ct(["lm_head", "re:vision_tower.*", "re:multi_modal_projector.*"])), "d", "test")
