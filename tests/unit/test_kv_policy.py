"""--kv-policy: the parser, the per-layer pricing (hand-computed bytes), grades, the search, plan files and exports.

Per-token, per-layer KV bytes used below (bf16, TP 1): llama-3-8b 2 x 8 KV heads x 128 x 2 B = 4,096 B (32 layers,
131,072 B per token for the model); gemma-2-9b 2 x 8 x 256 x 2 = 8,192 B (42 layers, every other one sliding with a
4,096-token window); deepseek-v2-lite MLA (512 + 64) x 2 = 1,152 B (27 layers).
"""
from pathlib import Path

import pytest

from oomplan.errors import InputError
from oomplan.families import parse_hf_config
from oomplan.memory.budget import estimate
from oomplan.planfile import load_plan_file
from oomplan.planner.quality import quality_risk
from oomplan.planner.search import search
from oomplan.planner.space import SearchLimits
from oomplan.profiles import load_gpu, load_model
from oomplan.report.exports import EXPORTERS
from oomplan.planner.plan_files import inference_plan_file
from oomplan.report.plan_yaml import plan_yaml
from oomplan.specs.kv_policy import BudgetPolicy, DmsChoice, EpisodicPolicy, SlotsPolicy, WindowPolicy, parse_kv_policy
from oomplan.specs.plan import Plan, Workload

GIB = 2**30
L8, H100 = load_model("llama-3-8b"), load_gpu("h100")
ACCEPTED = "accepted: dms:R[,window:W], window:W[,sinks:S], budget:N, slots:M,window:W, episodic:HOST_BYTES,read:R"


@pytest.mark.parametrize("text, expected", [
    ("window:4096,sinks:4", WindowPolicy(window_tokens=4096, sink_tokens=4)),
    ("window:4k", WindowPolicy(window_tokens=4096, sink_tokens=4)),  # 4 sinks by default, as in the paper
    (" Window : 1024 , sinks : 0 ", WindowPolicy(window_tokens=1024, sink_tokens=0)),
    ("budget:2048", BudgetPolicy(budget_tokens=2048)),
    ("slots:64,window:512", SlotsPolicy(num_slots=64, window_tokens=512)),
    ("slots:64,window:0", SlotsPolicy(num_slots=64, window_tokens=0)),
    ("episodic:64GiB,read:2k", EpisodicPolicy(host_bytes=64 * GIB, read_tokens=2048)),
    ("dms:8", DmsChoice(ratio=8, window_tokens=512)),
    ("dms:4,window:256", DmsChoice(ratio=4, window_tokens=256)),
])
def test_parse(text, expected):
    assert parse_kv_policy(text) == expected


@pytest.mark.parametrize("text, why", [
    ("window:-1", "window must be a token count 1..2147483648 (k = 1024)"),
    ("window:0", "window must be a token count 1..2147483648 (k = 1024)"),
    ("budget:abc", "budget must be a token count 1..2147483648 (k = 1024)"),
    ("budget:99999999999999999999", "budget must be a token count 1..2147483648 (k = 1024)"),
    ("budget:1.5", "budget must be a token count 1..2147483648 (k = 1024)"),
    ("window:4096,sinks:-2", "window sinks must be a token count 0..2147483648 (k = 1024)"),
    ("dms:0.5", "dms ratio must be a number 1..64"),
    ("dms:nan", "dms ratio must be a number 1..64"),
    ("episodic:0,read:1", "episodic host must be a size of at least 1 byte (e.g. 64GiB)"),
    ("lru:4", "unknown kind 'lru'"),
    ("window:1,sinks:1,sinks:2", "'sinks' is given twice"),
    ("window:1,window:2", "window takes sinks, not 'window'"),
    ("budget:4,sinks:4", "budget takes no other keys, not 'sinks'"),
    ("slots:64", "slots needs window"),
    ("episodic:1GiB", "episodic needs read"),
    ("window", "each part is KEY:VALUE"),
    ("", "each part is KEY:VALUE"),
])
def test_parse_refuses_with_one_line(text, why):
    with pytest.raises(InputError) as exc:
        parse_kv_policy(text)
    assert str(exc.value) == f"--kv-policy: '{text}' is not a KV policy: {why}; {ACCEPTED}"


