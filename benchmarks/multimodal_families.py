"""Multimodal wrappers vs transformers 5.24 on the meta device, at full depth (issue 13 parts 1 and 5).

Params: ours vs sum(p.numel()) of the meta-built *ForConditionalGeneration (decoder, vision tower, projector, lm_head).
KV at ctx (text only, batch 1): ours vs the DynamicCache tensors after a meta prefill of ctx - 1 tokens and one
decode step through the wrapper; chunked
layers (Llama 4) hold an int64 window-size tensor each in transformers' cache (+ 8 bytes per such layer, as in
benchmarks/families.py). Cross-attention K/V (Llama 3.2 Vision): ours vs the cross-attention layers' cache after a meta
forward with pixel_values of one image (max_num_tiles tiles), batch 1. Configs: tests/fixtures/configs/SOURCES.md and families/SOURCES.md.

Usage: python benchmarks/multimodal_families.py [--out benchmarks/results/multimodal_families.md] [--ctx 8192]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402

from meta_tables import ours_cache_bytes, table_args, write_table  # noqa: E402

from oomplan.families import parse_hf_config  # noqa: E402
from oomplan.memory.layout import pipeline_stages  # noqa: E402
from oomplan.memory.params import num_params  # noqa: E402
from oomplan.memory.vision_kv import cross_kv_bytes  # noqa: E402
from oomplan.specs.plan import Plan  # noqa: E402

CONFIGS = ROOT / "tests" / "fixtures" / "configs"
CASES = [  # fixture (under tests/fixtures/configs), config class, model class
    ("llama-4-scout-17b-16e-instruct", "Llama4Config", "Llama4ForConditionalGeneration"),
    ("llama-4-maverick-17b-128e-instruct", "Llama4Config", "Llama4ForConditionalGeneration"),
    ("families/llama-3.2-11b-vision", "MllamaConfig", "MllamaForConditionalGeneration"),
    ("families/qwen3-vl-4b-instruct", "Qwen3VLConfig", "Qwen3VLForConditionalGeneration"),
]


def _build(raw: dict, config_cls: str, model_cls: str):
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype", "architectures")}
    if isinstance(kw.get("text_config"), dict):  # Scout's attn_temperature_tuning: 4 is refused by 5.24's strict class (no memory)
        kw["text_config"] = {k: v for k, v in kw["text_config"].items() if k != "attn_temperature_tuning"}
    cfg = getattr(transformers, config_cls)(**kw)
    with torch.device("meta"):
        return getattr(transformers, model_cls)(cfg).to(torch.bfloat16), cfg


def _cache_bytes(layers) -> int:
    return sum(t.untyped_storage().nbytes() for layer in layers for t in (layer.keys, layer.values) if t is not None)


def main() -> None:
    args = table_args()
    rows = ["| config | params ours | params transformers | KV @ctx ours | KV @ctx meta | cross K/V per image ours | meta | match | s |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for name, config_cls, model_cls in CASES:
        start = time.perf_counter()
        raw = json.loads((CONFIGS / f"{name}.json").read_text())
        spec = parse_hf_config(raw, name, "bench")
        model, cfg = _build(raw, config_cls, model_cls)
        stage = pipeline_stages(spec.num_layers, 1)[0]
        ours_p, theirs_p = num_params(spec), sum(p.numel() for p in model.parameters())
        cache = transformers.DynamicCache(config=cfg)
        # Llama4ForConditionalGeneration.forward reads outputs.image_outputs, which its text-only path does not return
        # (transformers 5.24): its decoder, Llama4ForCausalLM (model.language_model), is run instead
        decoder = model.language_model if config_cls == "Llama4Config" else model
        with torch.no_grad():  # a prefill of ctx - 1 tokens, then one decode step (a sliding layer's first update keeps a view of the
            for n in (args.ctx - 1, 1):  # whole prefill's storage; the next step copies it to the window, as in benchmarks/families.py)
                decoder(input_ids=torch.zeros(1, n, dtype=torch.long, device="meta"), cache=cache, use_cache=True, logits_to_keep=1)
        measured = _cache_bytes(cache.layers) + 8 * sum(type(layer).__name__ == "DynamicSlidingWindowLayer" for layer in cache.layers)
        ours_kv = ours_cache_bytes(spec, args.ctx)
        cross_ours = cross_meta = "-"
        same = (ours_p, ours_kv) == (theirs_p, measured)
        if config_cls == "MllamaConfig":
            v, tiles = raw["vision_config"], raw["vision_config"]["max_num_tiles"]
            cache = transformers.DynamicCache(config=cfg)
            meta = dict(device="meta")
            with torch.no_grad():
                model(input_ids=torch.zeros(1, 16, dtype=torch.long, **meta),
                      pixel_values=torch.zeros(1, 1, tiles, 3, v["image_size"], v["image_size"], dtype=torch.bfloat16, **meta),
                      aspect_ratio_ids=torch.zeros(1, 1, dtype=torch.long, **meta),
                      aspect_ratio_mask=torch.ones(1, 1, tiles, dtype=torch.long, **meta),
                      cross_attention_mask=torch.ones(1, 16, 1, tiles, dtype=torch.long, **meta), cache=cache, use_cache=True,
                      logits_to_keep=1)
            cross = set(raw["text_config"]["cross_attention_layers"])
            theirs = _cache_bytes(layer for i, layer in enumerate(cache.layers) if i in cross)
            ours = cross_kv_bytes(spec, Plan(paged=False), 1, 1, stage)
            same = same and ours == theirs
            cross_ours, cross_meta = f"{ours:,}", f"{theirs:,}"
        rows.append(f"| {name.removeprefix('families/')} | {ours_p:,} | {theirs_p:,} | {ours_kv:,} | {measured:,} | {cross_ours} | {cross_meta} | "
                    f"{'exact' if same else 'DIFFERS'} | {time.perf_counter() - start:.0f} |")
        print(rows[-1], flush=True)
    write_table([f"# Multimodal wrappers vs transformers (meta device), ctx {args.ctx}, batch 1", "",
                 "Produced by `python benchmarks/multimodal_families.py` (transformers " + transformers.__version__ + ")."],
                rows, args.out)


if __name__ == "__main__":
    main()
