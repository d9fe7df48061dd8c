"""Prefill activations of recurrent-state (Mamba-2 / Mamba / Gated DeltaNet) layers, as transformers 5.24 runs them.

Which path is priced: transformers' PyTorch reference path -- what runs when mamba_ssm / causal_conv1d /
flash-linear-attention are not installed (CPU, most pip installs, and the meta probe). Each mixer's kernel
functions are decorated with `use_kernel_func_from_hub_with_fallback` (transformers 5.24
integrations/hub_kernels.py:990): when the kernel package imports, the fused kernel replaces the PyTorch
function and allocates differently; that path is not priced here (the estimate says so in a note).

Unlike attention, the scan keeps many short-lived fp32 tensors, so its peak is not one closed formula: each
mixer is replayed below as the sequence of allocations and frees its PyTorch code makes (one `_Timeline`),
statement by statement with the shapes in comments, and the peak of that replay is the layer's transient.
Shape letters: B batch, S prompt tokens of this pass, T = B*S, l chunk length, c = ceil(S / l) chunks,
Sp = c*l (S padded to whole chunks), h heads, p head dim, g groups, n state size, I = h*p, a the activation
dtype's bytes, f = 4 (fp32). Copies inside torch.einsum follow aten/native/Linear.cpp (sumproduct_pair:
each operand is permuted to [batch dims, kept dims, summed dims] and reshaped for bmm, which copies it
when the permuted strides cannot be merged) and were checked op by op against the meta probe with torch 2.13
(tests/probe/test_ssm_activations.py, benchmarks/results/ssm_activations.md: equal to the byte). With tensor
parallelism the heads (and groups) per GPU are used; the probe runs one GPU, so that split is not measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from oomplan.memory.state import state_bytes_per_sequence_per_layer
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.specs.state import GatedDeltaNetMixer, Mamba1Mixer, Mamba2Mixer, Mixer
from oomplan.units import FP32, ceil_div


class _Timeline:
    """Live bytes over a replayed sequence of allocations; `peak` is the most alive at once."""

    def __init__(self, base: int = 0) -> None:
        self.live = self.peak = base
        self._held: dict[str, int] = {}
        self.log: list[str] | None = None  # set to a list to record the replay (debugging)

    def alloc(self, name: str, nbytes: int) -> None:
        assert name not in self._held, name
        if self.log is not None:
            self.log.append(f"+ {int(nbytes)} {name}")
        self._held[name] = int(nbytes)
        self.live += int(nbytes)
        self.peak = max(self.peak, self.live)

    def free(self, *names: str) -> None:
        for name in names:
            if self.log is not None:
                self.log.append(f"- {self._held[name]} {name}")
            self.live -= self._held.pop(name)

    def rename(self, old: str, new: str) -> None:
        """`new = old` as the next loop iteration sees it (the bytes stay)."""
        self._held[new] = self._held.pop(old)

    def swap(self, old: str, new: str, nbytes: int) -> None:
        """`x = f(x)`: the result is allocated while the input is alive, then the input is freed."""
        self.alloc(new, nbytes)
        self.free(old)


@dataclass(frozen=True)
class ScanDims:
    """One Mamba-2 mixer pass over B sequences of S tokens (per GPU)."""

    batch: int
    tokens: int  # S
    heads: int  # h
    head_dim: int  # p
    groups: int  # g
    state: int  # n
    chunk: int  # l
    conv_kernel: int
    act_bytes: int  # a

    @property
    def chunks(self) -> int:
        return ceil_div(self.tokens, self.chunk)


def _segment_sum(tl: _Timeline, name: str, rows: int, size: int) -> None:
    """segment_sum(x) over the last dim of `size` (transformers 5.24 models/mamba2/modeling_mamba2.py:74): the
    expanded [..., size, size] is masked (masked_fill), cumsum'd, masked again; `name` is the result, fp32."""
    square = rows * size * size * FP32  # [rows..., size, size]
    mask = size * size  # bool [size, size]
    tl.alloc("ones", mask)
    tl.swap("ones", "tril", mask)  # torch.tril(torch.ones(...))
    tl.alloc("not", mask)  # ~mask
    tl.alloc("filled", square)  # input_tensor.masked_fill(~mask, 0)
    tl.free("not")
    tl.alloc("cumsum", square)  # torch.cumsum(input_tensor, dim=-2)
    tl.alloc("ones", mask)
    tl.alloc("tril2", mask)
    tl.free("ones", "tril")  # mask reassigned
    tl.alloc("not", mask)
    tl.alloc(name, square)  # tensor_segsum.masked_fill(~mask, -inf)
    tl.free("not", "cumsum", "filled", "tril2")


def _causal_conv(tl: _Timeline, out: str, b: int, channels: int, s: int, k: int, a: int, first_pass: bool, conv_state: int) -> None:
    """cache.update_conv_state then causal_conv1d_fn's F.conv1d(padding=K-1) and silu (transformers 5.24 cache_utils.py:1244,
    modeling_mamba2.py:148): the first pass stores the conv state and convolves the S new tokens, left-padded to K
    when S < K; a later pass convolves torch.cat([conv_state, x]) (K + S). Leaves `out` [B, channels, L] a."""
    if first_pass:
        tl.alloc("conv_state", conv_state)  # the cache's conv state                          [B, channels, K] a
    length = s if first_pass else k + s
    if first_pass and s < k:  # F.pad(conv_states, (K - S, 0))
        length = k
    held = "conv_in" if length != s else ""
    if held:
        tl.alloc(held, b * channels * length * a)
    tl.alloc("conv", b * channels * (length + k - 1) * a)  # F.conv1d(padding=K-1)         [B, channels, L+K-1] a
    tl.swap("conv", out, b * channels * length * a)  # silu(out[:, :, :L])               [B, channels, L] a
    if held:
        tl.free(held)


