"""`oomplan curve` through CliRunner: the chart fits 80 columns and names the cliff; PNG/SVG files."""
import json
import sys

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app
from oomplan.memory.budget import estimate
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "80"})


def _max_width(text):
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("model,gpu,extra", [
    ("llama-3.1-8b", "a100-40g-sxm", []),
    ("llama-3.1-70b", "h100-sxm", ["--tp", "2", "--batch", "4"]),
    ("mistral-7b-v0.1", "rtx-4090", ["--kv-dtype", "fp8", "--no-paged", "--batch", "4"]),
])
def test_chart_fits_80_columns_and_names_the_cliff(model, gpu, extra):
    r = run("curve", model, "--gpu", gpu, *extra)
    assert r.exit_code == 0, r.output
    assert _max_width(r.stdout) <= 80, r.stdout
    data = json.loads(run("curve", model, "--gpu", gpu, *extra, "--json").stdout)
    cliff = data["curves"][0]["cliff"]
    assert f"fits up to {cliff['last_fit']:,} tokens; OOM from {cliff['first_oom']:,}" in r.stdout
    assert "◀ OOM" in r.stdout and "capacity" in r.stdout


def test_json_cliff_agrees_with_estimate():
    r = run("curve", "llama-3.1-8b", "--gpu", "l4", "--kv-dtype", "fp8", "--json")
    data = json.loads(r.stdout)
    cliff, plan = data["curves"][0]["cliff"], Plan(kv_dtype="fp8")
    model, gpu = load_model("llama-3.1-8b"), load_gpu("l4")
    assert estimate(model, gpu, Workload(ctx_tokens=cliff["last_fit"]), plan).fits
    assert not estimate(model, gpu, Workload(ctx_tokens=cliff["first_oom"]), plan).fits
    assert cliff["first_oom"] == cliff["last_fit"] + 16
    assert data["curves"][0]["points"][-1]["x"] == 131072  # --to defaults to max_position_embeddings


def test_compare_columns_and_cliffs():
    r = run("curve", "llama-3.1-8b", "--gpu", "a100-40g-sxm", "--to", "256k", "--compare", "kv_dtype=fp8",
            "--compare", "dms=4", "--compare", "kv-dtype=fp8,dms_ratio=4")
    assert r.exit_code == 0, r.output
    assert _max_width(r.stdout) <= 80, r.stdout
    for label in ("A  base: fits up to", "B  kv_dtype=fp8: fits up to", "C  dms=4: fits up to", "D  kv-dtype=fp8,dms_ratio=4"):
        assert label in r.stdout
    assert "✗" in r.stdout


def test_batch_axis():
    r = run("curve", "llama-3.1-8b", "--gpu", "h100-sxm", "--x", "batch", "--ctx", "32k", "--to", "128")
    assert r.exit_code == 0, r.output
    assert "sequences" in r.stdout and "OOM from" in r.stdout and _max_width(r.stdout) <= 80


def test_plan_file(tmp_path):
    plan = tmp_path / "plan.yaml"
    assert run("fit", "llama-3.1-8b", "--gpu", "l4", "--ctx", "8k", "-o", str(plan)).exit_code == 0
    r = run("curve", "--plan", str(plan), "--points", "6")
    assert r.exit_code == 0, r.output
    assert "llama-3.1-8b" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["--compare", "kv_dtpye=fp8"], "did you mean: kv_dtype"),
    (["--compare", "fp8"], "is not KEY=VALUE"),
    (["--x", "tokens"], "--x"),
    (["--from", "64k", "--to", "1k"], "--from/--to"),
    (["--kv-dtype", "fp7"], "--kv-dtype"),
])
def test_bad_input_exit_2(args, needle):
    r = run("curve", "llama-3.1-8b", "--gpu", "l4", *args)
    assert r.exit_code == 2, r.output
    assert needle in r.output and len(r.output.strip().splitlines()) == 1


def test_png_and_svg_written(tmp_path):
    pytest.importorskip("matplotlib")
    png, svg = tmp_path / "curve.png", tmp_path / "curve.svg"
    r = run("curve", "llama-3.1-8b", "--gpu", "a100-40g-sxm", "--compare", "kv_dtype=fp8", "--png", str(png), "--svg", str(svg))
    assert r.exit_code == 0, r.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert b"<svg" in svg.read_bytes()[:1000]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_png_refuses_to_overwrite_without_force(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    png.write_bytes(b"keep")
    r = run("curve", "llama-3.1-8b", "--gpu", "l4", "--png", str(png))
    assert r.exit_code == 2 and "--force" in r.output and png.read_bytes() == b"keep"
    assert run("curve", "llama-3.1-8b", "--gpu", "l4", "--png", str(png), "--force").exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_missing_matplotlib_exit_3(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run("curve", "llama-3.1-8b", "--gpu", "l4", "--png", str(tmp_path / "c.png"))
    assert r.exit_code == 3
    assert "pip install 'oomplan[plot]'" in r.output and not (tmp_path / "c.png").exists()


def test_curve_takes_pp_like_estimate():
    """`curve --pp 2` draws the busiest stage: each point equals estimate's per-GPU total at that ctx."""
    import json

    from typer.testing import CliRunner

    from oomplan.cli.app import app
    from oomplan.memory.budget import estimate
    from oomplan.profiles import load_gpu, load_model
    from oomplan.specs.plan import Plan, Workload

    r = CliRunner().invoke(app, ["curve", "llama-3.1-70b", "--gpu", "h100", "--tp", "4", "--pp", "2", "--points", "3", "--json"])
    assert r.exit_code == 0, r.output
    curve = json.loads(r.stdout)["curves"][0]
    assert curve["plan"]["pipeline_parallel"] == 2
    plan = Plan(tensor_parallel=4, pipeline_parallel=2)
    for point in curve["points"]:
        est = estimate(load_model("llama-3.1-70b"), load_gpu("h100"), Workload(ctx_tokens=point["x"]), plan)
        assert point["total_bytes"] == est.per_gpu.total_bytes and point["weights_bytes"] == est.per_gpu.weights_bytes
