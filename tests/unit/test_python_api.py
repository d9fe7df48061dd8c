"""docs/python-api.md: every ```python block runs (in order, one namespace) and its asserts hold;
the API is what `oomplan` re-exports, and it returns typed results, not dicts."""
import re
from pathlib import Path

from typer.testing import CliRunner

import oomplan
from oomplan.cli.app import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_doc_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wrote = CliRunner().invoke(app, ["fit", "llama-3-70b", "--gpu", "a100-40g", "--ctx", "32k", "-o", "plan.yaml"])
    assert wrote.exit_code == 0, wrote.output
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["best"].plan == namespace["result"].plans[0].plan


def test_every_documented_function_is_exported():
    table = [line.split("|")[1] for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    names = {n for cell in table for n in re.findall(r"`(\w+)\(", cell)}
    assert names >= {"estimate", "estimate_training", "fit", "fit_training", "check", "vet", "curve", "probe_plan", "load_gpu"}
    for name in names | {"load_model"}:
        assert callable(getattr(oomplan, name)) and name in oomplan.__all__


def test_results_are_typed():
    est = oomplan.estimate("llama-3-8b", "h100")
    assert type(est).__name__ == "Estimate" and not isinstance(est, dict)
    assert type(oomplan.fit("llama-3-8b", "h100", ctx_tokens=8192, max_gpus=1)).__name__ == "SearchResult"
