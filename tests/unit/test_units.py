import pytest

from oomplan.errors import InputError
from oomplan.units import format_bytes, parse_bytes, parse_count, parse_fraction, round_up


@pytest.mark.parametrize("text,expected", [("32k", 32768), ("32K", 32768), ("32768", 32768), ("1m", 1048576), ("0.5k", 512), (7, 7)])
def test_parse_count(text, expected):
    assert parse_count(text, "--ctx") == expected


@pytest.mark.parametrize("text,fragment", [("32q", "not a count"), ("", "not a count"), ("-1", "not a count"), ("0", "out of range"), ("1.5", "whole number")])
def test_parse_count_rejects(text, fragment):
    with pytest.raises(InputError, match=fragment) as exc:
        parse_count(text, "--ctx")
    assert str(exc.value).startswith("--ctx:")


@pytest.mark.parametrize("text,expected", [("40GiB", 40 * 2**30), ("40 GB", 40 * 10**9), ("512MiB", 512 * 2**20), ("1.5", int(1.5 * 2**30)), ("0", 0)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text, "--offload-gib") == expected


@pytest.mark.parametrize("text", ["40 GiBs", "lots", "-3", "nan"])
def test_parse_bytes_rejects(text):
    with pytest.raises(InputError, match="--offload-gib"):
        parse_bytes(text, "--offload-gib")


def test_parse_fraction():
    assert parse_fraction("10%", "--margin") == pytest.approx(0.1)
    assert parse_fraction("0.9", "--x") == pytest.approx(0.9)
    with pytest.raises(InputError, match="out of range"):
        parse_fraction("1.5", "--gpu-memory-utilization")


def test_format_bytes():
    assert format_bytes(3 * 2**30 // 2) == "1.50 GiB"
    assert format_bytes(512 * 2**20) == "512.0 MiB"
    assert format_bytes(-2**31) == "-2.00 GiB"


def test_round_up_to_a_multiple():
    assert round_up(2880, 64) == 2880  # already aligned
    assert round_up(2881, 64) == 2944
    assert round_up(1, 16) == 16
    assert round_up(0, 16) == 0
