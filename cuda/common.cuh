// Shared CUDA helpers: error checks that throw gemma4::Error, and named hardware constants.
// Included by every cuda/*.cu file (never by public headers).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include <string>
#include <utility>

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

/// Sum of v over the warp, every lane gets it (xor-shuffle tree).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = kWarpSize / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/// 16 bytes global -> shared, asynchronously (cp.async, sm_80+); src_bytes < 16 reads only that many and
/// zero-fills the rest (0: reads nothing).
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src, int src_bytes = 16) {
    const auto dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(src_bytes) : "memory");
}
/// Closes this thread's group of cp.async copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/// Waits until at most `Pending` of this thread's committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

/// Grid-stride elementwise kernels: threads per block, and at most this many blocks (the loop covers the rest).
inline constexpr int kElementwiseThreads = 256;
inline constexpr int kMaxElementwiseBlocks = 4096;
inline int elementwise_blocks(int64_t n) {
    const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
    return static_cast<int>(blocks < 1 ? 1 : blocks > kMaxElementwiseBlocks ? kMaxElementwiseBlocks : blocks);
}

// ---------------------------------------------------------------------------------------------------
// Programmatic dependent launch (sm_90). A kernel launched with launch_dependent() may be scheduled while
// the kernel before it in the stream is still running, so that its launch, its CTA ramp and whatever it
// can do alone (issuing the loads of its weights) overlap the tail of its predecessor. The contract, for
// every kernel launched that way:
//   - grid_dependency_wait() before it reads anything an earlier kernel (or copy) wrote and before it
//     writes any global memory, on every path of every thread that does either (the wait returns when
//     the predecessor has completed and its writes are visible; completion is transitive down the stream
//     because each kernel waits on its own predecessor before it can complete);
//   - allow_dependents() once it no longer minds its successor's CTAs arriving (we call it first thing:
//     the successor's CTAs then fill whatever the SMs have free and wait there).
// Kernels launched plainly keep the full stream order; both calls are no-ops for them.

__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" :::);
#endif
}

/// Whether the environment variable `name` is set to exactly `value` (the on/off switches of the CUDA
/// backend, read once by their users).
bool env_is(const char* name, const char* value);

/// False when GEMMA4_PDL=0 (every launch_dependent() is then a plain launch: for measuring what it saves).
bool dependent_launch_enabled();

/// kernel<<<grid, block, smem, stream>>>(args...) with the programmatic-stream-serialization attribute
/// (see above): the kernel must follow the contract. Checks the launch.
template <class... Params, class... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args&&... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    config.attrs = attr;
    config.numAttrs = dependent_launch_enabled() ? 1 : 0;
    GEMMA4_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace gemma4::cuda