def test_parse_refuses_long_text_shortened():
    with pytest.raises(InputError) as exc:
        parse_kv_policy("window:" + "1" * 300)
    assert str(exc.value) == f"--kv-policy: '{'window:' + '1' * 50}...' is too long to be a KV policy; {ACCEPTED}"


def kv(model, policy: str | None, ctx: int, chunk: int | None = None, paged: bool = True, batch: int = 1):
    plan = Plan(kv_policy=parse_kv_policy(policy) if policy else None, prefill_chunk_tokens=chunk, paged=paged)
    return estimate(model, H100, Workload(ctx_tokens=ctx, batch_size=batch), plan).per_gpu.kv


def test_window_llama_3_8b_at_32k():
    # sinks 4 + window 4096 = 4,100 tokens per layer, paged to 4,112 (257 blocks of 16); 32 layers x 4,096 B
    assert kv(L8, "window:4096,sinks:4", 32768, chunk=2048).bytes == 4112 * 131072 == 538_968_064
    assert kv(L8, "window:4096,sinks:4", 32768, chunk=2048, paged=False).bytes == 4100 * 131072 == 537_395_200
    # a chunk larger than the window: sinks + the whole chunk are in every layer before eviction
    assert kv(L8, "window:1024,sinks:4", 32768, chunk=8192, paged=False).bytes == (4 + 8192) * 131072
    # the whole prompt in one forward pass: it is all in every layer before anything is evicted (no saving at the peak)
    assert kv(L8, "window:4096,sinks:4", 32768).bytes == 32768 * 131072 == kv(L8, None, 32768).bytes
    # a context shorter than the window keeps everything, no more
    assert kv(L8, "window:4096,sinks:4", 1000, chunk=512, paged=False).bytes == 1000 * 131072
    assert kv(L8, "window:4096,sinks:4", 32768, chunk=2048, batch=3).bytes == 3 * 538_968_064


def test_budget_prices_the_one_layer_holding_its_prompt():
    # 32 layers x 2,048 kept, plus one layer's (32,768 - 2,048) tokens while it compresses (SnapKV update_kv)
    b = kv(L8, "budget:2048", 32768)
    assert b.prefill_transient_bytes == (32768 - 2048) * 4096 == 125_829_120
    assert b.bytes == 2048 * 131072 + 125_829_120 == 394_264_576
    assert kv(L8, "budget:2048", 32768, batch=2).bytes == 2 * 394_264_576
    # chunked prefill: nothing is compressed before the last chunk, so every layer holds the whole prompt
    chunked = kv(L8, "budget:2048", 32768, chunk=2048)
    assert (chunked.bytes, chunked.prefill_transient_bytes) == (32768 * 131072, 0)


def _activations(policy: str | None, ctx: int, chunk: int | None = None, attention: str = "sdpa"):
    from oomplan.memory.activations import activation_budget

    plan = Plan(prefill_chunk_tokens=chunk, attention=attention, **({"kv_policy": parse_kv_policy(policy)} if policy else {}))
    return activation_budget(L8, plan, ctx, 1, 2)


