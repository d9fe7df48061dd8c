"""Shipped GPU profiles (hardware_profiles/README.md conventions) and raw capacities (--gpu 24GiB, 2x80GiB)."""
import glob
from pathlib import Path

import pytest
import yaml

from oomplan.errors import InputError
from oomplan.profiles import is_raw_gpu, load_gpu, parse_raw_capacity
from oomplan.specs.hardware import GpuSpec

ROOT = Path(__file__).resolve().parents[2] / "hardware_profiles"
FILES = sorted(glob.glob(str(ROOT / "*.yaml")))
NUMERIC = ("memory_bytes", "memory_bandwidth_bytes_per_s", "dense_bf16_flops_per_s", "dense_fp8_flops_per_s",
           "dense_int8_ops_per_s", "interconnect", "host_link", "num_gpus_per_node")


def _spec(path):
    return GpuSpec.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", FILES, ids=[Path(f).stem for f in FILES])
def test_profile_follows_the_conventions(path):
    g = _spec(path)
    assert g.name == Path(path).stem
    for field in NUMERIC:  # every numeric field present in the file names its source
        if getattr(g, field) is not None:
            assert g.sources.get(field), f"{g.name}: no source for {field}"
    assert g.overhead.source


def test_aliases_are_unique_across_files():
    seen = {}
    for path in FILES:
        g = _spec(path)
        for key in (g.name, *g.aliases):
            assert key not in seen, f"{key} in {path} and {seen[key]}"
            seen[key] = path


@pytest.mark.parametrize("alias,name,memory_bytes", [
    # capacities as the driver reports them (the figures the profiles cite)
    ("nvidia-geforce-rtx-5090", "rtx-5090", 33_668_857_856),  # deviceQuery 32109 MBytes
    ("nvidia-geforce-rtx-5080", "rtx-5080", 16_302 * 2**20),  # torch total_memory=16302MB
    ("nvidia-geforce-rtx-4080", "rtx-4080", 16_049 * 2**20),  # torch total_memory=16049MB
    ("nvidia-rtx-6000-ada-generation", "rtx-6000-ada", 51_002_867_712),  # deviceQuery 48640 MBytes
    ("nvidia-rtx-pro-6000-blackwell-server-edition", "rtx-pro-6000-blackwell", round(94.97 * 2**30)),
    ("nvidia-rtx-a6000", "rtx-a6000", 51_160_023_040),  # deviceQuery 48790 MBytes
    ("nvidia-a40", "a40", 47_608_692_736),  # deviceQuery 45403 MBytes
    ("nvidia-l40", "l40", 47_677_177_856),  # the L40S figure, said so in the profile
    ("nvidia-h20", "h20", 97_285 * 2**20),  # torch total_memory=97285MB
    ("nvidia-gb200", "gb200", 188_730 * 2**20),  # derived from B200 x 186/180
    ("nvidia-b300-sxm6-ac", "b300", 287_271_026_688),  # derived from B200 x 288/192
    ("amd-instinct-mi325x", "mi325x", (256 * 1024 - 16) * 2**20),  # as MI300X: GiB - 16 MiB
    ("amd-instinct-mi355x", "mi355x", (288 * 1024 - 16) * 2**20),
    ("m4-max-128gb", "apple-m4-max-128g", 115_448_730_000),  # Metal working set, not 128 GiB of RAM
    ("m4-32gb", "apple-m4-32g", 26_800_600_000),
])
def test_new_profiles_resolve_by_device_name(alias, name, memory_bytes):
    g = load_gpu(alias)
    assert (g.name, g.memory_bytes) == (name, memory_bytes)


def test_apple_profiles_plan_the_working_set_not_the_ram():
    g = load_gpu("apple-m4-max-128g")
    assert g.vendor == "apple" and g.num_gpus_per_node == 1 and not g.supports_fp8
    assert g.memory_bytes < 128 * 2**30 * 0.85
    assert g.overhead.nccl_buffer_bytes == 0 and g.overhead.cublas_workspace_bytes == 0


@pytest.mark.parametrize("text,expected", [
    ("24GiB", (1, 24 * 2**30)), ("24 GiB", (1, 24 * 2**30)), ("2x80GiB", (2, 80 * 2**30)), ("8 x 141GB", (8, 141 * 10**9)),
    ("2X40g", (2, 40 * 2**30)), ("512MiB", (1, 512 * 2**20)),
    ("4090", None), ("h100", None), ("a100-40g", None), ("2xh100", None),  # names, not capacities
])
def test_parse_raw_capacity(text, expected):
    assert parse_raw_capacity(text) == expected


@pytest.mark.parametrize("text,message", [
    ("0x80GiB", "the GPU count must be 1..72"), ("73x80GiB", "the GPU count must be 1..72"),
    ("1KiB", "between 1 MiB and 16 TiB"), ("17TiB", "between 1 MiB and 16 TiB"),
])
def test_raw_capacity_bounds(text, message):
    with pytest.raises(InputError, match=message):
        parse_raw_capacity(text)


def test_raw_gpu_uses_the_documented_default_overheads():
    g = load_gpu("2x80GiB")
    assert is_raw_gpu(g) and not is_raw_gpu(load_gpu("h100"))
    assert (g.memory_bytes, g.num_gpus_per_node) == (80 * 2**30, 2)
    o = g.overhead
    # oomplan/data/raw_gpu.yaml: the largest figure any shipped profile uses, so a raw capacity never under-plans
    shipped = [_spec(p).overhead for p in FILES]
    assert o.cuda_context_bytes == max(s.cuda_context_bytes for s in shipped) == 512 * 2**20
    assert o.cublas_workspace_bytes == 32 * 2**20
    assert o.nccl_buffer_bytes == max(s.nccl_buffer_bytes for s in shipped)
    assert o.allocator_fraction == 0.02 and not g.supports_fp8


@pytest.mark.parametrize("path", FILES + sorted(glob.glob(str(ROOT.parent / "model_profiles" / "*.yaml"))))
def test_index_reads_name_and_aliases_like_the_full_parse(path):
    """The profile index parses only the top-level name/aliases lines of shipped profiles (start-up, issue 16)."""
    from oomplan.profiles import head_fields

    full = yaml.safe_load(Path(path).read_text())
    head = head_fields(Path(path).read_text(), path) or {}
    assert head == {k: full[k] for k in ("name", "aliases") if k in full}


def test_head_fields_stops_at_the_next_key():
    from oomplan.profiles import head_fields

    text = "# c\nname: x\naliases:\n- a\n# note\n- b\nsource: |\n  name: y\naliases2: [z]\n"
    assert head_fields(text, "t") == {"name": "x", "aliases": ["a", "b"]}
