"""Cross-attention K/V of image tokens (Llama 3.2 Vision / Mllama): a cache that scales with images, not context;
with --images it is part of the KV cache (memory/budget.py with_cross_kv).

transformers 5.24 models/mllama/modeling_mllama.py MllamaTextCrossAttention: each cross-attention layer caches
k_proj / v_proj of the projected vision states, [batch, num_key_value_heads, num_images x tokens_per_image, head_dim],
tokens_per_image = max_num_tiles x ((image_size // patch_size)**2 + 1) (every image is padded to max_num_tiles tiles;
MllamaForConditionalGeneration._prepare_static_cache sizes these layers the same way). Checked against the cache
tensors of a meta forward with pixel_values in tests/golden/test_mllama.py.
"""
from __future__ import annotations

from oomplan.memory.kv_cache import kv_heads_per_gpu, kv_vector_bytes, resolved_kv_dtype
from oomplan.memory.layout import Stage
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.specs.vision import MllamaVisionTower


def cross_kv_bytes(model: ModelSpec, plan: Plan, num_images: int, batch_size: int, stage: Stage) -> int:
    """K and V of `num_images` images per sequence, `batch_size` sequences, in the stage's cross-attention layers."""
    if not num_images or not isinstance(model.vision, MllamaVisionTower):
        return 0
    layers = sum(model.layers[i].attention.kind == "cross" for i in stage.layer_indices)
    per_token = 2 * kv_heads_per_gpu(model, plan.tensor_parallel) * kv_vector_bytes(model.head_dim, resolved_kv_dtype(model, plan))
    return batch_size * num_images * model.vision.tokens_per_image * layers * per_token
