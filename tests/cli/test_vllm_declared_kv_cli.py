"""vLLM's `--kv-cache-dtype auto` on a ModelOpt checkpoint that declares an FP8 KV cache: vLLM 0.19.0 / 0.33.0
utils/torch_utils.py resolve_kv_cache_dtype_string maps auto to 'fp8_e4m3' (MODELOPT_TO_VLLM_KV_CACHE_DTYPE_MAP), so
the pool holds twice the tokens of a bf16 cache. nvidia/MiniMax-M2.5-NVFP4's real config.json declares
kv_cache_scheme {type: float, num_bits: 8} (tests/fixtures/configs/sweep/SOURCES.md)."""
import json
from pathlib import Path

from typer.testing import CliRunner

from oomplan.cli.app import app

MINIMAX = str(Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "sweep" / "nvidia--MiniMax-M2.5-NVFP4.json")


def _engine(*kv: str) -> dict:
    r = CliRunner().invoke(app, ["vet", "--gpu", "b200", "--json", "--", "vllm", "serve", MINIMAX, "-tp", "4", *kv])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["engine"]


def test_auto_kv_follows_the_declared_modelopt_fp8():
    auto, fp8, bf16 = _engine(), _engine("--kv-cache-dtype", "fp8_e4m3"), _engine("--kv-cache-dtype", "bfloat16")
    assert auto["kv_cache_tokens"] == fp8["kv_cache_tokens"]
    # same pool bytes, 1-byte instead of 2-byte elements: twice the blocks (to the block)
    assert auto["kv_cache_bytes"] == bf16["kv_cache_bytes"]
    assert abs(auto["num_kv_blocks"] - 2 * bf16["num_kv_blocks"]) <= 1
