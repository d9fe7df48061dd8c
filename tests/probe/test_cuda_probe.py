"""The CUDA probe without a GPU: its bookkeeping against a fake device (the project's own CudaDevice
interface, nothing in torch patched), and the parts that are visible on CPU and meta (tied weights after
to_empty, the dtype chosen, the SDPA kernel recorder, the real run loop on CPU). CUDA-marked tests at the end
run only where torch sees a GPU."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from oomplan.errors import InputError, RuntimeFailure  # noqa: E402
from oomplan.memory.budget import estimate  # noqa: E402
from oomplan.probe.cuda_device import DeviceVersions  # noqa: E402
from oomplan.probe.cuda_run import (  # noqa: E402
    KernelRecorder, RunOutcome, cuda_cap, materialise, probe_cuda, transformers_run,
)
from oomplan.probe.shard import probe_dtype, probe_plan  # noqa: E402
from oomplan.profiles import load_gpu, load_model  # noqa: E402
from oomplan.specs.plan import Plan, Workload  # noqa: E402

GiB, MiB = 2**30, 2**20


class FakeCuda:
    """A card of `total` bytes; `process_used` None mimics NVML not seeing this process."""

    def __init__(self, total=80 * GiB, other=0, context=500 * MiB, fraction=1.0, process_visible=True):
        self.total, self.other, self.context, self.fraction = total, other, context, fraction
        self.process_visible = process_visible
        self.reserved = self.allocated = self.peak_allocated = self.peak_reserved = 0
        self.fractions: list[float] = []
        self.emptied = 0

    def versions(self):
        return DeviceVersions("NVIDIA Fake 80GB", "580.1", "13.0", "91500", "2.13.0")

    def init(self):
        pass

    def total_bytes(self):
        return self.total

    def free_bytes(self):
        return self.total - self.other - self.context - self.reserved

    def process_used_bytes(self):
        return self.context + self.reserved if self.process_visible else None

    def reserved_bytes(self):
        return self.reserved

    def allocated_bytes(self):
        return self.allocated

    def max_allocated_bytes(self):
        return self.peak_allocated

    def max_reserved_bytes(self):
        return self.peak_reserved

    def reset_peak(self):
        self.peak_allocated, self.peak_reserved = self.allocated, self.reserved

    def get_fraction(self):
        return self.fraction

    def set_fraction(self, fraction):
        self.fractions.append(fraction)
        self.fraction = fraction

    def synchronize(self):
        pass

    def empty_cache(self):
        self.emptied += 1
        self.reserved = self.allocated


def _est(model="llama-3.1-8b", gpu="h100", ctx=8192, batch=1, **plan):
    m, g = load_model(model), load_gpu(gpu)
    w = Workload(ctx_tokens=ctx, batch_size=batch)
    est = estimate(m, g, w, Plan(**plan))
    probed, left = probe_plan(m, est.plan)
    return est, estimate(m, g, w, probed), left


def _run_using(allocated, reserved, oom_at=None, error=None, calls=None):
    def run(hf_config, dtype, attention, est, steps, device):
        if calls is not None:
            calls.append((dtype, attention, device.fraction))
        if error:
            raise error
        device.peak_allocated, device.peak_reserved = allocated, reserved
        return RunOutcome(oom_at, "flash", "5.24.0")
    return run


def test_a_plan_that_fits_sets_the_cap_and_restores_the_previous_fraction():
    est, ref, left = _est()
    dev, calls = FakeCuda(fraction=0.9), []
    tensors = ref.per_gpu.weights_bytes + ref.per_gpu.kv_cache_bytes + ref.per_gpu.activation_bytes
    report = probe_cuda(est, ref, left, 2.0, 2, dev, _run_using(tensors, tensors + 64 * MiB, calls=calls))
    cap = est.capacity_bytes - 500 * MiB  # the card, minus this process's CUDA context; no savings, no NCCL
    assert calls == [("bf16", "sdpa", cap / dev.total)]
    assert dev.fractions == [cap / dev.total, 0.9] and dev.fraction == 0.9 and dev.emptied == 1
    assert report.cuda.previous_fraction == 0.9 and report.cuda.fraction_after == 0.9
    assert report.cuda.allocator_cap_bytes == cap and report.cuda.context_bytes == 500 * MiB
    assert report.fits_capacity and report.oom_at is None
    assert report.cuda.driver == "580.1" and report.cuda.cudnn == "91500" and report.cuda.attention_kernel == "flash"


def test_cublas_workspace_is_predicted_on_the_allocated_side():
    est, ref, left = _est()
    o = ref.per_gpu.overhead
    report = probe_cuda(est, ref, left, 2.0, 2, FakeCuda(), _run_using(10 * GiB, 11 * GiB))
    names = {c.name: c for c in report.components}
    tensors = ref.per_gpu.weights_bytes + ref.per_gpu.kv_cache_bytes + ref.per_gpu.activation_bytes
    assert names["total (max allocated, cuBLAS incl.)"].predicted_bytes == tensors + o.cublas_workspace_bytes
    assert names["non-torch (CUDA context)"].predicted_bytes == o.cuda_context_bytes  # no cuBLAS here
    assert o.cublas_workspace_bytes > 0


def test_a_quantised_plan_raises_the_cap_by_the_16_bit_weights_it_builds():
    # README: the top plan for llama-3-70b on an A100 40GB at 32k is quantised; the probe builds it in bf16
    est, ref, left = _est("llama-3-70b", "a100-80g", ctx=8192, weights="awq")
    saved = ref.per_gpu.weights_bytes - est.per_gpu.weights_bytes
    assert saved > 90 * GiB
    cap = cuda_cap(est, ref, 500 * MiB)
    assert cap.unrealised_bytes == (ref.per_gpu.weights_bytes + ref.per_gpu.kv_cache_bytes + ref.per_gpu.activation_bytes
                                    - est.per_gpu.weights_bytes - est.per_gpu.kv_cache_bytes - est.per_gpu.activation_bytes)
    assert cap.allocator_cap_bytes == est.capacity_bytes + cap.unrealised_bytes - 500 * MiB
    # an 80 GB local card cannot hold 131 GiB of bf16 weights: exit 3, not "does not fit"
    with pytest.raises(RuntimeFailure, match="cannot hold what the probe must build.*more than the plan holds.*awq"):
        probe_cuda(est, ref, left, 2.0, 2, FakeCuda(), _run_using(0, 0))
    # a card that holds the bf16 build runs it, under min(cap, what the card has), the verdict net of the savings
    big, calls = FakeCuda(total=200 * GiB), []
    built = ref.per_gpu.weights_bytes + ref.per_gpu.kv_cache_bytes + ref.per_gpu.activation_bytes
    report = probe_cuda(est, ref, left, 2.0, 2, big, _run_using(built, built + GiB, calls=calls))
    assert calls[0][0] == "bf16" and calls[0][2] == pytest.approx(cap.allocator_cap_bytes / big.total)
    assert report.fits_capacity and est.fits
    # a card that holds the build but not the whole cap: an OOM there is the local card's, not the plan's
    mid = FakeCuda(total=150 * GiB)
    with pytest.raises(RuntimeFailure, match="ran out of memory at prefill chunk 1 .* below .*no verdict"):
        probe_cuda(est, ref, left, 2.0, 2, mid, _run_using(built, 149 * GiB, oom_at="prefill chunk 1"))
    assert mid.fraction == 1.0


def test_a_plan_for_a_larger_card_is_exit_3_saying_so():
    est, ref, left = _est("llama-3.1-8b", "h200")
    dev = FakeCuda(total=80 * GiB)
    with pytest.raises(RuntimeFailure, match="plan is for NVIDIA H200.*local GPU is NVIDIA Fake 80GB.*larger card"):
        probe_cuda(est, ref, left, 2.0, 2, dev, _run_using(0, 0))
    assert dev.fractions == []  # refused before the cap was touched


def test_other_processes_memory_is_not_counted_as_the_cards():
    est, ref, left = _est()  # h100 plan: 79.19 GiB of an 80 GiB card, 4 GiB of which another process holds
    dev = FakeCuda(other=4 * GiB)
    report = probe_cuda(est, ref, left, 2.0, 2, dev, _run_using(20 * GiB, 21 * GiB))
    assert report.cuda.other_processes_bytes == 4 * GiB
    assert dev.fractions[0] == pytest.approx((80 * GiB - 4 * GiB - 500 * MiB) / (80 * GiB))  # not the plan's cap
    with pytest.raises(RuntimeFailure, match="ran out of memory .*4.00 GiB are held by other processes.*no verdict"):
        probe_cuda(est, ref, left, 2.0, 2, FakeCuda(other=4 * GiB), _run_using(75 * GiB, 75 * GiB, oom_at="decode step 1"))


def test_tp_plans_count_nccl_buffers_the_single_process_does_not_allocate():
    est, ref, left = _est("llama-3-70b", "h100", ctx=8192, tensor_parallel=2)
    nccl = est.per_gpu.overhead.nccl_bytes
    assert nccl > 0
    cap = cuda_cap(est, ref, 500 * MiB)
    assert cap.allocator_cap_bytes == est.capacity_bytes - nccl - 500 * MiB
    limit = est.capacity_bytes - nccl - 500 * MiB  # reserved may reach this and still fit
    fits = probe_cuda(est, ref, left, 2.0, 2, FakeCuda(), _run_using(limit - GiB, limit))
    over = probe_cuda(est, ref, left, 2.0, 2, FakeCuda(), _run_using(limit - GiB, limit + MiB))
    assert fits.fits_capacity and not over.fits_capacity
    assert any("NCCL" in n for n in fits.notes)


def test_an_oom_is_a_verdict_and_memory_and_fraction_come_back():
    est, ref, left = _est()
    dev = FakeCuda(fraction=0.75)
    report = probe_cuda(est, ref, left, 2.0, 2, dev, _run_using(70 * GiB, 78 * GiB, oom_at="prefill chunk 1"))
    assert report.oom_at == "prefill chunk 1" and not report.passed
    assert dev.fraction == 0.75 and dev.emptied == 1


def test_a_non_oom_cuda_error_is_exit_3_and_the_fraction_is_restored():
    est, ref, left = _est()
    dev = FakeCuda(fraction=0.5)
    with pytest.raises(RuntimeFailure, match="CUBLAS_STATUS_EXECUTION_FAILED"):
        probe_cuda(est, ref, left, 2.0, 2, dev,
                   _run_using(0, 0, error=RuntimeFailure("the CUDA probe failed at prefill chunk 1 (RuntimeError): CUBLAS_STATUS_EXECUTION_FAILED")))
    assert dev.fractions[-1] == 0.5 and dev.fraction == 0.5 and dev.emptied == 1


def test_the_fraction_is_restored_even_when_cleanup_fails():
    est, ref, left = _est()

    class Broken(FakeCuda):
        def empty_cache(self):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    dev = Broken(fraction=0.8)
    probe_cuda(est, ref, left, 2.0, 2, dev, _run_using(GiB, GiB))
    assert dev.fraction == 0.8


def test_without_nvml_all_used_memory_counts_as_this_process():
    est, ref, left = _est()
    dev = FakeCuda(process_visible=False, other=0)
    report = probe_cuda(est, ref, left, 2.0, 2, dev, _run_using(GiB, GiB))
    assert report.cuda.other_processes_bytes is None and report.cuda.context_bytes == 500 * MiB


def test_ctx_must_exceed_the_decode_steps():
    est, ref, left = _est(ctx=2)
    with pytest.raises(InputError, match="--decode-steps: 2 leaves no prompt"):
        probe_cuda(est, ref, left, 2.0, 2, FakeCuda(), _run_using(0, 0))


# --- visible on CPU / meta -----------------------------------------------------------------------------
TINY_TIED = dict(model_type="qwen2", vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)


def _meta_model(cfg):
    from transformers import AutoModelForCausalLM

    from oomplan.probe.meta_run import build_config

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(build_config(cfg), dtype=torch.bfloat16)


def test_to_empty_alone_unties_the_embeddings():
    # the bug materialise() exists for (reproduced on CPU, as the review found)
    model = _meta_model(TINY_TIED).to_empty(device="cpu")
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()


def test_materialise_keeps_tied_embeddings_one_tensor():
    model = materialise(_meta_model(TINY_TIED), "cpu")
    assert model.lm_head.weight is model.model.embed_tokens.weight
    storages = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in model.parameters()}
    assert sum(storages.values()) == sum(p.numel() for p in model.parameters()) * 2  # each weight once, bf16


def test_materialise_leaves_untied_models_alone():
    model = materialise(_meta_model(dict(TINY_TIED, tie_word_embeddings=False)), "cpu")
    assert model.lm_head.weight is not model.model.embed_tokens.weight


@pytest.mark.parametrize("model,weights,expected", [
    ("gemma-2-9b", "auto", "bf16"),  # fp32 checkpoint, served (and budgeted) in bf16
    ("gemma-2-9b", "fp16", "fp16"),
    ("llama-3.1-8b", "fp16", "fp16"),
    ("llama-2-7b", "auto", "fp16"),  # fp16 checkpoint
    ("llama-3.1-8b", "awq", "bf16"),  # quantised: probed in the checkpoint's 16-bit dtype
    ("llama-3.1-8b", "fp32", "fp32"),
])
def test_probe_dtype_follows_the_plan(model, weights, expected):
    m = load_model(model)
    probed, _ = probe_plan(m, Plan(weights=weights))
    assert probe_dtype(m, probed) == expected


def test_kernel_recorder_names_the_sdpa_kernel_on_cpu():
    q = torch.zeros(1, 2, 8, 16)
    with KernelRecorder() as rec:
        torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert rec.kernel("sdpa") == "flash (cpu)"
    with KernelRecorder() as none:
        torch.matmul(q, q.transpose(-1, -2)).softmax(-1)
    assert none.kernel("sdpa") == "math" and none.kernel("eager") == "eager"


def test_the_real_run_loop_on_cpu():
    """transformers_run as on CUDA (chunks, decode steps, the cache argument), on the CPU with a fake device."""
    from oomplan.families import parse_hf_config

    spec = parse_hf_config(dict(TINY_TIED, max_position_embeddings=256), "tiny", "test")
    est = estimate(spec, load_gpu("l4"), Workload(ctx_tokens=40, batch_size=2), Plan(prefill_chunk_tokens=16))
    dev = FakeCuda()
    out = transformers_run(dict(TINY_TIED), "bf16", "sdpa", est, 2, dev, device_type="cpu")
    assert out.oom_at is None and out.attention_kernel == "flash (cpu)"


# --- on a GPU ------------------------------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@needs_cuda
def test_cuda_tied_small_model_within_tolerance_and_restored():
    from oomplan.probe.run import probe

    est, _, _ = _est("qwen2.5-0.5b", "l4", ctx=2048, batch=2)
    before = torch.cuda.get_per_process_memory_fraction(0)
    report = probe(est, "cuda", 3.0, 2)
    assert report.oom_at is None and report.within_tolerance, report.verdict()
    assert torch.cuda.get_per_process_memory_fraction(0) == before
    assert torch.cuda.memory_allocated() < 64 * MiB


@pytest.mark.cuda
@needs_cuda
def test_cuda_plan_for_a_larger_card_is_refused():
    from oomplan.probe.run import probe

    total = torch.cuda.get_device_properties(0).total_memory
    bigger = "b200" if total < 150 * GiB else None
    if bigger is None:
        pytest.skip("the local card is as large as the largest profile")
    est, _, _ = _est("llama-3.1-8b", bigger)
    with pytest.raises(RuntimeFailure, match="larger card"):
        probe(est, "cuda", 2.0, 2)


@pytest.mark.cuda
@needs_cuda
def test_cuda_oom_verdict_releases_memory():
    from oomplan.probe.run import probe

    est, _, _ = _est("llama-3.1-8b", "l4", ctx=32768, batch=4)
    report = probe(est, "cuda", 2.0, 2)
    assert report.oom_at is not None and not report.passed
    assert torch.cuda.memory_allocated() < 64 * MiB
