"""llama.cpp on several GPUs (oomplan/engines/llamacpp/devices.py): the split points and layer placement of
ggml-org/llama.cpp@00342301 src/llama-model.cpp load_tensors with the first offloaded layer of ggml-org/llama.cpp#18148
(i_gpu_start = max(n_layer + 1 - ngl, 0); 00342301 predates it), checked by hand; each GPU priced on its own."""
from dataclasses import replace

import pytest

from oomplan.engines.llamacpp.constants import llamacpp_constants
from oomplan.engines.llamacpp.devices import (
    RowMatrix, box_devices, box_split, f32, free_bytes, layer_devices, row_rounding, row_split, row_split_starts,
    split_matrix_bytes, split_points,
)
from oomplan.engines.llamacpp.gguf import gguf_sizes
from oomplan.engines.llamacpp.predict import predict_llamacpp
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.engines.llamacpp.split import gpu_split
from oomplan.errors import InputError
from oomplan.profiles import load_gpu, load_model

MIB = 2**20
LLAMA8 = load_model("llama-3.1-8b")
R4090, R5090 = load_gpu("rtx-4090"), load_gpu("rtx-5090")


def test_split_points_are_normalised_prefix_sums():
    assert split_points((3.0, 1.0)) == (0.75, 1.0)
    assert split_points((1.0, 1.0, 2.0)) == (0.25, 0.5, 1.0)
    assert split_points((0.1, 0.2)) == (f32(f32(0.1) / f32(f32(0.1) + f32(0.2))), 1.0)  # float32 as in C


def test_layers_go_by_upper_bound_of_il_over_active_layers():
    # -ngl 33 of 32 layers, 3:1: il/33 < 0.75 for il <= 24 -> GPU 0 holds 0..24, GPU 1 holds 25..31 and the output layer (il 32)
    assert layer_devices(32, 33, (0.75, 1.0)) == (0,) * 25 + (1,) * 8
    # an even split: il/33 < 0.5 for il <= 16
    assert layer_devices(32, 33, (0.5, 1.0)) == (0,) * 17 + (1,) * 16
    # -ngl 10: i_gpu_start = 32 + 1 - 10 = 23 (the output layer first, llama.cpp#18148); (il - 23)/10 < 0.5 for il
    # 23..27; 28..31 and the output layer (il 32) on GPU 1
    assert layer_devices(32, 10, (0.5, 1.0)) == (None,) * 23 + (0,) * 5 + (1,) * 5


def test_default_split_is_free_memory():
    # 5090: 33,668,857,856 - 512 MiB context = 33,131,986,944 free; 4090: 25,386,352,640 - 512 MiB = 24,849,481,728
    assert (free_bytes(R5090), free_bytes(R4090)) == (33_131_986_944, 24_849_481_728)
    p = split_points((33_131_986_944.0, 24_849_481_728.0))
    assert 0.5714 < p[0] < 0.5715  # 81 layers of the 70B: il/81 < 0.5714 for il <= 46 -> 47 on the 5090
    assert layer_devices(80, 81, p).count(0) == 47


def test_each_gpu_holds_its_layers_weights_kv_and_compute():
    s = LlamaCppGiven(ctx_tokens=8192, tensor_split=(3.0, 1.0))
    sizes = gguf_sizes(LLAMA8, "Q4_K_M")
    box = box_devices(R4090, s)
    assert box == (R4090, R4090)  # --gpu rtx-4090 with two shares: two of that card
    split = box_split(LLAMA8, sizes, s, box, 33)
    g0, g1 = split.devices
    assert (g0.layers, g1.layers, g0.output, g1.output) == (tuple(range(25)), tuple(range(25, 32)), False, True)
    # KV: 8,192 cells x 8 KV heads x 128 x 2 bytes (f16) x 2 (K, V) = 32 MiB a layer
    assert (g0.kv_bytes, g1.kv_bytes) == (25 * 32 * MIB, 7 * 32 * MIB)
    # compute, flash attention on: GPU 0 one layer = 6 x 4096 x 512 x 4 (scratch) + 2 x 14336 x 512 x 4 = 48 + 56 MiB;
    # GPU 1 holds the output layer: logits (128,256 + 4,096) x 512 x 4 bytes = 258.5 MiB
    assert (g0.compute_bytes, g1.compute_bytes) == (104 * MIB, int(258.5 * MIB))
    assert g0.weights_bytes == sum(sizes.layer_bytes[:25])
    assert g1.weights_bytes == sum(sizes.layer_bytes[25:]) + sizes.output_bytes
    one = gpu_split(LLAMA8, sizes, replace(s, tensor_split=()), 33)
    assert g0.weights_bytes + g1.weights_bytes == one.weights_gpu_bytes and split.weights_host_bytes == sizes.token_embd_bytes
    assert g0.total_bytes == g0.weights_bytes + 800 * MIB + 104 * MIB + 512 * MIB


