"""Launch commands that realise a plan in vLLM, SGLang, llama.cpp or HF transformers.

Each export says plainly which knobs the engine cannot realise.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from oomplan import formats
from oomplan.engines.kv_policy_support import not_realised, realises
from oomplan.engines.llamacpp.flags import GGUF_KV
from oomplan.memory.budget import Estimate
from oomplan.memory.kv_cache import resolved_kv_dtype
from oomplan.memory.weights import SIXTEEN_BIT, resolved_weight_format
from oomplan.text import is_clean
from oomplan.units import GIB

VLLM_KV, SGLANG_KV = formats.plan_kv_table("vllm"), formats.plan_kv_table("sglang")

ENGINES = ("vllm", "sglang", "llamacpp", "hf")


@dataclass(frozen=True)
class Export:
    engine: str
    command: str
    unrealisable: tuple[str, ...]  # knobs the engine cannot apply, one sentence each
    notes: tuple[str, ...]

    def render(self) -> str:
        lines = [f"# {n}" for n in self.notes] + [f"# NOT REALISED by {self.engine}: {u}" for u in self.unrealisable]
        return "\n".join(lines + [self.command])


def shell_word(text: str) -> str:
    """One shell word for `text`: shlex.quote, or where it holds a control or invisible character (a folder named
    with an escape sequence) bash's $'...' with that character escaped, so the command is right and the terminal safe."""
    if is_clean(text):
        return shlex.quote(text)

    def char(c: str) -> str:
        if c in "\\'":
            return "\\" + c
        if is_clean(c):
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return "$'" + "".join(char(c) for c in text) + "'"


def _model_id(est: Estimate) -> str:
    return est.model.hf_repo or est.model.source.removesuffix("/config.json")


def _revision(est: Estimate) -> list[str]:
    """The repo revision the plan was made for (vllm/engine/arg_utils.py and sglang server_args.py: --revision)."""
    return [f"--revision {shell_word(est.model.hf_revision)}"] if est.model.hf_revision else []


def _dms(est: Estimate, engine: str) -> list[str]:
    if est.plan.dms_ratio > 1:
        return [f"DMS {est.plan.dms_ratio:g}x KV compression ({engine} has no DMS support; the KV cache will be {est.plan.dms_ratio:g}x larger than planned)"]
    return _kv_policy(est, engine)


def _kv_policy(est: Estimate, engine: str) -> list[str]:
    p = est.plan.kv_policy
    if p is None or realises(p.kind, engine):
        return []
    return [f"--kv-policy {p.spec} ({not_realised(p.kind, engine)}; the KV cache will hold every token, more than planned)"]


def memory_fraction(est: Estimate) -> float:
    """The share of the card the plan needs, rounded up to 0.01, kept in [0.5, 0.98]."""
    need = est.per_gpu.total_bytes / est.capacity_bytes
    return min(0.98, max(0.5, math.ceil(need * 100 + 1) / 100))


def _join(parts: list[str]) -> str:
    return " \\\n    ".join(parts)


def _quantization(est: Estimate, w: str, engine: str, parts: list[str], unreal: list[str], notes: list[str]) -> None:
    """--quantization for vLLM/SGLang, as the format registry spells it: some quantise on load, some need a
    pre-quantised checkpoint, some (int8) are not realised on load at all."""
    if w in SIXTEEN_BIT:
        return
    spelling = formats.get(w).engine(engine.lower())
    if spelling.load.startswith("unrealised:") or spelling.quantization is None:
        unreal.append(spelling.load.removeprefix("unrealised:").strip().format(engine=engine) or f"{w} weights in {engine}")
        return
    parts.append(f"--quantization {spelling.quantization}")
    if spelling.load == "checkpoint":
        notes.append(f"--quantization {spelling.quantization} needs a {w.upper()}-quantised checkpoint of {est.model.name}")


