"""Meta-device runs of Mistral 3 (Pixtral tower + Mistral3MultiModalProjector) with images, as the Pixtral processor
and generate() feed them (transformers 5.24): tests/golden/test_pixtral_images.py.

What the processor hands the model: pixel_values [n, channels, H, W] (every image of one size: no padding) and
image_sizes (int64 [n, 2]); H and W are the resized size, multiples of patch_size x spatial_merge_size.
Meta tensors have no values, so two data-dependent steps get stand-ins that allocate the same on the device:
  * Mistral3Model.get_image_features computes the split sizes of its output with
    torch.as_tensor(image_sizes, device=...) // ratio ... .tolist(): the stand-in computes them on the CPU (the GPU's
    int64 [n, 2] temporaries, 48 n bytes at most, are gone before the projector's output is split; never the peak);
  * get_placeholder_mask's token-count check (.sum() and a bool check): the stand-in returns the same bool mask.
image_sizes stays a CPU tensor (PixtralVisionModel and the patch merger read its values in Python; on a GPU it is
an int64 [n, 2] device tensor: `on_gpu_only` adds it back).
"""
from __future__ import annotations

import json
import types
import warnings

import torch
import transformers
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import select_hidden_states

from meta_peak import peak

from oomplan.families import parse_hf_config
from oomplan.memory.budget import stage_budget
from oomplan.profiles import load_gpu
from oomplan.specs.plan import Plan, Workload


@merge_with_config_defaults
@can_return_tuple
@select_hidden_states("vision_feature_layer")
def _get_image_features(self, pixel_values, image_sizes, vision_feature_layer=None, **kwargs):
    """Mistral3Model.get_image_features (modeling_mistral3.py, 5.24, with its decorators: only the selected hidden
    states are captured), the split sizes computed on the CPU."""
    image_outputs = self.vision_tower(pixel_values, image_sizes=image_sizes, return_dict=True, **kwargs)
    if isinstance(vision_feature_layer, int):
        selected_image_feature = image_outputs.hidden_states[vision_feature_layer]
    else:
        selected_image_feature = torch.cat([image_outputs.hidden_states[i] for i in vision_feature_layer], dim=-1)
    image_features = self.multi_modal_projector(selected_image_feature.squeeze(0), image_sizes)
    ratio = self.vision_tower.patch_size * self.config.spatial_merge_size
    split_sizes = (torch.as_tensor(image_sizes) // ratio).prod(dim=-1).tolist()
    image_outputs.pooler_output = torch.split(image_features.squeeze(0), split_sizes)
    return image_outputs


def build(raw: dict):
    """Mistral3ForConditionalGeneration built on meta in bf16 with sdpa (quantization_config dropped), made meta-safe."""
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype", "dtype", "architectures", "quantization_config")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.Mistral3Config(**kw)
        with torch.device("meta"):
            model = transformers.Mistral3ForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    image = cfg.image_token_id
    inner = model.model
    inner.get_image_features = types.MethodType(_get_image_features, inner)
    inner.get_placeholder_mask = lambda input_ids, inputs_embeds, image_features: (input_ids == image).unsqueeze(-1)
    return model


def _pixels(model, n: int, height: int, width: int):
    c = model.config.vision_config.num_channels
    return torch.zeros(n, c, height, width, dtype=torch.bfloat16, device="meta")


def tower_peak(model, n: int, height: int, width: int) -> int:
    """get_image_features on n images of height x width (resized) pixels, beyond pixel_values."""
    def inputs():
        return {"pixel_values": _pixels(model, n, height, width), "image_sizes": torch.tensor([[height, width]] * n)}
    return peak(model, inputs, model.model.get_image_features) - n * model.config.vision_config.num_channels * height * width * 2


def prefill_peak(model, batch: int, images: int, height: int, width: int, ctx: int) -> int:
    """The prefill forward into a DynamicCache with the processor's inputs (text only: input_ids)."""
    cache = transformers.DynamicCache(config=model.config)
    n = batch * images

    def inputs():
        d = {"input_ids": torch.zeros(batch, ctx, dtype=torch.long, device="meta")}
        if images:
            d |= {"pixel_values": _pixels(model, n, height, width), "image_sizes": torch.tensor([[height, width]] * n)}
        return d
    return peak(model, inputs, lambda **k: model(**k, cache=cache, use_cache=True, logits_to_keep=1))


def ours(raw: dict, batch: int, images: int, size: str | None, ctx: int):
    spec = parse_hf_config(json.loads(json.dumps(raw)), "mistral3-cut", "test")
    return stage_budget(spec, load_gpu("h100"), Workload(ctx_tokens=ctx, batch_size=batch, num_images=images, image_size=size),
                        Plan(paged=False), 0)


def on_gpu_only(num_images: int) -> int:
    """What the probe keeps on the CPU and a GPU holds: image_sizes (int64 [images, 2])."""
    return 8 * 2 * num_images
