"""Every shipped profile's count equals transformers' own, built on the meta device.

Reference: sum(p.numel() for p in model.parameters()) of AutoModelForCausalLM.from_config(cfg) (or, for a
multimodal wrapper with a text_config, AutoModelForImageTextToText: decoder, vision tower and projector),
which de-duplicates tied tensors. Exact, not approximate. transformers 5.24 has no kimi_k2: Kimi-K2's card
says the checkpoint runs as model_type deepseek_v3, and it is built as that.
"""
import warnings

import pytest

from oomplan.memory.params import num_params
from oomplan.profiles import load_model, profile_names

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BUILT_AS = {"kimi_k2": "deepseek_v3"}


def _reference_count(config: dict) -> int:
    cfg = {k: v for k, v in config.items() if k not in ("quantization_config", "torch_dtype", "dtype")}
    model_type = cfg.pop("model_type")
    text = cfg.get("text_config")
    if isinstance(text, dict) and not isinstance(text.get("attn_temperature_tuning", True), bool):
        # Llama 4 Scout publishes attn_temperature_tuning: 4; 5.24's strict config class wants a bool (no parameter hangs on it)
        cfg["text_config"] = {k: v for k, v in text.items() if k != "attn_temperature_tuning"}
    auto = transformers.AutoModelForImageTextToText if "text_config" in cfg else transformers.AutoModelForCausalLM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_cfg = transformers.AutoConfig.for_model(BUILT_AS.get(model_type, model_type), **cfg)
        with torch.device("meta"):
            model = auto.from_config(hf_cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", profile_names("model_profiles"))
def test_count_equals_transformers(name):
    spec = load_model(name)
    assert num_params(spec) == _reference_count(spec.hf_config)


def test_there_are_at_least_25_profiles():
    assert len(profile_names("model_profiles")) >= 25
