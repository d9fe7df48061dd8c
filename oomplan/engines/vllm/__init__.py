"""vLLM (V1 engine): from `vllm serve` settings to the KV pool, its tokens, concurrency, and whether it starts."""
from oomplan import formats
from oomplan.engines.protocol import EngineModel
from oomplan.engines.vllm import flags
from oomplan.engines.vllm.predict import predict_vllm

ENGINE = EngineModel(
    name="vllm", display_name="vLLM", weight_formats=formats.engine_formats("vllm", "weights"), kv_formats=formats.engine_formats("vllm", "kv"),
    multi_gpu=True, settings_for_plan=flags.settings_for_plan, predict=predict_vllm, command_args=flags.command_args,
    read_launch=flags.read_launch,
)
