"""The number-format registry: bytes per tensor, hand-computed; names, grades and spellings from its data rows."""
import pytest
from conftest import tiny_llama
from typer.testing import CliRunner

from oomplan import formats
from oomplan.cli.app import app
from oomplan.formats.base import LAYOUTS
from oomplan.memory.weights import matrix_bytes, weights_budget
from oomplan.families import parse_hf_config
from oomplan.specs.plan import KV_DTYPES, WEIGHT_FORMATS, Plan


@pytest.mark.parametrize("fmt,rows,cols,group,expected", [
    ("fp8-channel", 64, 64, 128, 4096 + 64 * 4),  # one fp32 scale per output row
    # 128x128 blocks: [256 out, 384 in] -> 2 x 3 fp32 block scales (weight_scale_inv)
    ("fp8-block", 256, 384, 128, 256 * 384 + 2 * 3 * 4),
    ("fp8-block", 200, 130, 128, 200 * 130 + 2 * 2 * 4),  # partial blocks round up
    # MXFP4: 64 rows x 2 blocks of 32 -> 16 packed bytes + 1 e8m0 scale per block = 4.25 bits per weight
    ("mxfp4", 64, 64, 128, 64 * 2 * 17),
    # NVFP4: 64 rows x 4 blocks of 16 -> 8 packed bytes + 1 e4m3 scale, + weight_scale_2 and input_scale fp32
    ("nvfp4", 64, 64, 128, 64 * 4 * 9 + 2 * 4),
])
def test_matrix_bytes_by_hand(fmt, rows, cols, group, expected):
    assert matrix_bytes(rows, cols, fmt, group) == expected


def test_mxfp4_is_4_25_bits_per_weight():
    assert matrix_bytes(2880, 2880, "mxfp4", 128) * 8 / (2880 * 2880) == 4.25


@pytest.mark.parametrize("fmt,num_values,expected", [
    ("bf16", 128, 256), ("fp32", 128, 512), ("fp8", 128, 128),
    ("int8", 128, 128 + 2 * 4), ("int4", 128, 64 + 2 * 4),  # fp16 scale + zero per 64 values
])
def test_kv_vector_bytes(fmt, num_values, expected):
    assert formats.get(fmt).kv_vector_bytes(num_values) == expected


def test_shipped_rows_validate_and_equal_the_unvalidated_build():
    """registry() builds the shipped rows with model_construct (start-up, issue 16): each row must pass full
    validation (extra keys forbidden, types, ranges) and give the same row; a bad edit fails here."""
    import yaml
    from pydantic import ValidationError

    from oomplan.formats.base import FormatRow
    from oomplan.formats.registry import DATA, shipped_row

    raw = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    assert raw["schema_version"] == 1 and set(raw) == {"schema_version", "formats"}
    for name, fields in raw["formats"].items():
        assert shipped_row(fields) == FormatRow.model_validate(fields), name
    bad = dict(raw["formats"]["bf16"], weights={"grade": 0, "alias": ["x"]})  # a misspelt key
    with pytest.raises(ValidationError):
        FormatRow.model_validate(bad)


def test_every_row_names_a_registered_layout_and_every_layout_is_used():
    used = {f.row.layout for f in formats.registry().values()}
    assert used == set(LAYOUTS)


def test_lossy_formats_carry_a_reason_and_a_source():
    for f in formats.registry().values():
        for use in ("weights", "kv"):
            g = f.grade(use)
            if g is not None and g.grade > 0:
                assert g.reason and g.source, f"{f.name} {use}"


def test_plan_literals_and_cli_choices_come_from_the_registry():
    assert WEIGHT_FORMATS == ("auto",) + formats.format_names("weights")
    assert KV_DTYPES == ("auto",) + formats.format_names("kv")
    assert {"mxfp4", "nvfp4", "fp8-block"} <= set(WEIGHT_FORMATS)
    assert formats.canonical("INT4", "weights") == "awq" and formats.canonical("int4", "kv") == "int4"
    assert formats.canonical("bfloat16", "kv") == "bf16"


def test_native_hardware():
    assert formats.get("mxfp4").runs_natively("blackwell", True)
    assert not formats.get("mxfp4").runs_natively("hopper", True)
    assert formats.get("fp8").runs_natively("hopper", True) and not formats.get("fp8").runs_natively("ampere", False)
    assert formats.get("awq").runs_natively("volta", False)


def _tiny_mixtral():
    cfg = tiny_llama(model_type="mixtral", architectures=["MixtralForCausalLM"], num_local_experts=4, num_experts_per_tok=2)
    return parse_hf_config(cfg, "tiny-mixtral", "test")


def test_component_formats_price_each_component_in_its_own_format():
    m = _tiny_mixtral()
    base = weights_budget(m, Plan()).by_component
    mixed = weights_budget(m, Plan(component_weights={"experts": "mxfp4"})).by_component
    # experts: 2 layers x 4 experts x (gate, up [128, 64] + down [64, 128]); everything else unchanged
    per_expert = 2 * (128 * 2 * 17) + 64 * 4 * 17
    assert mixed.experts == 2 * 4 * per_expert
    assert base.experts == 2 * 4 * 3 * 128 * 64 * 2
    assert (mixed.attention, mixed.embedding, mixed.router, mixed.lm_head) == (base.attention, base.embedding, base.router, base.lm_head)


def test_component_format_overrides_weights_for_that_component_only():
    m = _tiny_mixtral()
    plan = Plan(weights="fp8", component_weights={"attention": "bf16"})
    b = weights_budget(m, plan).by_component
    assert b.attention == weights_budget(m, Plan()).by_component.attention
    assert b.experts == 2 * 4 * 3 * (128 * 64 + 4)


def test_plans_with_component_formats_hash_by_value():
    a, b = Plan(component_weights={"experts": "mxfp4"}), Plan(component_weights={"experts": "mxfp4"})
    assert hash(a) == hash(b) and a == b and hash(a) != hash(Plan())


def test_cli_component_weights_flag():
    r = CliRunner().invoke(app, ["estimate", "mixtral-8x7b", "--gpu", "h100", "--component-weights", "experts=mxfp4", "--json"])
    assert r.exit_code in (0, 1), r.output
    import json
    out = json.loads(r.stdout)
    assert out["plan"]["component_weights"] == {"experts": "mxfp4"}
    # Mixtral 8x7B experts: 32 layers x 8 experts x 3 matrices [14336, 4096], 4.25 bits per weight
    assert out["per_gpu"]["weights"]["by_component_bytes"]["experts"] == 32 * 8 * 3 * 14336 * (4096 // 32) * 17


@pytest.mark.parametrize("args,message", [
    (["--component-weights", "experts"], "--component-weights: 'experts' is not COMPONENT=FORMAT"),
    (["--component-weights", "norm=fp8"], "--component-weights"),
    (["--component-weights", "experts=int3"], "--component-weights"),
])
def test_cli_component_weights_errors(args, message):
    r = CliRunner().invoke(app, ["estimate", "llama-3-8b", "--gpu", "h100"] + args)
    assert r.exit_code == 2 and message in r.stderr, r.output
