"""`--gpu auto` and `gpus --detect` against a faked nvidia-ml-py layer (and the real one when present)."""
import sys
import types

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()
GIB = 2**30


def fake_nvml(devices, driver="570.86.15"):
    """A stand-in for the `pynvml` module: (name, total bytes, free bytes) per device."""
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    mod.NVMLError = NVMLError
    mod.nvmlInit = lambda: None
    mod.nvmlShutdown = lambda: None
    mod.nvmlSystemGetDriverVersion = lambda: driver
    mod.nvmlDeviceGetCount = lambda: len(devices)
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetName = lambda h: devices[h][0].encode()
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=devices[h][1], free=devices[h][2])
    return mod


@pytest.fixture
def two_h100(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("NVIDIA H100 80GB HBM3", 80 * GIB, 70 * GIB)] * 2))


def test_gpus_detect_matches_profiles(two_h100):
    r = runner.invoke(app, ["gpus", "--detect"])
    assert r.exit_code == 0
    assert r.stdout.count("NVIDIA H100 80GB HBM3") == 2 and "h100-sxm" in r.stdout


def test_gpu_auto_plans_against_free_memory(two_h100):
    r = runner.invoke(app, ["estimate", "llama-3-8b", "--gpu", "auto", "--json"])
    assert r.exit_code == 0
    assert "detected 2 x NVIDIA H100 80GB HBM3 -> profile h100-sxm" in r.stderr
    import json

    assert json.loads(r.stdout)["gpu"]["memory_bytes"] == 70 * GIB


def test_unknown_card_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("NVIDIA Quantum Q9000", 8 * GIB, 8 * GIB)]))
    r = runner.invoke(app, ["estimate", "llama-3-8b", "--gpu", "auto"])
    assert r.exit_code == 2 and "matches no GPU profile" in r.stderr


def test_no_driver_is_exit_3(monkeypatch):
    mod = fake_nvml([])

    def fail():
        raise mod.NVMLError("NVML Shared Library Not Found")

    mod.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    r = runner.invoke(app, ["gpus", "--detect"])
    assert r.exit_code == 3 and "no NVIDIA driver found" in r.stderr


def test_real_nvml_when_a_gpu_is_present():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pytest.skip("no NVIDIA driver here")
    r = runner.invoke(app, ["gpus", "--detect"])
    assert r.exit_code == 0 and "local GPUs" in r.stdout