def test_row_split_starts_and_rounding():
    # ggml_backend_cuda_split_buffer_type: each device's start, the shares before it over their sum
    assert row_split_starts((R4090, R4090), LlamaCppGiven(tensor_split=(3.0, 1.0))) == (0.0, 0.75)
    assert row_split_starts((R4090,) * 3, LlamaCppGiven(tensor_split=(1.0, 1.0, 2.0))) == (0.0, 0.25, 0.5)
    # no -ts: default_tensor_split over the total memory, 33,668,857,856 B (5090) and 25,386,352,640 B (4090), float32
    total = 33_668_857_856 + 25_386_352_640
    assert row_split_starts((R5090, R4090), LlamaCppGiven()) == (0.0, f32(f32(33_668_857_856.0) / f32(float(total))))
    c = llamacpp_constants()
    # get_mmq_y_host: 128 rows on Volta+ and CDNA; 64 on Pascal; the largest over devices with a share; a device with
    # an empty share (start 0.5 = next start 0.5) does not count
    pascal = R4090.model_copy(update={"architecture": "pascal"})
    assert row_rounding((R4090, R4090), (0.0, 0.5), c) == 128
    assert row_rounding((pascal, pascal), (0.0, 0.5), c) == 64
    assert row_rounding((pascal, R4090), (0.0, 0.5), c) == 128
    assert row_rounding((R4090, pascal), (0.0, 1.0), c) == 128  # the Pascal card has no rows
    assert row_rounding((pascal, R4090, pascal), (0.0, 0.5, 0.5), c) == 64  # the 4090's share is empty
    assert row_rounding((load_gpu("mi300x"),) * 2, (0.0, 0.5), c) == 128
    with pytest.raises(InputError, match="no row-split buffer in llama.cpp"):
        row_rounding((load_gpu("apple-m4-32g"),) * 2, (0.0, 0.5), c)


def test_row_split_rounds_each_boundary_down_to_the_tile():
    # 3:1 of the 128,256-row output matrix: 128256 x 0.75 = 96,192 -> 96,192 - 96,192 % 128 (= 64) = 96,128 on GPU 0
    assert row_split(128256, (0.0, 0.75), 128) == [(0, 96128), (96128, 128256)]
    assert row_split(4096, (0.0, 0.75), 128) == [(0, 3072), (3072, 4096)]  # q_proj: 3,072 is a multiple of 128
    # three GPUs 1:1:2 over 1,000 rows: 250 -> 128, 500 -> 384; the last one ends at 1,000
    assert row_split(1000, (0.0, 0.25, 0.5), 128) == [(0, 128), (128, 384), (384, 1000)]
    c = llamacpp_constants()
    # output.weight at Q6_K: 4096/256 x 210 = 3,360 bytes a row; no padding (4096 % 512 == 0)
    out = RowMatrix(128256, 4096, "Q6_K", 128256 * 3360)
    assert split_matrix_bytes(out, (0.0, 0.75), 128, 1, c) == [96128 * 3360, 32128 * 3360]
    # Llama 2 7B ffn_down: ne0 11,008 = 21.5 x 512, so each GPU also allocates ggml_row_size(Q4_K, 256) = 144 bytes
    # for the padded last row; a row is 11008/256 x 144 = 6,192 bytes
    down = RowMatrix(4096, 11008, "Q4_K", 4096 * 6192)
    assert split_matrix_bytes(down, (0.0, 0.5), 128, 0, c) == [2048 * 6192 + 144, 2048 * 6192 + 144]
    # the layer's own GPU would get no rows (1024 x 0.000999 = 1 -> 0): supports_op refuses, the matrix stays whole
    assert split_matrix_bytes(RowMatrix(1024, 4096, "Q4_K", 1024 * 2304), (0.0, f32(1 / 1001)), 128, 0, c) is None


