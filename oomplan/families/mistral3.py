"""Mistral 3 (Mistral Small 3.x, Devstral, Magistral as multimodal checkpoints): transformers/models/mistral3/
modeling_mistral3.py (5.24.0). Mistral3ForConditionalGeneration wraps a text decoder (text_config,
model_type mistral by default) with a Pixtral vision tower; the decoder is priced by its own family.
"""
from __future__ import annotations

from oomplan.families.base import Family
from oomplan.families.mistral import build_mistral

WRAPPER = Family("mistral3", ("mistral3",), build_mistral, "transformers/models/mistral3/modeling_mistral3.py (5.24.0)",
                 architectures=("Mistral3ForConditionalGeneration",), text_config=True, text_model_type="mistral")
