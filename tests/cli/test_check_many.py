"""`oomplan check A.yaml B.yaml ...` (issue 16 part 4): many plan files in one process, one summary, the worst
exit code, JUnit XML and GitHub annotations. Real plan files written by `fit -o`; each file's reason must be
the verdict the single-file `check` prints for it."""
import json
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "80"})


@pytest.fixture(scope="module")
def deploy(tmp_path_factory):
    """ok.yaml passes, big.yaml fails at 32k (written for 4k), bad.yaml is not a plan file."""
    folder = tmp_path_factory.mktemp("deploy")
    assert run("fit", "llama-3-8b", "--gpu", "h100", "--ctx", "4k", "-o", str(folder / "ok.yaml")).exit_code == 0
    assert run("fit", "llama-3-8b", "--gpu", "rtx-4090", "--ctx", "4k", "--batch", "4", "-o", str(folder / "big.yaml")).exit_code == 0
    (folder / "bad.yaml").write_text("schema_version: 1\n")
    return folder


def single_verdict(path, *flags):
    """The last line of the single-file check: 'PASS: ...' or 'FAIL: ...'."""
    return run("check", str(path), *flags).stdout.strip().splitlines()[-1]


def test_summary_table_worst_exit_code_and_reasons_of_the_single_check(deploy, monkeypatch):
    monkeypatch.chdir(deploy)
    ok, big = single_verdict("ok.yaml", "--ctx", "32k"), single_verdict("big.yaml", "--ctx", "32k")
    assert ok.startswith("PASS: ") and big.startswith("FAIL: ")
    r = run("check", "ok.yaml", "big.yaml", "--ctx", "32k", "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert [(f["file"], f["verdict"], f["exit_code"], f["reason"]) for f in data["files"]] == [
        ("ok.yaml", "pass", 0, ok.removeprefix("PASS: ")), ("big.yaml", "fail", 1, big.removeprefix("FAIL: "))]
    assert data["exit_code"] == 1

    r = runner.invoke(app, ["check", "ok.yaml", "big.yaml", "bad.yaml", "missing.yaml", "--ctx", "32k"], env={"COLUMNS": "200"})
    assert r.exit_code == 2  # bad input (2) is worse than a plan that does not fit (1)
    lines = r.stdout.splitlines()
    assert lines[0].rstrip() == "oomplan check" and lines[2].split() == ["┃", "file", "┃", "verdict", "┃", "reason", "┃"]
    assert lines[-1] == "4 plan files: 1 pass, 1 fail, 2 bad input; exit 2"
    rows = [tuple(cell.strip() for cell in line.split("│")[1:4]) for line in lines if line.startswith("│")]
    assert rows == [("ok.yaml", "PASS", ok.removeprefix("PASS: ")), ("big.yaml", "FAIL", big.removeprefix("FAIL: ")),
                    ("bad.yaml", "BAD INPUT", "bad.yaml: missing required field 'oomplan_version'"),
                    ("missing.yaml", "BAD INPUT", "missing.yaml: no such file")]
    assert r.stderr == "".join(f"warning: {f}: --ctx 32768 exceeds llama-3-8b's max_position_embeddings (8192)\n" for f in ("ok.yaml", "big.yaml"))


def test_exit_codes_are_the_worst_file(deploy, monkeypatch):
    monkeypatch.chdir(deploy)
    assert run("check", "ok.yaml", "ok.yaml").exit_code == 0
    assert run("check", "ok.yaml", "big.yaml", "--ctx", "32k").exit_code == 1
    assert run("check", "bad.yaml", "big.yaml", "--ctx", "32k").exit_code == 2
    assert run("check", "ok.yaml", "--format", "github").exit_code == 0  # one file, a gate format


