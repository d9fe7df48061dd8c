"""Weights from real safetensors headers (written by the safetensors package): exact bytes, casts priced as held,
MTP layers and tied lm_heads, TP/PP placement, and every bad header refused with one line."""
import json
import math
import struct

import pytest
import torch
from typer.testing import CliRunner

from checkpoint_fixtures import nbytes, write_checkpoint
from conftest import tiny_llama
from oomplan.checkpoint.safetensors_files import DTYPE_BITS, read_folder
from oomplan.cli.app import app
from oomplan.errors import InputError
from oomplan.memory.budget import estimate
from oomplan.memory.checkpoint_weights import weights_source
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

H100 = load_gpu("h100")
runner = CliRunner()


def _weights(spec, **plan):
    return estimate(spec, H100, Workload(ctx_tokens=128), Plan(**plan)).per_gpu.weights_bytes


def test_every_dtype_including_fp8_and_u8_packs_is_counted_exactly(tmp_path):
    # one tensor of each dtype torch can write, with odd shapes; bytes = numel x element size
    extra = {
        "extra.f32": torch.zeros(3, 5, dtype=torch.float32), "extra.f16": torch.zeros(7, dtype=torch.float16),
        "extra.f64": torch.zeros(2, dtype=torch.float64), "extra.i64": torch.zeros(3, dtype=torch.int64),
        "extra.i32": torch.zeros(5, dtype=torch.int32), "extra.i16": torch.zeros(9, dtype=torch.int16),
        "extra.i8": torch.zeros(11, dtype=torch.int8), "extra.u8_packed_nibbles": torch.zeros(13, 2, dtype=torch.uint8),
        "extra.bool": torch.zeros(4, dtype=torch.bool), "extra.f8_e4m3": torch.zeros(6, 3, dtype=torch.float8_e4m3fn),
        "extra.f8_e5m2": torch.zeros(5, dtype=torch.float8_e5m2),
    }
    tensors = write_checkpoint(tmp_path / "m", extra=extra, config=tiny_llama(quantization_config={"quant_method": "fp8"}))
    ck = read_folder(tmp_path / "m", "fp8")
    by_name = {t.name: t for t in ck.tensors}
    assert {by_name[n].dtype for n in extra} == {"F32", "F16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}
    for name, t in tensors.items():
        assert by_name[name].nbytes == t.numel() * t.element_size(), name
        assert math.ceil(math.prod(t.shape) * DTYPE_BITS[by_name[name].dtype] / 8) == by_name[name].nbytes
    assert ck.tensor_bytes == nbytes(tensors)
    # a quantised checkpoint is held as stored: weights = the sum of its tensors' bytes
    spec = load_model(str(tmp_path / "m"))
    assert weights_source(spec, Plan()).stored_format == "fp8"
    assert _weights(spec) == nbytes(tensors)


@pytest.mark.parametrize("num_shards", [1, 3])
def test_folder_weights_equal_the_sum_of_tensor_bytes(tmp_path, num_shards):
    tensors = write_checkpoint(tmp_path / "m", num_shards=num_shards)
    spec = load_model(str(tmp_path / "m"))
    assert spec.checkpoint.num_tensors == len(tensors) and len(spec.checkpoint.files) == num_shards
    assert _weights(spec) == nbytes(tensors)
    src = weights_source(spec, Plan())
    assert src.kind == "checkpoint headers"
    assert src.description == f"from checkpoint headers, {len(tensors)} tensors in {num_shards} file{'s' if num_shards > 1 else ''}"
    # the tiny llama's config arithmetic counts the same tensors: no difference
    assert src.difference_bytes == 0


def test_fp32_checkpoint_is_priced_as_the_bf16_it_is_held_in(tmp_path):
    tensors = write_checkpoint(tmp_path / "m", dtype=torch.float32)
    spec = load_model(str(tmp_path / "m"))
    assert _weights(spec) == nbytes(tensors) // 2  # served as bf16 (resolved_weight_format)
    assert _weights(spec, weights="fp32") == nbytes(tensors)
    src = weights_source(spec, Plan())
    assert "F32 tensors" in src.reasons[0] and "cast to bf16" in src.reasons[0]


def test_mtp_layer_and_tied_lm_head_are_not_held(tmp_path):
    # 3 layers stored, the config has 2: layer 2 is like DeepSeek-V3's MTP layer 61; lm_head stored although tied
    extra = {"lm_head.weight": torch.zeros(1000, 64, dtype=torch.bfloat16)}
    tensors = write_checkpoint(tmp_path / "m", num_layers_stored=3, tied=True, extra=extra)
    spec = load_model(str(tmp_path / "m"))
    layer2 = sum(t.numel() * 2 for n, t in tensors.items() if n.startswith("model.layers.2."))
    assert _weights(spec) == nbytes(tensors) - layer2 - 1000 * 64 * 2
    reasons = " ".join(weights_source(spec, Plan()).reasons)
    assert "beyond num_hidden_layers=2" in reasons and "tied" in reasons


def test_tp_and_pp_place_the_header_bytes(tmp_path):
    tensors = write_checkpoint(tmp_path / "m")
    spec = load_model(str(tmp_path / "m"))
    layer0 = sum(t.numel() * 2 for n, t in tensors.items() if n.startswith("model.layers.0."))
    emb = 1000 * 64 * 2
    pp = estimate(spec, H100, Workload(ctx_tokens=128), Plan(pipeline_parallel=2))
    assert pp.stages[0].weights_bytes == emb + layer0  # first stage: embedding + layer 0
    assert pp.stages[1].weights_bytes == nbytes(tensors) - emb - layer0  # last: layer 1 + norm + lm_head
    tp = estimate(spec, H100, Workload(ctx_tokens=128), Plan(tensor_parallel=2)).per_gpu.weights_bytes
    arithmetic = estimate(spec.model_copy(update={"checkpoint": None}), H100, Workload(ctx_tokens=128), Plan(tensor_parallel=2)).per_gpu.weights_bytes
    assert tp == arithmetic  # same tensors as the inventory: the same split


def test_requantising_plan_falls_back_to_config_arithmetic_and_says_why(tmp_path):
    write_checkpoint(tmp_path / "m")
    spec = load_model(str(tmp_path / "m"))
    src = weights_source(spec, Plan(weights="awq"))
    assert src.kind == "config arithmetic" and "re-quantises on load" in src.reasons[0]


def test_cli_json_and_table_say_where_the_weights_came_from(tmp_path):
    tensors = write_checkpoint(tmp_path / "m", num_shards=2)
    r = runner.invoke(app, ["estimate", str(tmp_path / "m"), "--gpu", "h100", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["weights_source"]["kind"] == "checkpoint headers"
    assert data["weights_source"]["num_tensors"] == len(tensors) and data["weights_source"]["num_files"] == 2
    assert data["per_gpu"]["weights_bytes"] == nbytes(tensors) == data["weights_source"]["stored_bytes"]
    assert data["weights_source"]["stored_format"] == "bf16"
    r = runner.invoke(app, ["estimate", str(tmp_path / "m"), "--gpu", "h100"])
    assert f"note: weights from checkpoint headers, {len(tensors)} tensors in 2 files" in r.stdout
    r = runner.invoke(app, ["estimate", "llama-3-8b", "--gpu", "h100", "--json"])
    assert json.loads(r.stdout)["weights_source"] == {
        "kind": "config arithmetic", "description": "from config arithmetic", "checkpoint_location": None, "num_tensors": None,
        "num_files": None, "stored_bytes": None, "stored_format": None, "checkpoint_bytes": None, "arithmetic_bytes": 16_060_522_496,
        "difference_bytes": None, "reasons": []}


# ---- bad headers: exit 2, one line naming the file; nothing read past what the header claims


def _bad(tmp_path, content: bytes):
    folder = tmp_path / "m"
    write_checkpoint(folder)
    (folder / "model.safetensors").write_bytes(content)
    return folder


def _header(obj) -> bytes:
    raw = json.dumps(obj).encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize("content,message", [
    (struct.pack("<Q", 10**6) + b"{}", "its header length (1000000 bytes) is larger than the file (10 bytes)"),
    (struct.pack("<Q", 5) + b"nope!", "header is not json-encoded"),
    (b"abc", "shorter than the 8-byte header length"),
    (_header([1, 2]), "not a JSON object of tensors"),
    (_header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}), "past the end of the file"),
    (_header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}) + bytes(12), "data_offsets span 12 bytes but F32 x [4] is 16"),
    (_header({"w": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 4]}}) + bytes(4), "has dtype 'Q9'"),
    (_header({"w": {"dtype": "F32", "shape": [4]}}), "header format not recognized"),
])
def test_bad_headers_exit_2_naming_the_file(tmp_path, content, message):
    folder = _bad(tmp_path, content)
    with pytest.raises(InputError, match="model.safetensors") as exc:
        load_model(str(folder))
    assert message in str(exc.value) and "\n" not in str(exc.value)
    r = runner.invoke(app, ["estimate", str(folder), "--gpu", "h100"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "model.safetensors" in r.stderr


def test_index_naming_a_file_outside_the_folder_is_refused(tmp_path):
    folder = tmp_path / "m"
    write_checkpoint(folder, num_shards=2)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "../x.safetensors"}}))
    with pytest.raises(InputError, match="outside the folder"):
        load_model(str(folder))


