"""One entry point for every engine model: settings in, EnginePrediction out."""
from __future__ import annotations

from oomplan.engines.llamacpp import LlamaCppSettings
from oomplan.engines.llamacpp_predict import predict_llamacpp
from oomplan.engines.result import EnginePrediction
from oomplan.engines.sglang import SglangSettings, predict_sglang
from oomplan.engines.vllm import VllmSettings
from oomplan.engines.vllm_predict import predict_vllm
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec

ENGINES = ("hf", "vllm", "sglang", "llamacpp")


def predict(model: ModelSpec, gpu: GpuSpec, settings: VllmSettings | SglangSettings | LlamaCppSettings) -> EnginePrediction:
    if isinstance(settings, VllmSettings):
        return predict_vllm(model, gpu, settings)
    if isinstance(settings, SglangSettings):
        return predict_sglang(model, gpu, settings)
    return predict_llamacpp(model, gpu, settings)
