"""Fuzzing the config and plan loaders and the CLI's argument parsing (CI-sized: a few hundred
inputs each). The long run (100,000+ inputs) is benchmarks/fuzz_long.py; figures in docs/fuzzing.md."""
from hypothesis import HealthCheck, given, settings

from fuzz_targets import argvs, cli_target, config_target, configs, plan_target, plan_texts

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
