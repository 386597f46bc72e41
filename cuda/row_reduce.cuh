// Block-wide reductions for the row kernels (one block of kRowThreads threads per row), shared by
// cuda/norm.cu and cuda/projector_ops.cu.
#pragma once

#include "cuda/common.cuh"

namespace gemma4::cuda {

inline constexpr int kRowThreads = 256;  // threads per row: 8 warps

/// Sum of `v` over the block (every thread gets the total). f32 tree: warp shuffles, then the warp sums
/// in order. Contains two barriers: call it from every thread of the block.
__device__ inline float block_sum(float v) {
    __shared__ float warp_sums[kRowThreads / kWarpSize];
    for (int o = kWarpSize / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < kRowThreads / kWarpSize; ++w) total += warp_sums[w];
    __syncthreads();  // warp_sums is reused by the next call
    return total;
}

}  // namespace gemma4::cuda
