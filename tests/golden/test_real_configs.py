"""Real public config.json files against transformers 5.24 on the meta device (issue 13: "exact or refused, never
answered wrong").

FAMILIES: one or more published configs of each issue-13 family that had none (tests/fixtures/configs/<name>.json,
sources in SOURCES.md there): parameters == sum(p.numel()) of the model transformers builds from the config on `meta`
(full depth; *ForConditionalGeneration for wrappers: decoder, vision tower, projector, lm_head); KV == the storages
transformers' cache holds after a meta prefill of ctx - 1 tokens and one decode step, at two context lengths below and
above the sliding window, on the config's first layers (a layer's cache does not depend on depth); for the quantised
configs, the checkpoint bytes as shipped against the module tree of the meta model.

FAMILY_COPIES: the families whose checkpoints no source vendors byte for byte (gemma3_text, glm4_moe, starcoder2, olmo2,
jamba, mamba2, falcon_h1): public copies of their published configs (tests/fixtures/configs/families/), counted on their first layers.

SWEEP: further real configs of 2024-26 checkpoints (tests/fixtures/configs/sweep/, sources in SOURCES.md there), each
either refused (exit 2, one line naming the fields) or priced exactly: parameters and cache at ctx 5000 against the meta
build of its first layers (full-depth figures for every fixture: benchmarks/results/families_table.md).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from conftest import FIXTURES

from oomplan.errors import InputError, UnknownFamilyError
from oomplan.families import parse_hf_config
from oomplan.memory.budget import estimate
from oomplan.memory.params import num_params
from oomplan.profiles import load_gpu
from oomplan.specs.plan import Plan, Workload

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from oomplan.probe.hf_meta import check_measurable, meta_counts  # noqa: E402

CONFIGS = FIXTURES / "configs"
SWEEP = CONFIGS / "sweep"
H100 = load_gpu("h100")

# fixture -> (the family that reads it, layers kept for the cache forward, two contexts around its window)
FAMILIES = {
    "gemma-3-4b-it": ("gemma3", 6, (600, 1500)),  # 5 of 6 layers slide over 1024 tokens
    "gemma-3-27b-it": ("gemma3", 6, (600, 1500)),
    "exaone-4.0-32b": ("exaone4", 4, (1000, 5000)),  # LLLG: 3 of 4 layers slide over 4096 tokens
    "exaone-4.0-1.2b-w4a16": ("exaone4", 2, (40, 200)),  # all full attention; compressed-tensors int4 weights
    "olmo-3.1-32b-instruct": ("olmo3", 4, (1000, 5000)),
    "qwen2.5-vl-7b-instruct": ("qwen2_5_vl", 2, (40, 200)),
    "qwen3-vl-30b-a3b-instruct": ("qwen3_vl_moe", 2, (40, 200)),
    "devstral-small-2-24b-instruct": ("mistral3", 2, (40, 200)),  # text_config: ministral3; fp8 per tensor
    "devstral-2-123b-instruct": ("ministral3", 2, (40, 200)),  # fp8 per tensor
}


# Published configs of the families that had none, as public copies transcribe them (tests/fixtures/configs/families/,
# sources and cross-checks in SOURCES.md there): parameters and cache at two contexts on the config's first layers, as
# the sweep does (a layer's parameters and cache do not depend on depth; full-depth figures against transformers for every
# one: benchmarks/results/families_table.md). name -> (family, layers kept, two contexts around the window).
FAMILY_COPIES = {
    "gemma-3-1b-it": ("gemma3_text", 6, (300, 700)),  # 5 of 6 layers slide over 512 tokens
    "glm-4.5-air": ("glm4_moe", 2, (40, 200)),  # the dense first layer and one MoE layer
    "starcoder2-15b": ("starcoder2", 1, (1000, 5000)),  # every layer slides over 4096 tokens; plain MLP, biases
    "olmo-2-1124-7b-instruct": ("olmo2", 1, (40, 200)),
    "ai21-jamba-1.5-mini": ("jamba", 5, (40, 200)),  # Mamba on 0-3, attention on 4 (offset 4, period 8), MoE on 1 and 3
    "mamba-codestral-7b-v0.1": ("mamba2", 1, (40, 200)),  # no attention at all: the state is all there is, fixed
    "falcon-h1-0.5b-instruct": ("falcon_h1", 2, (40, 200)),  # attention and Mamba-2 side by side in every layer
}

def _raw(path: Path) -> dict:
    return json.loads(path.read_text())


def _meta_model(raw: dict):
    """The model transformers builds from a config.json (quantisation dropped: the meta model is never quantised)."""
    cfg = {k: v for k, v in raw.items() if k not in ("model_type", "quantization_config", "torch_dtype", "dtype")}
    arch = getattr(transformers, (raw.get("architectures") or [""])[0], None)  # the class the checkpoint names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_cfg = transformers.AutoConfig.for_model(raw["model_type"], **cfg)
        with torch.device("meta"):
            return arch._from_config(hf_cfg) if arch is not None else transformers.AutoModelForCausalLM.from_config(hf_cfg)


def _first_layers(cfg: dict, n: int) -> dict:
    """The config's first n decoder layers: num_hidden_layers and every per-layer list / pattern cut to match."""
    out = dict(cfg)
    if isinstance(out.get("text_config"), dict):
        out["text_config"] = _first_layers(out["text_config"], n)
    total = out.get("num_hidden_layers")
    if not isinstance(total, int) or total <= n:
        return out
    out["num_hidden_layers"] = n
    for key, value in cfg.items():
        if isinstance(value, list) and len(value) == total:
            out[key] = value[:n]
        elif key == "hybrid_override_pattern" and isinstance(value, str):
            out[key] = value[:n]
    return out


