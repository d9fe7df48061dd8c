"""Serving-engine memory models: how vLLM, SGLang and llama.cpp turn a card into weights, a KV pool and limits."""
