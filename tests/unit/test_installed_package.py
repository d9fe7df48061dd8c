"""The shipped profiles are found from an installed package, not only from the checkout.

`oomplan/profiles.py` once built `Path(str(files("oomplan.model_profiles")))`: for a data folder without
__init__.py that string is "MultiplexedPath('...')", so a wheel install listed no models and no GPUs while
every test (run from the checkout) passed. Here the real wheel is built and installed into a folder outside
the checkout and run from another one. (.ci/wheel_smoke.py does the same in a fresh venv, plus the sdist and
the README's git-URL recipe.)
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIST = (
    "from oomplan.profiles import profile_names; import oomplan; "
    "print(oomplan.__file__); print(len(profile_names('model_profiles')), len(profile_names('hardware_profiles')))"
)


def _run(code_or_args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OOMPLAN_PROFILE_DIR")}
    env.update(PYTHONPATH=str(site), HOME=str(cwd))
    return subprocess.run([sys.executable, *code_or_args], cwd=cwd, env=env, capture_output=True, text=True)


def _shipped(kind: str) -> int:
    return len(list((ROOT / kind).glob("*.yaml")))


def _can_build_offline() -> bool:
    """setuptools >= 70.1 has bdist_wheel built in; older ones need the `wheel` package (a Python 3.11 venv ships 65)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major_minor = tuple(int(x) for x in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return major_minor >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.mark.skipif(not _can_build_offline(), reason="building the wheel offline needs setuptools >= 70.1 or wheel")
def test_a_wheel_install_finds_every_shipped_profile(tmp_path):
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)], check=True,
                   cwd=tmp_path, capture_output=True)
    (wheel,) = dist.glob("oomplan-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    r = _run(["-c", LIST], site, work)
    assert r.returncode == 0, r.stderr
    where, counts = r.stdout.splitlines()
    assert Path(where).is_relative_to(site)  # the installed copy ran, not the checkout
    assert counts.split() == [str(_shipped("model_profiles")), str(_shipped("hardware_profiles"))]
    assert _shipped("model_profiles") >= 30 and _shipped("hardware_profiles") >= 15


def test_an_install_without_the_data_folders_fails_loudly(tmp_path):
    """Never an empty list of models: a broken install is a one-line runtime error (exit 3)."""
    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "oomplan", site / "oomplan", ignore=shutil.ignore_patterns("__pycache__"))
    r = _run(["-m", "oomplan", "models"], site, work)
    assert r.returncode == 3
    assert "shipped model_profiles not found" in r.stderr and "reinstall" in r.stderr
    assert "Traceback" not in r.stderr
