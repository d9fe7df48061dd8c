"""The terminal console every table and message goes through (rich is imported only here and in report/,
and only when something is rendered: `--json` never imports it)."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.segment import Segment

from oomplan.text import clean

MIN_WIDTH, MAX_WIDTH = 60, 1000  # COLUMNS=0 or COLUMNS=10**9 still renders a readable table


class SafeConsole(Console):
    """A rich Console whose every printed string passes the one sanitiser (oomplan/text.py): nothing
    from input (a model name, a folder name, a profile's display_name) can send ESC/CSI/OSC sequences
    to the terminal. Markup is off: a '[/x]' in a name is text, not a rich tag; emoji codes too: a ':fire:' in
    a name is text, and rich's emoji table is never imported (start-up, issue 16)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, **kwargs)
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            self.width = min(max(self.width, MIN_WIDTH), MAX_WIDTH)

    def render_str(self, text: str, **kwargs: Any):  # noqa: ANN201 - rich's signature
        return super().render_str(clean(text, multiline=True), **kwargs)

    def _render_buffer(self, buffer):  # noqa: ANN001, ANN202 - rich's signature; Text objects pass here too
        return super()._render_buffer(
            seg if seg.control else Segment(clean(seg.text, multiline=True, cut=False), seg.style, seg.control) for seg in buffer
        )