def test_a_bounded_policy_prices_the_attention_over_the_tokens_it_keeps():
    # window 4096 + 4 sinks, chunk 2048 at 128k: the last chunk attends sinks + max(4096, 2048) = 4,100 tokens and a
    # decode step 4 + 4096 = 4,100 (StartRecentKVCache.evict_for_space evicts before each pass), exactly as a plan
    # without a policy at a 4,100-token context, same chunk
    bounded, full, short = _activations("window:4096,sinks:4", 131072, 2048), _activations(None, 131072, 2048), _activations(None, 4100, 2048)
    assert (bounded.prefill_bytes, bounded.decode_step_bytes) == (short.prefill_bytes, short.decode_step_bytes)
    # by hand (activations.py): the SDPA bool mask of the last chunk [2048 x kv], rotary cos/sin 2 x 2048 x 128 x 2 B,
    # ids and positions 8 x (2048 + 2048) B; attention: hidden in/out/normed 3 x 2048 x 4096 x 2 B, q/out/grad-free
    # copies 3 x 2048 x 32 x 128 x 2 B, and repeat_kv's K and V for 32 heads 2 x 32 x kv x 128 x 2 B
    from oomplan.memory.activations import attention_moment_bytes, dims, ffn_moment_bytes

    def attention(kv_len: int) -> int:
        return 3 * 2048 * 4096 * 2 + 3 * 2048 * 32 * 128 * 2 + 2 * 32 * kv_len * 128 * 2

    def forward(kv_len: int) -> int:
        return 2048 * kv_len + 2 * 2048 * 128 * 2 + 8 * (2048 + 2048)

    assert full.prefill_bytes == forward(131072) + attention(131072) == 2_517_663_744  # attention dominates at 128k
    plan = Plan(prefill_chunk_tokens=2048, kv_policy=parse_kv_policy("window:4096,sinks:4"))
    assert attention_moment_bytes(L8, plan, dims(L8, plan, 2), 1, 2048, 4100) == (attention(4100), 0) == (167_837_696, 0)
    assert bounded.prefill_bytes == forward(4100) + max(attention(4100), ffn_moment_bytes(L8, dims(L8, plan, 2), 2048))
    # eager: the scores [32 heads x 2048 x kv], 10 B each in bf16 (scores, fp32 up-cast copy, fp32 softmax)
    eager, eager_full = _activations("window:4096,sinks:4", 131072, 2048, "eager"), _activations(None, 131072, 2048, "eager")
    assert eager.attention_scores_bytes == 32 * 2048 * 4100 * 10
    assert eager_full.attention_scores_bytes == 32 * 2048 * 131072 * 10
    # slots 64 + window 1024 at decode: 1,088 tokens; the read buffer of an episodic memory: 2,048
    assert _activations("slots:64,window:1024", 131072, 512).decode_step_bytes == _activations(None, 1088, 512).decode_step_bytes
    assert _activations("episodic:64GiB,read:2048", 131072, 1024).decode_step_bytes == _activations(None, 2048, 1024).decode_step_bytes


def test_budget_prefill_attends_the_whole_prompt_and_adds_snapkvs_selection():
    from oomplan.memory.activations import SNAPKV_OBSERVATION_TOKENS, budget_selection_bytes, dims

    assert SNAPKV_OBSERVATION_TOKENS == 32
    # decode attends the 2,048 kept tokens, as a 2,048-token context does
    assert _activations("budget:2048", 32768).decode_step_bytes == _activations(None, 2048).decode_step_bytes
    # SnapKV update_kv: [1, 32 heads, 32 queries, 32,768 keys] bf16 scores and their softmax(dtype=float32),
    # 10 B a score in bf16 (scores, the fp32 up-cast copy, the fp32 result: activations.score_bytes)
    plan = Plan(kv_policy=parse_kv_policy("budget:2048"))
    assert budget_selection_bytes(L8, plan, dims(L8, plan, 2), 1, 32768, 32768) == 32 * 32 * 32768 * 10 == 335_544_320
    eager = _activations("budget:2048", 32768, attention="eager")  # with eager the attention moment dominates the layer
    assert eager.prefill_bytes - _activations(None, 32768, attention="eager").prefill_bytes == 335_544_320
    # no selection on a prompt under the budget, nor with chunked prefill (nothing is compressed then)
    assert budget_selection_bytes(L8, plan, dims(L8, plan, 2), 1, 2000, 2000) == 0
    assert budget_selection_bytes(L8, plan, dims(L8, plan, 2), 1, 2048, 32768) == 0


