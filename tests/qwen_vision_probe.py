"""Meta-device runs of the Qwen vision-language models with images, as the processor and generate() feed them
(transformers 5.24): tests/golden/test_qwen25_vl_images.py and test_qwen3_vl_images.py.

What the processor and generate() hand the model: pixel_values [S, in_channels x temporal_patch_size x patch_size**2]
(S = tokens x spatial_merge_size**2 patches an image), image_grid_thw (int64 [images, 3]), mm_token_type_ids (int64
[B, ctx]) and the 4-row M-RoPE position_ids (int64 [4, B, ctx]), which generate() builds with get_rope_index before the
forward (_prepare_position_ids_for_generation). get_rope_index reads token values, which meta tensors do not have, so
the probe passes the position ids as generate() does.

The towers' grid helpers (transformers/vision_utils.py) read grid_thw values too: image_grid_thw stays on the CPU, so
cu_seqlens / cu_window_seqlens are CPU tensors here (on a GPU they are int32 device tensors; `on_gpu_only` adds them
back), and the tensors the towers keep on the device (the (h, w) position ids; Qwen3's bilinear position-table taps
and weights) are computed from the CPU grid and moved to meta where the tower computes them, as on a GPU. Qwen2.5-VL's
window index is a CPU tensor in transformers too.

Two data-dependent steps are replaced by stand-ins that allocate the same: get_placeholder_mask's token-count check
(.item(); the stand-in returns the same image and video masks) and Qwen3-VL's _deepstack_process (boolean-mask
indexing; the stand-in clones the hidden states and makes the [tokens, hidden] gather and its sum, less the CUDA
nonzero() index of the mask; never the peak, see memory/vision_activations.py qwen_activations).
"""
from __future__ import annotations

import contextlib
import importlib
import json
import warnings

import torch
import transformers

from meta_peak import peak as meta_peak

from oomplan.families import parse_hf_config
from oomplan.memory.budget import stage_budget
from oomplan.profiles import load_gpu
from oomplan.specs.plan import Plan, Workload

HELPERS = ("get_vision_position_ids", "get_vision_interpolation_indices_and_weights")


def build(raw: dict, config_class: str, model_class: str, module: str):
    """The wrapper built on meta in bf16 with sdpa, its placeholder masks and DeepStack add made meta-safe."""
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype", "architectures")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = getattr(transformers, config_class)(**kw)
        with torch.device("meta"):
            model = getattr(transformers, model_class)._from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    image, video = cfg.image_token_id, cfg.video_token_id
    model.model.get_placeholder_mask = lambda input_ids, inputs_embeds, image_features=None, video_features=None: (
        (input_ids == image).unsqueeze(-1), (input_ids == video).unsqueeze(-1))
    text = model.model.language_model
    if hasattr(text, "_deepstack_process"):
        def deepstack(hidden_states, visual_pos_masks, visual_embeds):
            hidden_states = hidden_states.clone()
            added = hidden_states.new_empty(visual_embeds.shape) + visual_embeds  # hidden_states[mask, :] + visual_embeds
            del added
            return hidden_states
        text._deepstack_process = deepstack
    model._probe_module = module
    return model


@contextlib.contextmanager
def _device_tensors_on_meta(module: str):
    mod = importlib.import_module(module)
    originals = {name: getattr(mod, name) for name in HELPERS if hasattr(mod, name)}

    def position_ids(grid, merge, **kw):
        return originals["get_vision_position_ids"](grid.cpu(), merge).to("meta")

    def interpolation(grid, **kw):
        kw.pop("kwargs", None)
        indices, weights = originals["get_vision_interpolation_indices_and_weights"](grid.cpu(), **kw)
        return indices.to("meta"), weights.to("meta")
    stand_ins = {"get_vision_position_ids": position_ids, "get_vision_interpolation_indices_and_weights": interpolation}
    for name in originals:
        setattr(mod, name, stand_ins[name])
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(mod, name, fn)


def peak(model, make_inputs, call) -> int:
    """meta_peak.peak with the grid helpers' device tensors on meta."""
    return meta_peak(model, make_inputs, call, _device_tensors_on_meta(model._probe_module))


def patch_values(model) -> int:
    v = model.config.vision_config
    return v.in_channels * v.temporal_patch_size * v.patch_size**2


def tower_peak(model, grids: list[list[int]]) -> int:
    """get_image_features on images of these grids, beyond pixel_values."""
    s, values = sum(t * h * w for t, h, w in grids), patch_values(model)

    def inputs():
        return {"pixel_values": torch.zeros(s, values, dtype=torch.bfloat16, device="meta"), "image_grid_thw": torch.tensor(grids)}
    return peak(model, inputs, model.model.get_image_features) - s * values * 2


def prefill_peak(model, batch: int, grid: list[int], images: int, ctx: int, generate_inputs: bool = True) -> int:
    """The prefill forward into a DynamicCache, with the processor's and generate()'s inputs: mm_token_type_ids and
    the 4-row position ids with or without images (the processor makes mm_token_type_ids for text alone, and
    _prepare_position_ids_for_generation the 4 rows); generate_inputs=False: input_ids alone (the model's forward as
    a plain call, text only)."""
    cache = transformers.DynamicCache(config=model.config)
    s, values = batch * images * grid[0] * grid[1] * grid[2], patch_values(model)

    def inputs():
        d = {"input_ids": torch.zeros(batch, ctx, dtype=torch.long, device="meta")}
        if generate_inputs or images:
            d |= {"mm_token_type_ids": torch.zeros(batch, ctx, dtype=torch.long, device="meta"),
                  "position_ids": torch.zeros(4, batch, ctx, dtype=torch.long, device="meta")}
        if images:
            d |= {"pixel_values": torch.zeros(s, values, dtype=torch.bfloat16, device="meta"),
                  "image_grid_thw": torch.tensor([grid] * batch * images)}
        return d
    return peak(model, inputs, lambda **k: model(**k, cache=cache, use_cache=True, logits_to_keep=1))


def ours(raw: dict, batch: int, images: int, tokens: int | None, ctx: int):
    spec = parse_hf_config(json.loads(json.dumps(raw)), "qwen-vl-cut", "test")
    return stage_budget(spec, load_gpu("h100"), Workload(ctx_tokens=ctx, batch_size=batch, num_images=images, image_tokens=tokens),
                        Plan(paged=False), 0)


def on_gpu_only(num_images: int, windows: int | None = None) -> int:
    """What the probe keeps on the CPU and a GPU holds in the tower: image_grid_thw (int64 [images, 3]), cu_seqlens
    (int32 [images + 1]) and, for Qwen2.5-VL, cu_window_seqlens at our bound (int32, `windows` + 1)."""
    return 8 * 3 * num_images + 4 * (num_images + 1) + (0 if windows is None else 4 * (windows + 1))
