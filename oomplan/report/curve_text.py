"""The memory curve in a terminal: one row per x, a stacked bar, the card's capacity and the cliff.

Fits 80 columns. Each component has its own block character (and colour on a terminal),
so the chart reads the same in a CI log as on a colour screen.
"""
from __future__ import annotations

from rich.console import Group
from rich.text import Text

from oomplan.planner.curve import Cliff, CurvePoint, CurveSet
from oomplan.report.summary import plan_summary
from oomplan.units import GIB

# (name, block character, style, CurvePoint field), bottom of the stack first. The recurrent-state
# band is shown only for models that keep one (Mamba / Gated DeltaNet layers).
COMPONENTS = (
    ("weights", "█", "blue", "weights_bytes"),
    ("KV cache", "▓", "magenta", "kv_cache_bytes"),
    ("state", "▚", "cyan", "state_bytes"),
    ("activations", "▒", "yellow", "activation_bytes"),
    ("overhead", "░", "bright_black", "overhead_bytes"),
)


def components(cs: CurveSet) -> tuple[tuple[str, str, str, str], ...]:
    """The bands of this chart: the state band only where some point has a recurrent state."""
    has_state = any(p.state_bytes for c in cs.curves for p in c.points)
    return tuple(c for c in COMPONENTS if has_state or c[3] != "state_bytes")
X_WIDTH, TOTAL_WIDTH, BAR_WIDTH = 10, 6, 52  # + separators, the capacity "|" and " ◀ OOM": 77 columns
PLAN_LETTERS = "ABCDEFGH"


def unit_name(axis: str, num: int = 2) -> str:
    if axis == "ctx":
        return "tokens" if num != 1 else "token"
    return "sequences" if num != 1 else "sequence"


def cliff_words(cliff: Cliff, axis: str, to_x: int) -> str:
    """'fits up to 23,456 tokens; OOM from 23,472' (or the whole range, or nothing)."""
    if cliff.first_oom is None:
        return f"fits over the whole range, up to {to_x:,} {unit_name(axis, to_x)}"
    if cliff.last_fit == 0:
        return f"does not fit at all: OOM from {cliff.first_oom:,} {unit_name(axis, cliff.first_oom)}"
    return f"fits up to {cliff.last_fit:,} {unit_name(axis, cliff.last_fit)}; OOM from {cliff.first_oom:,}"


def heading(cs: CurveSet) -> str:
    if cs.axis == "ctx":
        what = f"memory per GPU vs context (batch {cs.fixed})"
    else:
        what = f"memory per GPU vs batch (ctx {cs.fixed:,})"
    return f"{cs.model.name} on {cs.gpu.display_name}: {what}"


def _cells(point: CurvePoint, scale: float) -> list[int]:
    """Columns per component, rounded so the stack's width is the rounded total."""
    parts = [getattr(point, c[3]) for c in COMPONENTS]
    cells, done = [], 0
    running = 0
    for value in parts:
        running += value
        end = round(running * scale)
        cells.append(end - done)
        done = end
    return cells


def _bar(point: CurvePoint, scale: float, cap_col: int) -> Text:
    bar = Text()
    for (_, char, style, _field), width in zip(COMPONENTS, _cells(point, scale), strict=True):
        bar.append(char * width, style=style)
    if len(bar) > BAR_WIDTH:  # off the chart (it shows up to twice the capacity)
        bar = bar[: BAR_WIDTH - 1]
        bar.append("»", style="bold red")
    if len(bar) <= cap_col:
        bar.append(" " * (cap_col - len(bar)))
        bar.append("|", style="bold red")
        return bar
    over = bar[:cap_col]
    over.append("|", style="bold red")
    over.append_text(bar[cap_col:])
    return over


def _oom_row(x: int, cliff: Cliff) -> bool:
    return cliff.first_oom is not None and x >= cliff.first_oom


