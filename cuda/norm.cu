// Row-wise and elementwise kernels: embedding lookup, RMS norms (plain, and fused with the residual
// add and the layer scale), soft-capping and GeGLU.
//
// Layouts: activations f32 row-major [n_rows][dim]. One block of kRowThreads threads per row for the
// row kernels (dim is 256..15360 here: each thread handles dim / 256 elements, a block-wide reduction
// gives the sum of squares); a grid-stride loop for the elementwise kernels. Sums are f32 (the CPU
// reference sums in double; the difference is ~1e-7 relative, far inside every tolerance).
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/ops.h"
#include "cuda/row_reduce.cuh"
#include "model/activations.h"
#include "quant/formats.h"

namespace gemma4::cuda {
namespace {


__device__ float rms_scale(const float* x, int dim, float eps) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < dim; i += kRowThreads) s += x[i] * x[i];
    const float mean = block_sum(s) / static_cast<float>(dim);
    return 1.0f / sqrtf(mean + eps);
}

__global__ void rms_norm_kernel(const float* x, const float* weight, int dim, float eps, float* out) {
    const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
    float* o = out + static_cast<size_t>(blockIdx.x) * dim;
    const float s = rms_scale(xr, dim, eps);
    for (int i = threadIdx.x; i < dim; i += kRowThreads) o[i] = weight ? (xr[i] * s) * weight[i] : xr[i] * s;
}

__global__ void add_rms_norm_kernel(float* x, const float* a, const float* weight, int dim, float eps, float scale) {
    float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
    const float* ar = a + static_cast<size_t>(blockIdx.x) * dim;
    const float s = rms_scale(ar, dim, eps);
    for (int i = threadIdx.x; i < dim; i += kRowThreads) {
        const float y = xr[i] + (ar[i] * s) * weight[i];
        xr[i] = scale == 1.0f ? y : y * scale;
    }
}

__global__ void softcap_kernel(float* x, int64_t n, float cap) {
    const float inv = 1.0f / cap;  // as the CPU: scale by 1/cap, tanh, scale by cap
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        x[i] = tanhf(x[i] * inv) * cap;
    }
}

__global__ void geglu_kernel(const float* gate, const float* up, int64_t n, float* out) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        out[i] = gelu_tanh(gate[i]) * up[i];
    }
}

// One block per token: dequantize row ids[t] block by block and scale it.
template <class Traits>
__global__ void embed_kernel(const uint8_t* table, size_t row_bytes, const int32_t* ids, int64_t d_model, float scale,
                             float* out) {
    using Block = typename Traits::block_type;
    const auto* row = reinterpret_cast<const Block*>(table + static_cast<size_t>(ids[blockIdx.x]) * row_bytes);
    float* o = out + static_cast<size_t>(blockIdx.x) * d_model;
    const int64_t n_blocks = d_model / Traits::block_elems;
    for (int64_t b = threadIdx.x; b < n_blocks; b += blockDim.x) {
        float y[Traits::block_elems];
        Traits::dequantize_block(row[b], y);
        for (int j = 0; j < Traits::block_elems; ++j) o[b * Traits::block_elems + j] = y[j] * scale;
    }
}

cudaStream_t stream_of(Context& ctx) { return static_cast<cudaStream_t>(ctx.stream()); }

}  // namespace

void embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out, Context& ctx) {
    if (n_tokens <= 0) return;
    visit_quant_type(table.type, [&](auto traits) {
        using Traits = decltype(traits);
        // Small blocks (plain types) get more threads per row; a K-quant row of 3840 has 15 blocks.
        const int threads = Traits::block_elems == 1 ? kRowThreads : kWarpSize;
        embed_kernel<Traits><<<n_tokens, threads, 0, stream_of(ctx)>>>(static_cast<const uint8_t*>(table.data), table.row_bytes,
                                                                         ids, table.d_in, scale, out);
    });
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out, Context& ctx) {
    if (n_rows <= 0) return;
    rms_norm_kernel<<<n_rows, kRowThreads, 0, stream_of(ctx)>>>(x, weight, dim, eps, out);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps, float scale, Context& ctx) {
    if (n_tokens <= 0) return;
    add_rms_norm_kernel<<<n_tokens, kRowThreads, 0, stream_of(ctx)>>>(x, a, weight, dim, eps, scale);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void softcap(float* x, int64_t n, float cap, Context& ctx) {
    if (n <= 0) return;
    softcap_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(x, n, cap);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void geglu(const float* gate, const float* up, int64_t n, float* out, Context& ctx) {
    if (n <= 0) return;
    geglu_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(gate, up, n, out);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace gemma4::cuda
