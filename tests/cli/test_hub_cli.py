"""Hugging Face repo ids end to end: a real HTTP server in the hub's URL layout (tests/hub_server.py), the real
huggingface_hub client pointed at it with HF_ENDPOINT, real safetensors files, a real HF cache layout used offline."""
import json
import shutil
import struct

import pytest
from typer.testing import CliRunner

from checkpoint_fixtures import nbytes, write_checkpoint
from conftest import tiny_llama
from hub_server import Hub, Repo, point_hub_client_at, start
from oomplan.cli.app import app

runner = CliRunner()
SHA = "0123456789abcdef0123456789abcdef01234567"
SHA_V2 = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    tensors = write_checkpoint(tmp_path / "src", num_shards=2)
    files = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    corrupt = dict(files)
    corrupt["model-00002-of-00002.safetensors"] = struct.pack("<Q", 7) + b"not json"
    v2 = write_checkpoint(tmp_path / "src" / "v2", num_layers_stored=3, config=tiny_llama(num_hidden_layers=3))
    branch = Repo({p.name: p.read_bytes() for p in (tmp_path / "src" / "v2").iterdir()}, sha=SHA_V2)
    h = Hub(repos={
        "org/tiny": Repo(files, branches={"v2": branch}), "org/gated": Repo(files, token="hf_secret"), "org/slow": Repo(files, delay_s=3.0),
        "org/corrupt": Repo(corrupt),
    })
    server = start(h)
    point_hub_client_at(h, tmp_path, monkeypatch)
    h.tensors = tensors
    h.tensors_v2 = v2
    h.tmp = tmp_path
    yield h
    server.shutdown()
    server.server_close()


def _estimate(*args):
    return runner.invoke(app, ["estimate", *args, "--gpu", "h100", "--json"])


def test_public_repo_online_then_offline_from_the_cache(hub, monkeypatch):
    r = _estimate("org/tiny")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["per_gpu"]["weights_bytes"] == nbytes(hub.tensors)
    assert data["weights_source"]["description"] == f"from checkpoint headers, {len(hub.tensors)} tensors in 2 files"
    assert data["weights_source"]["checkpoint_location"] == f"org/tiny@{SHA}"
    # only headers: each shard was read by one range request (huggingface_hub asks for the first 100 kB), never whole
    shard_gets = [(p, rng) for m, p, rng in hub.log if p.endswith(".safetensors") and m == "GET"]
    assert len(shard_gets) == 2 and all(rng and rng.startswith("bytes=0-") for _, rng in shard_gets)
    # what was written: the HF cache (config.json, index) and oomplan's header cache, nothing else
    written = sorted(str(p.relative_to(hub.tmp)).split("/")[0] for p in hub.tmp.rglob("*") if p.is_file() and "src" not in p.parts)
    assert set(written) == {"hf", "oomplan-cache"}
    assert not [p for p in (hub.tmp / "hf").rglob("*.safetensors")]
    # second call: offline, no server needed
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    before = len(hub.log)
    r = _estimate("org/tiny")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["per_gpu"]["weights_bytes"] == nbytes(hub.tensors)
    assert len(hub.log) == before


def test_revision_pins_the_commit(hub):
    r = _estimate(f"org/tiny@{SHA}")
    assert r.exit_code == 0, r.output
    assert any(f"/revision/{SHA}" in p for _, p, _ in hub.log)
    r = _estimate("org/tiny@v9")
    assert r.exit_code == 2 and "has no revision 'v9'" in r.stderr


