"""Which card should I rent? (`fit MODEL --gpu a100-80g,h100,l40s` / `--gpu all`): one search per card kind,
each card's best plan, the cards ranked across by the objective.

Ranking across cards, each card represented by its own best plan (planner/search.py ranking_key):
  gpus       fewest GPUs, then quality, then decode tokens/s
  throughput most decode tokens/s, then quality, then GPUs
  quality    mildest lossy choices, then not slow (under a tenth of the fastest card's decode at that quality:
             search.py SLOW_DECODE_FACTOR), then GPUs, then tokens/s
  cost       fewest dollars per million decode tokens (GPU-hours per Mtok x the card's $/GPU-hour), then quality, GPUs
Cost needs a price for every card compared (`--price card=$/h` or a prices file with a source per price);
oomplan ships no prices. Cards where nothing fits rank last, in the order given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from pydantic import Field

from oomplan.errors import InputError
from oomplan.planner.search import Candidate, SearchResult, ranking_key, significant
from oomplan.specs.base import Strict
from oomplan.specs.hardware import GpuSpec
from oomplan.text import shorten


@dataclass(frozen=True)
class CardPrice:
    usd_per_gpu_hour: float
    source: str  # "--price" for a flag, else the prices file's source for that card


@dataclass(frozen=True)
class CardChoice:
    """One card kind in the comparison: its search and its best plan (None: nothing fits)."""

    ref: str  # as the user named it (written to the plan file's gpu.ref)
    result: SearchResult
    price: CardPrice | None

    @property
    def gpu(self) -> GpuSpec:
        return self.result.gpu

    @property
    def best(self) -> Candidate | None:
        return self.result.plans[0] if self.result.plans else None

    @property
    def usd_per_million_tokens(self) -> float | None:
        best = self.best
        if best is None or self.price is None:
            return None
        return best.gpu_hours_per_million_tokens * self.price.usd_per_gpu_hour


def rank_cards(choices: list[CardChoice], objective: str) -> list[CardChoice]:
    """Fitting cards by the objective (module docstring); then the cards where nothing fits, in the given order."""
    fitting = [c for c in choices if c.best is not None]
    if objective == "cost":
        missing = [c.ref for c in fitting if c.price is None]
        if missing:
            raise InputError(f"--objective cost: no price for {', '.join(missing)}; give --price CARD=USD_PER_GPU_HOUR "
                             "(repeatable or comma-separated) or --price prices.yaml (oomplan ships no prices)")

    plan_key = ranking_key((c.best for c in fitting if c.best is not None), "quality" if objective == "cost" else objective)

    def key(c: CardChoice) -> tuple:
        best = c.best
        assert best is not None
        rest = plan_key(best)
        if objective == "cost":
            return (significant(c.usd_per_million_tokens or 0.0), *rest)
        return rest

    return sorted(fitting, key=key) + [c for c in choices if c.best is None]


class PriceEntry(Strict):
    usd_per_gpu_hour: float = Field(ge=0, le=1e6)
    source: str = Field(min_length=1, max_length=500, description="where the price was read, with its date")


class PricesFile(Strict):
    """A prices file (`--price prices.yaml`): every price with its source.

        schema_version: 1
        prices:
          h100: {usd_per_gpu_hour: 2.49, source: "https://... (on-demand, 2026-11-30)"}
    """

    schema_version: int = Field(ge=1, le=1)
    prices: dict[str, PriceEntry]


def parse_prices(values: list[str], resolve: Callable[[str], str], read_file: Callable[[str], Any]) -> tuple[dict[str, CardPrice], float | None]:
    """--price values -> ({card name: price}, a bare $/h number or None). Each value is CARD=USD (comma lists
    allowed), a prices file (.yaml/.yml), or one bare number (one card: the old --price). `resolve` turns a card
    name or alias into the profile name; `read_file` parses a prices file (already validated)."""
    out: dict[str, CardPrice] = {}
    given: dict[str, str] = {}  # card -> the value that priced it: a second price for one card is refused

    def put(card: str, price: CardPrice, where: str) -> None:
        if card in given:
            raise InputError(f"--price: two prices for {card} ({shorten(given[card], 40)!r} and {shorten(where, 40)!r}); give one")
        given[card] = where
        out[card] = price

    bare: float | None = None
    for value in values:
        text = value.strip()
        if text.endswith((".yaml", ".yml")):
            for card, entry in read_file(text).prices.items():
                put(resolve(card), CardPrice(entry.usd_per_gpu_hour, entry.source), f"{text}: {card}")
            continue
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            card, sep, amount = part.partition("=")
            if not sep:  # the single-card --price of before: its own message (docs/bad-inputs.md)
                from oomplan.units import parse_number

                number: float | str = part
                try:  # inf/nan: the finite-number message of every numeric flag
                    number = part if math.isfinite(float(part)) else float(part)
                except ValueError:
                    pass
                bare = float(parse_number(number, "--price", 0, 1e9))
                continue
            if not card.strip():
                raise InputError(f"--price: {shorten(part, 60)!r} is not CARD=USD_PER_GPU_HOUR (e.g. h100=2.49)")
            put(resolve(card.strip()), CardPrice(_usd(amount, part), "--price"), part)
    return out, bare


def _usd(text: str, part: str) -> float:
    from oomplan.units import parse_number

    try:
        return float(parse_number(text.strip().removeprefix("$"), "--price", 0, 1e9))
    except InputError:
        raise InputError(f"--price: {shorten(part, 60)!r}: the price must be US dollars per GPU-hour, a number from 0 to 1e9 (e.g. h100=2.49)") from None
