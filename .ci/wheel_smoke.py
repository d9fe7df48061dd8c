#!/usr/bin/env python3
"""What users run, tried as users install it (called by .ci/run; stdlib only; ~1-2 minutes).

1. wheel: build it (`pip wheel --no-deps`), install it into a fresh venv without torch (deps from the index,
   pinned by constraints.txt) and, from a temporary folder outside the checkout, run --version, models, gpus,
   estimate, fit -o plan.yaml, check plan.yaml, export plan.yaml --to vllm; assert exit codes, that the model and
   GPU lists hold every shipped profile, and that every README console example prints what the README shows.
2. sdist: build it (setuptools' PEP 517 hook) from a clone, install it in place of the wheel, list models and GPUs.
3. the README's GitHub Actions recipe as written: `pip install "oomplan @ git+file://<a clone>"` (non-editable)
   in place of the sdist, then `oomplan check deploy/plan.yaml --margin 10% --strict`.

Exit 0 when all hold; otherwise one line per failure on stderr and exit 1.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from readme_examples import examples as readme_examples, trim  # noqa: E402  (stdlib only)

CONSTRAINTS = ROOT / "constraints.txt"
FAILURES: list[str] = []


def fail(msg: str) -> None:
    FAILURES.append(msg)
    print(f"FAIL {msg}", file=sys.stderr)


def sh(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def make_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(where)  # no --system-site-packages: nothing of ours leaks in
    return where / "bin"


def pip_install(bin_dir: Path, *what: str) -> None:
    r = sh([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS), *what], cwd=bin_dir)
    if r.returncode != 0:
        sys.exit(f"wheel_smoke: pip install {' '.join(what)} failed:\n{r.stdout}{r.stderr}")


def table_names(stdout: str) -> list[str]:
    """First column of a rich table's body rows."""
    return [line.split("│")[1].strip() for line in stdout.splitlines() if line.startswith("│")]


class Tool:
    """The installed `oomplan` of one venv, run from a folder outside the checkout."""

    def __init__(self, bin_dir: Path, cwd: Path, label: str):
        self.exe, self.cwd, self.label = bin_dir / "oomplan", cwd, label
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OOMPLAN_PROFILE_DIR")}
        self.env.update(COLUMNS="80", HOME=str(cwd), NO_COLOR="1")  # HOME: no user profiles from ~/.config

    def run(self, args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        r = sh([str(self.exe), *shlex.split(args)], cwd=self.cwd, env=self.env)
        if r.returncode not in expect:
            fail(f"[{self.label}] oomplan {args}: exit {r.returncode}, expected {expect}: {r.stderr.strip()[-300:]}")
        return r

    def check_lists(self) -> None:
        for command, folder in (("models", "model_profiles"), ("gpus", "hardware_profiles")):
            shipped = sorted(p.stem for p in (ROOT / folder).glob("*.yaml"))
            listed = sorted(table_names(self.run(command).stdout))
            if listed != shipped:
                missing, extra = sorted(set(shipped) - set(listed)), sorted(set(listed) - set(shipped))
                fail(f"[{self.label}] oomplan {command}: lists {len(listed)} of {len(shipped)} shipped profiles "
                     f"(missing {missing[:5]}, extra {extra[:5]})")
            else:
                print(f"[{self.label}] oomplan {command}: all {len(shipped)} shipped profiles")


def reinstall(bin_dir: Path, what: str) -> None:
    """Replace the venv's oomplan by another (non-editable) install of it; the dependencies stay."""
    r = sh([str(bin_dir / "python"), "-m", "pip", "uninstall", "--quiet", "--yes", "oomplan"], cwd=bin_dir)
    if r.returncode != 0 or (bin_dir / "oomplan").exists():
        sys.exit(f"wheel_smoke: uninstalling oomplan failed:\n{r.stdout}{r.stderr}")
    pip_install(bin_dir, what)


def check_wheel(tmp: Path) -> Path:
    dist = tmp / "dist"
    r = sh([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)], cwd=tmp)
    wheels = sorted(dist.glob("oomplan-*.whl"))
    if r.returncode != 0 or len(wheels) != 1:
        sys.exit(f"wheel_smoke: building the wheel failed:\n{r.stdout}{r.stderr}")
    bin_dir = make_venv(tmp / "venv-wheel")
    pip_install(bin_dir, str(wheels[0]))
    if sh([str(bin_dir / "python"), "-c", "import torch"], cwd=tmp).returncode == 0:
        fail("[wheel] the venv has torch: the planning install must not need it")
    work = tmp / "work"
    work.mkdir()
    tool = Tool(bin_dir, work, "wheel")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    if tool.run("--version").stdout.strip() != f"oomplan {version}":
        fail(f"[wheel] oomplan --version does not say {version}")
    tool.check_lists()
    est = tool.run("estimate llama-3-70b --gpu a100-40g --ctx 32k", expect=(1,))  # 1: does not fit, the verdict
    if "does not fit" not in est.stdout or "llama-3-70b on NVIDIA A100 40GB SXM4" not in est.stdout:
        fail("[wheel] estimate llama-3-70b --gpu a100-40g --ctx 32k: no budget table and verdict")
    tool.run("fit llama-3-70b --gpu a100-40g --ctx 32k -o plan.yaml")
    if not (work / "plan.yaml").is_file():
        fail("[wheel] fit -o plan.yaml wrote no plan.yaml")
    else:
        tool.run("check plan.yaml")
        if "vllm serve" not in tool.run("export plan.yaml --to vllm").stdout:
            fail("[wheel] export plan.yaml --to vllm: no `vllm serve` command line")
    shutil.copytree(ROOT / "examples", work / "examples")  # the plan files the README's `check` examples name
    examples = readme_examples(with_torch=False)  # the venv has no torch: not the transformers-path examples
    for command, expected in examples:
        got = trim(tool.run(command.removeprefix("oomplan "), expect=(0, 1)).stdout.splitlines())
        if got != expected:
            fail(f"[wheel] README example `{command}` prints something else from the installed wheel")
    print(f"[wheel] {wheels[0].name}: commands and {len(examples)} README examples checked from {work}")
    return bin_dir


