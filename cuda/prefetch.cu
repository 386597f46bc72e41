// L2 prefetch of weights that later kernels of the same decode step will read: cuda::prefetch_l2.
//
// Why. A one-token decode step alternates bandwidth-bound matrix-vector products with short, latency-bound
// kernels (attention prepare, flash decoding and its reduction, residual norms) during which DRAM is
// almost idle. Launched on a side stream when such a phase begins, this kernel asks the L2 to fetch the
// weights of the products that follow (the attention output projection, then the first rows of the
// gate/up pair, the rows the fused GEMV reads first), so those bytes move while DRAM would otherwise wait.
//
// How. One thread per 64 KiB piece issues cp.async.bulk.prefetch.L2 (sm_90): a hint with no result, that
// holds no registers or shared memory and writes nothing, so it cannot change any value the model
// computes. Each range is trimmed to whole 16-byte units inside [p, p + bytes) (the instruction's
// alignment rule): no byte outside the ranges is addressed.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/ops.h"
#include "gemma4/error.h"

namespace gemma4::cuda {
namespace {

constexpr uint32_t kPieceBytes = 64u << 10;  // bytes per prefetch instruction
constexpr int kPrefetchThreads = 128;
constexpr int kMaxPrefetchBlocks = 8;

struct PrefetchArgs {
    const char* p[kMaxPrefetchRanges];
    size_t bytes[kMaxPrefetchRanges];       // multiples of 16
    size_t first_piece[kMaxPrefetchRanges + 1];  // prefix sums of the pieces per range
};

__global__ void __launch_bounds__(kPrefetchThreads) prefetch_l2_kernel(const PrefetchArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const size_t total = a.first_piece[kMaxPrefetchRanges];
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        int r = 0;
#pragma unroll
        for (int k = 1; k < kMaxPrefetchRanges; ++k) r += i >= a.first_piece[k];
        // Selects, not a run-time index into the parameter arrays (that would copy them to local memory).
        const char* p = a.p[0];
        size_t bytes = a.bytes[0], first = a.first_piece[0];
#pragma unroll
        for (int k = 1; k < kMaxPrefetchRanges; ++k) {
            if (r == k) p = a.p[k], bytes = a.bytes[k], first = a.first_piece[k];
        }
        const size_t off = (i - first) * kPieceBytes;
        const auto size = static_cast<uint32_t>(min(static_cast<size_t>(kPieceBytes), bytes - off));
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p + off), "r"(size) : "memory");
    }
#endif
}

}  // namespace

void prefetch_l2(const ByteRange* ranges, int count, void* stream) {
    if (count < 0 || count > kMaxPrefetchRanges) throw Error(ErrorCode::invalid_argument, "prefetch_l2: 0 to 4 ranges");
    PrefetchArgs a{};
    size_t pieces = 0;
    for (int k = 0; k < kMaxPrefetchRanges; ++k) {
        a.first_piece[k] = pieces;
        if (k >= count || ranges[k].p == nullptr) continue;
        const auto start = reinterpret_cast<uintptr_t>(ranges[k].p);
        const uintptr_t begin = (start + 15) & ~uintptr_t{15};
        const uintptr_t end = (start + ranges[k].bytes) & ~uintptr_t{15};
        if (end <= begin) continue;
        a.p[k] = reinterpret_cast<const char*>(begin);
        a.bytes[k] = end - begin;
        pieces += (a.bytes[k] + kPieceBytes - 1) / kPieceBytes;
    }
    a.first_piece[kMaxPrefetchRanges] = pieces;
    if (pieces == 0) return;
    const auto blocks = static_cast<int>(std::clamp<size_t>((pieces + kPrefetchThreads - 1) / kPrefetchThreads, 1, kMaxPrefetchBlocks));
    prefetch_l2_kernel<<<blocks, kPrefetchThreads, 0, static_cast<cudaStream_t>(stream)>>>(a);
    GEMMA4_CUDA_CHECK(cudaGetLastError());
}

}  // namespace gemma4::cuda