def test_reading_writes_nothing(tmp_path):
    folder = tmp_path / "m"
    write_checkpoint(folder, num_shards=2)
    before = sorted(p.name for p in folder.iterdir())
    load_model(str(folder))
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize("quant,extra_names,expected", [
    ("fp8", ["model.layers.0.mlp.up_proj.weight_scale_inv"], "fp8-block"),  # DeepSeek-V3: 128x128 blocks
    ("fp8", ["model.layers.0.mlp.up_proj.weight_scale"], "fp8-channel"),
    ("awq", [], "awq"), ("bitsandbytes", ["model.layers.0.mlp.up_proj.weight.absmax"], "nf4"),
])
def test_stored_format_names_follow_the_format_registry(tmp_path, quant, extra_names, expected):
    from oomplan.formats.registry import registry  # the registry's names: every label must be one of them

    extra = {n: torch.zeros(2, dtype=torch.float32) for n in extra_names}
    extra["model.layers.0.mlp.gate_proj.weight_fp8"] = torch.zeros(4, dtype=torch.float8_e4m3fn) if quant == "fp8" else torch.zeros(4)
    qc = {"fp8": {"quant_method": "fp8"}, "awq": {"quant_method": "awq", "bits": 4, "group_size": 128},
          "bitsandbytes": {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}}[quant]
    write_checkpoint(tmp_path / "m", extra=extra, config=tiny_llama(quantization_config=qc))
    label = weights_source(load_model(str(tmp_path / "m")), Plan()).stored_format
    assert label == expected and label in registry()
