// The multimodal projector's row kernels (spec §5.3): LayerNorm over the 6912 values of a 48x48 RGB
// patch and over the projector's hidden width, the patch-embedding bias, and the 2-D position
// embedding (one table row added per patch and axis).
//
// Layouts: activations f32 row-major [n_rows][dim]; weight, bias: [dim]; table: [rows][dim]; ids: [n_rows].
// layer_norm: one block of kRowThreads threads per row; two block-wide reductions (the mean, then the sum
//   of squared deviations, reading the row twice: it is at most 27 KiB and stays in L1/L2), so the
//   variance does not suffer the cancellation of E[x^2] - mean^2; then, in the CPU's order,
//   out = ((x - mean) * (1 / sqrtf(var + eps))) * weight + bias. Sums are f32 trees (the CPU sums in
//   double): ~1e-7 relative, far inside every tolerance.
// add_bias / add_rows: a grid-stride loop over the n_rows * dim elements.
// Rows are independent: every projector token is computed on its own (no attention between patches).
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/row_reduce.cuh"
#include "cuda/projector_ops.h"

namespace gemma4::cuda {
namespace {


__global__ void layer_norm_rows_kernel(const float* x, const float* weight, const float* bias, int dim, float eps, float* out) {
    const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
    float* o = out + static_cast<size_t>(blockIdx.x) * dim;
    float s = 0.0f;
    for (int i = threadIdx.x; i < dim; i += kRowThreads) s += xr[i];
    const float mean = block_sum(s) / static_cast<float>(dim);
    float s2 = 0.0f;
    for (int i = threadIdx.x; i < dim; i += kRowThreads) {
        const float d = xr[i] - mean;
        s2 += d * d;
    }
    const float var = block_sum(s2) / static_cast<float>(dim);
    const float scale = 1.0f / sqrtf(var + eps);
    // x and out may alias: each element is read (above, and here) by the thread that writes it, and all
    // reads of the reductions finished at block_sum's barrier.
    for (int i = threadIdx.x; i < dim; i += kRowThreads) o[i] = ((xr[i] - mean) * scale) * weight[i] + bias[i];
}

__global__ void add_bias_elementwise_kernel(float* x, const float* bias, int64_t n, int dim) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        x[i] += bias[i % dim];
    }
}

__global__ void add_rows_elementwise_kernel(float* x, const float* table, const int32_t* ids, int64_t n, int dim) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = i / dim;
        x[i] += table[static_cast<int64_t>(ids[r]) * dim + (i - r * dim)];
    }
}

cudaStream_t stream_of(Context& ctx) { return static_cast<cudaStream_t>(ctx.stream()); }

}  // namespace

void layer_norm(const float* x, const float* weight, const float* bias, int n_rows, int dim, float eps, float* out,
                Context& ctx) {
    if (n_rows <= 0 || dim <= 0) return;
    layer_norm_rows_kernel<<<n_rows, kRowThreads, 0, stream_of(ctx)>>>(x, weight, bias, dim, eps, out);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void add_bias(float* x, const float* bias, int n_rows, int dim, Context& ctx) {
    const int64_t n = static_cast<int64_t>(n_rows) * dim;
    if (n <= 0) return;
    add_bias_elementwise_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(x, bias, n, dim);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void add_rows(float* x, const float* table, const int32_t* ids, int n_rows, int dim, Context& ctx) {
    const int64_t n = static_cast<int64_t>(n_rows) * dim;
    if (n <= 0) return;
    add_rows_elementwise_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(x, table, ids, n, dim);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace gemma4::cuda
