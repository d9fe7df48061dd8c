"""The many-plan gate's renderers (oomplan/report/gate.py) on hostile file names and messages, hand-written
expectations: XML escaping (ElementTree), GitHub's workflow-command escaping (actions/toolkit
packages/core/src/command.ts: escapeData %, CR, LF; escapeProperty also : and ,), the terminal sanitiser."""
from xml.etree import ElementTree

from oomplan.planner.gate import GateVerdict, worst_exit_code
from oomplan.report.gate import gate_github, gate_json, gate_junit, summary_line

HOSTILE = GateVerdict('a&b<c>"d".yaml', 2, "a&b<c>\"d\".yaml: 100% bad\nnext line", ("w,1:2",))
SURROGATE = GateVerdict("x\udcff\x1b[2J.yaml", 3, "x\udcff: I/O failed")


def test_worst_exit_code_order():
    v = [GateVerdict("a", 0, ""), GateVerdict("b", 3, ""), GateVerdict("c", 1, ""), GateVerdict("d", 2, "")]
    assert worst_exit_code(v) == 3 and worst_exit_code(v[:1] + v[2:]) == 2 and worst_exit_code([]) == 0
    assert [x.status for x in v] == ["pass", "error", "fail", "bad-input"]
    assert summary_line(v) == "4 plan files: 1 pass, 1 fail, 1 bad input, 1 error; exit 3"


def test_junit_escapes_names_and_messages_and_parses_back():
    xml = gate_junit([HOSTILE, SURROGATE])
    assert 'name="a&amp;b&lt;c&gt;&quot;d&quot;.yaml"' in xml
    assert 'message="a&amp;b&lt;c&gt;&quot;d&quot;.yaml: 100% bad\\x0anext line"' in xml  # the newline made visible
    assert "\x1b" not in xml and "\udcff" not in xml and "x\\udcff\\x1b[2J.yaml" in xml
    root = ElementTree.fromstring(xml.encode("utf-8"))
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ['a&b<c>"d".yaml', "x\\udcff\\x1b[2J.yaml"]
    assert cases[0].find("error").get("type") == "bad-input" and cases[1].find("error").get("type") == "error"
    assert root.get("tests") == "2" and root.get("failures") == "0" and root.get("errors") == "2"


def test_github_annotations_escape_per_the_toolkit():
    assert gate_github([HOSTILE, SURROGATE]).splitlines() == [
        '::error file=a&b<c>"d".yaml,title=oomplan check%3A BAD INPUT::a&b<c>"d".yaml: 100%25 bad\\x0anext line',
        '::warning file=a&b<c>"d".yaml,title=oomplan check%3A warning::w,1:2',
        "::error file=x\\udcff\\x1b[2J.yaml,title=oomplan check%3A ERROR::x\\udcff: I/O failed",
    ]


def test_json_rows_are_sanitised():
    data = gate_json([SURROGATE])
    assert data == {"files": [{"file": "x\\udcff\\x1b[2J.yaml", "verdict": "error", "exit_code": 3,
                               "reason": "x\\udcff: I/O failed", "warnings": []}], "exit_code": 3}
