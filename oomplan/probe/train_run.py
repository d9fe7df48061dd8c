"""Run a real training step on the `meta` device and measure its live tensor bytes, phase by phase.

`run_train_probe` builds the model from an HF config dict under `torch.device("meta")` (no data: an 8B
model at 4k tokens steps in seconds), then runs two full training steps - forward with labels (HF's own
loss), backward, a real `torch.optim` step - under the probe's `StorageTracker`. The first step creates
the gradients and the optimizer states; the second is measured: persistent bytes at its start (weights,
fp32 master weights, gradients, optimizer states), then the peak of each phase on top of them.

How the step is run (what the analytic budget in `oomplan.memory.training` models):
  * precision "mixed": bf16 model weights and gradients, fp32 master weights, fp32 optimizer states
    (Rajbhandari et al. 2020's 16 bytes/param with Adam). The step goes tensor by tensor, as fused
    optimizers do: `master.grad = p.grad.float()`, a real `torch.optim` step on that one tensor (one optimizer
    instance per tensor, foreach=False), `p.copy_(master)`. "pure-bf16": one optimizer on the bf16 weights
    (states bf16). "fp32": everything fp32.
  * gradients persist between steps (`zero_grad(set_to_none=False)`), as DDP buckets, Megatron's grad
    buffer and DeepSpeed's partitions do; each backward allocates one tensor's new gradient and adds it in.
  * attention "sdpa": `F.scaled_dot_product_attention` runs `FusedAttentionFn`, which allocates and saves
    what FlashAttention-2 does on a GPU (output, fp32 logsumexp; backward: dq/dk/dv, the fp32 dq
    accumulator and softmax_d); with a mask (sliding windows) what the memory-efficient kernel keeps (the mask
    as an additive bias). Meta would otherwise take the math path and save the N x N scores.
  * recompute "full": transformers' activation checkpointing of every decoder layer (non-reentrant);
    "selective": only the attention core (from q, k, v to the attention output) runs under
    `torch.utils.checkpoint` (Korthikanti et al. 2022, section 5), registered as an attention function.
  * mode "lora": the base weights are frozen and every targeted nn.Linear gets bf16 A (r x in) and
    B (out x r) adapters (PEFT's LoRA forward, no dropout).

Only import this module from oomplan.probe (it imports torch when called).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

Phase = Literal["forward", "backward", "step"]
_NUM_TOP_TENSORS = 5
_CLASSES: dict = {}  # torch classes defined on first use: "lora", "fused"


@dataclass(frozen=True)
class TensorAtPeak:
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    op_name: str
    origin: str  # module that was running when it was allocated


@dataclass(frozen=True)
class PhasePeak:
    """The highest live bytes during one phase of the measured step."""

    phase: Phase
    peak_bytes: int
    transient_bytes: int  # peak minus the persistent bytes at the start of the step
    peak_op: str
    peak_origin: str
    top_tensors: tuple[TensorAtPeak, ...]  # largest non-persistent storages alive at the peak


@dataclass(frozen=True)
class TrainProbeResult:
    peak_bytes: int
    peak_phase: Phase
    persistent_bytes: int  # live at the start of the measured step
    weights_bytes: int  # model parameters and buffers (frozen base included)
    master_bytes: int  # fp32 master copies (precision "mixed")
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int  # peak minus persistent: saved activations, loss tensors, temporaries
    phases: tuple[PhasePeak, ...]
    num_params: int
    num_trainable_params: int
    attn_implementation: str
    torch_version: str
    transformers_version: str
    elapsed_s: float


@dataclass(frozen=True)
class TrainSetup:
    """What to run: one micro-batch of `micro_batch_size` sequences of `seq_tokens`."""

    seq_tokens: int
    micro_batch_size: int = 1
    recompute: Literal["none", "selective", "full"] = "none"
    attention: Literal["sdpa", "eager"] = "sdpa"
    precision: Literal["mixed", "pure-bf16", "fp32"] = "mixed"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    mode: Literal["full", "lora"] = "full"
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = ("all-linear",)  # PEFT's: every nn.Linear but the LM head


def run_train_probe(hf_config: dict, setup: TrainSetup) -> TrainProbeResult:
    """Two training steps on meta; the second is measured phase by phase."""
    import torch
    import transformers

    start = time.perf_counter()
    run = _load(hf_config, setup)
    with run.tracker, _kernel_modes():
        _train_step(run, setup, None)
        persistent = run.tracker.live_bytes
        last_seq = max(i.seq for i in run.tracker.live_infos())  # newer storages are made by the measured step
        phases: list[PhasePeak] = []
        _train_step(run, setup, lambda phase: phases.append(_phase_peak(run, phase, persistent, last_seq)))
        parts = _persistent_parts(run)
    top = max(phases, key=lambda p: p.peak_bytes)
    return TrainProbeResult(
        peak_bytes=top.peak_bytes, peak_phase=top.phase, persistent_bytes=persistent, activation_bytes=top.transient_bytes,
        phases=tuple(phases), num_params=sum(p.numel() for p in run.model.parameters()),
        num_trainable_params=sum(p.numel() for p in run.trainable), attn_implementation=run.model.config._attn_implementation,
        torch_version=torch.__version__, transformers_version=transformers.__version__,
        elapsed_s=time.perf_counter() - start, **parts,
    )


# --- the step --------------------------------------------------------------------------------
@dataclass
class _Run:
    model: Any
    trainable: list  # parameters that train (all, or the LoRA adapters)
    masters: list  # fp32 copies, parallel to `trainable` (precision "mixed"), else empty
    optimizers: list  # one per master (mixed), or one for all trainable parameters
    tracker: Any
    watch: Any  # module-path context for the tracker


def _train_step(run: _Run, setup: TrainSetup, mark) -> None:
    """Forward + loss, backward, optimizer step; `mark(phase)` is called at the end of each phase."""
    import torch

    if mark:
        run.tracker.reset_peak()
    ids = torch.zeros(setup.micro_batch_size, setup.seq_tokens, dtype=torch.long, device="meta")  # (B, S)
    loss = run.model(input_ids=ids, labels=ids, use_cache=False).loss  # the outputs (logits) are dropped, as Trainer does
    _end_phase(run, mark, "forward")
    loss.backward()
    del loss, ids
    _end_phase(run, mark, "backward")
    _optimizer_step(run)
    _end_phase(run, mark, "step")


def _end_phase(run: _Run, mark, phase: Phase) -> None:
    run.watch.end_forward()
    if mark:
        mark(phase)
        run.tracker.reset_peak()


def _optimizer_step(run: _Run) -> None:
    """Mixed: tensor by tensor through an fp32 copy of its gradient; otherwise one torch.optim step."""
    import torch

    if not run.masters:
        run.optimizers[0].step()
        run.optimizers[0].zero_grad(set_to_none=False)
        return
    for p, master, opt in zip(run.trainable, run.masters, run.optimizers, strict=True):
        master.grad = p.grad.float()
        opt.step()
        master.grad = None
        with torch.no_grad():
            p.copy_(master)
            p.grad.zero_()


def _phase_peak(run: _Run, phase: Phase, persistent: int, last_seq: int) -> PhasePeak:
    snap = run.tracker.peak
    ranked = sorted(snap.live, key=lambda i: -i.nbytes)
    top = tuple(TensorAtPeak(i.shape, i.dtype, i.nbytes, i.op_name, i.origin) for i in ranked if i.seq > last_seq)
    return PhasePeak(phase, snap.peak_bytes, snap.peak_bytes - persistent, snap.op_name, snap.origin, top[:_NUM_TOP_TENSORS])


def _persistent_parts(run: _Run) -> dict[str, int]:
    """Distinct storages of each persistent kind, as the tracker sees them."""
    def total(tensors) -> int:
        infos = {i.seq: i.nbytes for t in tensors if t is not None and (i := run.tracker.info(t)) is not None}
        return sum(infos.values())

    states = [v for opt in run.optimizers for s in opt.state.values() for v in s.values() if hasattr(v, "untyped_storage")]
    return dict(
        weights_bytes=total([*run.model.parameters(), *run.model.buffers()]), master_bytes=total(run.masters),
        gradient_bytes=total([p.grad for p in run.trainable]), optimizer_bytes=total(states),
    )


# --- loading ---------------------------------------------------------------------------------
def _load(hf_config: dict, setup: TrainSetup) -> _Run:
    import torch
    from transformers import AutoModelForCausalLM

    from oomplan.probe.meta_run import build_config
    from oomplan.probe.tracker import StorageTracker

    cfg = build_config(hf_config)
    dtype = torch.float32 if setup.precision == "fp32" else torch.bfloat16
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=_attn_implementation(cfg, setup))
    model.train()
    if setup.recompute == "full":
        # transformers 5.23 renamed gradient_checkpointing_enable (5.17.0 modeling_utils.py:3106) to
        # activation_checkpointing_enable (5.23.0 modeling_utils.py:3110, the old name a deprecated alias): same body
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable({"use_reentrant": False})
    trainable = _lora(model, setup) if setup.mode == "lora" else list(model.parameters())
    watch = _ModulePath()
    tracker = StorageTracker(context=watch.context, device_type="meta")
    watch.hook(model)
    tracker.register_existing([*model.parameters(), *model.buffers()], origin="weights")
    masters = [torch.nn.Parameter(p.detach().float()) for p in trainable] if setup.precision == "mixed" else []
    tracker.register_existing(masters, origin="master")
    return _Run(model, trainable, masters, _optimizers(setup, trainable, masters), tracker, watch)


def _optimizers(setup: TrainSetup, trainable: list, masters: list) -> list:
    import torch

    def make(params):
        if setup.optimizer == "sgd":
            return torch.optim.SGD(params, lr=1e-4, momentum=0.9, foreach=False)
        return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, foreach=False)

    return [make([m]) for m in masters] if masters else [make(trainable)]


class _ModulePath:
    """The module that is running, as the tracker's context for new storages."""

    def __init__(self) -> None:
        self._stack: list[str] = []

    def context(self) -> tuple[str, str]:
        return (self._stack[-1] if self._stack else "<step>"), ""

    def hook(self, model) -> None:
        for name, module in model.named_modules():
            module.register_forward_pre_hook(lambda m, a, name=name: self._push(name or "<model>"))
            module.register_forward_hook(lambda m, a, o: self._pop(), always_call=True)

    def _push(self, name: str) -> None:
        self._stack.append(name)

    def _pop(self) -> None:
        if self._stack:
            self._stack.pop()

    def end_forward(self) -> None:
        self._stack.clear()