def mamba2_chunk_scan(tl: _Timeline, d: ScanDims, first_pass: bool = True) -> None:
    """mamba2_chunk_scan (transformers 5.24 models/mamba2/modeling_mamba2.py:258, the same function in nemotron_h,
    granitemoehybrid, bamba and falcon_h1) with D, dt_bias, softplus and return_final_states; after the first
    prefill pass (first_pass False) the cached state is the initial state.
    Expects "dt" [B, S, h] (a view of the projection) and "xBC" (the conv output) alive; leaves "scan_out"
    [B, Sp, h, p] f (the caller slices :S) and "new_states" [B*h, c+1, p*n] f (final_state is a view of it)."""
    b, s, h, p, g, n, q, a = d.batch, d.tokens, d.heads, d.head_dim, d.groups, d.state, d.chunk, d.act_bytes  # q: chunk l
    c = d.chunks
    sp = c * q
    f = FP32
    bsh = b * s * h
    tl.alloc("dt+", bsh * a)  # dt + dt_bias                                    [B, S, h] a
    tl.swap("dt+", "dt_sp", bsh * a)  # softplus
    tl.swap("dt_sp", "dt_c", bsh * a)  # clamp(dt_limit)
    tl.alloc("x32", bsh * p * f)  # hidden_states.float()                       [B, S, h, p] f
    for m in ("B", "C"):
        tl.alloc(f"{m}32", b * s * g * n * f)  # B.float()                          [B, S, g, n] f
        # repeat_interleave(h // g, dim=2): expand + reshape copies                [B, S, h, n] f
        tl.alloc(f"{m}rep", bsh * n * f)
        tl.free(f"{m}32")
    tl.alloc("pad", b * sp * h * p * f)  # pad_tensor_by_size(hidden_states)    [B, Sp, h, p] f
    tl.alloc("D_res", b * sp * h * p * f)  # D[..., None] * pad(...)            [B, Sp, h, p] f
    tl.free("pad")
    tl.alloc("dt32", bsh * f)  # dt[..., None].float()                            [B, S, h, 1] f
    tl.alloc("xdt", bsh * p * f)  # hidden_states * dt                          [B, S, h, p] f
    tl.free("dt32", "x32")
    tl.alloc("dt32", bsh * f)  # A.to(f) * dt.float()                             [B, S, h] f
    tl.alloc("Adt", bsh * f)
    tl.free("dt32")
    # reshape_into_chunks: each padded to Sp (a copy even when S is a multiple of l)
    tl.alloc("xc", b * sp * h * p * f)  # [B, c, l, h, p] f
    tl.alloc("Ac", b * sp * h * f)  # [B, c, l, h] f
    tl.alloc("Bc", b * sp * h * n * f)  # [B, c, l, h, n] f
    tl.alloc("Cc", b * sp * h * n * f)
    tl.free("xdt", "Adt", "Brep", "Crep")
    tl.alloc("A_cumsum", b * h * sp * f)  # cumsum(A.permute(0, 3, 1, 2))       [B, h, c, l] f
    _segment_sum(tl, "segsum", b * h * c, q)  # [B, h, c, l, l] f
    tl.swap("segsum", "L", b * h * c * q * q * f)  # L = exp(segment_sum(A))
    # The four einsums batched over (b, c, h) merge those dims of [B, c, l, h, ...] operands for bmm: a copy, unless
    # B == c == 1 (size-1 dims merge with anything, and h alone needs no merge)
    copy = 0 if b == 1 and c == 1 else 1
    # G = einsum("bclhn,bcshn->bclsh", C, B): both operands copied to [B*c*h, l, n], bmm [B*c*h, l, l]
    tl.alloc("e1", copy * b * sp * h * n * f)
    tl.alloc("e2", copy * b * sp * h * n * f)
    tl.alloc("G", b * c * h * q * q * f)
    tl.free("e2", "e1")
    tl.alloc("M", b * c * h * q * q * f)  # M = G * L.permute(...)               [B, c, l, l, h] f
    # Y_diag = einsum("bclsh,bcshp->bclhp", M, x): x copied to [B*c*h, l, p]; bmm [B*c*h, l, p]
    tl.alloc("e1", copy * b * sp * h * p * f)
    tl.alloc("Y_diag", b * sp * h * p * f)
    tl.free("e1")
    tl.alloc("sub", b * h * sp * f)  # A_cumsum[..., -1:] - A_cumsum             [B, h, c, l] f
    tl.swap("sub", "decay_states", b * h * sp * f)  # exp
    tl.alloc("B_decay", b * sp * h * n * f)  # B * decay_states                 [B, c, l, h, n] f
    # states = einsum("bclhn,bclhp->bchpn", B_decay, x): x -> [B*c*h, p, l], B_decay -> [B*c*h, l, n]
    tl.alloc("e1", copy * b * sp * h * p * f)
    tl.alloc("e2", copy * b * sp * h * n * f)
    tl.alloc("states", b * c * h * p * n * f)  # bmm [B*c*h, p, n] f
    tl.free("e2", "e1")
    if first_pass:  # torch.zeros_like(states[:, :1])                             [B, 1, h, p, n] f
        tl.alloc("prev", b * h * p * n * f)
    else:  # initial_states[:, None].to(states.dtype): a view of the fp32 cached state
        tl.alloc("prev", 0)
    tl.swap("states", "cat", b * (c + 1) * h * p * n * f)  # torch.cat([previous_states, states], dim=1)
    tl.alloc("pad_last", b * h * (c + 1) * f)  # F.pad(A_cumsum[:, :, :, -1], (1, 0)) [B, h, c+1] f
    tl.alloc("ones", (c + 1) ** 2)
    tl.swap("ones", "tril", (c + 1) ** 2)
    tl.alloc("not", (c + 1) ** 2)
    tl.alloc("filled", b * h * (c + 1) ** 2 * f)
    tl.free("not", "pad_last")  # the padded row is only referenced through the expanded view
    tl.alloc("cumsum", b * h * (c + 1) ** 2 * f)
    tl.alloc("ones", (c + 1) ** 2)
    tl.alloc("tril2", (c + 1) ** 2)
    tl.free("ones", "tril")
    tl.alloc("not", (c + 1) ** 2)
    tl.alloc("segsum", b * h * (c + 1) ** 2 * f)
    tl.free("not", "cumsum", "filled", "tril2")
    tl.swap("segsum", "decay_chunk", b * h * (c + 1) ** 2 * f)  # exp(...)      [B, h, c+1, c+1] f
    # new_states = einsum("bzch,bzhpn->bchpn", decay_chunk, states): states -> [B*h, c+1, p*n], which merges
    # the batch and head dims of a [B, c+1, h, p, n] tensor: a copy unless B == 1; bmm [B*h, c+1, p*n] f
    if b > 1:
        tl.alloc("e1", b * (c + 1) * h * p * n * f)
    tl.alloc("new_states", b * h * (c + 1) * p * n * f)
    if b > 1:
        tl.free("e1")
    tl.free("cat")  # states = new_states[:, :-1] (a view)
    tl.alloc("state_decay_out", b * h * sp * f)  # exp(A_cumsum)                [B, h, c, l] f
    # C_times_states = einsum("bclhn,bchpn->bclhp", C, states): C -> [B*c*h, l, n], states -> [B*c*h, n, p]
    tl.alloc("e1", copy * b * sp * h * n * f)
    tl.alloc("e2", copy * b * c * h * n * p * f)
    tl.alloc("C_times_states", b * sp * h * p * f)  # bmm [B*c*h, l, p] f
    tl.free("e2", "e1")
    tl.alloc("Y_off", b * sp * h * p * f)  # C_times_states * state_decay_out  [B, c, l, h, p] f
    tl.alloc("sum", b * sp * h * p * f)  # Y_diag + Y_off (laid out as the permuted operands)
    tl.swap("sum", "contig", b * sp * h * p * f)  # .contiguous()
    tl.swap("contig", "scan_out", b * sp * h * p * f)  # output + D_residual   [B, Sp, h, p] f
    # return: the function's locals go
    tl.free("dt_c", "D_res", "xc", "Ac", "Bc", "Cc", "A_cumsum", "L", "G", "M", "Y_diag", "decay_states", "B_decay",
            "prev", "decay_chunk", "state_decay_out", "C_times_states", "Y_off")


