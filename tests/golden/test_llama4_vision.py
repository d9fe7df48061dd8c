"""Llama 4's vision tower with images, against transformers 5.24 on the meta device (issue 13 part 5).

The tower (Llama4VisionModel via get_image_features, on num_tiles tiles of 336 x 336): our llama4_tower_peak_bytes ==
the live bytes beyond pixel_values, for the published Scout tower (rotary-bound; cut to 2 layers, and to 1: no
separate embeddings), an adapter-bound one (projector dims 32768) and a small 3-layer one, at 1 and 3 tiles.
`--images` stays refused for Llama 4 because transformers 5.24's Llama4ForConditionalGeneration.forward raises before
it returns, on every device (modeling_llama4.py:1318 reads outputs.image_outputs from the language model's output;
test_wrapper_generate_fails_on_a_real_device_too runs it with real weights on the CPU):
test_wrapper_forward_still_fails pins that, so a transformers that fixes it fails here and says to price the rest.
"""
from __future__ import annotations

import json
import warnings

import pytest

from oomplan.families import parse_hf_config
from oomplan.memory.vision_activations import llama4_tower_peak_bytes
from oomplan.profiles import load_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SCOUT = load_model("llama-4-scout-17b-16e").hf_config


def _build(vision: dict, text: dict | None = None):
    raw = json.loads(json.dumps(SCOUT))
    raw["text_config"].update({"num_hidden_layers": 1} | (text or {}))
    raw["vision_config"].update({"num_hidden_layers": 2} | vision)
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype", "architectures")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.Llama4Config(**kw)
        with torch.device("meta"):
            model = transformers.Llama4ForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval(), parse_hf_config(raw, "llama-4-scout-cut", "test")


def _tower_peak(model, tiles: int) -> int:
    from oomplan.probe.gpu_kernels import GpuKernelMode
    from oomplan.probe.tracker import StorageTracker

    size = model.config.vision_config.image_size
    tracker = StorageTracker(device_type="meta")
    tracker.register_existing([*model.parameters(), *model.buffers()])
    with torch.no_grad(), tracker, GpuKernelMode():
        pixels = torch.zeros(tiles, 3, size, size, dtype=torch.bfloat16, device="meta")
        tracker.reset_peak()
        out = model.get_image_features(pixel_values=pixels, return_dict=True)
        del out
        return tracker.peak_bytes - tracker.preexisting_bytes - tiles * 3 * size**2 * 2


@pytest.mark.parametrize("vision", [
    {}, {"num_hidden_layers": 1},
    {"projector_input_dim": 32768, "projector_output_dim": 32768},
    {"num_hidden_layers": 3, "hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 4,
     "projector_input_dim": 8192, "projector_output_dim": 8192},
])
def test_tower_peak_equals_meta(vision):
    model, spec = _build(vision)
    for tiles in (1, 3):
        assert _tower_peak(model, tiles) == llama4_tower_peak_bytes(spec.vision, tiles)


def test_tower_peak_by_hand():
    """Scout's tower (1408 wide, 16 heads of 88, ffn 5632, 34 layers): 577 tokens a tile; the rotary moment holds
    8 bf16 and 4 fp32-sized [577, 1408] tensors."""
    v = load_model("llama-4-scout-17b-16e").vision
    assert llama4_tower_peak_bytes(v, 5) == 5 * 577 * 1408 * (8 * 2 + 4 * 4) == 129_986_560


def test_wrapper_forward_still_fails():
    model, _ = _build({}, {"intermediate_size_mlp": 256, "intermediate_size": 128})
    with torch.no_grad(), pytest.raises(AttributeError, match="image_outputs"):
        model(input_ids=torch.zeros(1, 8, dtype=torch.long, device="meta"), logits_to_keep=1)


def test_wrapper_generate_fails_on_a_real_device_too():
    """Not a meta artefact: a tiny Llama 4 with real fp32 weights on the CPU raises the same AttributeError in forward
    and in generate() (modeling_llama4.py:1318 reads image_outputs from MoeCausalLMOutputWithPast, which has none)."""
    raw = json.loads(json.dumps(SCOUT))
    raw["text_config"].update({"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 64, "intermediate_size_mlp": 128,
                               "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256,
                               "num_local_experts": 2})
    raw["vision_config"].update({"num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                                 "vision_output_dim": 64, "projector_input_dim": 64, "projector_output_dim": 64,
                                 "image_size": 28, "patch_size": 14})
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype", "architectures")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.Llama4ForConditionalGeneration._from_config(transformers.Llama4Config(**kw), dtype=torch.float32,
                                                                         attn_implementation="sdpa").eval()
    ids = torch.zeros(1, 8, dtype=torch.long)
    with torch.no_grad():
        with pytest.raises(AttributeError, match="image_outputs"):
            model(input_ids=ids, logits_to_keep=1)
        with pytest.raises(AttributeError, match="image_outputs"):
            model.generate(input_ids=ids, max_new_tokens=1)