# --- LoRA ------------------------------------------------------------------------------------
def _lora(model, setup: TrainSetup) -> list:
    """Freeze the base; wrap each targeted nn.Linear with bf16 LoRA adapters. Returns the adapters."""
    import torch

    for p in model.parameters():
        p.requires_grad_(False)
    adapters: list = []
    head = model.get_output_embeddings()
    every = "all-linear" in setup.lora_targets
    targets = [(n, m) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and m is not head and (every or n.rsplit(".", 1)[-1] in setup.lora_targets)]
    for name, linear in targets:
        parent = model.get_submodule(name.rsplit(".", 1)[0])
        wrapped = _lora_linear_class()(linear, setup.lora_rank)
        setattr(parent, name.rsplit(".", 1)[1], wrapped)
        adapters += [wrapped.lora_a, wrapped.lora_b]
    return adapters


def _lora_linear_class():
    """PEFT's LoRA layer, defined on first use (torch is imported lazily)."""
    if "lora" in _CLASSES:
        return _CLASSES["lora"]
    import torch

    class LoraLinear(torch.nn.Module):
        """PEFT's LoRA forward: base(x) + B(A(x)) * scaling (lora_dropout 0: no copy of x)."""

        def __init__(self, base, rank: int) -> None:
            super().__init__()
            self.base = base
            w = base.weight
            self.lora_a = torch.nn.Parameter(torch.empty(rank, w.shape[1], dtype=w.dtype, device=w.device))  # (r, in)
            self.lora_b = torch.nn.Parameter(torch.empty(w.shape[0], rank, dtype=w.dtype, device=w.device))  # (out, r)
            self.scaling = 2.0

        def forward(self, x):
            lora = torch.nn.functional.linear(torch.nn.functional.linear(x, self.lora_a), self.lora_b)
            return self.base(x) + lora * self.scaling

    _CLASSES["lora"] = LoraLinear
    return LoraLinear