def _ours_cache(raw: dict, ctx: int) -> int:
    """KV + recurrent state of one contiguous sequence, plus the int64 window size each sliding cache layer holds
    (transformers cache_utils.py DynamicSlidingWindowLayer), which the meta census counts."""
    spec = parse_hf_config(raw, "t", "test")
    # transformers caches in the model dtype: a ModelOpt checkpoint's declared fp8 KV (vLLM's default) is not its
    kv = "bf16" if spec.dtype == "fp32" else spec.dtype
    s = estimate(spec, H100, Workload(ctx_tokens=ctx, batch_size=1), Plan(paged=False, kv_dtype=kv)).per_gpu
    return s.kv_cache_bytes + s.state_bytes + 8 * sum(layer.attention.kind in ("sliding", "chunked") for layer in spec.layers)


def _meta_cache(raw: dict, ctx: int) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, params, cache = meta_counts(raw, ctx)
    return params, cache


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_config_parameters_equal_transformers(name):
    raw = _raw(CONFIGS / f"{name}.json")
    spec = parse_hf_config(raw, name, "test")
    family = FAMILIES[name][0]
    assert family in (spec.model_type, raw.get("text_config", {}).get("model_type"))
    assert not [w for w in spec.warnings if "not counted" in w or "ignored" in w]
    assert num_params(spec) == sum(p.numel() for p in _meta_model(raw).parameters())


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_config_cache_equals_the_meta_forward(name):
    _, layers, contexts = FAMILIES[name]
    small = _first_layers(_raw(CONFIGS / f"{name}.json"), layers)
    seen = []
    for ctx in contexts:
        _, measured = _meta_cache(small, ctx)
        assert _ours_cache(small, ctx) == measured, ctx
        seen.append(measured)
    assert seen[0] < seen[1]


def test_published_totals():
    """Independent figures: the Hub's parameter counts for the checkpoints (Gemma 3 4B "4.3B", 27B "27.4B"; Qwen2.5-VL-7B
    "8.29B"; Qwen3-VL-30B-A3B "31.1B"), to the digits the Hub shows."""
    def billions(name: str, digits: int) -> float:
        return round(num_params(parse_hf_config(_raw(CONFIGS / f"{name}.json"), name, "test")) / 1e9, digits)

    assert (billions("gemma-3-4b-it", 1), billions("gemma-3-27b-it", 1)) == (4.3, 27.4)
    assert (billions("qwen2.5-vl-7b-instruct", 2), billions("qwen3-vl-30b-a3b-instruct", 1)) == (8.29, 31.1)


@pytest.mark.parametrize("name", sorted(FAMILY_COPIES))
def test_family_copy_exact_against_transformers(name):
    family, layers, contexts = FAMILY_COPIES[name]
    raw = _raw(CONFIGS / "families" / f"{name}.json")
    spec = parse_hf_config(raw, name, "test")
    assert spec.model_type == family
    assert not [w for w in spec.warnings if "not counted" in w or "ignored" in w]
    small = _first_layers(raw, layers)
    seen = []
    for ctx in contexts:
        params, measured = _meta_cache(small, ctx)
        assert (num_params(parse_hf_config(small, name, "test")), _ours_cache(small, ctx)) == (params, measured), ctx
        seen.append(measured)
    assert seen[0] == seen[1] if family == "mamba2" else seen[0] < seen[1]