def _row(point: CurvePoint, scale: float, cap_col: int, cliff: Cliff, first_oom_row: bool) -> Text:
    oom = _oom_row(point.x, cliff)
    row = Text(f"{point.x:>{X_WIDTH},} ", style="bold red" if first_oom_row else "")
    row.append(f"{point.total_bytes / GIB:>{TOTAL_WIDTH}.1f} ", style="red" if oom else "")
    row.append_text(_bar(point, scale, cap_col))
    if first_oom_row:
        row.append(" ◀ OOM", style="bold red")
    return row


def _scale(cs: CurveSet, width: int) -> tuple[float, int]:
    """Bytes -> columns, and the capacity's column: the chart's width is the largest total, at most 2 x capacity."""
    top = max([cs.capacity_bytes] + [p.total_bytes for c in cs.curves for p in c.points])
    top = min(top, 2 * cs.capacity_bytes)
    scale = width / top
    return scale, min(width, round(cs.capacity_bytes * scale))


def legend(cs: CurveSet) -> Text:
    text = Text("  ")
    for name, char, style, _field in components(cs):
        text.append(char * 2, style=style)
        text.append(f" {name}  ")
    text.append("|", style="bold red")
    text.append(f" capacity {cs.capacity_bytes / GIB:.1f} GiB")
    return text


def stacked_chart(cs: CurveSet) -> Group:
    """One plan: a stacked bar per x, the capacity column and the cliff row marked."""
    curve = cs.curves[0]
    scale, cap_col = _scale(cs, BAR_WIDTH)
    head = Text(f"{unit_name(cs.axis):>{X_WIDTH}} {'GiB':>{TOTAL_WIDTH}} ", style="bold")
    cap_label = f"{cs.capacity_bytes / GIB:.0f}"
    head.append("0" + " " * max(1, cap_col - len(cap_label)) + cap_label)
    rows, marked = [], False
    for point in curve.points:
        first = not marked and _oom_row(point.x, curve.cliff)
        marked = marked or first
        rows.append(_row(point, scale, cap_col, curve.cliff, first))
    words = Text(cliff_words(curve.cliff, cs.axis, cs.to_x), style="bold red" if curve.cliff.first_oom else "bold green")
    return Group(Text(heading(cs), style="bold"), Text(plan_summary(cs.model, curve.plan)), head, *rows,
                 legend(cs), words)


def _total_cell(point: CurvePoint, capacity_bytes: int, width: int) -> Text:
    oom = point.total_bytes > capacity_bytes
    return Text(f"{point.total_bytes / GIB:>{width - 2}.1f}" + (" ✗" if oom else "  "), style="red" if oom else "")


def compare_chart(cs: CurveSet) -> Group:
    """Several plans: a column of totals (GiB per GPU) per plan, OOM cells marked, and each plan's cliff."""
    width = 10
    head = Text(f"{unit_name(cs.axis):>{X_WIDTH}}", style="bold")
    for i, _ in enumerate(cs.curves):
        head.append(f"{PLAN_LETTERS[i]:>{width}}", style="bold")
    rows = []
    for j, x in enumerate(cs.curves[0].points):
        row = Text(f"{x.x:>{X_WIDTH},}")
        for curve in cs.curves:
            row.append_text(_total_cell(curve.points[j], cs.capacity_bytes, width))
        rows.append(row)
    keys = [Text(f"  {PLAN_LETTERS[i]}  {c.label}: ").append(cliff_words(c.cliff, cs.axis, cs.to_x),
                                                            style="red" if c.cliff.first_oom else "green")
            for i, c in enumerate(cs.curves)]
    note = Text(f"  GiB per GPU; ✗ over the capacity of {cs.capacity_bytes / GIB:.1f} GiB")
    return Group(Text(heading(cs), style="bold"), Text(plan_summary(cs.model, cs.curves[0].plan)), head, *rows,
                 note, *keys)


def curve_chart(cs: CurveSet) -> Group:
    return stacked_chart(cs) if len(cs.curves) == 1 else compare_chart(cs)
