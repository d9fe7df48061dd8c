"""oomplan/text.py helpers."""
from oomplan.text import plural


def test_plural_counts_its_noun():
    assert plural(1, "image") == "1 image"
    assert plural(2, "image") == "2 images"
    assert plural(0, "image") == "0 images"
    assert plural(12345, "token") == "12,345 tokens"