def gated_rms_norm(tl: _Timeline, tokens: int, inner: int, groups: int, out_bytes: int) -> None:
    """MambaRMSNormGated(scan_output [T, I] f, gate [T, I] a) (transformers 5.24 modeling_mamba2.py:106): the gate's
    fp32 copy and silu, the product, the grouped variance; leaves "normed" [T, I] in `out_bytes`."""
    f, ti = FP32, tokens * inner
    tl.alloc("gate32", ti * f)  # gate.to(float32)
    tl.swap("gate32", "silu", ti * f)  # silu(...)
    tl.swap("silu", "gated", ti * f)  # hidden_states * silu(gate)
    tl.alloc("pow", ti * f)  # hidden_states_group.pow(2)                          [T, g, I/g] f
    tl.alloc("var", tokens * groups * f)  # .mean(-1, keepdim=True)                 [T, g, 1] f
    tl.free("pow")
    tl.alloc("add", tokens * groups * f)
    tl.swap("add", "rsqrt", tokens * groups * f)
    tl.alloc("grouped", ti * f)  # hidden_states_group * rsqrt(...)
    tl.free("rsqrt", "gated")
    if out_bytes != f:  # hidden_states.to(input_dtype) when the scan output is not fp32
        tl.alloc("cast", ti * out_bytes)
    tl.alloc("normed", ti * max(out_bytes, f))  # self.weight * ... (a bf16 weight times fp32 is fp32)
    if out_bytes != f:
        tl.free("cast")
    tl.free("grouped", "var")


