"""Reading checkpoints themselves: safetensors headers, GGUF tensor infos, Hugging Face repo ids.

huggingface_hub and gguf are imported lazily, only on these paths (the `hub` extra); the
shipped-profile planning path imports none of them (tests/unit/test_layers.py).
"""
