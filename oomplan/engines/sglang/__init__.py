"""SGLang: `--mem-fraction-static` and the token pool (python/sglang/srt/model_executor/model_runner.py)."""
from oomplan import formats
from oomplan.engines.protocol import EngineModel
from oomplan.engines.sglang import flags
from oomplan.engines.sglang.predict import predict_sglang

ENGINE = EngineModel(
    name="sglang", display_name="SGLang", weight_formats=formats.engine_formats("sglang", "weights"), kv_formats=formats.engine_formats("sglang", "kv"),
    multi_gpu=True, settings_for_plan=flags.settings_for_plan, predict=predict_sglang, command_args=flags.command_args,
    read_launch=flags.read_launch,
)