def falcon_gated_norm(tl: _Timeline, tokens: int, inner: int, groups: int, norm_before_gate: bool) -> None:
    """FalconH1RMSNormGated(scan_output [T, I] f, gate [T, I] a) (transformers 5.24 modeling_falcon_h1.py:238);
    leaves "normed" [T, I] f (the input dtype is the scan's fp32)."""
    f, ti = FP32, tokens * inner

    def gate(src: str, dst: str) -> None:
        tl.alloc("gate32", ti * f)  # gate.to(float32)
        tl.swap("gate32", "silu", ti * f)  # F.silu(...)
        tl.alloc(dst, ti * f)  # hidden_states * silu
        tl.free("silu")
        if src:
            tl.free(src)

    src = ""
    if not norm_before_gate:
        gate("", "gated")
        src = "gated"
    tl.alloc("pow", ti * f)  # .pow(2)                                               [T, g, I/g] f
    tl.alloc("var", tokens * groups * f)  # .mean(-1, keepdim=True)
    tl.free("pow")
    tl.alloc("add", tokens * groups * f)
    tl.swap("add", "rsqrt", tokens * groups * f)
    tl.alloc("grouped", ti * f)  # hidden_states * rsqrt(...)
    tl.free("rsqrt", *((src,) if src else ()))
    tl.swap("grouped", "weighted", ti * f)  # self.weight.view(g, I/g) * hidden_states
    if norm_before_gate:
        gate("weighted", "normed")
    tl.free("var")


@lru_cache(maxsize=256)
def _state_bytes(m: Mixer, plan: Plan, dtype: str) -> int:
    return state_bytes_per_sequence_per_layer(m, plan, dtype)


@lru_cache(maxsize=4096)  # the same mixer recurs in every state layer, and fit's search re-prices the same shapes
def mamba2_mixer_peak_bytes(m: Mamba2Mixer, batch: int, tokens: int, act_bytes: int, hidden: int, heads: int, groups: int,
                            first_pass: bool = True) -> int:
    """Peak bytes the Mamba-2 mixer adds during a first prefill pass (Mamba2Mixer.forward, transformers 5.24
    modeling_mamba2.py:461; the same forward in nemotron_h, granitemoehybrid and bamba), above what is alive at
    its call, net of this layer's own conv and SSM state (priced as state). `heads`, `groups`: on this GPU.
    first_pass False: a later prefill chunk (--prefill-chunk), when the cache already holds this layer's state."""
    b, s, a, f = batch, tokens, act_bytes, FP32
    g = groups
    d = ScanDims(b, s, heads, m.head_dim, g, m.state_size, m.chunk_size, m.conv_kernel, a)
    inner = heads * m.head_dim
    conv_dim = inner + 2 * g * m.state_size
    t = b * s
    conv_state = b * conv_dim * m.conv_kernel * a
    ssm_state = b * heads * m.head_dim * m.state_size * FP32 if m.state_dtype == "fp32" else b * heads * m.head_dim * m.state_size * 2
    tl = _Timeline(-(conv_state + ssm_state) if first_pass else 0)  # this layer's state is in the state budget
    proj = t * (inner + conv_dim + heads) * a
    if m.mup:  # FalconH1Mixer.forward (modeling_falcon_h1.py:668): hidden_states * ssm_in_multiplier  [T, H] a
        tl.alloc("scaled_in", t * hidden * a)
    tl.alloc("proj", proj)  # in_proj(hidden_states)                                [T, I + conv_dim + h] a
    if m.mup:
        tl.swap("proj", "proj_mup", proj)  # projected_states * self.mup_vector
    tl.alloc("A32", heads * f)  # -torch.exp(self.A_log.float())                     [h] f
    tl.swap("A32", "expA", heads * f)
    tl.swap("expA", "A", heads * f)
    _causal_conv(tl, "xBC", b, conv_dim, s, m.conv_kernel, a, first_pass, conv_state)  # the mixer keeps [:, :, -S:]
    if m.mup:
        tl.free("scaled_in")  # `hidden_states, B, C = torch.split(...)` drops the last reference
    mamba2_chunk_scan(tl, d, first_pass)
    if first_pass:
        tl.alloc("ssm_state", ssm_state)  # cache.update_recurrent_state: zeros + copy_ of final_state
    if not m.mup:
        gated_rms_norm(tl, t, inner, g, FP32)  # self.norm(scan_output, gate) on the fp32 scan output
    elif m.gated_norm:
        falcon_gated_norm(tl, t, inner, g, m.norm_before_gate)
    else:  # scan_output * silu(gate) (modeling_falcon_h1.py:820)
        tl.alloc("silu", t * inner * a)  #                                                [T, I] a
        tl.alloc("normed", t * inner * f)  # fp32 times bf16                             [T, I] f
        tl.free("silu")
    tl.alloc("cast", t * inner * a)  # scan_output.to(dtype)                          [T, I] a
    tl.alloc("out", t * hidden * a)  # out_proj                                        [T, H] a
    tl.free("cast")
    return tl.peak