def test_slots_and_episodic():
    # CAMELoT: 64 slots + max(window 1024, chunk 512) = 1,088 tokens (68 blocks exactly)
    assert kv(L8, "slots:64,window:1024", 32768, chunk=512).bytes == 1088 * 131072 == 142_606_336
    assert kv(L8, "slots:64,window:1024", 32768, chunk=2048).bytes == 2112 * 131072
    # Larimar: only the read buffer on the GPU; the 64 GiB store is host memory and costs the GPU nothing
    assert kv(L8, "episodic:64GiB,read:2048", 32768, chunk=1024).bytes == 2048 * 131072 == 268_435_456


def test_sliding_layers_keep_the_smaller_of_their_window_and_the_policy():
    g9 = load_model("gemma-2-9b")
    # policy 1,028 < the 4,096-token window: all 42 layers keep 1,028 (paged 1,040)
    assert kv(g9, "window:1024,sinks:4", 32768, chunk=512).bytes == 42 * 1040 * 8192 == 357_826_560
    # policy 8,196 (paged 8,208) > the window: the 21 full layers keep 8,208, the 21 sliding ones their 4,096
    assert kv(g9, "window:8192,sinks:4", 32768, chunk=2048).bytes == 21 * 8192 * (8208 + 4096) == 2_116_681_728


def test_mla_latent_rows_are_evicted_like_tokens():
    ds = load_model("deepseek-v2-lite")
    assert kv(ds, "window:4096,sinks:4", 32768, chunk=2048).bytes == 4112 * 27 * 1152 == 127_899_648


def test_hybrid_applies_to_attention_layers_only():
    nemo = load_model("nemotron-3-nano-30b-a3b")  # 6 attention layers, 23 Mamba-2 layers
    plan = Plan(kv_policy=WindowPolicy(window_tokens=1024, sink_tokens=4), prefill_chunk_tokens=512)
    est = estimate(nemo, H100, Workload(ctx_tokens=32768), plan)
    full = estimate(nemo, H100, Workload(ctx_tokens=32768), Plan(prefill_chunk_tokens=512))
    assert est.per_gpu.kv.bytes == 6 * 1040 * 1024
    assert est.per_gpu.state_bytes == full.per_gpu.state_bytes > 0  # the recurrent state is not a KV cache
    assert "--kv-policy applies to the 6 attention layers; the 23 recurrent-state layers keep their fixed state" in est.notes


def test_a_model_without_kv_refuses_the_policy():
    mamba = parse_hf_config(dict(model_type="mamba2", vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_heads=8,
                                 head_dim=16, expand=2, n_groups=2, state_size=16, conv_kernel=4, chunk_size=8), "mamba2", "test")
    with pytest.raises(InputError) as exc:
        estimate(mamba, H100, Workload(ctx_tokens=4096), Plan(kv_policy=BudgetPolicy(budget_tokens=512)))
    detail = "budget:512: mamba2 has no KV cache (every layer keeps a fixed recurrent state instead), so a KV policy cannot apply"
    assert str(exc.value) == f"kv_policy: {detail}"  # the API names the field; the CLI the flag
    assert exc.value.line({"kv_policy": "--kv-policy"}) == f"--kv-policy: {detail}"


def test_one_kv_policy_at_a_time():
    with pytest.raises(ValueError, match="one KV policy at a time: dms_ratio 4 and kv_policy window:64,sinks:4"):
        Plan(dms_ratio=4, kv_policy=WindowPolicy(window_tokens=64))


@pytest.mark.parametrize("policy, grade, label", [
    ("window:4096,sinks:4", 3, "high"), ("budget:2048", 2, "moderate"), ("slots:64,window:512", 2, "moderate"),
    ("episodic:1GiB,read:512", 3, "high"),
])
def test_quality_grades_come_from_the_data_file_with_a_paper(policy, grade, label):
    q = quality_risk(L8, Plan(kv_policy=parse_kv_policy(policy)))
    (choice,) = q.choices
    assert (q.grade, q.label, choice.knob, choice.value) == (grade, label, "kv_policy", parse_kv_policy(policy).spec)
    assert "https://arxiv.org/abs/" in choice.source


