"""ModelOpt <= 0.29 checkpoints declare their quantisation in a separate hf_quant_config.json ({"producer": {"name":
"modelopt"}, "quantization": {"quant_algo", "group_size", "exclude_modules", ...}}) and none in config.json; vLLM merges
it in as the quantization_config (oomplan/profiles.py read_hf_quant_config). Real folders, real safetensors headers, and
the hub path through a real local HTTP server (tests/hub_server.py)."""
import json

import pytest
from typer.testing import CliRunner

from checkpoint_fixtures import nbytes, write_checkpoint
from conftest import FIXTURES, tiny_llama
from hub_server import Hub, Repo, point_hub_client_at, start
from oomplan.cli.app import app

runner = CliRunner()
NVFP4 = {"producer": {"name": "modelopt", "version": "0.23.0"},
         "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16, "exclude_modules": ["lm_head"]}}


def _estimate(*args):
    return runner.invoke(app, ["estimate", *args, "--gpu", "h100", "--json"])


def _folder(path, hf_quant: dict | str | None, config: dict | None = None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config or tiny_llama()))
    if hf_quant is not None:
        (path / "hf_quant_config.json").write_text(hf_quant if isinstance(hf_quant, str) else json.dumps(hf_quant))
    return path


def _weights(r) -> int:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["per_gpu"]["weights_bytes"]


def test_folder_prices_hf_quant_config_as_the_declared_quantisation(tmp_path):
    folder = _folder(tmp_path / "nv", NVFP4)
    r = _estimate(str(folder))
    data = json.loads(r.stdout)
    assert r.exit_code == 0, r.output
    assert data["plan"]["declared_weights"]["method"] == "modelopt"
    assert data["plan"]["resolved_component_weights"] == {"attention": "nvfp4", "mlp": "nvfp4", "experts": "nvfp4"}  # lm_head excluded
    assert any("hf_quant_config.json (ModelOpt quant_algo NVFP4)" in w and "kv_cache_quant_algo FP8" in w for w in data["warnings"])
    # the same as config.json declaring it itself (ModelOpt >= 0.31's layout), and less than bf16
    inline = tiny_llama(quantization_config={"quant_method": "modelopt", **NVFP4["quantization"]})
    (tmp_path / "inline.json").write_text(json.dumps(inline))
    assert data["per_gpu"]["weights_bytes"] == _weights(_estimate(str(tmp_path / "inline.json")))
    assert data["per_gpu"]["weights_bytes"] < _weights(_estimate(str(_folder(tmp_path / "bf16", None))))


def test_config_json_quantization_config_wins_and_a_bare_config_is_unchanged(tmp_path):
    fp8 = {"quant_method": "fp8", "activation_scheme": "dynamic"}
    folder = _folder(tmp_path / "own", NVFP4, tiny_llama(quantization_config=fp8))
    data = json.loads(_estimate(str(folder)).stdout)
    assert data["plan"]["declared_weights"]["method"] == "fp8"
    assert not any("hf_quant_config" in w for w in data["warnings"])
    # config.json given alone (not its folder): no checkpoint folder, hf_quant_config.json beside it is not read
    bare = _folder(tmp_path / "bare", NVFP4)
    r = _estimate(str(bare / "config.json"))
    assert json.loads(r.stdout)["plan"]["declared_weights"] is None
    assert _weights(r) == _weights(_estimate(str(_folder(tmp_path / "bf16", None))))


def test_safetensors_headers_stay_exact_with_hf_quant_config(tmp_path):
    tensors = write_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "hf_quant_config.json").write_text(json.dumps(NVFP4))
    data = json.loads(_estimate(str(tmp_path / "ck")).stdout)
    assert data["per_gpu"]["weights_bytes"] == nbytes(tensors)  # the header bytes, as stored
    assert data["weights_source"]["description"].startswith("from checkpoint headers")