def ssm_layer_moment_bytes(model: ModelSpec, plan: Plan, batch: int, q_len: int, act_bytes: int, kv_bytes_per_token_layer: int,
                           later_chunks: bool = False) -> int:
    """The busiest recurrent-state layer's prefill moment, 0 without (priced) state layers: the residual stream
    alive at the mixer's call plus the mixer's own peak, less what the KV and state budgets count that is not yet
    written then. The stream: the embeddings (alive for the whole forward), the layer's input (its residual; the
    embeddings themselves in layer 0) and the normed input; a Mamba-2 block with residual_in_fp32 holds its
    residual in fp32. Not yet written at layer i's mixer: this pass's K/V of the full-attention layers from i on
    (Falcon-H1 runs its attention after the mixer in the same layer) and, in the first pass, the state of the
    state layers after i (transformers' cache allocates a layer's state when the layer first runs).
    `kv_bytes_per_token_layer`: one token's K + V in one attention layer, on this GPU, for the batch.
    later_chunks: the prompt is prefilled in chunks of q_len, so passes after the first run too (the larger counts)."""
    tp, h, t = plan.tensor_parallel, model.hidden_size, batch * q_len
    dtype = "fp32" if act_bytes == FP32 else "bf16"  # conv states are in the activation dtype (bf16 and fp16 alike)
    layers = model.layers
    state_after = [0] * (len(layers) + 1)  # state bytes (batch) of the state layers after i
    full_from = [0] * (len(layers) + 1)  # full-attention layers from i on
    for i in range(len(layers) - 1, -1, -1):
        m = layers[i].attention.state
        state_after[i] = state_after[i + 1] + (batch * _state_bytes(m, plan, dtype) if m is not None else 0)
        full_from[i] = full_from[i + 1] + (layers[i].attention.kind == "full")
    best = 0
    for i in model.state_layer_indices:
        m = layers[i].attention.state
        if m is None:
            continue
        stream = t * h * act_bytes * (2 if i == 0 else 3)  # embeddings (= layer 0's input), layer input, normed
        if isinstance(m, Mamba2Mixer) and m.residual_in_fp32:  # a copy in layer 0; from layer 1 on the stream is fp32
            stream = t * h * (2 * act_bytes + FP32)
        unwritten_kv = q_len * kv_bytes_per_token_layer * full_from[i]
        for first in (True, False) if later_chunks else (True,):
            if isinstance(m, Mamba2Mixer):
                mixer = mamba2_mixer_peak_bytes(m, batch, q_len, act_bytes, h, ceil_div(m.num_heads, tp), ceil_div(m.num_groups, tp), first)
            elif isinstance(m, Mamba1Mixer):
                mixer = mamba1_mixer_peak_bytes(m, batch, q_len, act_bytes, h, ceil_div(m.inner_size, tp), first)
            else:
                mixer = gdn_mixer_peak_bytes(m, batch, q_len, act_bytes, h, ceil_div(m.num_key_heads, tp), ceil_div(m.num_value_heads, tp), first)
            unwritten = unwritten_kv + (state_after[i + 1] if first else 0)
            # with pipeline stages the later layers may sit on another GPU: nothing is taken off (an upper bound)
            best = max(best, stream + mixer - (unwritten if plan.pipeline_parallel == 1 else 0))
    return best


GDN_CHUNK = 64  # torch_chunk_gated_delta_rule's chunk_size default; the mixers pass none (modeling_qwen3_next.py:378)