def vllm(est: Estimate) -> Export:
    p, w, kv = est.plan, resolved_weight_format(est.model, est.plan), resolved_kv_dtype(est.model, est.plan)
    parts = ["vllm serve " + shell_word(_model_id(est)), *_revision(est)]
    parts += [f"--tensor-parallel-size {p.tensor_parallel}", f"--pipeline-parallel-size {p.pipeline_parallel}"]
    parts += [f"--max-model-len {est.workload.ctx_tokens}", f"--max-num-seqs {est.workload.batch_size}"]
    parts.append(f"--gpu-memory-utilization {memory_fraction(est):.2f}")
    parts.append(f"--dtype {'bfloat16' if w not in ('fp16',) else 'float16'}" if w in SIXTEEN_BIT else "--dtype auto")
    unreal, notes = _dms(est, "vLLM"), list[str]()
    _quantization(est, w, "vLLM", parts, unreal, notes)
    if kv not in SIXTEEN_BIT and kv in VLLM_KV:
        parts.append(f"--kv-cache-dtype {VLLM_KV[kv]}")
    elif kv not in SIXTEEN_BIT:
        unreal.append(f"{kv} KV cache (vLLM stores KV in the model dtype or fp8 only)")
    if p.paged:
        parts.append(f"--block-size {p.block_size}")
    else:
        unreal.append("contiguous KV allocation (vLLM always pages the KV cache)")
    parts.append(f"--max-num-batched-tokens {p.prefill_chunk_tokens or est.workload.ctx_tokens}")
    if p.moe_layers_on_cpu:
        unreal.append(f"experts of {p.moe_layers_on_cpu} MoE layers on the CPU (vLLM has no expert offload; --cpu-offload-gb streams weights over PCIe instead)")
    if p.offload_bytes:
        parts.append(f"--cpu-offload-gb {math.ceil(p.offload_bytes / GIB)}")
    if p.expert_parallel:
        parts.append("--enable-expert-parallel")
    if est.workload.num_images:  # vLLM's engine args: at most this many images per prompt
        parts.append("--limit-mm-per-prompt " + shlex.quote(f'{{"image": {est.workload.num_images}}}'))
    notes.append("vLLM fills the rest of --gpu-memory-utilization with KV blocks; see oomplan estimate --engine vllm")
    return Export("vllm", _join(parts), tuple(unreal), tuple(notes))


def sglang(est: Estimate) -> Export:
    p, w, kv = est.plan, resolved_weight_format(est.model, est.plan), resolved_kv_dtype(est.model, est.plan)
    parts = ["python -m sglang.launch_server --model-path " + shell_word(_model_id(est)), *_revision(est)]
    parts += [f"--tp-size {p.tensor_parallel}", f"--pp-size {p.pipeline_parallel}"]
    parts += [f"--context-length {est.workload.ctx_tokens}", f"--max-running-requests {est.workload.batch_size}"]
    parts.append(f"--mem-fraction-static {memory_fraction(est):.2f}")
    unreal, notes = _dms(est, "SGLang"), list[str]()
    _quantization(est, w, "SGLang", parts, unreal, notes)
    if kv not in SIXTEEN_BIT and kv in SGLANG_KV:
        parts.append(f"--kv-cache-dtype {SGLANG_KV[kv]}")
    elif kv not in SIXTEEN_BIT:
        unreal.append(f"{kv} KV cache (SGLang stores KV in the model dtype or fp8 only)")
    parts.append(f"--page-size {p.block_size if p.paged else 1}")
    if p.prefill_chunk_tokens:
        parts.append(f"--chunked-prefill-size {p.prefill_chunk_tokens}")
    if p.offload_bytes:
        parts.append(f"--cpu-offload-gb {math.ceil(p.offload_bytes / GIB)}")
    if p.expert_parallel:
        parts.append(f"--ep-size {p.tensor_parallel}")
    return Export("sglang", _join(parts), tuple(unreal), tuple(notes))


def n_gpu_layers(num_layers: int, num_layers_off: int) -> int:
    """The -ngl that puts what the plan priced on the GPU. llama.cpp offloads n_layer + 1 layers, the output layer
    last and only when -ngl > n_layer (src/llama-model.cpp load_tensors: act_gpu_layers = min(n_gpu_layers, n_layer + 1),
    dev_output = get_layer_buft_list(n_layer)); a full offload is n_layer + 1, offloaded layers leave the output on the CPU."""
    return num_layers + 1 if num_layers_off == 0 else num_layers - num_layers_off