def test_family_copies_published_totals():
    """Independent figures: Gemma 3 1B's 302M embedding + 698M non-embedding parameters (Gemma 3 technical report,
    table 1); AI21-Jamba-1.5-Mini "52B total / 12B active" (its model card); Mamba-Codestral-7B-v0.1's 7,285,403,648
    parameters (its model card); OLMo 2 7B's parameter shapes as listed with its config; Falcon-H1-0.5B-Instruct's "521M"
    (the parameter table of https://github.com/paiml/aprender/issues/269)."""
    from oomplan.memory.params import num_active_params

    def spec(name):
        return parse_hf_config(_raw(CONFIGS / "families" / f"{name}.json"), name, "test")

    gemma = spec("gemma-3-1b-it")
    embedding = gemma.vocab_size * gemma.hidden_size
    assert (round(embedding / 1e6), round((num_params(gemma) - embedding) / 1e6)) == (302, 698)
    jamba = spec("ai21-jamba-1.5-mini")
    assert (round(num_params(jamba) / 1e9), round(num_active_params(jamba) / 1e9)) == (52, 12)
    assert num_params(spec("mamba-codestral-7b-v0.1")) == 7_285_403_648
    # the Mamba-2 width Megatron-Bridge writes back (mamba_n_heads * mamba_d_head = 1536), not FalconH1Config's default 1024
    assert round(num_params(spec("falcon-h1-0.5b-instruct")) / 1e6) == 521
    as_vendored = {k: v for k, v in _raw(CONFIGS / "families" / "falcon-h1-0.5b-instruct.json").items() if k != "mamba_d_ssm"}
    with pytest.raises(InputError, match="mamba width"):  # the dict as Megatron-Bridge writes it: refused, not guessed
        parse_hf_config(as_vendored, "falcon-h1-0.5b-instruct", "test")
    # OLMo-2-1124-7B-Instruct: the parameter shapes listed beside its config.json in the same public document (embedding,
    # per layer q/k/v/o 4096x4096, q_norm and k_norm 4096 each, gate/up/down 11008x4096, two post-norms; final norm, lm_head)
    h, i, v = 4096, 11008, 100352
    assert num_params(spec("olmo-2-1124-7b-instruct")) == 2 * v * h + 32 * (4 * h * h + 2 * h + 3 * i * h + 2 * h) + h