def gated_delta_rule(tl: _Timeline, b: int, s: int, hk: int, hv: int, dk: int, dv: int, a: int, first_pass: bool) -> None:
    """torch_chunk_gated_delta_rule (transformers 5.24 models/qwen3_next/modeling_qwen3_next.py:371, the same in
    qwen3_5) with use_qk_l2norm_in_kernel and output_final_state. Expects query/key [B, S, Hk, dk], value [B, S, Hv, dv]
    (views of the conv output), beta [B, S, Hv] a and g [B, S, Hv] f alive; leaves "attn_out" [B, S, Hv, dv] a and
    "final_state" [B, Hv, dk, dv] f. q = 64, c = ceil(S / q), Sp = c*q."""
    f, q = FP32, GDN_CHUNK
    c = ceil_div(s, q)
    sp = c * q
    bh = b * hv
    if hk != hv:  # repeat_interleave(Hv // Hk, dim=2)                             [B, S, Hv, dk] a
        tl.alloc("q_rep", b * s * hv * dk * a)
        tl.alloc("k_rep", b * s * hv * dk * a)
    # x.transpose(1, 2).to(float32, memory_format=contiguous): a copy unless x is fp32 already (then an alias: g)
    cast = 0 if a == f else 1
    tl.alloc("q32", cast * bh * s * dk * f)  # [B, Hv, S, dk] f
    tl.alloc("k32", cast * bh * s * dk * f)
    tl.alloc("v32", cast * bh * s * dv * f)  # [B, Hv, S, dv] f
    tl.alloc("beta32", cast * bh * s * f)  # [B, Hv, S] f
    if hk != hv:
        tl.free("q_rep", "k_rep")
    for x in ("q", "k"):  # l2norm: x * rsqrt((x * x).sum(-1, keepdim=True) + eps)
        tl.alloc("sq", bh * s * dk * f)
        tl.alloc("sum", bh * s * f)
        tl.free("sq")
        tl.swap("sum", "add", bh * s * f)
        tl.swap("add", "rsqrt", bh * s * f)
        tl.alloc(f"{x}n", bh * s * dk * f)
        tl.free("rsqrt", f"{x}32")
    tl.swap("qn", "qs", bh * s * dk * f)  # query * scaling
    tl.alloc("q_pad", bh * sp * dk * f)  # F.pad to whole chunks                    [B, Hv, Sp, dk] f
    tl.alloc("k_pad", bh * sp * dk * f)
    tl.alloc("v_pad", bh * sp * dv * f)
    tl.free("qs", "kn", "v32")
    tl.alloc("beta_pad", bh * sp * f)  # [B, Hv, Sp] f
    tl.alloc("decay_pad", bh * sp * f)
    tl.free("beta32")
    tl.alloc("v_beta", bh * sp * dv * f)  # value * beta                              [B, Hv, Sp, dv] f
    tl.alloc("k_beta", bh * sp * dk * f)  # key * beta                                [B, Hv, Sp, dk] f
    tl.alloc("ones", q * q)
    tl.swap("ones", "mask", q * q)  # ones(q, q).triu(1), bool
    tl.alloc("cum_decay", bh * sp * f)  # decay.cumsum(dim=3)                        [B, Hv, c, q] f
    square = bh * c * q * q * f  # [B, Hv, c, q, q] f
    tl.alloc("pair", square)  # cum_decay.unsqueeze(4) - cum_decay.unsqueeze(3)
    tl.swap("pair", "pair_masked", square)  # masked_fill(mask, -inf)
    tl.swap("pair_masked", "pairwise", square)  # exp()
    for name in ("ut", "intra"):  # (k_beta @ key^T) * pairwise, (query @ key^T) * pairwise
        tl.alloc("bmm", square)  # [B*Hv*c, q, q] f
        tl.alloc(name, square)
        tl.free("bmm")
    tl.alloc("exp", bh * sp * f)
    tl.alloc("dk_beta", bh * sp * dk * f)  # k_beta * cum_decay.exp()                 [B, Hv, c, q, dk] f
    tl.free("exp")
    tl.alloc("new_values", bh * sp * dv * f)  # solve_triangular(ut, v_beta)          [B, Hv, c, q, dv] f
    tl.alloc("k_cumdecay", bh * sp * dk * f)  # solve_triangular(ut, decayed_k_beta)  [B, Hv, c, q, dk] f
    state = bh * dk * dv * f  # [B, Hv, dk, dv] f
    tl.alloc("state", state if first_pass else 0)  # zeros(...) or initial_state.to(new_values) (a view)
    tl.alloc("core", bh * sp * dv * f)  # zeros_like(new_values)
    tl.alloc("exp", bh * sp * f)
    tl.alloc("q_dec", bh * sp * dk * f)  # query * cum_decay.exp()
    tl.free("exp", "q_pad")
    tl.alloc("sub", bh * sp * f)  # cum_decay[..., -1:] - cum_decay
    tl.swap("sub", "exp", bh * sp * f)
    tl.alloc("k_dec", bh * sp * dk * f)  # key * (...).exp()
    tl.free("exp", "k_pad")
    tl.alloc("chunk_decay", bh * c * f)  # cum_decay[..., -1].exp()                   [B, Hv, c] f
    chunk_out = bh * q * dv * f  # [B, Hv, q, dv] f
    for i in range(min(c, 2)):  # the loop over chunks; from the second on every pass allocates the same
        tl.alloc("bmm", chunk_out)  # k_cumdecay[:, :, i] @ state
        tl.alloc("v_new2", chunk_out)  # new_values[:, :, i] - ...
        tl.free("bmm", *(("v_new",) if i else ()))
        tl.alloc("inter2", chunk_out)  # query[:, :, i] @ state
        if i:
            tl.free("inter")
        tl.alloc("bmm", chunk_out)  # intra_chunk_attn[:, :, i] @ v_new
        tl.alloc("add", chunk_out)  # inter + ...; copied into core_attn_out[:, :, i]
        tl.free("bmm", "add")
        tl.alloc("decayed", state)  # state * chunk_decay[:, :, i]
        tl.alloc("bmm", state)  # key[:, :, i]^T @ v_new
        tl.alloc("state2", state)
        tl.free("decayed", "bmm", "state")
        for old, new in (("v_new2", "v_new"), ("inter2", "inter"), ("state2", "state")):
            tl.rename(old, new)
    # core_attn_out.reshape(B, Hv, -1, dv): zeros_like kept solve_triangular's batched column-major strides, so a copy
    tl.swap("core", "core_flat", bh * sp * dv * f)
    tl.alloc("attn_out", b * s * hv * dv * a)  # [:, :, :S].transpose(1, 2).to(initial_dtype)  [B, S, Hv, dv] a
    tl.free("core_flat")
    tl.rename("state", "final_state")
    tl.free("dk_beta", "v_pad", "beta_pad", "decay_pad", "v_beta", "k_beta", "mask", "cum_decay", "pairwise", "ut", "intra",
            "q_dec", "k_dec", "new_values", "k_cumdecay", "chunk_decay", "v_new", "inter")