def llamacpp(est: Estimate) -> Export:
    p, m = est.plan, est.model
    w, kv = resolved_weight_format(m, p), resolved_kv_dtype(m, p)
    gguf = formats.gguf_type(w)  # GGUF has no fp8, AWQ or GPTQ: the nearest GGUF type, with its real bits per weight
    layers_off = round(est.per_gpu.weights.offloaded_bytes / max(est.per_gpu.weights.layer_bytes, default=1)) if p.offload_bytes else 0
    window = p.kv_policy if p.kv_policy is not None and p.kv_policy.kind == "window" else None
    slot_tokens = est.workload.ctx_tokens if window is None else min(est.workload.ctx_tokens, window.sink_tokens + window.window_tokens)
    parts = [f"llama-server -m {shell_word(f'{m.name}-{gguf}.gguf')}", f"-c {slot_tokens * est.workload.batch_size}",
             f"-np {est.workload.batch_size}", f"-ngl {n_gpu_layers(m.num_layers, layers_off)}"]
    if window is not None:  # tools/server/README.md: --context-shift, --keep N (tokens kept from the start of the prompt)
        parts += ["--context-shift", f"--keep {window.sink_tokens}"]
    cache = GGUF_KV[p.kv_dtype if p.kv_dtype == formats.AUTO else kv]  # auto: llama.cpp's default f16, as fit --engine llamacpp prices it
    parts += [f"--cache-type-k {cache}", f"--cache-type-v {cache}", "-fa on"]
    if p.num_gpus > 1:  # the plan's split (fit --engine llamacpp on a box writes llama.cpp's default out), else even stages
        parts.append(f"--split-mode {'row' if p.tensor_parallel > 1 else 'layer'}")
        parts.append("--tensor-split " + (",".join(f"{x:g}" for x in p.tensor_split) if p.tensor_split else ",".join(["1"] * p.num_gpus)))
    if p.prefill_chunk_tokens:
        parts.append(f"-ub {p.prefill_chunk_tokens}")
    if p.moe_layers_on_cpu:
        parts.append(f"--n-cpu-moe {p.moe_layers_on_cpu}")
    unreal, notes = _dms(est, "llama.cpp"), []
    if formats.get(w).engine("llamacpp").nearest:
        notes.append(f"GGUF has no {w}: {gguf} is the nearest type and its bits per weight differ; re-plan with oomplan estimate --engine llamacpp")
    if p.kv_dtype == formats.AUTO and kv not in SIXTEEN_BIT:
        notes.append(f"kv_dtype auto: llama.cpp's default KV cache is f16, not the {kv} the plan priced; re-plan with --kv-dtype")
    elif kv == "fp8":
        notes.append("GGUF KV has no fp8: q8_0 (8.5 bits) is the nearest")
    if window is not None:
        notes.append(f"--kv-policy {window.spec}: each slot holds {slot_tokens} tokens; when it fills, llama.cpp keeps the first "
                     f"{window.sink_tokens} (--keep) and discards half of the rest, so the recent window is "
                     f"{window.window_tokens // 2}..{window.window_tokens} tokens, not always {window.window_tokens}; it shifts only while "
                     f"generating: a prompt of {slot_tokens} tokens or more is refused (HTTP 400, ggml-org/llama.cpp#17284)")
    return Export("llamacpp", _join(parts), tuple(unreal), tuple(notes))


def hf(est: Estimate) -> Export:
    p, m = est.plan, est.model
    w, kv = resolved_weight_format(m, p), resolved_kv_dtype(m, p)
    args = [repr(_model_id(est)), *([f"revision={m.hf_revision!r}"] if m.hf_revision else []), "dtype=torch.bfloat16" if w != "fp16" else "dtype=torch.float16", "device_map='auto'",
            f"attn_implementation={p.attention!r}"]
    unreal, notes = _dms(est, "transformers"), []
    hf_w = formats.get(w).engine("hf")
    if hf_w.quantization_config:
        args.append(f"quantization_config={hf_w.quantization_config}")
    elif w not in SIXTEEN_BIT:
        notes.append(f"{w} weights: load a {w.upper()}-quantised checkpoint (its config carries the quantization_config)")
    if p.offload_bytes:
        gpu_gib = math.floor((est.capacity_bytes - est.per_gpu.kv_cache_bytes - est.per_gpu.activation_bytes) / GIB)
        args.append(f"max_memory={{0: '{gpu_gib}GiB', 'cpu': '{math.ceil(p.offload_bytes * p.num_gpus / GIB) + 8}GiB'}}")
    if p.tensor_parallel > 1:
        args.append("tp_plan='auto'")
        notes.append(f"tensor parallel: run with torchrun --nproc-per-node {p.tensor_parallel}")
    gen = [f"max_length={est.workload.ctx_tokens}"]
    nbits = formats.get(kv).engine("hf").cache_nbits
    if nbits:
        gen.append(f"cache_implementation='quantized', cache_config={{'backend': 'quanto', 'nbits': {nbits}}}")
    elif kv not in SIXTEEN_BIT:
        unreal.append("fp8 KV cache (transformers' QuantizedCache offers int2/int4/int8)")
    if p.prefill_chunk_tokens:
        gen.append(f"prefill_chunk_size={p.prefill_chunk_tokens}")
    n = est.workload.num_images
    auto = "AutoModelForImageTextToText" if n else "AutoModelForCausalLM"  # the tower is loaded (and priced) with images
    imports = f"from transformers import {auto}" + (f", {hf_w.import_}" if hf_w.import_ else "")
    inputs = f"# inputs: a batch of {est.workload.batch_size} prompt(s)" + (
        f", from AutoProcessor with {n} image(s) each" + (f" of {est.workload.image_size} pixels" if est.workload.image_size else "")
        + " (their tokens within max_length)" if n else "")
    code = "\n".join([
        "import torch", imports, "",
        f"model = {auto}.from_pretrained(\n    " + ",\n    ".join(args) + ",\n)",
        inputs,
        "out = model.generate(**inputs, " + ", ".join(gen) + ")",
    ])
    return Export("hf", code, tuple(unreal), tuple(notes))


EXPORTERS = {"vllm": vllm, "sglang": sglang, "llamacpp": llamacpp, "hf": hf}
