"""The one sanitiser for strings that came from input (file contents, file names, flags) before printing.

Control characters (C0, DEL, C1: ESC/CSI/OSC sequences start there), bidirectional overrides and
line/paragraph separators are written as visible escapes (`\\x1b`, `\\u202e`), so nothing from a
config, a profile or a folder name can move the cursor, clear the screen, set the terminal title
or fake a second output line. Used by error/warning printing and by the CLI's rich console.
"""
from __future__ import annotations

import re

# C0 controls except tab, DEL, C1 controls, bidi embeddings/overrides/isolates, line/paragraph separators,
# zero-width/invisible format characters commonly used to disguise text.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_UNSAFE_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


# A run of more than MAX_RUN characters without a space (a 5,000-character flag value or file name echoed in a
# message) is cut to its start and end with the length between: one readable line, never a screenful.
MAX_RUN = 300
_LONG_RUN = re.compile(rf"\S{{{MAX_RUN + 1},}}")


def _cut(match: re.Match) -> str:
    run = match.group(0)
    return f"{run[:160]}…({len(run) - 200:,} more characters)…{run[-40:]}"


def _escape(match: re.Match) -> str:
    ch = match.group(0)
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: object, multiline: bool = False, cut: bool = True) -> str:
    """str(text) with every unsafe character escaped (newlines too unless multiline) and, with cut, every run
    of more than MAX_RUN non-space characters cut to its start and end (rendered rows pass cut=False: a wide
    table's rule is one long run)."""
    s = text if isinstance(text, str) else str(text)
    s = (_UNSAFE_MULTILINE if multiline else _UNSAFE).sub(_escape, s)
    return _LONG_RUN.sub(_cut, s) if cut and len(s) > MAX_RUN else s


def shorten(text: object, limit: int = 200) -> str:
    """clean() and cut to `limit` characters (with an ellipsis) for echoing a value in a message."""
    s = clean(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def is_clean(text: str) -> bool:
    return _UNSAFE.search(text) is None


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """A warning about input that is skipped (e.g. a broken user profile): printed once per process, sanitised."""
    import sys

    line = clean(message)
    if line in _WARNED:
        return
    _WARNED.add(line)
    try:
        print(f"warning: {line}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # stderr closed or full: the warning is not essential
        pass


def plural(count: int, word: str) -> str:
    """'1 image', '2 images': a count with its noun."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"
