"""llama.cpp (llama-server): -ngl layer split, KV cache types, compute buffer, and the largest -ngl that fits."""
from oomplan.engines.llamacpp import flags
from oomplan.engines.llamacpp.predict import predict_llamacpp
from oomplan import formats
from oomplan.engines.protocol import EngineModel

ENGINE = EngineModel(
    name="llamacpp", display_name="llama.cpp", weight_formats=formats.engine_formats("llamacpp", "weights"), kv_formats=formats.engine_formats("llamacpp", "kv"),
    multi_gpu=False, settings_for_plan=flags.settings_for_plan, predict=predict_llamacpp, command_args=flags.command_args,
    read_launch=flags.read_launch, resolve_model=flags.resolve_model, plan_summary=flags.plan_summary, aliases=("llama.cpp", "llama-cpp"),
    plan_variants=flags.plan_variants, with_devices=flags.with_devices,
)
