"""Renderers of the many-plan gate (`oomplan check A.yaml B.yaml`): the summary table, JUnit XML, GitHub
workflow annotations and JSON. Every string that came from input (file names, messages) is sanitised
(oomplan/text.py clean) before it is written, and escaped for the format on top.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from oomplan.planner.gate import GateVerdict, worst_exit_code
from oomplan.text import clean

if TYPE_CHECKING:
    from rich.table import Table

_SURROGATES = re.compile("[\ud800-\udfff\ufffe\uffff]")  # undecodable file-name bytes; not UTF-8, not XML


def safe(text: object) -> str:
    """clean() (control and bidi characters escaped) and lone surrogates escaped: printable, encodable, XML-safe."""
    return _SURROGATES.sub(lambda m: f"\\u{ord(m.group(0)):04x}", clean(text))


VERDICT_WORDS = {"pass": "PASS", "fail": "FAIL", "bad-input": "BAD INPUT", "error": "ERROR"}


def summary_line(verdicts: list[GateVerdict]) -> str:
    counts = {status: sum(v.status == status for v in verdicts) for status in VERDICT_WORDS}
    parts = [f"{n} {VERDICT_WORDS[s].lower()}" for s, n in counts.items() if n]
    return f"{len(verdicts)} plan file{'s' if len(verdicts) != 1 else ''}: {', '.join(parts)}; exit {worst_exit_code(verdicts)}"


def gate_table(verdicts: list[GateVerdict]) -> Table:
    from rich.table import Table

    table = Table(title="oomplan check", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for v in verdicts:
        table.add_row(safe(v.file), VERDICT_WORDS[v.status], safe(v.reason))
    return table


def gate_json(verdicts: list[GateVerdict]) -> dict[str, Any]:
    """The documented JSON of a many-file check (docs/json-schema.md: check_many)."""
    return {
        "files": [{"file": safe(v.file), "verdict": v.status, "exit_code": v.exit_code, "reason": safe(v.reason),
                   "warnings": [safe(w) for w in v.warnings]} for v in verdicts],
        "exit_code": worst_exit_code(verdicts),
    }


def gate_junit(verdicts: list[GateVerdict]) -> str:
    """JUnit XML: one <testcase> per plan file; a plan that does not fit is a <failure>, a bad or unreadable
    one an <error> (the two kinds CI systems tell apart). ElementTree escapes &, <, > and quotes; clean() has
    already removed the control characters XML 1.0 cannot hold."""
    failures = sum(v.status == "fail" for v in verdicts)
    errors = sum(v.status in ("bad-input", "error") for v in verdicts)
    counts = {"tests": str(len(verdicts)), "failures": str(failures), "errors": str(errors), "skipped": "0"}
    root = ElementTree.Element("testsuites", {"name": "oomplan check", **counts})
    suite = ElementTree.SubElement(root, "testsuite", {"name": "oomplan check", **counts})
    for v in verdicts:
        name, reason = safe(v.file), safe(v.reason)
        case = ElementTree.SubElement(suite, "testcase", {"classname": "oomplan.check", "name": name, "file": name})
        if v.status == "pass":
            ElementTree.SubElement(case, "system-out").text = f"PASS: {reason}"
        else:
            kind = "failure" if v.status == "fail" else "error"
            element = ElementTree.SubElement(case, kind, {"type": v.status, "message": reason})
            element.text = f"{VERDICT_WORDS[v.status]}: {reason}"
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _escape_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's toolkit does (actions/toolkit packages/core/src/command.ts,
    escapeData): % first, then CR and LF, so no input can end the command or start another."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """A workflow command's property value (file=, title=), escaped as command.ts escapeProperty: also : and ,."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def gate_github(verdicts: list[GateVerdict]) -> str:
    """GitHub Actions workflow annotations: ::error for a plan that fails or cannot be read, ::notice for a pass,
    ::warning for each warning; file= names the plan file so the annotation sits on it."""
    lines = []
    for v in verdicts:
        level = "notice" if v.status == "pass" else "error"
        where = _escape_property(safe(v.file))
        title = _escape_property(f"oomplan check: {VERDICT_WORDS[v.status]}")
        lines.append(f"::{level} file={where},title={title}::{_escape_data(safe(v.reason))}")
        lines.extend(f"::warning file={where},title={_escape_property('oomplan check: warning')}::{_escape_data(safe(w))}"
                     for w in v.warnings)
    return "\n".join(lines)
