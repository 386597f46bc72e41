// Block-wide reductions for the row kernels (one block of kRowThreads threads per row), shared by
// cuda/norm.cu, cuda/projector_ops.cu and the x prologue of cuda/gemv_q8.cu (blocks of 2 to 8 warps).
#pragma once

#include "cuda/common.cuh"

namespace gemma4::cuda {

inline constexpr int kRowThreads = 256;  // threads per row: 8 warps

/// Sum of `v` over the block (every thread gets the total); the block is whole warps, at most kRowThreads
/// threads. f32 tree: warp shuffles, then the warp sums in order. Contains two barriers: call it from every
/// thread of the block.
__device__ inline float block_sum(float v) {
    __shared__ float warp_sums[kRowThreads / kWarpSize];
    v = warp_sum(v);
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x) / kWarpSize; ++w) total += warp_sums[w];
    __syncthreads();  // warp_sums is reused by the next call
    return total;
}

}  // namespace gemma4::cuda
