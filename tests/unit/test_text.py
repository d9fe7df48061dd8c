"""oomplan/text.py helpers."""
from oomplan.text import plural


def test_plural_counts_its_noun():
    assert plural(1, "image") == "1 image"
    assert plural(2, "image") == "2 images"
    assert plural(0, "image") == "0 images"
    assert plural(12345, "token") == "12,345 tokens"


def test_clean_cuts_a_long_run_to_its_start_and_end():
    from oomplan.text import MAX_RUN, clean

    value = "a" * 160 + "b" * 4800 + "c" * 40
    shown = clean(f"error: --weights: '{value}' is not accepted; use one of auto, bf16")
    assert shown == "error: --weights: '" + "a" * 159 + "…(4,802 more characters)…" + "c" * 39 + "' is not accepted; use one of auto, bf16"
    assert clean("x" * MAX_RUN) == "x" * MAX_RUN  # at the limit: unchanged
    assert clean("━" * 900, multiline=True, cut=False) == "━" * 900  # a rendered table rule is kept whole