@lru_cache(maxsize=4096)
def gdn_mixer_peak_bytes(m: GatedDeltaNetMixer, batch: int, tokens: int, act_bytes: int, hidden: int,
                         key_heads: int, value_heads: int, first_pass: bool = True) -> int:
    """Peak bytes a Gated DeltaNet mixer adds during a prefill pass (Qwen3NextGatedDeltaNet.forward, transformers 5.24
    modeling_qwen3_next.py:655; Qwen3_5GatedDeltaNet.forward, modeling_qwen3_5.py, with four separate projections),
    above what is alive at its call, net of this layer's own conv and recurrent state (priced as state)."""
    b, s, a, f, t = batch, tokens, act_bytes, FP32, batch * tokens
    hk, hv, dk, dv = key_heads, value_heads, m.key_head_dim, m.value_head_dim
    kd, vd = hk * dk, hv * dv
    conv_dim = 2 * kd + vd
    k = m.conv_kernel
    conv_state = b * conv_dim * k * a
    rec_state = b * hv * dk * dv * (FP32 if m.state_dtype == "fp32" else 2)
    tl = _Timeline(-(conv_state + rec_state) if first_pass else 0)
    if m.fused_projections:  # Qwen3-Next: in_proj_qkvz, in_proj_ba, then fix_query_key_value_ordering
        tl.alloc("qkvz", t * (2 * kd + 2 * vd) * a)  # [T, 2*Kd + 2*Vd] a
        tl.alloc("ba", t * 2 * hv * a)  # [T, 2*Hv] a
        # value / z / b / a .reshape to value heads: copies of the per-key-head slices unless Hv == Hk (then the
        # shapes do not change: views)                                     [B, S, Vd] a, [B, S, Hv] a
        grouped = 1 if hv != hk else 0
        tl.alloc("value", t * vd * a)  # Hv == Hk: the copy is value.reshape(B, S, -1) below instead
        tl.alloc("z", grouped * t * vd * a)
        tl.alloc("b", grouped * t * hv * a)
        tl.alloc("a", grouped * t * hv * a)
        tl.alloc("query", t * kd * a)  # query / key .reshape(B, S, -1): copies     [B, S, Kd] a
        tl.alloc("key", t * kd * a)
        tl.alloc("mixed", t * conv_dim * a)  # torch.cat((query, key, value), dim=-1)  [B, S, conv_dim] a
    else:  # Qwen3.5: in_proj_qkv, in_proj_z, in_proj_b, in_proj_a
        tl.alloc("mixed", t * conv_dim * a)
        tl.alloc("z", t * vd * a)
        tl.alloc("b", t * hv * a)
        tl.alloc("a", t * hv * a)
    _causal_conv(tl, "qkv", b, conv_dim, s, k, a, first_pass, conv_state)
    tl.free("mixed", *(("query", "key", "value") if m.fused_projections else ()))
    tl.alloc("beta", t * hv * a)  # b.sigmoid()                                       [B, S, Hv] a
    tl.alloc("A32", hv * f)  # -self.A_log.float().exp()
    tl.swap("A32", "expA", hv * f)
    tl.swap("expA", "A", hv * f)
    tl.alloc("a32", t * hv * f)  # a.float()                                          [B, S, Hv] f
    tl.swap("a32", "add", t * hv * f)  # + self.dt_bias
    tl.swap("add", "softplus", t * hv * f)
    tl.alloc("g", t * hv * f)  # A * softplus(...)
    tl.free("A", "softplus")
    gated_delta_rule(tl, b, s, hk, hv, dk, dv, a, first_pass)
    if first_pass:
        tl.alloc("rec_state", rec_state)  # cache.update_recurrent_state: zeros + copy_
    # self.norm(core_attn_out [T*Hv, dv], z [T*Hv, dv]): Qwen3NextRMSNormGated (modeling_qwen3_next.py:59)
    tv = t * vd
    tl.alloc("x32", tv * f)  # hidden_states.to(float32)
    tl.alloc("pow", tv * f)
    tl.alloc("var", t * hv * f)  # .mean(-1, keepdim=True)                            [T*Hv, 1] f
    tl.free("pow")
    tl.alloc("add", t * hv * f)
    tl.swap("add", "rsqrt", t * hv * f)
    tl.alloc("normed", tv * f)
    tl.free("rsqrt", "x32")
    tl.alloc("cast", tv * a)  # .to(input_dtype)
    tl.alloc("weighted", tv * a)  # self.weight * ...
    tl.free("cast", "normed")
    tl.alloc("z32", tv * f)  # gate.to(float32)
    tl.swap("z32", "silu", tv * f)
    tl.alloc("gated", tv * f)  # hidden_states * silu(gate)
    tl.free("silu", "weighted")
    tl.alloc("out_norm", tv * a)  # .to(input_dtype)
    tl.free("gated", "var")
    tl.alloc("out", t * hidden * a)  # out_proj                                         [T, H] a
    return tl.peak


def _rms_norm(tl: _Timeline, name: str, rows: int, width: int, a: int) -> None:
    """JambaRMSNorm over [rows, width] in dtype a (modeling_jamba.py:64): fp32 copy, variance, product, cast back;
    leaves `name` [rows, width] a."""
    f = FP32
    tl.alloc("n_x32", rows * width * f)
    tl.alloc("n_pow", rows * width * f)
    tl.alloc("n_var", rows * f)
    tl.free("n_pow")
    tl.alloc("n_add", rows * f)
    tl.swap("n_add", "n_rsqrt", rows * f)
    tl.alloc("n_mul", rows * width * f)
    tl.free("n_rsqrt", "n_x32")
    tl.alloc("n_cast", rows * width * a)
    tl.alloc(name, rows * width * a)  # self.weight * hidden_states.to(input_dtype)
    tl.free("n_cast", "n_mul", "n_var")