# --- attention -------------------------------------------------------------------------------
def _attn_implementation(cfg, setup: TrainSetup) -> str:
    """eager / sdpa, or a registered name that checkpoints the attention core (selective recompute)."""
    from oomplan.probe.gpu_kernels import register_softcap_tolerant_sdpa
    from transformers import AutoModelForCausalLM

    sdpa_ok = getattr(AutoModelForCausalLM._model_mapping[type(cfg)], "_supports_sdpa", True)
    base = "eager" if setup.attention == "eager" else ("sdpa" if sdpa_ok else register_softcap_tolerant_sdpa())
    if setup.recompute != "selective":
        return base
    return _register_selective(base)


def _register_selective(base: str) -> str:
    """An attention function that runs `base` under torch.utils.checkpoint (Korthikanti's selective recompute)."""
    import sys

    from torch.utils.checkpoint import checkpoint
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    name = f"oomplan_selective_{base}"

    def forward(module, query, key, value, attention_mask, **kwargs):
        inner = sys.modules[type(module).__module__].eager_attention_forward if base == "eager" else AttentionInterface._global_mapping[base]
        return checkpoint(inner, module, query, key, value, attention_mask, use_reentrant=False, **kwargs)

    AttentionInterface.register(name, forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


def _kernel_modes():
    """F.scaled_dot_product_attention runs `flash_attention` (patched, not a torch-function mode: checkpoint
    recomputation runs inside the autograd engine, where function modes are not active).

    Also: every row is one unpacked sequence, which transformers' `find_packed_sequence_indices` would
    find out by reading the data (`.all()`, impossible on meta); the probe answers None (no packing) for it.
    """
    from contextlib import ExitStack
    from unittest import mock

    stack = ExitStack()
    stack.enter_context(mock.patch("transformers.masking_utils.find_packed_sequence_indices", lambda position_ids: None))
    stack.enter_context(mock.patch("torch.nn.functional.scaled_dot_product_attention", flash_attention))
    return stack


def flash_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """(B, H, L, E) attention output through `FusedAttentionFn`. Without a mask a GPU runs FlashAttention-2
    (GQA native, no repeat of K/V); with one (sliding windows) the memory-efficient kernel, which keeps the
    mask as an additive bias in the query dtype (torch converts a bool mask on every call)."""
    bias = None
    if attn_mask is not None:
        bias = attn_mask if attn_mask.is_floating_point() else query.new_empty(attn_mask.shape)  # (B, 1, L, S)
    return _fused_fn().apply(query, key, value, bias)


def _fused_fn():
    """FlashAttention-2's allocations (Dao 2023; flash_api.cpp mha_fwd / mha_bwd), as an autograd Function."""
    if "fused" in _CLASSES:
        return _CLASSES["fused"]
    import torch

    class FusedAttentionFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, bias):  # (B, H, L, E), (B, Hk, S, E), (B, Hk, S, Ev), (B, 1, L, S) or None
            b, h, length, _ = q.shape
            rows = length if bias is None else -(-length // 32) * 32  # the memory-efficient kernel pads to 32
            out = q.new_empty((b, length, h, v.shape[-1])).transpose(1, 2)  # kernel layout (B, L, H, Ev)
            lse = q.new_empty((b, h, rows), dtype=torch.float32)  # softmax logsumexp, kept for backward
            ctx.save_for_backward(q, k, v, out, lse, bias)
            return out

        @staticmethod
        def backward(ctx, grad_out):
            q, k, v, out, lse, bias = ctx.saved_tensors
            b, h, length, e = q.shape
            rounded_l, rounded_e = -(-length // 128) * 128, -(-e // 32) * 32
            dq_accum = q.new_empty((b, rounded_l, h, rounded_e), dtype=torch.float32)
            softmax_d = q.new_empty((b, h, rounded_l), dtype=torch.float32)
            dq = q.new_empty((b, length, h, e)).transpose(1, 2)
            dk, dv = _grouped_grads(k, v, h)
            del dq_accum, softmax_d
            return dq, dk, dv, None

    _CLASSES["fused"] = FusedAttentionFn
    return FusedAttentionFn


def _grouped_grads(k, v, num_heads: int):
    """dk, dv; with GQA the kernel writes per-query-head copies and sums them per KV head."""
    b, hk, s, e = k.shape
    dk = k.new_empty((b, s, hk, e)).transpose(1, 2)
    dv = v.new_empty((b, s, hk, v.shape[-1])).transpose(1, 2)
    if hk != num_heads:
        dk_expanded = k.new_empty((b, s, num_heads, e))
        dv_expanded = v.new_empty((b, s, num_heads, v.shape[-1]))
        del dk_expanded, dv_expanded
    return dk, dv


def setup_from_plan(plan) -> TrainSetup:
    """The probe setup for a `TrainingPlan` (oomplan.specs.training) of one GPU; ValueError names what the meta probe
    cannot run (parallelism and sharding need several processes; QLoRA, 8-bit AdamW need bitsandbytes kernels)."""
    unsupported = [name for name, on in (
        ("data/tensor/pipeline parallelism", plan.num_gpus > 1), ("ZeRO/FSDP sharding", plan.shard_stage > 0),
        ("CPU offload", plan.offload_optimizer or plan.offload_params), ("qlora (bitsandbytes nf4)", plan.mode == "qlora"),
        (f"optimizer {plan.optimizer}", plan.optimizer not in ("adamw", "sgd")), (f"precision {plan.precision}", plan.precision == "bf16"),
    ) if on]
    if unsupported:
        raise ValueError("the meta training probe runs one GPU's step; not: " + ", ".join(unsupported))
    return TrainSetup(plan.seq_tokens, plan.micro_batch_size, plan.recompute, plan.attention, plan.precision, plan.optimizer,
                      plan.mode, plan.lora_rank, tuple(plan.lora_targets))
