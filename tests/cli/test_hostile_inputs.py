"""Hostile inputs that benchmarks/hostile_cli.py found mishandled; first, text from input reaches the terminal escaped.

CliRunner runs with color=True: like a terminal, and unlike the piped console script of tests/cli/test_bad_inputs.py,
click then leaves escape sequences in what typer.echo prints, so a raw one shows here.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest
from typer.testing import CliRunner

from conftest import tiny_llama
from oomplan.cli.app import app
from oomplan.report.exports import shell_word

ESC = "\x1b[31m"
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
runner = CliRunner()


def run(argv: list[str]):
    result = runner.invoke(app, argv, color=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not RAW.search(result.stdout + result.stderr), "a raw control character reached the terminal"
    return result


def test_vet_note_escapes_the_model_ref():
    out = run(["vet", "--gpu", "rtx-4090", "--", "llama-server", "-m", f"/nowhere{ESC}/Meta-Llama-3-8B-Q4_K_M.gguf"])
    assert out.exit_code == 0
    assert "note: /nowhere\\x1b[31m/Meta-Llama-3-8B-Q4_K_M.gguf: no such file here" in out.stderr


def test_wrote_line_escapes_the_output_path(tmp_path):
    target = tmp_path / f"p{ESC}.yaml"
    out = run(["fit", "llama-3-8b", "--gpu", "h100", "--top", "1", "-o", str(target)])
    assert out.exit_code == 0 and target.exists()
    assert f"wrote plan #1 to {tmp_path}/p\\x1b[31m.yaml" in out.stderr


def test_export_quotes_a_control_character_as_a_shell_escape(tmp_path):
    folder = tmp_path / f"m{ESC}x"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(tiny_llama()))
    assert run(["fit", str(folder), "--gpu", "h100", "--top", "1", "-o", str(tmp_path / "p.yaml")]).exit_code == 0
    vllm = run(["export", str(tmp_path / "p.yaml"), "--to", "vllm"])
    assert f"vllm serve $'{tmp_path}/m\\x1b[31mx'" in vllm.stdout
    llamacpp = run(["export", str(tmp_path / "p.yaml"), "--to", "llamacpp"])
    assert "llama-server -m $'m\\x1b[31mx-BF16.gguf'" in llamacpp.stdout


@pytest.mark.parametrize("text", ["plain/repo", "it's here", f"a{ESC}b", "tab\there", "bidi\u202eevil", "back\\slash'q"])
def test_shell_word_is_one_word_that_bash_reads_back(text):
    word = shell_word(text)
    assert not RAW.search(word) and "\u202e" not in word
    echoed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, text=True, check=True).stdout
    assert echoed == text


def test_curve_empty_gpu_is_a_refusal_not_an_assertion():
    out = run(["curve", "llama-3-8b", "--gpu", "", "--points", "3"])
    assert out.exit_code == 2 and "--gpu: empty" in out.stderr


@pytest.mark.parametrize("flag,value", [("--num-gpu-blocks-override", "2147483647"), ("--kv-cache-memory-bytes", "1000000000000")])
def test_vllm_pool_sized_past_the_card_will_not_start(flag, value):
    """A pool the flag sizes skips vLLM's budget and is allocated whole: 931 GiB on an 80 GiB card is an OOM, not 'starts'."""
    out = run(["vet", "--gpu", "h100", "--", "vllm", "serve", "meta-llama/Meta-Llama-3-8B", flag, value])
    assert out.exit_code == 1
    assert f"will not start: {flag}: a KV pool of" in out.stdout and "CUDA out-of-memory" in out.stdout


def test_vllm_pool_override_that_fits_still_starts():
    out = run(["vet", "--gpu", "h100", "--", "vllm", "serve", "meta-llama/Meta-Llama-3-8B", "--num-gpu-blocks-override", "1000"])
    assert out.exit_code == 0 and "1,000 blocks" in out.stdout
