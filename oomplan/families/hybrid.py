"""What the hybrid (attention + Mamba / linear-attention) families share: layer kinds from the config's
per-layer type names, and the Mamba-2 mixer of transformers 5.24 (models/mamba2/modeling_mamba2.py,
the same mixer in nemotron_h, granitemoehybrid, falcon_h1)."""
from __future__ import annotations

from oomplan.errors import InputError

# configuration_utils._LEGACY_LAYER_TYPE_REMAP (5.24.0): "mamba" -> linear_attention, "attention" -> full_attention
_LAYER_TYPES = {
    "linear_attention": "linear", "mamba": "linear",
    "full_attention": "full", "attention": "full",
    "mlp": "mlp", "moe": "moe",
}


def layer_kinds_from_types(types: list[str], num_layers: int | None, where: str, field: str = "layer_types") -> list[str]:
    """Each layer's kind ('linear', 'full', 'mlp', 'moe'); unknown names are refused, naming them."""
    unknown = sorted({t for t in types if t not in _LAYER_TYPES})
    if unknown:
        raise InputError(f"{where}: {field} holds {', '.join(map(repr, unknown))}; accepted: {', '.join(_LAYER_TYPES)}")
    if num_layers is not None and len(types) < num_layers:
        raise InputError(f"{where}: {field} has {len(types)} entries for {num_layers} layers (num_hidden_layers)")
    return [_LAYER_TYPES[t] for t in types[: num_layers or len(types)]]