def test_row_split_shares_matrix_rows_and_keeps_kv_with_the_layer():
    s = LlamaCppGiven(ctx_tokens=8192, tensor_split=(1.0, 1.0), split_mode="row")
    sizes = gguf_sizes(LLAMA8, "Q4_K_M")
    row = box_split(LLAMA8, sizes, s, (R4090, R4090), 33)
    layer = box_split(LLAMA8, sizes, replace(s, split_mode="layer"), (R4090, R4090), 33)
    assert [d.kv_bytes for d in row.devices] == [d.kv_bytes for d in layer.devices] == [17 * 32 * MIB, 15 * 32 * MIB]
    assert sum(d.weights_bytes for d in row.devices) == sum(d.weights_bytes for d in layer.devices)
    # every matrix (the output one too: 128,256 rows -> 64,128 each) is halved, whatever the layers: the GPUs differ
    # only by their layers' norms (17 vs 15 layers x 2 x 16 KiB) and output_norm (16 KiB)
    w0, w1 = (d.weights_bytes for d in row.devices)
    assert w0 - w1 == (17 - 15) * 2 * 4096 * 4 - 4096 * 4
    # 3:1: the output matrix's 64-row rounding (96,128 of 128,256 rows on GPU 0, not 96,192) moves 64 x 3,360 bytes
    three = box_split(LLAMA8, sizes, replace(s, tensor_split=(3.0, 1.0)), (R4090, R4090), 33)
    t0, t1 = (d.weights_bytes for d in three.devices)
    norms0, norms1 = 25 * 2 * 4096 * 4, 7 * 2 * 4096 * 4 + 4096 * 4  # 3:1 layers: 25 on GPU 0, 7 + output on GPU 1
    matrices = sum(sizes.layer_bytes) - 32 * 2 * 4096 * 4  # every layer matrix splits 3:1 exactly (multiples of 128)
    assert t0 == matrices * 3 // 4 + 96128 * 3360 + norms0
    assert t1 == matrices // 4 + 32128 * 3360 + norms1
    assert three.weights_host_bytes == sizes.token_embd_bytes


def test_row_split_leaves_a_matrix_whole_where_its_gpu_gets_no_rows():
    # -ts 1,1000: GPU 0 starts no row before 1024 x 1/1001 rounds to 0, so layer 0 (the only one on GPU 0: il/33 <
    # 1/1001 for il 0) keeps its matrices whole there; GPU 0 still gets 128 rows of the output matrix on GPU 1
    # (128,256 x 1/1001 = 128.1 -> 128)
    s = LlamaCppGiven(ctx_tokens=8192, tensor_split=(1.0, 1000.0), split_mode="row")
    sizes = gguf_sizes(LLAMA8, "Q4_K_M")
    row = box_split(LLAMA8, sizes, s, (R4090, R4090), 33)
    g0, g1 = row.devices
    assert g0.layers == (0,)
    assert g0.weights_bytes == sizes.layer_bytes[0] + 128 * 3360
    assert g1.weights_bytes == sum(sizes.layer_bytes[1:]) + sizes.output_bytes - 128 * 3360


def test_split_mode_none_is_the_main_gpu_alone():
    s = LlamaCppGiven(ctx_tokens=8192, split_mode="none", main_gpu=1, devices=(R5090, R4090))
    p = predict_llamacpp(LLAMA8, R5090, s)
    assert p.num_gpus == 1 and p.gpu == R4090
    assert p.gpu_total_bytes == predict_llamacpp(LLAMA8, R4090, LlamaCppGiven(ctx_tokens=8192)).gpu_total_bytes


def test_the_fullest_gpu_is_the_table_and_an_oom_names_its_gpu():
    model = load_model("llama-3.1-70b")
    p = predict_llamacpp(model, R5090, LlamaCppGiven(ctx_tokens=16384, devices=(R5090, R4090)))
    assert p.ok and p.num_gpus == 2 and p.gpu == R4090 and p.box == (R5090, R4090)
    bad = predict_llamacpp(model, R5090, LlamaCppGiven(ctx_tokens=16384, devices=(R5090, R4090), tensor_split=(1.0, 3.0),
                                                       n_gpu_layers=81))
    assert not bad.starts and bad.failures[0].startswith("CUDA out of memory on GPU 1 (rtx-4090): it needs ")


