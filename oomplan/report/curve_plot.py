"""The memory curve as a PNG or SVG through matplotlib (the optional `plot` extra, imported lazily)."""
from __future__ import annotations

import io
from pathlib import Path

from oomplan.errors import RuntimeFailure
from oomplan.planner.curve import Curve, CurveSet
from oomplan.report.curve_text import cliff_words, components, heading, unit_name
from oomplan.report.plan_yaml import write_atomic_bytes
from oomplan.report.summary import plan_summary
from oomplan.units import GIB

COLOURS = {"weights": "#4C72B0", "KV cache": "#C44E9A", "state": "#2AA1A1", "activations": "#DDA52D", "overhead": "#9A9A9A"}
LINE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise RuntimeFailure("--png/--svg need matplotlib: pip install 'oomplan[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _stacked(ax, cs: CurveSet) -> None:
    curve = cs.curves[0]
    xs = [p.x for p in curve.points]
    bands = components(cs)
    layers = [[getattr(p, band[3]) / GIB for p in curve.points] for band in bands]
    ax.stackplot(xs, *layers, labels=[b[0] for b in bands], colors=[COLOURS[b[0]] for b in bands], alpha=0.9)
    _cliff_line(ax, curve, cs, "#d62728")
    ax.set_title(f"{heading(cs)}\n{plan_summary(cs.model, curve.plan)}", fontsize=10)


def _lines(ax, cs: CurveSet) -> None:
    for i, curve in enumerate(cs.curves):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        ax.plot([p.x for p in curve.points], [p.total_bytes / GIB for p in curve.points], marker="o", markersize=3,
                color=colour, label=curve.label)
        _cliff_line(ax, curve, cs, colour)
    ax.set_title(heading(cs), fontsize=10)


def _cliff_line(ax, curve: Curve, cs: CurveSet, colour: str) -> None:
    """A dashed line at the first x that does not fit; its words go in the legend."""
    if curve.cliff.first_oom is None:
        return
    words = cliff_words(curve.cliff, cs.axis, cs.to_x)
    label = words if len(cs.curves) == 1 else f"{curve.label}: {words}"
    ax.axvline(curve.cliff.first_oom, color=colour, linestyle="--", linewidth=1, label=label)


def _tick(value: float, _pos: object = None) -> str:
    """1024 -> '1k', 1048576 -> '1M'."""
    if value >= 2**20:
        return f"{value / 2**20:g}M"
    if value >= 1024:
        return f"{value / 1024:g}k"
    return f"{value:g}"


def render_figure(cs: CurveSet, fmt: str) -> bytes:
    """The chart as PNG or SVG bytes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    try:
        (_stacked if len(cs.curves) == 1 else _lines)(ax, cs)
        ax.axhline(cs.capacity_bytes / GIB, color="black", linewidth=2, label=f"capacity {cs.capacity_bytes / GIB:.1f} GiB")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(_tick)
        ax.set_xlabel(f"{'context length' if cs.axis == 'ctx' else 'batch size'} ({unit_name(cs.axis)}, log scale)")
        ax.set_ylabel("memory per GPU (GiB)")
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format=fmt)
        return buf.getvalue()
    finally:
        plt.close(fig)


def write_figure(cs: CurveSet, path: Path, force: bool, flag: str) -> None:
    """Render first (so a missing matplotlib writes nothing), then write atomically."""
    fmt = "svg" if flag == "--svg" else "png"
    write_atomic_bytes(path, render_figure(cs, fmt), force, flag)
