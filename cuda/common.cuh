// Shared CUDA helpers: error checks that throw gemma4::Error, and named hardware constants.
// Included by every cuda/*.cu file (never by public headers).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "gemma4/error.h"

namespace gemma4::cuda {

inline constexpr int kWarpSize = 32;

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line);

/// Throws Error(device_error) (or out_of_memory for allocation failures) naming the call and the place.
#define GEMMA4_CUDA_CHECK(call)                                                                   \
    do {                                                                                          \
        cudaError_t gemma4_err_ = (call);                                                         \
        if (gemma4_err_ != cudaSuccess) ::gemma4::cuda::throw_cuda_error(gemma4_err_, #call, __FILE__, __LINE__); \
    } while (0)

/// Checks the last launch (configuration errors surface here; execution errors at the next sync).
#define GEMMA4_CUDA_CHECK_LAUNCH() GEMMA4_CUDA_CHECK(cudaGetLastError())

inline int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

/// Grid-stride elementwise kernels: threads per block, and at most this many blocks (the loop covers the rest).
inline constexpr int kElementwiseThreads = 256;
inline constexpr int kMaxElementwiseBlocks = 4096;
inline int elementwise_blocks(int64_t n) {
    const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
    return static_cast<int>(blocks < 1 ? 1 : blocks > kMaxElementwiseBlocks ? kMaxElementwiseBlocks : blocks);
}

}  // namespace gemma4::cuda