def test_junit_xml_one_testcase_per_file(deploy, monkeypatch):
    monkeypatch.chdir(deploy)
    ok, big = single_verdict("ok.yaml", "--ctx", "32k"), single_verdict("big.yaml", "--ctx", "32k")
    r = run("check", "ok.yaml", "big.yaml", "bad.yaml", "--ctx", "32k", "--format", "junit")
    assert r.exit_code == 2
    okr, bigr = ok.removeprefix("PASS: "), big.removeprefix("FAIL: ")
    bad = "bad.yaml: missing required field 'oomplan_version'"
    assert r.stdout == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<testsuites name="oomplan check" tests="3" failures="1" errors="1" skipped="0">\n'
        '  <testsuite name="oomplan check" tests="3" failures="1" errors="1" skipped="0">\n'
        '    <testcase classname="oomplan.check" name="ok.yaml" file="ok.yaml">\n'
        f'      <system-out>PASS: {okr}</system-out>\n'
        '    </testcase>\n'
        '    <testcase classname="oomplan.check" name="big.yaml" file="big.yaml">\n'
        f'      <failure type="fail" message="{bigr}">FAIL: {bigr}</failure>\n'
        '    </testcase>\n'
        '    <testcase classname="oomplan.check" name="bad.yaml" file="bad.yaml">\n'
        f'      <error type="bad-input" message="{bad}">BAD INPUT: {bad}</error>\n'
        '    </testcase>\n'
        '  </testsuite>\n'
        '</testsuites>\n'
    )
    ElementTree.fromstring(r.stdout.encode())  # well-formed


def test_junit_to_a_file_atomically_and_not_over_an_existing_one(deploy, monkeypatch, tmp_path):
    monkeypatch.chdir(deploy)
    out = tmp_path / "report.xml"
    r = run("check", "ok.yaml", "big.yaml", "--ctx", "32k", "--format", "junit", "-o", str(out))
    assert r.exit_code == 1
    cases = ElementTree.parse(out).getroot().findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["ok.yaml", "big.yaml"] and cases[1].find("failure") is not None
    assert r.stdout.splitlines()[-1] == "2 plan files: 1 pass, 1 fail; exit 1"  # the summary still printed
    before = out.read_text()
    r = run("check", "ok.yaml", "--format", "junit", "-o", str(out))
    assert r.exit_code == 2 and "--force" in r.stderr and out.read_text() == before
    assert run("check", "ok.yaml", "--format", "junit", "-o", str(out), "--force").exit_code == 0
    assert len(ElementTree.parse(out).getroot().findall("./testsuite/testcase")) == 1
    r = run("check", "ok.yaml", "-o", str(tmp_path / "x.xml"))
    assert r.exit_code == 2 and "only with --format junit" in r.stderr and not (tmp_path / "x.xml").exists()


def test_github_annotations_escape_file_names_and_messages(deploy, monkeypatch):
    monkeypatch.chdir(deploy)
    ok = single_verdict("ok.yaml").removeprefix("PASS: ")
    weird = "a,b:c%0A\x1b[31m.yaml"
    (deploy / weird).write_text("schema_version: 1\n")
    r = run("check", "ok.yaml", weird, "--format", "github")
    assert r.exit_code == 2
    assert r.stdout.splitlines() == [
        f"::notice file=ok.yaml,title=oomplan check%3A PASS::{ok.replace('%', '%25')}",
        "::error file=a%2Cb%3Ac%250A\\x1b[31m.yaml,title=oomplan check%3A BAD INPUT::a,b:c%250A\\x1b[31m.yaml: missing required field 'oomplan_version'",
    ]
    assert "\x1b" not in r.output


def test_bad_format_and_strict_warnings(deploy, monkeypatch):
    monkeypatch.chdir(deploy)
    r = run("check", "ok.yaml", "big.yaml", "--format", "xml")
    assert r.exit_code == 2 and r.stderr == "error: --format: 'xml' is not accepted; use one of text, junit, github\n"
    r = run("check", "ok.yaml", "big.yaml", "--ctx", "16k", "--strict", "--json")  # 16k > llama-3-8b's 8192 positions
    data = json.loads(r.stdout)
    assert r.exit_code == 2 and [f["verdict"] for f in data["files"]] == ["bad-input", "bad-input"]
    assert data["files"][0]["reason"] == "ok.yaml: --ctx 16384 exceeds llama-3-8b's max_position_embeddings (8192) (--strict)"