@pytest.mark.parametrize(("given", "message"), [
    (LlamaCppGiven(tensor_split=(1.0, 1.0, 1.0), devices=(R5090, R4090)),
     "--tensor-split: 3 shares for 2 GPUs (rtx-5090+rtx-4090); accepted: one share per GPU, e.g. 1,1"),
    (LlamaCppGiven(tensor_split=(-1.0, 2.0)), "--tensor-split: -1,2 has a negative share; accepted: shares >= 0 with a positive sum"),
    (LlamaCppGiven(tensor_split=(0.0, 0.0)), "--tensor-split: 0,0 sums to 0; accepted: shares >= 0 with a positive sum"),
    (LlamaCppGiven(main_gpu=2, devices=(R5090, R4090)), "--main-gpu: 2 is out of range for 2 GPU(s); accepted: 0..1"),
    (LlamaCppGiven(main_gpu=1), "--main-gpu: 1 is out of range for 1 GPU(s); accepted: 0..0"),
])
def test_bad_placements_are_refused(given, message):
    with pytest.raises(InputError) as e:
        box_devices(R4090, given)
    assert str(e.value).startswith(message)


def test_plans_map_to_llamacpp_split_modes():
    from oomplan.engines.llamacpp.devices import default_split
    from oomplan.engines.llamacpp.flags import settings_for_plan
    from oomplan.engines.options import EngineOptions
    from oomplan.specs.plan import Plan, Workload

    w = Workload(ctx_tokens=4096)
    assert settings_for_plan(Plan(pipeline_parallel=2), w, EngineOptions()).split_mode == "layer"
    row = settings_for_plan(Plan(tensor_parallel=2, tensor_split=(3.0, 1.0)), w, EngineOptions())
    assert (row.split_mode, row.tensor_split, row.num_gpus) == ("row", (3.0, 1.0), 2)
    assert settings_for_plan(Plan(), w, EngineOptions(devices=(R5090, R4090))).split_mode == "none"  # GPU 0 of the box
    with pytest.raises(InputError, match="TP 2 x PP 2 has no llama.cpp split"):
        settings_for_plan(Plan(tensor_parallel=2, pipeline_parallel=2), w, EngineOptions())
    # free 33,131,986,944 B / 2^30 = 30.857 and 24,849,481,728 B / 2^30 = 23.143
    assert default_split((R5090, R4090)) == (30.86, 23.14)
    with pytest.raises(ValueError, match="tensor_split has 1 shares for 2 GPU"):
        Plan(pipeline_parallel=2, tensor_split=(1.0,))


def test_fit_on_a_box_fills_the_gpus_back_to_front():
    """common/fit.cpp (llama.cpp@6d0892ba) step 3 for a dense model: the last GPU first, each with the most layers that
    leave it 1024 MiB free; it sets -ngl to their sum and --tensor-split to the layers per GPU."""
    from oomplan.engines.llamacpp.box_fit import fit_box

    c = llamacpp_constants()
    model, box = load_model("llama-3.1-70b"), (R4090, R4090)
    sizes = gguf_sizes(model, "Q4_K_M")
    s = LlamaCppGiven(ctx_tokens=32768)
    # as given (-ngl all, split by free memory) GPU 0 would need more than its 24,849,481,728 - 1 GiB
    fitted = fit_box(model, sizes, s, box, c)
    assert fitted.layers_per_gpu == (36, 35) and fitted.n_gpu_layers == 71
    target = 24_849_481_728 - 1_073_741_824  # free (the card less its 512 MiB context) - --fit's margin
    kv, logits, layer_compute = 32768 * 8 * 128 * 2 * 2, (128256 + 8192) * 512 * 4, 208 * MIB  # per layer; f32 logits
    lb = sizes.layer_bytes
    # GPU 1: the output layer (861,913,088 B) + the last 34 repeating layers (46..79) fit; one more (45) does not
    gpu1 = sum(lb[46:]) + sizes.output_bytes + 34 * kv + logits
    assert gpu1 <= target < gpu1 + lb[45] + kv
    # GPU 0 then: layers 10..45 fit, 9..45 do not
    gpu0 = sum(lb[10:46]) + 36 * kv + layer_compute
    assert gpu0 <= target < gpu0 + lb[9] + kv
    p = predict_llamacpp(model, R4090, replace(s, devices=box))
    assert p.starts and dict(p.settings)["-ngl"] == "71" and dict(p.settings)["-ts"] == "36,35"
    assert p.gpu_total_bytes == max(gpu0, gpu1) + 512 * MIB  # the fuller GPU, with its CUDA context
    assert any(n.startswith("--fit (on by default) set -ngl 71 --tensor-split 36,35") for n in p.notes)


