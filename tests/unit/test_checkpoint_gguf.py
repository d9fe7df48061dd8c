"""GGUF files written by gguf.GGUFWriter: architecture from the metadata, exact per-tensor types and sizes,
split files summed, the file's types over its name, and bad files refused with one line."""
import json
import math
import struct

import pytest
from typer.testing import CliRunner

from checkpoint_fixtures import GGUF_H, GGUF_I, GGUF_V, gguf_tensors, write_gguf
from oomplan.cli.app import app
from oomplan.errors import InputError
from oomplan.profiles import load_model

runner = CliRunner()


def _llama_json(args):
    r = runner.invoke(app, args)
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout), r


def test_architecture_and_tensor_table_from_the_file(tmp_path):
    stored = write_gguf(tmp_path / "tiny-Q4_K_M.gguf", weight_type="Q4_K", file_type="MOSTLY_Q4_K_M")
    spec = load_model(str(tmp_path / "tiny-Q4_K_M.gguf"))
    assert (spec.num_layers, spec.hidden_size, spec.intermediate_size, spec.vocab_size) == (2, GGUF_H, GGUF_I, GGUF_V)
    assert (spec.num_attention_heads, spec.num_kv_heads, spec.max_position_embeddings) == (8, 2, 4096)
    ck = spec.checkpoint
    assert ck.kind == "gguf" and ck.quant_method == "Q4_K_M" and ck.tensor_bytes == stored
    types = {t.name: t.dtype for t in ck.tensors}
    assert types["blk.0.ffn_down.weight"] == "Q4_K" and types["output_norm.weight"] == "F32"
    # Q4_K: 144 bytes per 256 weights (ggml-common.h block_q4_K)
    q = next(t for t in ck.tensors if t.name == "blk.0.attn_q.weight")
    assert q.nbytes == GGUF_H * GGUF_H // 256 * 144


def test_a_file_named_f16_holding_q8_0_is_priced_as_q8_0(tmp_path):
    path = tmp_path / "tiny-F16.gguf"
    stored = write_gguf(path, weight_type="Q8_0", file_type="MOSTLY_Q8_0")
    data, _ = _llama_json(["estimate", str(path), "--gpu", "h100", "--engine", "llamacpp", "--json"])
    engine = data["engine"]
    assert engine["settings"]["-m"] == "tiny-F16 Q8_0 (1.7 MiB)"
    weights = next(i for i in engine["per_gpu"] if i["name"] == "weights")
    # everything but token_embd (kept on the CPU by llama.cpp) is on the GPU: the file's Q8_0 bytes, plus the CUDA
    # buffer's padded row of each quantized tensor whose row (ne0 = 256) is not a multiple of 512
    # (ggml-cuda.cu ggml_backend_cuda_buffer_type_get_alloc_size): 256 weights of Q8_0 = 8 x 34 = 272 bytes for
    # attn_q/k/v/output and ffn_gate/up of both layers and for output.weight (ffn_down's rows are 512 long)
    embd = GGUF_V * GGUF_H // 32 * 34  # Q8_0: 34 bytes per 32 weights (ggml-common.h block_q8_0)
    assert weights["bytes"] == stored - embd + (2 * 6 + 1) * 272 and engine["host_bytes"] == embd
    assert "from the file's tensor infos" in engine["notes"][0]


def test_vet_llama_server_reads_the_file(tmp_path):
    path = tmp_path / "tiny-F16.gguf"
    write_gguf(path, weight_type="Q8_0")
    r = runner.invoke(app, ["vet", "--gpu", "h100", "--json", "--", "llama-server", "-m", str(path), "-c", "4096"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["engine"]["settings"]["-m"].endswith("Q8_0 (1.7 MiB)") and "no such file here" not in r.stderr
    # the file absent: the name is the fallback, and the CLI says so
    r = runner.invoke(app, ["vet", "--gpu", "h100", "--", "llama-server", "-m", "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"])
    assert r.exit_code in (0, 1), r.output
    assert "no such file here, so the model and the GGUF type come from its name" in r.stderr


def test_split_gguf_parts_are_summed(tmp_path):
    stored = write_gguf(tmp_path / "tiny.gguf", split_max_tensors=8)
    parts = sorted(p.name for p in tmp_path.iterdir())
    assert parts == ["tiny-00001-of-00003.gguf", "tiny-00002-of-00003.gguf", "tiny-00003-of-00003.gguf"]
    spec = load_model(str(tmp_path / parts[1]))  # any part names the set
    assert len(spec.checkpoint.files) == 3 and spec.checkpoint.tensor_bytes == stored
    assert spec.checkpoint.num_tensors == len(gguf_tensors("Q8_0"))
    (tmp_path / parts[2]).unlink()
    with pytest.raises(InputError, match="split GGUF is missing 1 of 3 parts"):
        load_model(str(tmp_path / parts[0]))


def test_transformers_dequantises_gguf(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_gguf(path)
    data, _ = _llama_json(["estimate", str(path), "--gpu", "h100", "--json"])
    numel = sum(math.prod(shape) for shape, _ in gguf_tensors("Q8_0").values())
    assert data["per_gpu"]["weights_bytes"] == numel * 2
    assert "dequantises GGUF tensors to bf16" in data["weights_source"]["reasons"][0]


@pytest.mark.parametrize("mutate,message", [
    (lambda b: b"GGUX" + b[4:], "not a GGUF file (magic b'GGUX'"),
    (lambda b: b[: len(b) - 4096], "past the end of the file"),
    (lambda b: b[:8] + struct.pack("<Q", 2**40) + b[16:], "claims 1099511627776 tensors"),
    (lambda b: b[:10], "shorter than the GGUF header"),
])
def test_bad_gguf_exit_2_one_line(tmp_path, mutate, message):
    path = tmp_path / "bad.gguf"
    write_gguf(path)
    path.write_bytes(mutate(path.read_bytes()))
    r = runner.invoke(app, ["estimate", str(path), "--gpu", "h100"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert message in r.stderr and "bad.gguf" in r.stderr
