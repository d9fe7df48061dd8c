"""MeasuredModel: an architecture oomplan has no family for, counted by transformers on the meta device.

Built by `oomplan.probe.hf_meta.measure_model` (torch + transformers, lazily) from a config.json whose
model_type transformers knows; handed by the CLI (the top layer) to `oomplan.memory.measured`, which prices
it without importing torch. What is counted and what is derived (docs/transformers-path.md):
  * parameters (and buffers): every tensor of the model built from the config on `meta`, by component,
    in the dtype transformers holds it (fp32-kept modules stay fp32): counted;
  * KV cache and recurrent state: per cache layer, the storage bytes after a prefill + one decode step at
    two short contexts and two batch sizes, solved for bytes per token, per sequence and shared; a sliding
    layer's window is read from the cache layer (cache_utils.DynamicSlidingWindowLayer.sliding_window).
    Any context is derived from these; the requested one is checked against a forward at that shape;
  * activations: the prefill/decode peak measured by the StorageTracker at the requested context and batch,
    less the weights and the cache held after the last step: measured, for that shape only.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from oomplan.specs.base import Strict

MeasuredComponent = Literal["embedding", "attention", "mlp", "experts", "router", "norm", "lm_head", "vision", "audio", "other"]
MEASURED_COMPONENTS: tuple[MeasuredComponent, ...] = (
    "embedding", "attention", "mlp", "experts", "router", "norm", "lm_head", "vision", "audio", "other",
)


class ComponentCount(Strict):
    """The parameters of one component of the meta-built model, and the bytes they are held in."""

    component: MeasuredComponent
    num_params: int = Field(ge=0)
    bytes: int = Field(ge=0, description="sum(p.numel() * p.element_size()) over its parameters")


class MeasuredCacheLayer(Strict):
    """One cache layer of transformers' DynamicCache: bytes(batch B, context c) = shared_bytes + B * (per_sequence_bytes
    + bytes_per_token * tokens(c)), tokens(c) = min(c, window_tokens) (all of c without a window)."""

    index: int = Field(ge=0)
    kind: str = Field(description="the cache layer class (DynamicLayer, DynamicSlidingWindowLayer, LinearAttentionLayer, ...)")
    bytes_per_token: int = Field(ge=0, description="one more cached token of one sequence (K + V, indexer keys)")
    per_sequence_bytes: int = Field(ge=0, description="fixed per sequence, any context (conv + recurrent state)")
    shared_bytes: int = Field(ge=0, description="held once whatever the batch (a sliding layer's int64 window size)")
    window_tokens: int | None = Field(default=None, ge=1, description="a sliding/chunked layer keeps this many tokens at most")


class MeasuredActivations(Strict):
    """The transient the meta forward measured at one shape, over the weights and the cache it held after the last step."""

    ctx_tokens: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    attention: Literal["sdpa", "eager"]
    logits: Literal["last", "all"]
    prefill_chunk_tokens: int | None = None
    peak_bytes: int = Field(ge=0, description="the tracker's peak over every forward (weights and cache included)")
    kv_and_state_bytes_final: int = Field(ge=0, description="the cache's storages after the last decode step")
    transient_bytes: int = Field(ge=0, description="peak_bytes - weights - kv_and_state_bytes_final")
    peak_phase: Literal["prefill", "decode"]


class MeasuredModel(Strict):
    """What transformers counted for a config (see the module docstring for measured vs derived)."""

    name: str
    model_type: str
    architecture: str = Field(description="the transformers class built (e.g. Cohere2ForCausalLM)")
    source: str
    config_sha256: str
    transformers_version: str
    torch_version: str
    dtype: Literal["fp32", "bf16", "fp16"] = Field(description="the dtype the model was built in")
    max_position_embeddings: int | None = None
    num_layers: int = Field(ge=0, description="decoder layers (text_config.num_hidden_layers for wrappers)")
    components: tuple[ComponentCount, ...]
    buffer_bytes: int = Field(ge=0, description="buffers (rotary inv_freq, ...): held on the GPU with the weights")
    cache_layers: tuple[MeasuredCacheLayer, ...]
    activations: MeasuredActivations
    elapsed_s: float = Field(ge=0)
    notes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_row_per_component(self) -> MeasuredModel:
        names = [c.component for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError("components must list each component once")
        return self

    @property
    def counted_by(self) -> str:
        return f"transformers {self.transformers_version}"

    @property
    def num_params(self) -> int:
        return sum(c.num_params for c in self.components)

    @property
    def params_by_component(self) -> dict[str, int]:
        return {c.component: c.num_params for c in self.components}

    @property
    def weights_bytes(self) -> int:
        """Parameters and buffers, in the dtypes the meta model holds them."""
        return sum(c.bytes for c in self.components) + self.buffer_bytes
