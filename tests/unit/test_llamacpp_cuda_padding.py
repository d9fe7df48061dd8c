"""The CUDA buffer's padded last row of a quantized weight (one GPU, or a GPU of a layer split), by hand from
ggml-org/llama.cpp@f6d77a1b ggml/src/ggml-cuda/ggml-cuda.cu ggml_backend_cuda_buffer_type_get_alloc_size:
  size = ggml_nbytes(t); if ggml_is_quantized(t->type) and ne0 % MATRIX_ROW_PADDING (512) != 0:
  size += ggml_row_size(t->type, 512 - ne0 % 512)
(the row split's ggml_backend_cuda_split_buffer_type_get_alloc_size is tests/unit/test_llamacpp_devices.py's)."""
from dataclasses import replace

from oomplan.engines.llamacpp.constants import llamacpp_constants
from oomplan.engines.llamacpp.gguf import cuda_row_padding_bytes, gguf_sizes, row_bytes
from oomplan.engines.llamacpp.predict import predict_llamacpp
from oomplan.engines.llamacpp.settings import LlamaCppGiven
from oomplan.engines.llamacpp.split import gpu_split
from oomplan.profiles import load_gpu, load_model

C = llamacpp_constants()
QWEN3_MOE = load_model("qwen3-30b-a3b")  # 48 layers, hidden 2048, 128 experts of 768, untied vocab 151,936


def test_the_padded_row_is_one_per_tensor_and_only_for_quantized_types():
    # ffn_down_exps of Qwen3-30B-A3B: ne0 = 768, 768 % 512 = 256 -> 256 weights more = one Q4_K block of 144 bytes
    nbytes = row_bytes("Q4_K", 768 * 2048 * 128)
    assert cuda_row_padding_bytes("Q4_K", 768, 768 * 2048 * 128, nbytes, C) == 144
    assert cuda_row_padding_bytes("Q6_K", 768, 768 * 2048, row_bytes("Q6_K", 768 * 2048), C) == 210
    # Qwen2.5-0.5B's 896-wide rows in Q5_0 (32 per 22 bytes): 512 - 384 = 128 weights = 4 blocks = 88 bytes
    assert cuda_row_padding_bytes("Q5_0", 896, 896 * 896, row_bytes("Q5_0", 896 * 896), C) == 88
    assert cuda_row_padding_bytes("F16", 768, 768 * 2048, 768 * 2048 * 2, C) == 0  # not quantized: no padding
    assert cuda_row_padding_bytes("Q4_K", 4096, 4096 * 4096, row_bytes("Q4_K", 4096 * 4096), C) == 0  # 8 x 512


def test_qwen3_moe_pads_only_its_768_wide_expert_down_projections():
    sizes = gguf_sizes(QWEN3_MOE, "Q4_K_M")
    # Q4_K_M writes ffn_down as Q6_K on the 24 layers use_more_bits picks, Q4_K on the other 24 (src/llama-quant.cpp);
    # every other matrix has ne0 2048 or 4096 (attn_output: 32 heads x 128)
    assert sum(sizes.expert_padding_bytes) == 24 * 210 + 24 * 144 == 8_496
    assert sizes.layer_padding_bytes == sizes.expert_padding_bytes and sizes.output_padding_bytes == 0
    s = LlamaCppGiven(gguf_type="Q4_K_M", ctx_tokens=4096)
    bare = sizes.without_padding()
    full, plain = gpu_split(QWEN3_MOE, sizes, s, 49), gpu_split(QWEN3_MOE, bare, s, 49)
    assert full.weights_gpu_bytes - plain.weights_gpu_bytes == 8_496
    assert full.weights_host_bytes == plain.weights_host_bytes  # the CPU side maps the file's bytes
    # -ngl 11: the output layer and layers 38..47; --n-cpu-moe 40 keeps layers 38 and 39's experts on the CPU
    part = gpu_split(QWEN3_MOE, sizes, replace(s, n_cpu_moe=40), 11)
    assert part.weights_gpu_bytes - gpu_split(QWEN3_MOE, bare, replace(s, n_cpu_moe=40), 11).weights_gpu_bytes == \
        sum(sizes.expert_padding_bytes[40:])


def test_metal_allocates_the_bytes_and_cuda_the_padded_rows():
    qwen05 = load_model("qwen2.5-0.5b")  # hidden 896, MLP 4864, 24 layers, tied embeddings
    sizes = gguf_sizes(qwen05, "Q4_K_M")
    # 896 is not a multiple of 256: Q4_K falls back to Q5_0 (88 bytes of padding, above); attn_v and ffn_down take
    # Q8_0 / Q6_K on the 12 use_more_bits layers (128 weights of Q8_0 = 136 B; 256 of Q6_K = 210 B), else Q5_0 / Q4_K
    # (4864 % 512 = 256: one Q4_K block, 144 B). Per layer: q, k, output, gate, up 5 x 88, then v and down.
    assert sizes.layer_padding_bytes[0] == 5 * 88 + 136 + 210 == 786
    assert sum(sizes.layer_padding_bytes) == 24 * 5 * 88 + 12 * (88 + 136) + 12 * (144 + 210) == 17_496
    assert sizes.output_padding_bytes == 136  # the tied token_embd (Q8_0) loaded again as the output
    s = LlamaCppGiven(gguf_type="Q4_K_M", ctx_tokens=4096, n_gpu_layers=-1)
    cuda = predict_llamacpp(qwen05, load_gpu("rtx-4090"), s)
    metal = predict_llamacpp(qwen05, load_gpu("apple-m4-32g"), s)

    def weights(p):
        return next(i.bytes for i in p.items if i.name.startswith("weights"))

    assert weights(cuda) - weights(metal) == 17_496 + 136
