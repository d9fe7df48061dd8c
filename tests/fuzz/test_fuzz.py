"""Fuzzing the config and plan loaders and the CLI's argument parsing (CI-sized: a few hundred
inputs each). The long run (100,000+ inputs) is benchmarks/fuzz_long.py; figures in docs/fuzzing.md."""
from hypothesis import HealthCheck, given, settings

from fuzz_targets import (
    argvs, cli_target, config_target, configs, file_kinds, file_target, number_target, number_texts, plan_target, plan_texts,
    sanitiser_target, structured_text_target, structured_texts,
)
from hypothesis import strategies as st

CI = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@CI
@given(configs)
def test_config_loader(raw):
    config_target(raw)


@CI
@given(plan_texts)
def test_plan_loader(text):
    plan_target(text)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(argvs)
def test_cli_arguments(argv):
    cli_target(argv)


def test_regressions_found_by_the_long_run():
    """benchmarks/fuzz_long.py found these; each must now end in a clean error."""
    import json

    from fuzz_targets import PLAN_TEMPLATE, _mutate

    plan_target(json.dumps(_mutate(PLAN_TEMPLATE, ("schema_version",), 2.0)))  # was accepted as version 2
    config_target({**__import__("fuzz_targets").BASE_CONFIG, "num_hidden_layers": 16842512920.0})  # was a MemoryError


@CI
@given(number_texts)
def test_number_parsers(text):
    number_target(text)


@CI
@given(structured_texts)
def test_structured_text_loaders(text):
    structured_text_target(text)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(file_kinds, st.text(max_size=80))
def test_any_file_as_input(kind, text):
    file_target(kind, text)


@CI
@given(st.text())
def test_sanitiser(text):
    sanitiser_target(text)
