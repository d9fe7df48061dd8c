"""Which engine realises which bounded-KV policy (`--kv-policy`, docs/kv-policies.md "Engines"), and why not.

llama.cpp realises `window:W,sinks:S` (llama-server -c (S + W) x slots --context-shift --keep S:
engines/llamacpp/flags.py window_slot); nothing else is realised by any engine oomplan models.
"""
from __future__ import annotations

_NO_POLICY = {
    "dms": "{engine} has no DMS support",
    "window": "{engine} has no attention-sink eviction (StreamingLLM)",
    "budget": "{engine} has no score-based eviction (H2O / SnapKV patch transformers' attention in their reference code)",
    "slots": "{engine} has no associative-memory module (CAMELoT is research code)",
    "episodic": "{engine} has no external episodic memory (Larimar needs its memory-conditioned model)",
}
_WHY = {
    "vLLM": " and keeps a sliding window only where the model's config declares one",
    "SGLang": " and keeps a sliding window only where the model's config declares one",
    "transformers": "; transformers 5.x ships no sink cache (SinkCache left the library in 4.53; the Hub port "
                    "transformers-community/sink_cache targets 4.52)",
}
REALISED = {("window", "llama.cpp")}
ENGINE_TITLES = {"vllm": "vLLM", "sglang": "SGLang", "llamacpp": "llama.cpp", "hf": "transformers"}


def refuse_unrealised(spec: str, kind: str, engine: str, where: str) -> None:
    """A policy priced against an engine's own KV pool (--engine) must be one the engine runs: exit 2 otherwise,
    naming it as not realised and why. `engine`: the engine's name (vllm, sglang, llamacpp); `where`: the flag or key."""
    from oomplan.errors import InputError

    title = ENGINE_TITLES.get(engine, engine)
    if engine != "hf" and not realises(kind, title):
        raise InputError(f"{where} {spec}: not realised by {title} ({not_realised(kind, title)}; its KV pool keeps every token); "
                         "price the policy without --engine, and see `oomplan export` for what each engine runs")


def not_realised(kind: str, engine: str) -> str:
    """Why `engine` (its display name: vLLM, SGLang, llama.cpp, transformers) does not run a policy of `kind`."""
    return _NO_POLICY[kind].format(engine=engine) + (_WHY.get(engine, "") if kind == "window" else "")


def realises(kind: str, engine: str) -> bool:
    return (kind, engine) in REALISED
