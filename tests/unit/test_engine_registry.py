"""The engine registry: one folder per engine, found by the registry, dispatched without isinstance."""
import ast
import dataclasses
from pathlib import Path

import pytest

from oomplan.engines.protocol import Engine
from oomplan.engines.registry import engine_names, engines, find_engine, get_engine
from oomplan.engines.result import EnginePrediction
from oomplan.errors import InputError
from oomplan.profiles import load_gpu, load_model
from oomplan.specs.plan import Plan, Workload
from oomplan.engines.options import EngineOptions

PACKAGE = Path(__file__).resolve().parents[2] / "oomplan"
ENGINE_DIRS = sorted(p.parent.name for p in (PACKAGE / "engines").glob("*/__init__.py"))


def test_every_engine_folder_is_registered_under_its_name():
    assert ENGINE_DIRS == ["llamacpp", "sglang", "vllm"]
    assert sorted(engines()) == ENGINE_DIRS
    assert engine_names() == ("vllm", "sglang", "llamacpp")


@pytest.mark.parametrize("name", ENGINE_DIRS)
def test_each_engine_has_the_protocols_members(name):
    engine = get_engine(name)
    for member in Engine.__annotations__:
        assert hasattr(engine, member), f"{name} lacks {member}"
    for method in ("settings_for_plan", "predict", "command_args", "read_launch", "resolve_model", "plan_summary"):
        assert callable(getattr(engine, method)), f"{name}.{method}"
    assert set(engine.kv_formats) <= set(Plan.model_fields["kv_dtype"].annotation.__args__)


def test_aliases_and_unknown_names():
    assert find_engine("llama.cpp").name == "llamacpp"
    assert find_engine("LLAMA-CPP").name == "llamacpp"
    with pytest.raises(InputError, match=r"--engine: 'tgi' is not accepted; use one of hf, vllm, sglang, llamacpp"):
        get_engine("tgi")


@pytest.mark.parametrize("name", ENGINE_DIRS)
def test_a_plan_predicts_through_the_registry(name):
    """settings_for_plan then predict: the prediction names its engine; the given settings keep None defaults."""
    e = get_engine(name)
    given = e.settings_for_plan(Plan(), Workload(ctx_tokens=4096, batch_size=1), EngineOptions())
    p = e.predict(load_model("llama-3.1-8b"), load_gpu("h100"), given)
    assert p.engine == name and p.context_tokens == 4096 and p.kv_cache_tokens > 0


def test_engine_prediction_is_built_by_keyword_only():
    fields = [f for f in dataclasses.fields(EnginePrediction)]
    assert all(f.kw_only for f in fields)
    with pytest.raises(TypeError):
        EnginePrediction("vllm")  # type: ignore[misc]


def _names_used(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name.split(".")[-1])
    return out


def test_nothing_outside_an_engine_folder_names_its_settings_or_dispatches_by_type():
    settings = {"VllmGiven", "VllmResolved", "SglangGiven", "SglangResolved", "LlamaCppGiven"}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "engines" and len(rel.parts) > 2:
            continue  # inside an engine's own folder
        tree = ast.parse(path.read_text())
        assert not (_names_used(tree) & settings), f"{rel} names an engine's settings class"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                assert not (_names_used(node) & settings), f"{rel} dispatches on an engine's settings type"