@pytest.mark.parametrize("policy, ctx, grade, label, reason", [
    # keeps at least the whole context: 4 + 4096 >= 4096, budget 8192 >= 8192, a recent window 8192 >= 8192
    ("window:4096,sinks:4", 4096, 0, "lossless", "keeps every token"), ("budget:8192", 8192, 0, "lossless", "keeps every token"),
    ("slots:64,window:8192", 8192, 0, "lossless", "keeps every token"),
    # 4 + 4096 < 4101: evicts, and the slots consolidate tokens beyond the window even when 64 + 8192 >= the context
    ("window:4096,sinks:4", 4101, 3, "high", "StreamingLLM"), ("slots:64,window:8192", 8200, 2, "moderate", "CAMELoT"),
    # H2O's 20% budget: 5 x 6554 = 32,770 >= 32,768 (a fifth), 5 x 6553 = 32,765 < 32,768 (under a fifth)
    ("budget:6554", 32768, 1, "near-lossless", "20% of the context"), ("budget:6553", 32768, 2, "moderate", "H2O / SnapKV"),
    # no sinks: window attention, whatever the context (below it)
    ("window:4096,sinks:0", 32768, 3, "high", "without attention sinks"),
    # Larimar's episodic memory needs its memory-conditioned model at any context
    ("episodic:1GiB,read:8192", 4096, 3, "high", "Larimar"),
])
def test_quality_grade_follows_what_the_policy_keeps_of_the_context(policy, ctx, grade, label, reason):
    q = quality_risk(L8, Plan(kv_policy=parse_kv_policy(policy)), ctx)
    (choice,) = q.choices
    assert (q.grade, q.label, choice.value) == (grade, label, parse_kv_policy(policy).spec)
    assert reason in choice.reason


def test_the_search_prices_a_policys_activations_as_estimate_does():
    # the search caches activations per knob set: a bounded policy's (smaller) attention must not reuse full KV's
    l31 = load_model("llama-3.1-8b")
    result = search(l31, load_gpu("l4"), Workload(ctx_tokens=131072), SearchLimits(
        max_gpus=1, allow_dms=False, fixed_weights="bf16", fixed_kv_dtype="bf16", host_memory_bytes=0, keep_dominated=True,
        kv_policies=(parse_kv_policy("window:4096,sinks:4"), parse_kv_policy("budget:4096"))))
    assert any(c.plan.kv_policy is not None for c in result.plans)
    for c in result.plans:
        est = estimate(l31, load_gpu("l4"), c.workload, c.plan)
        assert (c.per_gpu.activation_bytes, c.per_gpu.total_bytes) == (est.per_gpu.activation_bytes, est.per_gpu.total_bytes)


def test_fit_ranks_a_policy_that_keeps_the_whole_context_as_lossless():
    result = search(L8, H100, Workload(ctx_tokens=4096), SearchLimits(max_gpus=1, allow_dms=False, fixed_weights="bf16", fixed_kv_dtype="bf16",
                                                                       kv_policies=(parse_kv_policy("window:4096,sinks:4"),)))
    assert {c.quality.label for c in result.plans} == {"lossless"}


def test_fit_searches_named_policies_only():
    l31 = load_model("llama-3.1-8b")
    l4 = load_gpu("l4")
    work = Workload(ctx_tokens=131072)
    base = dict(max_gpus=1, host_memory_bytes=0, allow_dms=False, fixed_weights="bf16", fixed_kv_dtype="bf16")
    assert search(l31, l4, work, SearchLimits(**base)).plans == ()  # 16 GiB of KV + 15 GiB of weights > 22 GiB
    policy = WindowPolicy(window_tokens=4096, sink_tokens=4)
    found = search(l31, l4, work, SearchLimits(**base, kv_policies=(policy, BudgetPolicy(budget_tokens=4096))))
    assert [c.plan.kv_policy for c in found.plans] == [policy]  # budget needs the unchunked 128k prefill: it does not fit
    assert found.plans[0].plan.prefill_chunk_tokens == 2048


