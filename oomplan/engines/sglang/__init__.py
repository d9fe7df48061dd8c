"""SGLang: `--mem-fraction-static` and the token pool (python/sglang/srt/model_executor/model_runner.py)."""
from oomplan.engines.protocol import EngineModel
from oomplan.engines.sglang import flags
from oomplan.engines.sglang.predict import predict_sglang

ENGINE = EngineModel(
    name="sglang", display_name="SGLang", weight_formats=("auto", "fp8", "int8", "awq", "gptq", "nf4"), kv_formats=("auto", "fp8"),
    multi_gpu=True, settings_for_plan=flags.settings_for_plan, predict=predict_sglang, command_args=flags.command_args,
    read_launch=flags.read_launch,
)
