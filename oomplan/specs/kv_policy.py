"""Bounded-KV policies (`--kv-policy`, plan key `kv_policy`): which tokens one sequence keeps in each layer.

Each policy is a typed, strict spec; how it is priced is in memory/kv_cache.py, its quality grade and source in
data/quality_risk.yaml (key kv_policy), what each engine realises in report/exports.py. DMS (`dms:R`) keeps its
own plan fields (`dms_ratio`, `dms_window_tokens`), so plan files written before `--kv-policy` read unchanged.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from oomplan.errors import InputError
from oomplan.specs.base import Strict
from oomplan.text import clean
from oomplan.units import parse_bytes, parse_count

MAX_TOKENS = 2**31  # the bound of --ctx: no policy keeps more than a context holds
ACCEPTED = "dms:R[,window:W], window:W[,sinks:S], budget:N, slots:M,window:W, episodic:HOST_BYTES,read:R"
FLAG = "--kv-policy"


class WindowPolicy(Strict):
    """StreamingLLM (Xiao et al. 2023, arXiv:2309.17453): the first `sink_tokens` plus the most recent
    `window_tokens`; the rest is evicted between forward passes."""

    kind: Literal["window"] = "window"
    window_tokens: int = Field(ge=1, le=MAX_TOKENS, description="recent tokens kept")
    sink_tokens: int = Field(default=4, ge=0, le=MAX_TOKENS, description="attention-sink tokens kept from the start (4 in the paper)")

    @property
    def spec(self) -> str:
        return f"window:{self.window_tokens},sinks:{self.sink_tokens}"

    @property
    def label(self) -> str:
        return f"window {self.window_tokens} + {self.sink_tokens} sinks"

    @property
    def short(self) -> str:
        return f"win{self.window_tokens}+{self.sink_tokens}"


class BudgetPolicy(Strict):
    """H2O (Zhang et al. 2023, arXiv:2306.14048) / SnapKV (Li et al. 2024, arXiv:2404.14469): a fixed budget of
    tokens per layer, chosen by attention score; each layer compresses right after its own prefill attention."""

    kind: Literal["budget"] = "budget"
    budget_tokens: int = Field(ge=1, le=MAX_TOKENS, description="tokens kept per layer and sequence")

    @property
    def spec(self) -> str:
        return f"budget:{self.budget_tokens}"

    @property
    def label(self) -> str:
        return f"budget {self.budget_tokens} tokens"

    @property
    def short(self) -> str:
        return f"bud{self.budget_tokens}"


class SlotsPolicy(Strict):
    """CAMELoT (He et al. 2024, arXiv:2402.13449): `num_slots` consolidated associative-memory slots (each one
    K/V entry per layer) plus the most recent `window_tokens`."""

    kind: Literal["slots"] = "slots"
    num_slots: int = Field(ge=1, le=MAX_TOKENS, description="associative-memory slots per layer")
    window_tokens: int = Field(ge=0, le=MAX_TOKENS, description="recent tokens attended directly")

    @property
    def spec(self) -> str:
        return f"slots:{self.num_slots},window:{self.window_tokens}"

    @property
    def label(self) -> str:
        return f"{self.num_slots} memory slots + window {self.window_tokens}"

    @property
    def short(self) -> str:
        return f"slot{self.num_slots}+{self.window_tokens}"


class EpisodicPolicy(Strict):
    """Larimar (Das et al. 2024, arXiv:2403.11901): an external episodic memory kept in host (or remote) memory;
    the GPU holds only its read buffer of `read_tokens` per layer and sequence."""

    kind: Literal["episodic"] = "episodic"
    host_bytes: int = Field(ge=1, le=2**60, description="the episodic store, in host or remote memory (not on the GPU)")
    read_tokens: int = Field(ge=1, le=MAX_TOKENS, description="the GPU-side read buffer, tokens per layer and sequence")

    @property
    def spec(self) -> str:
        return f"episodic:{self.host_bytes},read:{self.read_tokens}"

    @property
    def label(self) -> str:
        from oomplan.units import format_bytes

        return f"episodic store {format_bytes(self.host_bytes)} on the host + read buffer {self.read_tokens}"

    @property
    def short(self) -> str:
        return f"epi{self.read_tokens}"


KvPolicy = Annotated[WindowPolicy | BudgetPolicy | SlotsPolicy | EpisodicPolicy, Field(discriminator="kind")]


def kept_tokens(p: KvPolicy) -> int | None:
    """The most tokens of a sequence the policy keeps per layer (window: sinks + window; budget; slots: the recent
    window); None for episodic, a memory-conditioned model whatever the context. At a context of at most this many
    tokens nothing is evicted: the policy is a no-op there."""
    if isinstance(p, WindowPolicy):
        return p.sink_tokens + p.window_tokens
    if isinstance(p, BudgetPolicy):
        return p.budget_tokens
    if isinstance(p, SlotsPolicy):
        return p.window_tokens
    return None
KV_POLICY_KINDS = ("dms", "window", "budget", "slots", "episodic")


class DmsChoice(Strict):
    """`dms:R[,window:W]`: stored in the plan's own dms_ratio / dms_window_tokens fields."""

    ratio: float = Field(ge=1.0, le=64.0)
    window_tokens: int = Field(default=512, ge=0, le=MAX_TOKENS)


