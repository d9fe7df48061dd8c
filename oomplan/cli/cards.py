"""`--gpu a100-80g,h100,l40s` and `--gpu all`: compare card kinds (fit ranks them, estimate prints one row each).

A comma separates alternatives to compare; each item is anything `--gpu` takes alone (a profile name or
alias, a profile YAML, a raw capacity such as 24GiB or 2x80GiB). `all` is every shipped and user profile.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Optional


from oomplan.cli.common import check_pick, print_json, resolve_gpu, stdout
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, InputError
from oomplan.specs.hardware import GpuSpec
from oomplan.text import shorten


def card_list(gpu: str) -> list[str] | None:
    """The cards a --gpu value compares, or None for one card (the ordinary commands)."""
    text = gpu.strip()
    if text.lower() == "all":
        from oomplan.profiles import profile_names

        return profile_names("hardware_profiles")
    if "," not in text:
        return None
    refs = [part.strip() for part in text.split(",")]
    if any(not r for r in refs):
        raise InputError(f"--gpu: {shorten(gpu, 80)!r} has an empty item; give cards separated by commas (a100-80g,h100,l40s)")
    if any(r.lower() in ("all", "auto") for r in refs):
        raise InputError("--gpu: 'all' and 'auto' stand alone, not inside a list of cards")
    return refs


def box_list(gpu: str) -> list[str] | None:
    """The cards of one box, `--gpu rtx-4090+rtx-3090` (GPU 0, GPU 1, ...), or None for one card kind."""
    if "+" not in gpu:
        return None
    refs = [part.strip() for part in gpu.strip().split("+")]
    if any(not r for r in refs):
        raise InputError(f"--gpu: {shorten(gpu, 80)!r} has an empty item; give the box's cards joined by '+' (rtx-4090+rtx-3090)")
    if "," in gpu or any(r.lower() in ("all", "auto") for r in refs):
        raise InputError(f"--gpu: {shorten(gpu, 80)!r}: a box (a+b) is one set of cards, not a comparison (a,b), 'all' or 'auto'")
    return refs


def resolve_box(gpu: str) -> tuple[GpuSpec, ...] | None:
    """`--gpu a+b` as the box's GpuSpecs, each card as `--gpu` takes it alone; None for one card kind."""
    refs = box_list(gpu)
    return None if refs is None else tuple(resolve_gpu(ref) for ref in refs)


def resolve_cards(refs: list[str]) -> list[tuple[str, GpuSpec]]:
    """Each card once (h100 and h100-sxm are one card: the first spelling is kept)."""
    out: dict[str, tuple[str, GpuSpec]] = {}
    for ref in refs:
        card = resolve_gpu(ref)
        out.setdefault(card.name, (ref, card))
    return list(out.values())


def prices_for(values: Optional[list[str]], cards: list[tuple[str, GpuSpec]]) -> dict[str, Any]:
    """{card name: CardPrice} from --price values; a bare number only when one card is compared."""
    from oomplan.planner.cards import PricesFile, parse_prices
    from oomplan.profiles import load_gpu
    from oomplan.safeio import read_yaml
    from oomplan.specs.convert import build_file

    def read_file(path: str) -> PricesFile:
        return build_file(PricesFile, read_yaml(path, "prices file"), Path(path), "prices file")

    prices, bare = parse_prices(values or [], lambda ref: load_gpu(ref, "--price").name, read_file)
    if bare is not None:
        if len(cards) > 1:
            raise InputError(f"--price {bare:g}: {len(cards)} cards are compared; give a price per card (h100=2.49,l40s=0.99) or a prices file")
        prices.setdefault(cards[0][1].name, _flag_price(bare))
    return prices


def _flag_price(usd: float) -> Any:
    from oomplan.planner.cards import CardPrice

    return CardPrice(usd, "--price")


