"""Shared fixtures: small configs the project owns (no dependency on ../shared)."""
from __future__ import annotations

from pathlib import Path

import pytest

from oomplan.families import parse_hf_config

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_llama(**overrides):
    """A 2-layer GQA llama with dims small enough to count by hand."""
    cfg = dict(
        model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=1000, hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
        max_position_embeddings=4096, tie_word_embeddings=False, torch_dtype="bfloat16",
    )
    cfg.update(overrides)
    return cfg


@pytest.fixture
def tiny_llama_spec():
    return parse_hf_config(tiny_llama(), "tiny-llama", "test")
