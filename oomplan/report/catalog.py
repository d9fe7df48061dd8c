"""Catalogue tables: shipped models and GPUs, one model's derived facts, detected GPUs."""
from __future__ import annotations

from rich.table import Table

from oomplan.memory.images import fixed_tokens_per_image, tower_name
from oomplan.memory.kv_cache import kv_bytes_per_token_per_layer
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.state import state_budget
from oomplan.memory.weights import dense_dtype
from oomplan.memory.params import COMPONENTS, num_active_params, params_by_component
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.specs.vision import MllamaVisionTower, PixtralVisionTower
from oomplan.units import format_bytes, format_count


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str = "auto") -> int:
    return kv_bytes_per_token_per_layer(model, Plan(kv_dtype=kv_dtype)) * model.num_attention_layers


def models_table(models: list[ModelSpec]) -> Table:
    table = Table(title="model profiles (oomplan models show NAME for details)", title_justify="left")
    table.add_column("name", no_wrap=True, min_width=max([len("name"), *(len(m.name) for m in models)]))  # never truncated
    for col, just in (("type", "left"), ("params", "right"), ("active", "right"), ("L", "right"), ("ctx", "right"), ("KV/tok", "right")):
        table.add_column(col, justify="right" if just == "right" else "left", no_wrap=col != "type")
    for m in models:
        total, active = sum(params_by_component(m).values()), num_active_params(m)
        table.add_row(m.name, m.model_type, f"{total / 1e9:.1f}B", f"{active / 1e9:.1f}B" if active != total else "",
                      str(m.num_layers), format_count(m.max_position_embeddings), f"{kv_bytes_per_token(m) // 1024}K")
    return table


def _architecture(m: ModelSpec) -> list[tuple[str, str]]:
    rows = [("model_type", m.model_type), ("checkpoint dtype", m.dtype), ("layers", str(m.num_layers)), ("hidden", str(m.hidden_size)),
            ("heads / KV heads / head_dim", f"{m.num_attention_heads} / {m.num_kv_heads} / {m.head_dim}"),
            ("intermediate", str(m.intermediate_size)), ("vocab", str(m.vocab_size)), ("tied lm_head", str(m.tie_word_embeddings).lower()),
            ("max context", f"{m.max_position_embeddings} tokens")]
    if m.sliding_window_tokens:
        rows.append(("sliding window", f"{m.sliding_window_tokens} tokens on {m.num_sliding_layers} of {m.num_layers} layers"))
    if m.moe:
        rows.append(("experts", f"{m.moe.num_experts} routed ({m.moe.num_experts_per_token} per token), {m.moe.num_shared_experts} shared, on {len(m.moe.moe_layer_indices)} layers"))
    if m.mla:
        rows.append(("MLA", f"kv_lora_rank {m.mla.kv_lora_rank}, rope dim {m.mla.qk_rope_head_dim}, q_lora_rank {m.mla.q_lora_rank}"))
    return rows


def _state_and_vision(m: ModelSpec) -> list[tuple[str, str]]:
    """The recurrent state one sequence keeps (any context), and the vision tower's tokens per image."""
    rows = []
    state = state_budget(m, Plan(), 1, pipeline_stages(m.num_layers, 1)[0], dense_dtype(m, Plan()))
    if state.num_layers:
        rows.append(("recurrent state per sequence", f"{state.bytes_per_sequence:,} B ({format_bytes(state.bytes_per_sequence)}) in "
                     f"{state.num_layers} {state.kind} layers, any context"))
    if m.vision is not None:
        fixed = fixed_tokens_per_image(m.vision)
        where = "cross-attention tokens" if isinstance(m.vision, MllamaVisionTower) else "tokens"
        rows.append(("vision tower", f"{tower_name(m.vision)}, {params_by_component(m)['vision']:,} params; " + (
            f"{fixed[0]:,} {where} per image ({fixed[1]})" if fixed else
            f"patch grid and tokens follow each image's size (--image-size WxH; longest edge {m.vision.image_size})"
            if isinstance(m.vision, PixtralVisionTower) else "tokens per image set by the processor (--image-tokens)")))
    return rows


def model_card(m: ModelSpec) -> Table:
    table = Table(title=f"{m.name}" + (f" ({m.hf_repo})" if m.hf_repo else ""), title_justify="left", show_header=False)
    table.add_column("fact")
    table.add_column("value")
    for fact, value in _architecture(m):
        table.add_row(fact, value)
    table.add_section()
    counts = params_by_component(m)
    for comp in COMPONENTS:
        if counts[comp]:
            table.add_row(f"params: {comp}", f"{counts[comp]:,}")
    table.add_row("params: total", f"{sum(counts.values()):,}")
    table.add_row("params: active per token", f"{num_active_params(m):,}")
    table.add_section()
    for dtype in ("auto", "fp8"):
        label = "KV per token (model dtype)" if dtype == "auto" else "KV per token (fp8)"
        per = kv_bytes_per_token(m, dtype)
        table.add_row(label, f"{per:,} B ({format_bytes(per)}); {format_bytes(per * m.max_position_embeddings)} at max context")
    for fact, value in _state_and_vision(m):
        table.add_row(fact, value)
    table.add_row("source", m.source)
    return table


def gpus_table(gpus: list[GpuSpec]) -> Table:
    table = Table(title="GPU profiles (capacity as the driver reports it)", title_justify="left")
    table.add_column("name", no_wrap=True, min_width=max([len("name"), *(len(g.name) for g in gpus)]))  # never truncated
    for col, just in (("GiB", "right"), ("TB/s", "right"), ("bf16 TF", "right"), ("fp8", "left"), ("link", "left"), ("/node", "right")):
        table.add_column(col, justify="right" if just == "right" else "left", no_wrap=col != "link")
    for g in gpus:
        table.add_row(g.name, f"{g.memory_bytes / 2**30:.2f}", f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f}", f"{g.dense_bf16_flops_per_s / 1e12:.0f}",
                      "yes" if g.supports_fp8 else "no", g.interconnect.kind, str(g.num_gpus_per_node))
    return table


def detected_table(found, matches: list[str]) -> Table:
    table = Table(title="local GPUs (NVML)", title_justify="left")
    for col in ("#", "name", "total", "free", "profile"):
        table.add_column(col)
    for d, match in zip(found, matches, strict=True):
        table.add_row(str(d.index), d.name, format_bytes(d.total_bytes), format_bytes(d.free_bytes), match)
    return table