def run_fit_comparison(spec: Any, cards: list[tuple[str, GpuSpec]], workload: Any, limits: Any, objective: str, top: int,
                       want: str, attention: Any, prices: dict[str, Any], as_json: bool, output: Optional[Path], pick: int,
                       force: bool, model_ref: str, max_gpus: Optional[int], gpus: Optional[int]) -> int:
    """One search per card; the cards ranked by the objective; -o writes the --pick card's best plan."""
    from oomplan.cli.progress import spinner
    from oomplan.planner.cards import CardChoice, rank_cards
    from oomplan.planner.inverse import search_max
    from oomplan.planner.search import search
    from oomplan.report.cards_report import cards_json, cards_summary, cards_table

    choices = []
    for ref, card in cards:
        card_limits = replace(limits, max_gpus=max_gpus or gpus or card.num_gpus_per_node)
        with spinner(f"searching plans for {spec.name} on {card.name} ...", quiet=as_json):
            if want == "ctx":
                result = search_max(spec, card, workload, card_limits, objective, "ctx", spec.max_position_embeddings, attention)
            elif want == "batch":
                from oomplan.planner.inverse import MAX_BATCH_SIZE

                result = search_max(spec, card, workload, card_limits, objective, "batch", MAX_BATCH_SIZE, attention)
            else:
                result = search(spec, card, workload, card_limits, objective, attention)
        choices.append(CardChoice(ref, result, prices.get(card.name)))
    ranked = rank_cards(choices, objective)
    fitting_choices = [c for c in ranked if c.best is not None]
    check_pick(pick, len(fitting_choices), "card")
    if as_json:
        print_json(cards_json(ranked, objective, top))
    else:
        out = stdout()
        out.print(cards_table(ranked, objective, top))
        out.print(cards_summary(ranked, objective, top), soft_wrap=True)
    if output is not None and fitting_choices:
        from oomplan.cli.fit import _write

        chosen = fitting_choices[pick - 1]
        _write(chosen.result, model_ref, chosen.ref, 1, output, force)
    return EXIT_OK if fitting_choices else EXIT_DOES_NOT_FIT


def run_estimate_comparison(spec: Any, cards: list[tuple[str, GpuSpec]], tp: int, pp: int, workload: Any, plan: Any,
                            strict: bool, as_json: bool) -> int:
    """One estimate per card (the same plan); exit 0 when at least one card fits, 1 when none does."""
    from oomplan.cli.common import raw_gpu_parallel, warn
    from oomplan.memory.budget import estimate
    from oomplan.report.cards_report import estimates_table
    from oomplan.report.estimate_json import estimate_json

    rows = []
    for ref, card in cards:
        card, card_tp, card_pp = raw_gpu_parallel(card, tp, pp)
        est = estimate(spec, card, workload, plan.model_validate(plan.model_dump() | {"tensor_parallel": card_tp, "pipeline_parallel": card_pp}))
        warn([f"{card.name}: {w}" for w in est.warnings], strict)
        rows.append((ref, est))
    if as_json:
        print_json({"cards": [{"gpu_ref": ref} | estimate_json(est) for ref, est in rows]})
    else:
        stdout().print(estimates_table(rows))
    return EXIT_OK if any(est.fits for _, est in rows) else EXIT_DOES_NOT_FIT


def run_curve_comparison(spec: Any, cards: list[tuple[str, GpuSpec]], plans: Any, axis: str, fixed: int, start: int, end: int,
                         points: int, as_json: bool) -> int:
    """Each card's curves (the same plans and x range): one row per card with each plan's cliff."""
    from oomplan.cli.common import warn
    from oomplan.planner.curve import memory_curves
    from oomplan.report.cards_report import curves_table
    from oomplan.report.curve_json import CURVE_SCHEMA_VERSION, curve_json

    sets = [(ref, memory_curves(spec, card, plans, axis, fixed, start, end, points)) for ref, card in cards]  # type: ignore[arg-type]
    warn(sorted({w for _, cs in sets for c in cs.curves for w in c.warnings}), strict=False)
    if as_json:
        print_json({"schema_version": CURVE_SCHEMA_VERSION, "cards": [{"gpu_ref": ref} | curve_json(cs) for ref, cs in sets]})
    else:
        out = stdout()
        out.print(curves_table(sets))
        out.print("none: not even the first x fits; +: the whole range fits (raise --to to look further)", soft_wrap=True)
    return EXIT_OK