def _linears(model) -> list[tuple[str, int, int]]:
    return [(name, m.out_features, m.in_features) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def _weights_bytes(raw: dict) -> int:
    spec = parse_hf_config(raw, "q", "test")
    return estimate(spec, H100, Workload(ctx_tokens=1024, batch_size=1), Plan(paged=False)).per_gpu.weights_bytes


@pytest.mark.parametrize("name", ["devstral-2-123b-instruct", "devstral-small-2-24b-instruct"])
def test_fp8_per_tensor_checkpoint_bytes(name):
    """quant_method fp8, weight_block_size null, modules_to_not_convert [vision tower, projector, lm_head]: every decoder
    nn.Linear of the meta model is e4m3 (1 B per element) with one fp32 weight_scale (vLLM Fp8LinearMethod, cited in
    oomplan/formats/fp8.py) and, activation_scheme static, one fp32 input_scale; the embedding, norms, lm_head, vision
    tower and projector stay bf16."""
    raw = _raw(CONFIGS / f"{name}.json")
    model = _meta_model(raw)
    decoder = [(n, o, i) for n, o, i in _linears(model) if "layers." in n and "vision" not in n and "projector" not in n]
    fp8 = sum(o * i + 4 + 4 for _, o, i in decoder)
    rest = sum(p.numel() for p in model.parameters()) - sum(o * i for _, o, i in decoder)
    assert _weights_bytes(raw) == fp8 + 2 * rest


def test_compressed_tensors_int4_checkpoint_bytes():
    """EXAONE 4.0 1.2B, compressed-tensors pack-quantized int4, group 128, symmetric, `ignore: [lm_head]` (tied to the
    embedding): each nn.Linear ships weight_packed (4 bits per element), weight_scale (bf16, one per 128 inputs and row)
    and weight_shape (2 x int64), vLLM CompressedTensorsWNA16 (oomplan/formats/integer.py); the rest stays bf16."""
    raw = _raw(CONFIGS / "exaone-4.0-1.2b-w4a16.json")
    model = _meta_model(raw)
    linears = [(n, o, i) for n, o, i in _linears(model) if n != "lm_head"]
    int4 = sum(o * i // 2 + o * (i // 128) * 2 + 16 for _, o, i in linears)
    rest = sum(p.numel() for p in model.parameters()) - sum(o * i for _, o, i in linears)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert _weights_bytes(raw) == int4 + 2 * rest


def test_modelopt_mixed_precision_checkpoint_bytes():
    """nvidia/Qwen3.6-27B-NVFP4 (sweep fixture), quant_algo MIXED_PRECISION: every quantized_layers entry is an nn.Linear of
    transformers' meta model (lm_head included), FP8 ones e4m3 with an fp32 weight_scale and input_scale, W4A16_NVFP4 ones
    packed e2m1 with an e4m3 scale per 16 inputs and an fp32 weight_scale_2 (vLLM ModelOptMixedPrecisionConfig, cited in
    oomplan/formats/declared.py); everything else bf16, plus the k/v scales of the 16 attention layers (kv_cache_scheme)."""
    raw = _raw(SWEEP / "nvidia--Qwen3.6-27B-NVFP4.json")
    model = _meta_model(raw)
    table = raw["quantization_config"]["quantized_layers"]
    size = {"FP8": lambda o, i: o * i + 8, "W4A16_NVFP4": lambda o, i: o * i // 2 + o * (i // 16) + 4}
    listed = [(n, o, i) for n, o, i in _linears(model) if n in table]
    assert len(listed) == len(table) == 401
    quantised = sum(size[table[n]["quant_algo"]](o, i) for n, o, i in listed)
    rest = sum(p.numel() for p in model.parameters()) - sum(o * i for _, o, i in listed)
    assert _weights_bytes(raw) == quantised + 2 * rest + 16 * 2 * 4


# The sweep: each fixture's outcome. "refused": exit 2 naming the fields (an architecture oomplan has no family for,
# or a declared quantisation it cannot place); "transformers": no family reads it (UnknownFamilyError), and the CLI counts
# it with transformers on the meta device (oomplan/probe/hf_meta.py, "counted by transformers"); otherwise the family it
# is priced with.
SWEEP_EXPECTED = {
    "Qwen--Qwen3-0.6B": "qwen3",
    "Qwen--Qwen3-30B-A3B-FP8": "qwen3_moe",
    "Qwen--Qwen3-32B-FP8-Static-PerTensor": "refused",  # its scheme lives in hf_quant_config.json (quant_method absent)
    "Qwen--Qwen3-VL-2B-Instruct": "qwen3_vl",
    "Qwen--Qwen3-VL-235B-A22B-Instruct": "qwen3_vl_moe",
    "Qwen--Qwen3.5-122B-A10B": "qwen3_5_moe",
    "XiaomiMiMo--MiMo-7B-Base": "refused",
    "XiaomiMiMo--MiMo-V2-Flash": "refused",
    "MiniMaxAI--MiniMax-M3": "refused",
    "deepseek-ai--DeepSeek-R1": "deepseek_v3",
    "deepseek-ai--DeepSeek-V4-Flash": "refused",
    "google--gemma-4-26B-A4B": "transformers",
    "moonshotai--Kimi-K2.5": "refused",
    "nvidia--Llama-3_3-Nemotron-Super-49B-v1": "refused",
    "nvidia--MiniMax-M2.5-NVFP4": "minimax_m2",
    "nvidia--NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16": "nemotron_h",
    "nvidia--Qwen3.6-27B-NVFP4": "qwen3_5",  # ModelOpt MIXED_PRECISION, priced module by module
    "stepfun-ai--Step-3.7-Flash": "refused",
    "mistralai--Mixtral-8x22B-v0.1": "mixtral",
    "zai-org--GLM-5.2-FP8": "glm_moe_dsa",
    "isim--codellama-34b-instruct-hf": "llama",
    "isim--deepseek-v2-lite": "deepseek_v2",
    "isim--llama-4-scout-17b-16e-instruct-fp8-dynamic": "llama4",  # its ignore list is matched module by module
    "isim--mistral-nemo-instruct-2407": "mistral",
    "isim--qwen3-14b": "qwen3",
    "isim--yi-34b": "llama",
    "nxdi--gemma3_27b_config": "gemma3",
    "tt-forge--deepseek-v3.1": "deepseek_v3",
    "tt-forge--deepseek-v3.2-exp": "deepseek_v32",
    "tt-forge--deepseek-v4-inference": "refused",  # DeepSeek's own layout (dim, n_layers), no model_type
    "tt-metal--EXAONE-4.5-33B": "transformers",
    "tt-metal--LFM2.5-VL-1.6B": "transformers",
    # the second sweep (2025-26 checkpoints none of the above covers; sources in SOURCES.md)
    "Alibaba-NLP--Tongyi-DeepResearch-30B-A3B": "qwen3_moe",
    "HuggingFaceTB--SmolLM3-3B": "transformers",  # NoPE every 4th layer (no_rope_layers)
    "LiquidAI--LFM2-1.2B": "transformers",  # short-convolution state + 6 attention layers
    "MiniMaxAI--MiniMax-M2.5": "minimax_m2",  # fp8 128x128 blocks
    "Qwen--Qwen3-32B-FP8": "qwen3",  # fp8 128x128 blocks
    "Qwen--Qwen3-Coder-480B-A35B-Instruct": "qwen3_moe",
    "Qwen--Qwen3-Next-80B-A3B-Thinking": "qwen3_next",
    "Qwen--Qwen3-VL-32B-Instruct": "qwen3_vl",
    "Qwen--Qwen3.6-35B-A3B": "qwen3_5_moe",
    "RedHatAI--DeepSeek-V4-Flash-NVFP4-FP8": "refused",  # deepseek_v4: no family, and compressed-tensors declared
    "RekaAI--reka-flash-3": "llama",
    "baidu--ERNIE-4.5-0.3B-Base": "transformers",
    "baidu--ERNIE-4.5-21B-A3B-Thinking": "transformers",  # ernie4_5_moe: 64 experts + 2 shared from layer 1
    "deepseek-ai--DeepSeek-R1-Distill-Qwen-32B": "qwen2",
    "inclusionAI--Ling-flash-2.0": "refused",  # bailing_moe: transformers 5.24 does not know it either
    "lmstudio-community--GLM-4.5-Air-MLX-4bit": "refused",  # MLX 'quantization' (4-bit, group 64): no reader prices it
    "meta-llama--Llama-3.3-70B-Instruct": "llama",
    "meta-models--Muse-Glimmer-30B": "transformers",
    "microsoft--Phi-4-mini-instruct": "phi3",  # partial rotary 0.75, tied 200k embedding
    "mistralai--Devstral-Small-2507": "mistral",
    "mistralai--Magistral-Small-2509": "mistral3",  # no tie_word_embeddings key: see CHECKPOINT_UNTIED
    "moonshotai--Kimi-K3": "refused",
    "nvidia--GLM-5.1-NVFP4": "glm_moe_dsa",  # ModelOpt NVFP4; its ignore list names the MTP layer (model.layers.78*)
    "nvidia--Gemma-4-31B-IT-NVFP4": "refused",  # gemma4 has no family, and ModelOpt NVFP4 is declared
    "nvidia--Qwen3.5-397B-A17B-NVFP4": "qwen3_5_moe",
    "openai--gpt-oss-20b": "gpt_oss",  # MXFP4 experts
    "poolside--Laguna-XS.2-FP8": "refused",
    "sgl-project--DeepSeek-V4-Flash-FP8": "refused",  # model_type deepseek_ref
    "tencent--Hunyuan-A13B": "refused",  # the remote-code 'hunyuan' layout (per-layer lists), not transformers' hunyuan_v1_moe
    "tt-forge--kimi-k2.6": "refused",  # its int4 experts are declared in text_config.quantization_config
    "tt-forge--vibevoice": "refused",  # a speech model, not a causal LM
    "tt-metal--Voxtral-Mini-3B-2507": "transformers",
    "zai-org--GLM-5.1-FP8": "glm_moe_dsa",
}
# transformers 5.24's Mistral3Config defaults tie_word_embeddings to True (models/mistral3/configuration_mistral3.py line 98),
# so a model built from a config without the key ties lm_head to embed_tokens; from_pretrained unties them when the
# checkpoint holds both with different values (modeling_utils.py PreTrainedModel.tie_weights: "both are present in the
# checkpoints ... we will NOT tie them"), as Mistral Small 3.x checkpoints do (their text decoder, MistralConfig, is untied;
# devstral-small-2-24b-instruct.json says tie_word_embeddings false outright). oomplan prices the checkpoint: the referee
# is built with the key set as loading leaves it.
CHECKPOINT_UNTIED = {"mistralai--Magistral-Small-2509"}
# transformers 5.24 Llama4ForConditionalGeneration.forward reads `image_outputs` off its text model's output
# (models/llama4/modeling_llama4.py line 1318), so a text-only meta forward of the wrapper fails there
NO_META_FORWARD = {"isim--llama-4-scout-17b-16e-instruct-fp8-dynamic"}
SWEEP_LAYERS = 6  # the first layers the meta build keeps (covers Gemma's 6-layer and EXAONE's 4-layer patterns)
SWEEP_CTX = 5000  # past the widest window among them (4096)


def test_every_sweep_fixture_has_an_expected_outcome():
    assert sorted(p.stem for p in SWEEP.glob("*.json")) == sorted(SWEEP_EXPECTED)


@pytest.mark.parametrize("name", sorted(SWEEP_EXPECTED))
def test_sweep_config_is_exact_or_refused(name):
    raw, expected = _raw(SWEEP / f"{name}.json"), SWEEP_EXPECTED[name]
    if expected == "transformers":  # the CLI's path for it (oomplan/cli/measured.py): no family, nothing in the way
        with pytest.raises(UnknownFamilyError) as unknown:
            parse_hf_config(raw, name, f"sweep/{name}.json")
        check_measurable(raw, str(unknown.value))
        return
    if expected == "refused":
        with pytest.raises(InputError) as refused:
            parse_hf_config(raw, name, f"sweep/{name}.json")
        message = str(refused.value)
        assert "\n" not in message and f"sweep/{name}.json" in message
        assert "quantization_config" in message or "model_type" in message or "field" in message
        return
    spec = parse_hf_config(raw, name, f"sweep/{name}.json")
    assert expected in (spec.model_type, raw.get("text_config", {}).get("model_type"), spec.hf_config.get("model_type"))
    assert not [w for w in spec.warnings if "not counted" in w or "ignored" in w]
    small = _first_layers(raw, SWEEP_LAYERS)
    referee = dict(small, tie_word_embeddings=False) if name in CHECKPOINT_UNTIED else small
    if name in NO_META_FORWARD:  # parameters against the meta build; the KV cache of llama4 is tested with its text config
        assert num_params(parse_hf_config(small, name, "test")) == sum(p.numel() for p in _meta_model(small).parameters())
        return
    params, cache = _meta_cache(referee, SWEEP_CTX)
    assert (num_params(parse_hf_config(small, name, "test")), _ours_cache(small, SWEEP_CTX)) == (params, cache)


@pytest.mark.parametrize("name", sorted(n for n, e in SWEEP_EXPECTED.items() if e == "transformers"))
def test_sweep_config_counted_by_transformers(name):
    """The transformers path on the config's first layers: its cache derived from three short forwards (bytes per token,
    per sequence, shared) equals the cache a direct meta prefill holds at ctx 5000, and its parameters are the model's."""
    from oomplan.probe.hf_meta import derived_cache_bytes, measure_model

    small = _first_layers(_raw(SWEEP / f"{name}.json"), SWEEP_LAYERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = measure_model(small, name=name, source=name, config_sha256="-", ctx_tokens=64, batch_size=1)
    params, cache = _meta_cache(small, SWEEP_CTX)
    assert (m.num_params, derived_cache_bytes(m.cache_layers, SWEEP_CTX, 1)) == (params, cache)


def test_a_quantisation_nested_in_text_config_keeps_the_transformers_path_away():
    """tt-forge's Kimi-K2.6 declares its int4 experts in text_config.quantization_config: the transformers path (which
    counts unquantised tensors) refuses, naming that field, rather than counting 1.03T parameters in bf16."""
    raw = _raw(SWEEP / "tt-forge--kimi-k2.6.json")
    with pytest.raises(UnknownFamilyError) as unknown:
        parse_hf_config(raw, "k", "k.json")
    with pytest.raises(InputError, match="'text_config.quantization_config'"):
        check_measurable(raw, str(unknown.value))