# kind -> (the key its own value sets, the other keys it takes, those it requires)
_KEYS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "dms": ("ratio", ("window",), ()),
    "window": ("window", ("sinks",), ()),
    "budget": ("budget", (), ()),
    "slots": ("slots", ("window",), ("window",)),
    "episodic": ("host", ("read",), ("read",)),
}
_FIELDS = {("dms", "ratio"): "ratio", ("dms", "window"): "window_tokens", ("window", "window"): "window_tokens",
           ("window", "sinks"): "sink_tokens", ("budget", "budget"): "budget_tokens", ("slots", "slots"): "num_slots",
           ("slots", "window"): "window_tokens", ("episodic", "host"): "host_bytes", ("episodic", "read"): "read_tokens"}


def _shown(text: str) -> str:
    return "'" + clean(text if len(text) <= 60 else text[:57] + "...") + "'"  # clean() escapes control bytes


def _bad(text: str, why: str) -> InputError:
    return InputError(f"{FLAG}: {_shown(text)} {why}; accepted: {ACCEPTED}")


def _value(text: str, kind: str, key: str, raw: str) -> float | int:
    where = f"{FLAG} {kind} {key}"
    try:
        if kind == "dms" and key == "ratio":
            from oomplan.units import parse_number

            return parse_number(raw, where, 1, 64)
        if kind == "episodic" and key == "host":
            host = parse_bytes(raw, where, default_unit="b")
            if host < 1:
                raise InputError(where)
            return host
        return parse_count(raw, where, minimum=_minimum(kind, key), maximum=MAX_TOKENS)
    except InputError:
        if kind == "dms" and key == "ratio":
            want = "a number 1..64"
        elif kind == "episodic" and key == "host":
            want = "a size of at least 1 byte (e.g. 64GiB)"
        else:
            want = f"a token count {_minimum(kind, key)}..{MAX_TOKENS} (k = 1024)"
        raise _bad(text, f"is not a KV policy: {key if key == kind else f'{kind} {key}'} must be {want}") from None


def _minimum(kind: str, key: str) -> int:
    """Sinks, DMS's delay window and CAMELoT's recent window may be 0; every other count at least 1."""
    return 0 if key == "sinks" or (key == "window" and kind in ("dms", "slots")) else 1


_CLASSES: dict[str, type[Strict]] = {"dms": DmsChoice, "window": WindowPolicy, "budget": BudgetPolicy, "slots": SlotsPolicy,
                                     "episodic": EpisodicPolicy}


def parse_kv_policy(text: str) -> KvPolicy | DmsChoice:
    """'window:4096,sinks:4' -> WindowPolicy(window_tokens=4096, sink_tokens=4); the first key names the kind."""
    if len(text) > 200:
        raise _bad(text, "is too long to be a KV policy")
    parts = [p.strip() for p in text.split(",")]
    pairs: list[tuple[str, str]] = []
    for part in parts:
        key, sep, raw = part.partition(":")
        if not sep or not key.strip() or not raw.strip():
            raise _bad(text, "is not a KV policy: each part is KEY:VALUE")
        pairs.append((key.strip().lower(), raw.strip()))
    kind = pairs[0][0]
    if kind not in _KEYS:
        raise _bad(text, f"is not a KV policy: unknown kind {_shown(kind)}")
    own, others, required = _KEYS[kind]
    seen: dict[str, str] = {}
    for i, (key, raw) in enumerate(pairs):
        name = own if i == 0 else key
        if i > 0 and key not in others:
            allowed = ", ".join(others) or "no other keys"
            raise _bad(text, f"is not a KV policy: {kind} takes {allowed}, not {_shown(key)}")
        if name in seen or (i > 0 and key == kind):
            raise _bad(text, f"is not a KV policy: {_shown(key)} is given twice")
        seen[name] = raw
    missing = [k for k in required if k not in seen]
    if missing:
        raise _bad(text, f"is not a KV policy: {kind} needs {', '.join(missing)}")
    fields = {_FIELDS[(kind, k)]: _value(text, kind, k, raw) for k, raw in seen.items()}
    policy = _CLASSES[kind](**fields)
    assert isinstance(policy, (DmsChoice, WindowPolicy, BudgetPolicy, SlotsPolicy, EpisodicPolicy))
    return policy


def searched_kv_policies(texts: list[str] | tuple[str, ...] | None) -> tuple[KvPolicy, ...]:
    """fit --kv-policy (repeatable) / oomplan.fit(kv_policies=...): the policies the user allows, each searched
    besides full KV and the DMS ratios (which fit searches itself)."""
    out: list[KvPolicy] = []
    for text in texts or ():
        policy = parse_kv_policy(text)
        if isinstance(policy, DmsChoice):
            raise InputError(f"{FLAG}: fit searches DMS ratios 2, 4 and 8 itself (--dms/--no-dms); name window, budget, "
                             "slots or episodic policies here")
        out.append(policy)
    return tuple(out)
