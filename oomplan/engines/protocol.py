"""What a serving-engine model provides. Each engine is one folder, `oomplan/engines/<name>/`, whose
`__init__.py` defines `ENGINE`, an object with this shape; `registry.py` finds it. Nothing outside the
folder names the engine's settings class or branches on the engine's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from collections.abc import Callable

from oomplan.engines.options import EngineOptions
from oomplan.engines.result import EnginePrediction
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload


@dataclass(frozen=True)
class EngineLaunch:
    """A real launch command read into the engine's *given* settings (what the user passed)."""

    engine: str  # the registry name
    model_ref: str  # as the command names it: HF repo id, local folder, GGUF file
    settings: Any  # the engine's given-settings object
    ignored_flags: tuple[str, ...]  # flags read past because they do not change memory
    unmodelled_flags: tuple[str, ...] = ()  # memory-relevant flags the prediction does not model (it assumes their defaults)


class Engine(Protocol):
    name: str  # registry key and --engine value: vllm, sglang, llamacpp
    display_name: str  # vLLM, SGLang, llama.cpp
    aliases: tuple[str, ...]  # other spellings accepted by --engine (compared without dots and dashes)
    weight_formats: tuple[str, ...]  # Plan.weights values the engine can serve (fit --engine searches these)
    kv_formats: tuple[str, ...]  # Plan.kv_dtype values it can store
    multi_gpu: bool  # whether fit --engine searches TP/PP layouts

    def settings_for_plan(self, plan: Plan, workload: Workload, options: EngineOptions) -> Any:
        """A planner Plan + Workload (+ CLI engine knobs) as the engine's given settings."""

    def predict(self, model: ModelSpec, gpu: GpuSpec, given: Any) -> EnginePrediction:
        """Resolve the engine's defaults for the given settings and predict its start-up and pool."""

    def command_args(self, argv: list[str]) -> list[str] | None:
        """The arguments after the program when argv launches this engine (env assignments removed), else None."""

    def read_launch(self, args: list[str], gguf_type: str | None) -> EngineLaunch:
        """The engine's flags read into its given settings; unknown flags listed as ignored."""

    def resolve_model(self, launch: EngineLaunch) -> ModelSpec:
        """The model a launch command names (profile alias, folder, or a GGUF file name)."""

    def plan_summary(self, plan: Plan, model: ModelSpec) -> str | None:
        """The plan's knobs as the engine spells them ('Q4_K_M · KV q8_0'); None: the planner's own summary."""

    def with_devices(self, given: Any, box: tuple[GpuSpec, ...]) -> Any:
        """The given settings on a box of (different) GPUs, --gpu a+b; an InputError where the engine has no such launch
        (given None: only that check)."""

    def plan_variants(self, model: ModelSpec, gpu: GpuSpec, plan: Plan, workload: Workload, options: EngineOptions) -> tuple[Plan, ...]:
        """Further plans fit --engine tries for this one (llama.cpp: the fewest MoE layers with experts on the CPU)."""


def _no_summary(plan: Plan, model: ModelSpec) -> str | None:
    return None


def _no_variants(model: ModelSpec, gpu: GpuSpec, plan: Plan, workload: Workload, options: EngineOptions) -> tuple[Plan, ...]:
    return ()


def _one_card_kind(given: Any, box: tuple[GpuSpec, ...]) -> Any:
    from oomplan.errors import InputError
    raise InputError(f"--gpu: {'+'.join(g.name for g in box)} is a box of different cards, priced for llama.cpp only "
                     "(its --tensor-split); give one card kind")


def _profile_model(launch: EngineLaunch) -> ModelSpec:
    from oomplan.engines.cmdline import profile_model  # cmdline imports the registry, which imports the engines
    return profile_model(launch.model_ref)


@dataclass(frozen=True)
class EngineModel:
    """An Engine made of an engine folder's functions (what each `ENGINE` is)."""

    name: str
    display_name: str
    weight_formats: tuple[str, ...]
    kv_formats: tuple[str, ...]
    multi_gpu: bool
    settings_for_plan: Callable[[Plan, Workload, EngineOptions], Any]
    predict: Callable[[ModelSpec, GpuSpec, Any], EnginePrediction]
    command_args: Callable[[list[str]], list[str] | None]
    read_launch: Callable[[list[str], str | None], EngineLaunch]
    resolve_model: Callable[[EngineLaunch], ModelSpec] = _profile_model
    plan_summary: Callable[[Plan, ModelSpec], str | None] = _no_summary
    aliases: tuple[str, ...] = ()
    # More plans fit --engine should try for a plan (llama.cpp: MoE experts on the CPU), built from the workload
    plan_variants: Callable[[ModelSpec, GpuSpec, Plan, Workload, EngineOptions], tuple[Plan, ...]] = _no_variants
    # The given settings on a box of GPUs (--gpu a+b: llama.cpp's devices); others refuse a box of different cards
    with_devices: Callable[[Any, tuple[GpuSpec, ...]], Any] = _one_card_kind