def clone(tmp: Path) -> Path:
    """A clone of the checkout's HEAD (what a git URL serves; builds there leave the checkout untouched)."""
    where = tmp / "clone"
    r = sh(["git", "clone", "--quiet", str(ROOT), str(where)], cwd=tmp)
    if r.returncode != 0:
        sys.exit(f"wheel_smoke: git clone failed: {r.stderr}")
    return where


def check_sdist(tmp: Path, source: Path, bin_dir: Path) -> None:
    out = tmp / "sdist"
    code = f"from setuptools import build_meta as b; print(b.build_sdist({str(out)!r}))"
    r = sh([sys.executable, "-c", code], cwd=source)
    if r.returncode != 0:
        sys.exit(f"wheel_smoke: building the sdist failed:\n{r.stdout}{r.stderr}")
    reinstall(bin_dir, str(out / r.stdout.strip().splitlines()[-1]))
    work = tmp / "work-sdist"
    work.mkdir()
    Tool(bin_dir, work, "sdist").check_lists()


def check_git_recipe(tmp: Path, clone: Path, bin_dir: Path) -> None:
    """README 'GitHub Actions job': pip install "oomplan @ git+https://..." then oomplan check ... --margin 10% --strict."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    recipe = re.search(r'pip install "oomplan @ git\+https://github.com/<your-org>/oomplan"', readme)
    if not recipe:
        fail("README: the GitHub Actions recipe's `pip install \"oomplan @ git+https://...\"` line changed; update this check")
    # file://localhost/: pip <= 23.2's URL check refuses git+file:/// (an empty host)
    reinstall(bin_dir, f"oomplan @ git+file://localhost{clone}")
    work = tmp / "work-git"
    (work / "deploy").mkdir(parents=True)
    tool = Tool(bin_dir, work, "git")
    tool.run("fit llama-3.1-8b --gpu h100 --ctx 8k -o deploy/plan.yaml")
    r = tool.run("check deploy/plan.yaml --margin 10% --strict")
    if r.returncode == 0:
        print("[git] pip install \"oomplan @ git+file://<clone>\" + oomplan check deploy/plan.yaml --margin 10% --strict: exit 0")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="oomplan-smoke-"))
    try:
        if ROOT in tmp.parents:
            sys.exit("wheel_smoke: the temporary folder is inside the checkout")
        bin_dir = check_wheel(tmp)
        source = clone(tmp)
        check_sdist(tmp, source, bin_dir)
        check_git_recipe(tmp, source, bin_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILURES:
        print(f"wheel_smoke: {len(FAILURES)} failure(s)", file=sys.stderr)
        return 1
    print("wheel_smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