@pytest.mark.parametrize("text, message", [
    ("{not json", "hf_quant_config.json"),
    (json.dumps({"producer": {"name": "modelopt"}}), "field 'quantization' must be an object holding quant_algo, got NoneType"),
    (json.dumps({"quantization": {"quant_algo": "W4A8_AWQ"}}), "quantization.quant_algo = 'W4A8_AWQ' is not priced (never priced as 16-bit); accepted: NVFP4, FP8"),
    (json.dumps({"quantization": {"quant_algo": "NVFP4", "group_size": 32}}), "quantization_config.group_size = 32 is not priced"),
])
def test_bad_hf_quant_config_exit_2_one_line(tmp_path, text, message):
    folder = _folder(tmp_path / "bad", text)
    r = _estimate(str(folder))
    assert r.exit_code == 2, r.output
    assert message in r.output and "hf_quant_config.json" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_real_deepseek_r1_nvfp4_exclude_list_is_priced_module_by_module(tmp_path):
    """ModelOpt 0.23 lists DeepSeek's MLA projections one by one: layer 0 keeps kv_a_proj_with_mqa, q_b_proj and kv_b_proj
    16-bit (fnmatch/exact names, vLLM is_layer_excluded) but not q_a_proj or o_proj; `q_proj` is a projection DeepSeek-V3
    (q_lora_rank 1536) does not have, so it keeps nothing. Each matrix is priced in its module's format: the layer costs
    exactly those three matrices in bf16 instead of NVFP4 over the all-NVFP4 export, hand-computed here."""
    cfg = json.loads((FIXTURES / "configs" / "deepseek-v3-fp8.json").read_text())
    del cfg["quantization_config"]
    folder = _folder(tmp_path / "r1", (FIXTURES / "configs" / "hf_quant_config" / "deepseek-r1-nvfp4-excerpt.json").read_text(), cfg)
    excerpt = _estimate(str(folder))
    assert excerpt.exit_code == 1, excerpt.output  # does not fit one H100: priced, not refused
    plain = _folder(tmp_path / "all", {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4", "group_size": 16,
                                                                                          "exclude_modules": ["lm_head"]}}, cfg)

    def nvfp4(rows, cols):  # e2m1 pairs + one e4m3 scale per 16, weight_scale_2 and input_scale fp32
        return rows * (cols // 16) * (8 + 1) + 2 * 4

    kept = [(512 + 64, 7168), (128 * (128 + 64), 1536), (128 * (128 + 128), 512)]  # kv_a_proj_with_mqa, q_b_proj, kv_b_proj
    weights = [json.loads(r.stdout)["per_gpu"]["weights_bytes"] for r in (excerpt, _estimate(str(plain)))]
    assert weights[0] - weights[1] == sum(r * c * 2 - nvfp4(r, c) for r, c in kept)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    files = {"config.json": json.dumps(tiny_llama()).encode(), "hf_quant_config.json": json.dumps(NVFP4).encode()}
    h = Hub(repos={"nvidia/tiny-NVFP4": Repo(files), "org/tiny": Repo({"config.json": files["config.json"]})})
    server = start(h)
    point_hub_client_at(h, tmp_path, monkeypatch)
    yield h
    server.shutdown()
    server.server_close()


def test_hub_repo_reads_hf_quant_config_online_and_from_the_cache(hub, monkeypatch):
    r = _estimate("nvidia/tiny-NVFP4")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["plan"]["resolved_component_weights"] == {"attention": "nvfp4", "mlp": "nvfp4", "experts": "nvfp4"}
    assert any(p.endswith("/hf_quant_config.json") for _, p, _ in hub.log)
    # a repo without one: config alone, no request for it (not listed), bf16
    plain = json.loads(_estimate("org/tiny").stdout)
    assert plain["plan"]["declared_weights"] is None and plain["per_gpu"]["weights_bytes"] > data["per_gpu"]["weights_bytes"]
    assert not any(p.startswith("/org/tiny/") and p.endswith("hf_quant_config.json") for _, p, _ in hub.log)
    # offline from the HF cache: the snapshot's hf_quant_config.json is read again
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    again = json.loads(_estimate("nvidia/tiny-NVFP4").stdout)
    assert again["per_gpu"]["weights_bytes"] == data["per_gpu"]["weights_bytes"]
    assert again["plan"]["declared_weights"]["method"] == "modelopt"


def test_header_cache_written_before_hf_quant_config_was_read_is_refreshed(tmp_path, monkeypatch):
    """An oomplan header cache of version 1 (a bare table, written before hf_quant_config.json was read) sits next to an HF
    snapshot that never got hf_quant_config.json: used as is, the ModelOpt checkpoint would price as bf16. It is stale: the
    repo is resolved again online, which fetches the file; a current entry whose snapshot lost the file is stale too."""
    from oomplan.checkpoint import cache

    write_checkpoint(tmp_path / "src")
    files = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    files["hf_quant_config.json"] = json.dumps(NVFP4).encode()
    h = Hub(repos={"nvidia/tiny-NVFP4": Repo(files)})
    server = start(h)
    try:
        point_hub_client_at(h, tmp_path, monkeypatch)
        first = json.loads(_estimate("nvidia/tiny-NVFP4").stdout)
        assert first["plan"]["declared_weights"]["method"] == "modelopt"
        [entry] = (tmp_path / "oomplan-cache").rglob("*.json")
        stored = json.loads(entry.read_text())
        assert stored["version"] == cache.VERSION and stored["hf_quant_config"] is True
        [quant] = [p for p in (tmp_path / "hf").rglob("hf_quant_config.json") if "snapshots" in p.parts]
        for old in (stored["checkpoint"], stored):  # version 1: the bare table; version 2 with the file gone
            quant.unlink()
            entry.write_text(json.dumps(old))
            before = sum(p.endswith("/hf_quant_config.json") for _, p, _ in h.log)
            again = json.loads(_estimate("nvidia/tiny-NVFP4").stdout)
            assert again["plan"]["declared_weights"]["method"] == "modelopt"
            assert again["per_gpu"]["weights_bytes"] == first["per_gpu"]["weights_bytes"]
            assert sum(p.endswith("/hf_quant_config.json") for _, p, _ in h.log) == before + 1  # fetched again
            assert quant.is_file() and json.loads(entry.read_text())["version"] == cache.VERSION
    finally:
        server.shutdown()
        server.server_close()