def test_fit_on_a_box_leaves_given_flags_or_refuses():
    from oomplan.engines.llamacpp.box_fit import fit_box

    c = llamacpp_constants()
    model, box = load_model("llama-3.1-70b"), (R4090, R4090)
    sizes = gguf_sizes(model, "Q4_K_M")
    assert fit_box(model, sizes, LlamaCppGiven(ctx_tokens=8192), box, c).kept_because == "every GPU keeps --fit's 1024 MiB free"
    big = LlamaCppGiven(ctx_tokens=32768)
    assert fit_box(model, sizes, replace(big, n_gpu_layers=81), box, c).kept_because.startswith("-ngl 81 was set")
    assert fit_box(model, sizes, replace(big, tensor_split=(1.0, 1.0)), box, c).kept_because.startswith("--tensor-split was set")
    assert fit_box(model, sizes, replace(big, split_mode="row"), box, c).kept_because.startswith("--split-mode row")
    # fit.cpp gives up: llama.cpp loads -ngl 81 as given and runs out of memory on GPU 0
    p = predict_llamacpp(model, R4090, replace(big, devices=box, n_gpu_layers=81))
    assert not p.starts and p.failures[-1] == ("--fit leaves the flags as given: -ngl 81 was set (fit.cpp: 'n_gpu_layers "
                                               "already set by user, abort')")
    with pytest.raises(InputError, match="-c 0 with --fit on 2 GPUs"):
        fit_box(model, sizes, LlamaCppGiven(ctx_tokens=0), box, c)
    mixtral = load_model("mixtral-8x7b")
    with pytest.raises(InputError, match="is a MoE model, for which llama.cpp moves the experts of single layers"):
        fit_box(mixtral, gguf_sizes(mixtral, "Q4_K_M"), LlamaCppGiven(ctx_tokens=131072), box, c)
    assert predict_llamacpp(model, R4090, replace(big, devices=box, fit=False)).starts is False  # --fit off: as given


def test_fit_on_one_gpu_follows_fit_cpp():
    """One device takes fit.cpp's steps too: tensor overrides make it give up, a MoE model or -c 0 that needs a
    re-plan is refused, a dense model gets the most layers that keep the margin of the free memory."""
    from oomplan.engines.llamacpp.box_fit import fit_one_gpu

    c = llamacpp_constants()
    mixtral = load_model("mixtral-8x7b")  # Q4_K_M 26 GiB: not on a 24 GiB card whole
    sizes = gguf_sizes(mixtral, "Q4_K_M")
    with pytest.raises(InputError, match="--fit on one GPU: mixtral-8x7b is a MoE model, for which llama.cpp moves the experts"):
        fit_one_gpu(mixtral, sizes, LlamaCppGiven(ctx_tokens=8192), R4090, c)
    # --n-cpu-moe sets tensor overrides: fit.cpp gives up and llama.cpp loads every layer, as given
    assert fit_one_gpu(mixtral, sizes, LlamaCppGiven(ctx_tokens=8192, n_cpu_moe=16), R4090, c) == 33
    assert fit_one_gpu(mixtral, sizes, LlamaCppGiven(ctx_tokens=8192), load_gpu("h100"), c) == 33  # fits: no change
    with pytest.raises(InputError, match="-c 0 with --fit on one GPU"):
        fit_one_gpu(load_model("llama-3.1-70b"), gguf_sizes(load_model("llama-3.1-70b"), "Q4_K_M"), LlamaCppGiven(ctx_tokens=0), R4090, c)
    p = predict_llamacpp(mixtral, R4090, LlamaCppGiven(ctx_tokens=8192, n_cpu_moe=16))
    assert dict(p.settings)["-ngl"] == "33" and dict(p.settings)["--n-cpu-moe"] == "16"
