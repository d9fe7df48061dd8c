"""Every flag of `vllm serve` 0.33.0 and of SGLang 0.5.23's launch_server is classified by `vet`: read (FLAGS,
SWITCHES), named as memory-relevant but unmodelled (UNMODELLED), a stated default (vLLM DEFAULTS), or reviewed as
not memory-relevant (tests/fixtures/engines/*-flags-not-memory.txt).

The flag lists are every option string of the engines' own argument parsers, generated from the release wheels by
tests/fixtures/engines/extract_engine_flags.py (vllm/entrypoints/common/cli_args.py make_arg_parser;
sglang/srt/server_args.py ServerArgs.add_cli_args)."""
from __future__ import annotations

from pathlib import Path

import pytest

from oomplan.engines.cmdline import parse_launch
from oomplan.engines.sglang import flags as sglang_flags
from oomplan.engines.vllm import flags as vllm_flags

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engines"

# Spellings we read that are not option strings of the release's parser, each with why the engine still takes it
ACCEPTED_OUTSIDE = {
    "vllm": {
        "-O": "vllm/utils/argparse_utils.py 0.33.0 FlexibleArgumentParser rewrites -O<n> / -O <n> to --optimization-level",
        "--kv-cache-memory": "argparse prefix of --kv-cache-memory-bytes (the spelling vLLM's own start-up log suggests)",
        "--no-enable-chunked-prefill": "the spelling before 0.33 (0.33.0: --disable-chunked-prefill)",
        "--no-enable-prefix-caching": "the spelling before 0.33 (0.33.0: --disable-prefix-caching)",
    },
    "sglang": {
        "--tp": "argparse prefix of --tp-size (the only flag starting --tp)",
        "--dp": "argparse prefix of --dp-size (the only flag starting --dp)",
        "--cuda-graph-max-bs": "the spelling before 0.5.23 (0.5.23: --cuda-graph-max-bs-decode / -prefill)",
    },
}


def _lines(name: str) -> set[str]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return {line.strip() for line in text.splitlines() if line.startswith("-")}


ENGINES = {
    "vllm": (vllm_flags, "vllm-0.33.0-serve-flags.txt", "vllm-0.33.0-flags-not-memory.txt"),
    "sglang": (sglang_flags, "sglang-0.5.23-launch-server-flags.txt", "sglang-0.5.23-flags-not-memory.txt"),
}


def _classes(engine: str) -> dict[str, set[str]]:
    module, _, not_memory = ENGINES[engine]
    return {"read": set(module.FLAGS) | set(module.SWITCHES), "unmodelled": set(module.UNMODELLED),
            "default": set(getattr(module, "DEFAULTS", ())), "not memory": _lines(not_memory)}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_the_committed_list_is_the_parsers(engine: str) -> None:
    listed = _lines(ENGINES[engine][1])
    assert len(listed) > 400, "the list holds every option string of the release's parser"
    for flag in ("--max-model-len", "--gpu-memory-utilization") if engine == "vllm" else ("--mem-fraction-static", "--tp-size"):
        assert flag in listed


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_flag_of_the_release_is_classified(engine: str) -> None:
    classes = _classes(engine)
    unclassified = sorted(_lines(ENGINES[engine][1]) - set().union(*classes.values()))
    assert unclassified == [], f"{engine}: flags of the release that vet neither reads nor names: {unclassified}"


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_classified_flag_exists_in_the_release(engine: str) -> None:
    listed = _lines(ENGINES[engine][1])
    stale = sorted(set().union(*_classes(engine).values()) - listed - set(ACCEPTED_OUTSIDE[engine]))
    assert stale == [], f"{engine}: classified flags the release's parser does not have: {stale}"


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_classes_do_not_overlap(engine: str) -> None:
    classes = _classes(engine)
    names = sorted(classes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not classes[a] & classes[b], f"{engine}: in both {a} and {b}: {sorted(classes[a] & classes[b])}"


def test_vet_names_memory_flags_and_reads_past_the_rest() -> None:
    launch = parse_launch(["vllm", "serve", "m", "-ep", "--async-scheduling", "--load-format", "bitsandbytes",
                           "--port", "8000", "--disable-custom-all-reduce"])
    assert launch.settings.enable_expert_parallel is True  # -ep: --enable-expert-parallel's short alias in 0.33.0
    assert launch.unmodelled_flags == ("--load-format", "--disable-custom-all-reduce")
    assert launch.ignored_flags == ("--port",)  # --async-scheduling states the modelled default: neither
    s = parse_launch(["python", "-m", "sglang.launch_server", "--model-path", "m", "--enable-hicache", "--host", "h"])
    assert s.unmodelled_flags == ("--enable-hicache",)
    assert s.ignored_flags == ("--host",)


def test_kv_cache_dtypes_are_read_then_priced_or_refused_by_the_release() -> None:
    from oomplan.engines.vllm.predict import predict_vllm
    from oomplan.engines.vllm.stages import predict_stages
    from oomplan.errors import InputError
    from oomplan.profiles import load_gpu, load_model

    model, gpu = load_model("llama-3.1-8b"), load_gpu("h100")
    launch = parse_launch(["vllm", "serve", "m", "--kv-cache-dtype", "int8_per_token_head", "--max-model-len", "8192"])
    assert launch.settings.kv_cache_dtype == "int8_per_token_head"
    _, (st,) = predict_stages(model, gpu, launch.settings)
    # TritonAttentionBackend.customize_spec 0.33.0: (128 + 128) x 1 B + 2 x 4 B fp32 scales per KV head per token;
    # 8 KV heads, 16-token blocks, 32 layers
    assert st.layout.page_bytes == 16 * 8 * (2 * 128 * 1 + 2 * 4) == 33_792
    assert st.num_blocks == st.available_kv_bytes // 33_792 // 32
    assert predict_vllm(model, gpu, launch.settings).ok
    for dtype, version, message in (
            ("ultraquant_4bit", None, "'ultraquant_4bit' is accepted by vLLM 0.33 but its packed layout is not modelled"),
            ("nvfp4_4over6", None, "'nvfp4_4over6' is accepted by vLLM 0.33 but its packed layout is not modelled"),
            ("int4_per_token_head", "0.21", "'int4_per_token_head' is not accepted by vLLM 0.21"),
            ("ultraquant_4bit", "0.26", "'ultraquant_4bit' is not accepted by vLLM 0.26")):
        given = parse_launch(["vllm", "serve", "m", "--kv-cache-dtype", dtype], engine_version=version).settings
        with pytest.raises(InputError, match=message):
            predict_stages(model, gpu, given)
    with pytest.raises(InputError, match="--kv-cache-dtype: 'fp7' is not accepted"):
        parse_launch(["vllm", "serve", "m", "--kv-cache-dtype", "fp7"])