@pytest.mark.parametrize("given", [["org/tiny", "--revision", "v2"], ["org/tiny@v2"]])
def test_revision_is_written_into_the_plan_and_honoured_by_check_and_export(hub, monkeypatch, given):
    """fit -o keeps the revision (model.revision); check and export load that revision, not main."""
    assert _estimate("org/tiny@v2").exit_code == 0
    v2_bytes = json.loads(_estimate("org/tiny@v2").stdout)["per_gpu"]["weights_bytes"]
    assert v2_bytes == nbytes(hub.tensors_v2) != nbytes(hub.tensors)  # the branch really is another checkpoint
    plan = hub.tmp / "plan.yaml"
    r = runner.invoke(app, ["fit", *given, "--gpu", "h100", "--ctx", "1k", "-o", str(plan)])
    assert r.exit_code == 0, r.output
    import yaml
    written = yaml.safe_load(plan.read_text())["model"]
    assert (written["ref"], written["revision"]) == ("org/tiny", "v2")
    assert written["config_sha256"] != json.loads(_estimate("org/tiny").stdout)["model"]["config_sha256"]
    r = runner.invoke(app, ["check", str(plan), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["warnings"] == []  # v2's config (main's would warn: config_sha256 differs), same prediction
    assert json.loads(r.stdout)["per_gpu"]["weights_bytes"] == v2_bytes
    r = runner.invoke(app, ["export", str(plan), "--to", "vllm"])
    assert r.exit_code == 0, r.output
    assert "vllm serve org/tiny \\\n    --revision v2 \\\n" in r.stdout
    assert "revision='v2'" in runner.invoke(app, ["export", str(plan), "--to", "hf"]).stdout
    # offline, check re-reads v2 from the HF cache (refs/v2)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = runner.invoke(app, ["check", str(plan), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["per_gpu"]["weights_bytes"] == v2_bytes


def test_plan_without_revision_loads_the_default_branch(hub):
    plan = hub.tmp / "plan.yaml"
    assert runner.invoke(app, ["fit", "org/tiny", "--gpu", "h100", "--ctx", "1k", "-o", str(plan)]).exit_code == 0
    import yaml
    assert yaml.safe_load(plan.read_text())["model"]["revision"] is None
    assert "--revision" not in runner.invoke(app, ["export", str(plan), "--to", "vllm"]).stdout


def test_gated_repo_401_without_token_then_200_with(hub, monkeypatch):
    r = _estimate("org/gated")
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"error: MODEL: org/gated is gated: accept the licence at {hub.url}/org/gated and set HF_TOKEN "
                                "(or run `hf auth login`)")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    r = _estimate("org/gated")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["per_gpu"]["weights_bytes"] == nbytes(hub.tensors)


def test_missing_repo_404_with_did_you_mean(hub):
    r = _estimate("meta-llama/Llama-3.1-8B-Instruc")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "no model named 'meta-llama/Llama-3.1-8B-Instruc'" in r.stderr
    assert "did you mean: meta-llama/llama-3.1-8b-instruct" in r.stderr


def test_slow_hub_times_out_exit_3(hub):
    r = _estimate("org/slow")
    assert r.exit_code == 3 and r.stderr.count("\n") == 1
    assert "offline and not cached" in r.stderr and "timed out" in r.stderr


def test_no_network_exit_3(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    r = _estimate("org/tiny")
    assert r.exit_code == 3 and "offline and not cached" in r.stderr and r.stderr.count("\n") == 1


def test_offline_and_not_cached_exit_3(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = _estimate("org/tiny")
    assert r.exit_code == 3
    assert r.stderr.startswith("error: MODEL: org/tiny@main: offline (HF_HUB_OFFLINE) and not cached in ")


def test_corrupted_header_exit_2_naming_the_file(hub):
    r = _estimate("org/corrupt")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "model-00002-of-00002.safetensors: not a valid safetensors file" in r.stderr


@pytest.mark.parametrize("ref,message", [
    ("https://huggingface.co/org/tiny", "is a URL; give the repo id as org/name"),
    ("org/../tiny", "may not contain '..'"),
    ("org--x/tiny", "may not contain '..' or '--'"),
])
def test_bad_repo_ids_exit_2_one_line(hub, ref, message):
    r = _estimate(ref)
    assert r.exit_code == 2 and message in r.stderr and r.stderr.count("\n") == 1
    assert hub.log == []


def test_a_real_hf_cache_layout_is_used_offline(hub, monkeypatch):
    """models--org--name/snapshots/<sha>/ with refs/main, as `hf download` leaves it: the weights' own headers."""
    snapshot = hub.tmp / "hf" / "hub" / "models--acme--local" / "snapshots" / SHA
    tensors = write_checkpoint(snapshot, num_shards=1)
    refs = hub.tmp / "hf" / "hub" / "models--acme--local" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(SHA)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = _estimate("acme/local")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["per_gpu"]["weights_bytes"] == nbytes(tensors)
    assert data["weights_source"]["kind"] == "checkpoint headers"
    assert hub.log == []
    shutil.rmtree(snapshot)
