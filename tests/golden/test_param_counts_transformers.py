"""Every shipped profile's count equals transformers' own, built on the meta device.

Reference: sum(p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters()),
which de-duplicates tied tensors. Exact, not approximate.
"""
import warnings

import pytest

from oomplan.memory.params import num_params
from oomplan.profiles import load_model, profile_names

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _reference_count(config: dict) -> int:
    cfg = dict(config)
    model_type = cfg.pop("model_type")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_cfg = transformers.AutoConfig.for_model(model_type, **cfg)
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(hf_cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", profile_names("model_profiles"))
def test_count_equals_transformers(name):
    spec = load_model(name)
    assert num_params(spec) == _reference_count(spec.hf_config)


def test_there_are_at_least_25_profiles():
    assert len(profile_names("model_profiles")) >= 25