def test_fit_refuses_an_episodic_store_larger_than_host_memory():
    limits = SearchLimits(max_gpus=1, host_memory_bytes=16 * GIB, kv_policies=(EpisodicPolicy(host_bytes=64 * GIB, read_tokens=2048),))
    with pytest.raises(InputError, match=r"the episodic store \(64.00 GiB\) exceeds --host-mem \(16.00 GiB\)"):
        search(L8, H100, Workload(ctx_tokens=4096), limits)


def test_plan_file_round_trip(tmp_path: Path):
    for policy in ("window:4096,sinks:4", "budget:2048", "slots:64,window:512", "episodic:64GiB,read:2k"):
        plan = Plan(kv_policy=parse_kv_policy(policy), prefill_chunk_tokens=2048)
        est = estimate(L8, H100, Workload(ctx_tokens=8192), plan)
        path = tmp_path / "p.yaml"
        path.write_text(plan_yaml(inference_plan_file("llama-3-8b", "h100", est, "high", 1.0), path))
        assert load_plan_file(path).plan == plan


def _export(policy: str, engine: str, ctx: int = 32768, batch: int = 2):
    plan = Plan(kv_policy=parse_kv_policy(policy), prefill_chunk_tokens=2048)
    return EXPORTERS[engine](estimate(L8, H100, Workload(ctx_tokens=ctx, batch_size=batch), plan))


def test_llamacpp_realises_the_window_with_context_shift():
    e = _export("window:4096,sinks:4", "llamacpp")
    assert e.unrealisable == ()
    assert e.command.split(" \\\n    ")[:6] == ["llama-server -m llama-3-8b-BF16.gguf", "-c 8200", "-np 2", "-ngl 33",
                                               "--context-shift", "--keep 4"]
    assert ("--kv-policy window:4096,sinks:4: each slot holds 4100 tokens; when it fills, llama.cpp keeps the first 4 (--keep) "
            "and discards half of the rest, so the recent window is 2048..4096 tokens, not always 4096; it shifts only while "
            "generating: a prompt of 4100 tokens or more is refused (HTTP 400, ggml-org/llama.cpp#17284)") in e.notes


@pytest.mark.parametrize("policy, engine, line", [
    ("window:4096,sinks:4", "vllm", "--kv-policy window:4096,sinks:4 (vLLM has no attention-sink eviction (StreamingLLM) and keeps "
     "a sliding window only where the model's config declares one; the KV cache will hold every token, more than planned)"),
    ("window:4096,sinks:4", "hf", "--kv-policy window:4096,sinks:4 (transformers has no attention-sink eviction (StreamingLLM); "
     "transformers 5.x ships no sink cache (SinkCache left the library in 4.53; the Hub port transformers-community/sink_cache "
     "targets 4.52); the KV cache will hold every token, more than planned)"),
    ("budget:2048", "sglang", "--kv-policy budget:2048 (SGLang has no score-based eviction (H2O / SnapKV patch transformers' "
     "attention in their reference code); the KV cache will hold every token, more than planned)"),
    ("budget:2048", "llamacpp", "--kv-policy budget:2048 (llama.cpp has no score-based eviction (H2O / SnapKV patch transformers' "
     "attention in their reference code); the KV cache will hold every token, more than planned)"),
    ("slots:64,window:512", "vllm", "--kv-policy slots:64,window:512 (vLLM has no associative-memory module (CAMELoT is research "
     "code); the KV cache will hold every token, more than planned)"),
    ("episodic:1GiB,read:512", "hf", "--kv-policy episodic:1073741824,read:512 (transformers has no external episodic memory "
     "(Larimar needs its memory-conditioned model); the KV cache will hold every token, more than planned)"),
])
def test_exports_name_what_they_cannot_realise(policy, engine, line):
    e = _export(policy, engine)
    assert e.unrealisable == (line,)
    assert f"# NOT REALISED by {engine}: {line}" in e.render()
    if engine == "llamacpp":
        assert "-c 65536" in e.command and "--context-shift" not in e.command