@lru_cache(maxsize=4096)
def mamba1_mixer_peak_bytes(m: Mamba1Mixer, batch: int, tokens: int, act_bytes: int, hidden: int, inner: int,
                            first_pass: bool = True) -> int:
    """Peak bytes Jamba's Mamba mixer adds during a prefill pass (JambaMambaMixer.forward, transformers 5.24
    modeling_jamba.py:507, with mamba_selective_scan's recurrent loop, modeling_jamba.py:336: no mambapy, no
    torch.compile), above what is alive at its call, net of this layer's own conv and SSM state. `inner`: on this GPU.
    The loop keeps every step's [B, I, 1] output (scan_outputs) until torch.stack, so its last step is its peak."""
    b, s, a, f, t, n, r = batch, tokens, act_bytes, FP32, batch * tokens, m.state_size, m.dt_rank
    i_, k = inner, m.conv_kernel
    bis, bin_ = b * i_ * s, b * i_ * n
    conv_state = b * i_ * k * a
    ssm_state = bin_ * (FP32 if m.state_dtype == "fp32" else 2)
    tl = _Timeline(-(conv_state + ssm_state) if first_pass else 0)
    tl.alloc("proj", t * 2 * i_ * a)  # in_proj                                          [T, 2I] a
    tl.alloc("A32", i_ * n * f)  # -torch.exp(self.A_log.float())                      [I, n] f
    tl.swap("A32", "expA", i_ * n * f)
    tl.swap("expA", "A", i_ * n * f)
    _causal_conv(tl, "x", b, i_, s, k, a, first_pass, conv_state)
    tl.alloc("x_in", t * i_ * a)  # x_proj's input: the transposed conv output made contiguous  [B, S, I] a
    tl.alloc("xproj", t * (r + 2 * n) * a)  # x_proj                                  [T, R + 2n] a
    tl.free("x_in")
    _rms_norm(tl, "dt_n", t, r, a)  # dt_layernorm
    _rms_norm(tl, "B_n", t, n, a)  # b_layernorm
    _rms_norm(tl, "C_n", t, n, a)  # c_layernorm
    tl.free("xproj")
    tl.alloc("dt_mm", t * i_ * a)  # self.dt_proj.weight @ time_step.transpose(1, 2)     [B, S, I] a
    tl.swap("dt_mm", "dt", bis * a)  # ... laid out as [B, I, S]: a copy
    tl.free("dt_n")
    tl.alloc("bias32", i_ * f)  # self.dt_proj.bias.float()                             [I] f
    tl.alloc("D32", i_ * f)  # self.D.float()
    tl.alloc("bias_a", i_ * a)  # delta_bias.to(dt.dtype)
    tl.alloc("dt_add", bis * a)  # dt + delta_bias[..., None]                          [B, I, S] a
    tl.free("bias_a")
    tl.swap("dt_add", "dt_sp", bis * a)  # F.softplus
    tl.alloc("Adt", bis * n * f)  # A[None, :, None, :] * dt[:, :, :, None]              [B, I, S, n] f
    tl.swap("Adt", "dA", bis * n * f)  # torch.exp
    tl.alloc("B32", b * s * n * f)  # B[:, None, :, :].float()                          [B, 1, S, n] f
    tl.alloc("dB", bis * n * f)  # discrete_B                                           [B, I, S, n] f
    tl.free("B32")
    tl.alloc("x32", bis * f)  # hidden_states[:, :, :, None].float()                   [B, I, S, 1] f
    tl.alloc("dBu", bis * n * f)  # deltaB_u                                            [B, I, S, n] f
    tl.free("x32")
    tl.alloc("state", bin_ * a)  # torch.zeros(B, I, n, dtype=input_dtype)

    def step(out: str) -> None:
        tl.alloc("sA", bin_ * f)  # discrete_A[:, :, index] * ssm_state                 [B, I, n] f
        tl.alloc("state2", bin_ * f)  # ... + deltaB_u[:, :, index]
        tl.free("sA", "state")
        tl.rename("state2", "state")
        tl.alloc("cast", bin_ * a)  # ssm_state.to(input_dtype)
        tl.alloc(out, b * i_ * a)  # matmul(..., C[:, index, :].unsqueeze(-1))            [B, I, 1] a, kept
        tl.free("cast")

    step("y0")
    if s > 2:
        tl.alloc("ys", (s - 2) * b * i_ * a)  # steps 1 .. S-2 allocate as the last one does
    if s > 1:
        step("y_last")
    tl.alloc("stack", bis * a)  # torch.stack(scan_outputs, dim=-1)                    [B, I, S] a
    tl.alloc("xD", bis * f)  # hidden_states * D[None, :, None]                        [B, I, S] f
    tl.alloc("yD", bis * f)  # scan_output + ...
    tl.free("xD", "stack")
    tl.alloc("silu_z", bis * a)  # F.silu(z)                                            [B, I, S] a
    tl.alloc("y", bis * f)  # scan_output * silu(z)                                     [B, I, S] f
    tl.free("silu_z", "yD")
    tl.free("dt_sp", "dA", "dB", "dBu", "y0", *(("ys",) if s > 2 else ()), *(("y_last",) if s > 1 else ()), "D32")
    if first_pass:
        tl.alloc("ssm_state", ssm_state)  # cache.update_recurrent_state
    tl.alloc("y_t", t * i_ * a)  # scan_output.transpose(1, 2).to(dtype), transposed strides
    tl.alloc("y_in", t * i_ * a)  # out_proj's input made contiguous
    tl.alloc("out", t * hidden * a)  # out_proj                                        [T, H] a
    return tl.peak
