// Quantized weight matrices times f32 activations on the GPU: cuda::matmul and cuda::gate_up_geglu.
//
// Math. y[t][o] = sum_i W[o][i] * x[t][i], with W as stored in the GGUF file:
//     W: d_out rows of d_in elements in `type` blocks, rows back to back (row_bytes apart)
//     x: [n_tokens][d_in] f32        y: [n_tokens][d_out] f32
// gate_up_geglu: out[t][j] = gelu_tanh(gate_j . x[t]) * (up_j . x[t]), the tanh GELU of src/model/activations.h.
//
// Two paths, split at kMaxDecodeTokens:
//
// 1. Decode (n_tokens <= 8): matrix-vector kernels that read the GGUF blocks themselves (no dequantized
//    copy), with f32 activations and f32 accumulation. Memory-bound: every weight byte is read once.
//    One token of Q4_K, Q6_K, Q8_0 or Q4_0 goes to cuda/gemv_q8.cu instead (x rounded to 16-bit
//    integers, integer dot products: faster, ~1e-5 relative) unless GEMMA4_EXACT_DECODE=1.
//
//    Geometry. A CTA has W = 1, 2 or 4 warps (kGemvWarps, fewer for small d_out so that every SM gets a
//    CTA); warp w owns RW consecutive output rows (kGemvTiles: 4 rows for one token, fewer for more
//    tokens), so a CTA owns W * RW rows (times 2 for the fused GeGLU: gate and up rows). The K dimension
//    is walked in chunks of 32 "units" per row: a unit is the slice of one block that one lane decodes
//    (GemvUnit below: e.g. 64 weights of a Q4_K block, 32 of a Q6_K block, a whole Q8_0 block), so lane l
//    always decodes unit l of the chunk, for each of its warp's rows and all tokens: each x value it
//    loads serves RW rows, each decoded weight serves all tokens.
//
//    Pipeline (2 or 3 stages, cp.async): a chunk's weight bytes (each row's segment is contiguous) and
//    its x slice are copied to shared memory with 16-byte cp.async, coalesced, from the 16-byte
//    aligned address at or below the segment start (so any block size and alignment works: Q6_K
//    blocks are 210 bytes, Q8_0 34). The last bytes of the matrix are copied with a shorter source size,
//    so nothing past it is read. While chunk k is computed, chunks k+1 .. k+stages-1 are in flight.
//    Three stages when the grid is small enough for all CTAs to be resident at once (short rows get all
//    their bytes in flight); two otherwise, so that more CTAs fit per SM (kDeepPipelineCtasPerSm).
//
//    Arithmetic (why this is cheap enough to stay memory-bound). Per scale group a lane accumulates
//    sum_i u_i * x_i over the raw unsigned quants u_i and applies the group's scale and min once:
//        sum_i w_i x_i = scale * sum_i u_i x_i - (scale * offset + min) * sum_i x_i.
//    u_i (< 256) becomes a float without a conversion: its bits ARE a subnormal float, u * 2^-149
//    (one byte permute per weight, no int->float converts, which run at 1/8 rate). x is pre-scaled by
//    2^64 in shared memory so that the products u * x * 2^-85 are normal floats again, and the group sum
//    is multiplied back by 2^85 (kQuantUnscale) with the scale. These FMAs are written in PTX without
//    .ftz, so they keep subnormal inputs even if the file is built with -ftz=true or fast math.
//    sum_i x_i per group comes from a per-chunk table built in shared memory once per CTA.
//    About 3 instructions per weight for one token (Q4_K), ~55% of the issue rate at full bandwidth.
//
//    Shared-memory layout of one stage: x (prescaled, [NT][kXStride] f32, with 4 floats of padding every
//    2^kXSkewShift elements so the 8 lanes of a 16-byte load phase hit distinct banks), group sums
//    ([NT][groups][32] f32), then one 16-byte aligned slot per row segment.
//
// 2. Prefill (n_tokens > 8): dequantize W to f16 in row chunks of at most kDequantScratchBytes (scratch
//    slot 0) and multiply with cuBLAS (cublasGemmEx, f16 inputs, f32 accumulation, f32 output); x is
//    converted to f16 once per call (scratch slot 1). f16 rather than bf16: 11 significant bits instead
//    of 8 (4x smaller rounding error of W and x), and the quantized weights fit its range. Activations
//    may not (Gemma's FFN activations can exceed 65504), so each token row is scaled by a power of two
//    when its max |x| lies outside [2^-8, 2^15) and the scale is multiplied back after the GEMM (exact).
//    F16 weights are used in place; F32 weights use cublasGemmEx with CUBLAS_COMPUTE_32F_PEDANTIC (plain
//    f32, never TF32, so F32 files stay exact) and f32 x.
//
//    The dequantization (dequant_f16_kernel) is a pure stream: ~4.5 bytes read per 16 written for Q4_K,
//    so it must run at memory bandwidth. The f16 chunk is cut into runs of 8 elements; thread t of a CTA
//    takes runs t and t + 256 (kDequantRunsPerThread), and writes each as one 16-byte store, so a warp
//    writes 512 contiguous bytes per store instruction. The run's quant bits are 8 consecutive bytes of
//    each field of one block (matmul_dequant.h lists them per type), read in loads as wide as the
//    block's alignment allows (8 bytes for Q4_K qs, 2-byte pieces for the 2-byte aligned Q8_0, Q6_K,
//    Q4_0 blocks); the 32 runs of a warp cover one K-quant block or several consecutive small blocks,
//    so a warp's loads fall on the same few 32-byte sectors and each byte comes from DRAM once. Values
//    are scale * (u - offset) - min in f32 rounded once to f16, bit-identical to dequantize_row then
//    __float2half_rn (tests/unit/dequant8_test.cpp checks the f32 step on the host). BF16 weights are
//    converted elementwise. x_to_f16_vec_kernel converts x (one CTA per token row) with float4 loads
//    held in registers between the max pass and the convert pass and 8-byte stores; x_to_f16_kernel is
//    the scalar fallback for unaligned rows and rows longer than 16384.
//
// Constraints: d_in a whole number of blocks; row_bytes = ggml_row_bytes(type, d_in); W 16-byte aligned
// (cudaMalloc'd tensors are). Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
// Q5_K, Q6_K. Scratch slots used: 0 and 1 (prefill only).
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <numeric>
#include <string>

#include "cuda/common.cuh"
#include "cuda/matmul_dequant.h"
#include "model/activations.h"
#include "cuda/ops.h"
#include "quant/formats.h"

namespace gemma4::cuda {
namespace matmul_detail {

// ---------------------------------------------------------------------------------------------------
// Named constants

// Above this many tokens the dequantize + tensor-core GEMM path wins. The matrix-vector kernels read the
// weights once per pass of up to kMaxPassTokens tokens but spend ~1 FMA per weight per token on the CUDA
// cores; the GEMM path costs ~8 weight-reads' worth of traffic (f16 copy written and read back) but
// almost no arithmetic time. At 8 tokens the GEMV is two passes, still cheaper; llama.cpp splits its
// MMVQ/MMQ paths at the same point (MMVQ_MAX_BATCH_SIZE 8).
constexpr int kMaxDecodeTokens = 8;
constexpr int kMaxPassTokens = 4;  // tokens per GEMV launch (largest entry of kGemvTiles)

// One row of the tile table: tokens per launch (NT), output rows per warp for a plain matmul (the fused
// GeGLU uses half: a gate and an up row each), and the deepest cp.async pipeline. Rows x tokens is kept
// at <= 8 so the accumulators (2 per row and token) and the decoded quants stay in registers. Three
// stages for one token when the grid is small (at most kDeepPipelineCtasPerSm CTAs per SM, all resident
// at once: short rows, e.g. d_in 3840 = 2 chunks of Q4_K, get all their bytes in flight); otherwise two,
// so that more CTAs fit per SM. Two for more tokens, whose x slices make a stage large.
struct GemvTile {
    int tokens;
    int rows_per_warp;
    int max_stages;
};
constexpr GemvTile kGemvTiles[] = {{1, 4, 3}, {2, 4, 2}, {4, 2, 2}};
constexpr int kDeepPipelineCtasPerSm = 2;

constexpr const GemvTile& gemv_tile(int nt) {
    for (const GemvTile& t : kGemvTiles)
        if (t.tokens == nt) return t;
    return kGemvTiles[0];
}
constexpr int gemv_rows_per_warp(int nt, int matrices) { return gemv_tile(nt).rows_per_warp / matrices; }

constexpr int kGemvWarps[] = {4, 2, 1};   // warps per CTA, tried in order (see plan_gemv)
constexpr int kGemvMaxThreads = 4 * kWarpSize;
constexpr int kUnitsPerChunk = kWarpSize; // one unit per lane per row per chunk
constexpr int kXPadFloats = 4;            // padding inserted every 2^kXSkewShift x elements (one 16-byte bank group)
constexpr int kDefaultSmemBytes = 48 << 10;  // dynamic shared memory above this needs cudaFuncSetAttribute
constexpr int kMaxDevices = 16;              // for the per-device "limit raised" flags

// Quants u (< 256) are read as the subnormal float u * 2^-149; x is stored times kXScale = 2^64, so a
// product is u * x * 2^-85 and the group sum is multiplied back by kQuantUnscale = 2^85. 2^64 keeps
// |x| < 2^64 finite and leaves the products normal down to |u x| ~ 2^-41.
constexpr float kXScale = 0x1p64f;
constexpr float kQuantUnscale = 0x1p85f;  // 2^(149 - 64)

// Prefill.
constexpr size_t kDequantScratchBytes = size_t{64} << 20;  // f16 weight chunk (scratch slot 0)
constexpr int kScratchSlotWeights = 0;
constexpr int kScratchSlotX = 1;
constexpr int kDequantRowAlign = 128;          // chunk rows are a multiple of this (GEMM tile friendly)
// dequant_f16_kernel: 256 threads per CTA (8 full warps), each taking kDequantRunsPerThread runs of 8
// elements, so that it has two independent sets of loads in flight before its stores.
constexpr int kDequantThreads = 256;
constexpr int kDequantRunsPerThread = 2;
constexpr int kDequantCtaRuns = kDequantThreads * kDequantRunsPerThread;
// The kernel's run index is 32-bit: a launch has at most max(scratch / 16 bytes, INT_MAX / 8) runs.
static_assert(kDequantScratchBytes / (kRunElems * sizeof(uint16_t)) < (size_t{1} << 31), "runs per launch fit 32 bits");
constexpr int kConvertThreads = 256;           // one CTA per token row in x_to_f16_kernel
// x_to_f16_vec_kernel instantiations: float4s per thread (a row of up to 4 * kVecs * kConvertThreads floats,
// e.g. 4 for d_model 3840, 16 for d_ff 15360), the smallest that fits is launched; longer or unaligned
// rows take x_to_f16_kernel.
constexpr int kConvertVecs[] = {1, 2, 4, 8, 16};
constexpr int kConvertVecElems = 4;            // floats per float4
constexpr int kMaxGridY = 65535;               // CUDA limit on gridDim.y
// x rows whose max |x| lies in [2^kF16LowExp, 2^kF16HighExp) go to f16 unscaled; others are scaled to a
// max in [2^14, 2^15): far from the f16 overflow at 65504 and far above its subnormals (2^-14).
constexpr int kF16LowExp = -8;
constexpr int kF16HighExp = 15;
constexpr int kF16TargetExp = 14;
constexpr int kMaxScaleExp = 100;              // |log2 scale| bound: keeps 2^-e a normal float

// Bit layouts used by the unit decoders: cuda/matmul_dequant.h (kNibbles, kTwoBitFields, ...), shared with
// the prefill run decoders.

// ---------------------------------------------------------------------------------------------------
// Device helpers

// The unit decoders and the per-thread steps of the matrix-vector CTA (GemvCta) are host + device code
// (GEMMA4_HD, as in formats.h): a CTA can be replayed on the host, thread by thread in barrier order,
// against dequantize_row and cpu::matmul, to debug without a GPU. The intrinsics are device-only, hence
// the portable host branches.

/// (hi:lo) >> shift, low 32 bits (shift < 32).
GEMMA4_HD inline uint32_t funnel_shift_right(uint32_t lo, uint32_t hi, uint32_t shift) {
#ifdef __CUDA_ARCH__
    return __funnelshift_r(lo, hi, shift);
#else
    return static_cast<uint32_t>(((uint64_t{hi} << 32) | lo) >> shift);
#endif
}

/// N little-endian 32-bit words starting at p. kAlign: the alignment of p known at compile time (2, 4, 8
/// or 16). kExact: never read a byte outside [p, p + 4N) (global memory); otherwise a 2-aligned read may
/// touch the 2 bytes after the range (shared memory slots have room for that).
template <int kAlign, bool kExact, int N>
GEMMA4_HD inline void load_words(const uint8_t* p, uint32_t (&w)[N]) {
    if constexpr (kAlign >= 16 && N % 4 == 0) {
GEMMA4_UNROLL
        for (int i = 0; i < N / 4; ++i) {
            const uint4 v = reinterpret_cast<const uint4*>(p)[i];
            w[4 * i] = v.x;
            w[4 * i + 1] = v.y;
            w[4 * i + 2] = v.z;
            w[4 * i + 3] = v.w;
        }
    } else if constexpr (kAlign >= 8 && N % 2 == 0) {
GEMMA4_UNROLL
        for (int i = 0; i < N / 2; ++i) {
            const uint2 v = reinterpret_cast<const uint2*>(p)[i];
            w[2 * i] = v.x;
            w[2 * i + 1] = v.y;
        }
    } else if constexpr (kAlign >= 4) {
GEMMA4_UNROLL
        for (int i = 0; i < N; ++i) w[i] = reinterpret_cast<const uint32_t*>(p)[i];
    } else if constexpr (kExact) {
        static_assert(kAlign == 2, "blocks are at least 2-byte aligned");
        const auto* h = reinterpret_cast<const uint16_t*>(p);
GEMMA4_UNROLL
        for (int i = 0; i < N; ++i) w[i] = uint32_t{h[2 * i]} | (uint32_t{h[2 * i + 1]} << 16);
    } else {
        static_assert(kAlign == 2, "blocks are at least 2-byte aligned");
        // Aligned words around p, then a funnel shift by 0 or 16 bits. The word after the range is only
        // read when p is 2 mod 4 (then it holds the last two bytes we need).
        // Pointer arithmetic (not an integer round trip) keeps the address space known: LDS, not LD.
        const auto lead = static_cast<int>(reinterpret_cast<uintptr_t>(p) & 2u);
        const auto* base = reinterpret_cast<const uint32_t*>(p - lead);
        const bool odd = lead != 0;
        const uint32_t shift = odd ? 16u : 0u;
        uint32_t a[N + 1];
GEMMA4_UNROLL
        for (int i = 0; i < N; ++i) a[i] = base[i];
        a[N] = 0;
        if (odd) a[N] = base[N];
GEMMA4_UNROLL
        for (int i = 0; i < N; ++i) w[i] = funnel_shift_right(a[i], a[i + 1], shift);
    }
}

/// acc + (u * 2^-149) * x with u's bits read as a (subnormal) float; PTX fma without .ftz, so subnormal
/// operands and results are kept whatever -ftz says.
__device__ __forceinline__ float fma_quant(uint32_t u, float x, float acc) {
    float r;
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(__uint_as_float(u)), "f"(x), "f"(acc));
    return r;
}

/// a * b + c, IEEE, subnormals kept (used where one operand may be subnormal).
__device__ __forceinline__ float fma_exact(float a, float b, float c) {
    float r;
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(a), "f"(b), "f"(c));
    return r;
}

// cp.async beside common.cuh's (cp_async_16: 16 bytes, L2 only, for the streamed weights; the commit and
// wait): 16 bytes kept in L1 too (.ca: x is read by every CTA of the SM), and 4 bytes.
__device__ __forceinline__ void cp_async_16_ca(void* dst, const void* src, uint32_t src_bytes) {
    const auto d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, uint32_t src_bytes) {
    const auto d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
}

// ---------------------------------------------------------------------------------------------------
// Units: how one lane decodes its slice of a block. Each specialization gives
//   kUnitsPerBlock  units per block (a chunk holds 32 units per row: 32 / kUnitsPerBlock blocks)
//   kGroups, kGroupElems  scale groups per unit, each kGroupElems consecutive elements (8, 16 or 32),
//                   read as kGroupElems / 4 runs of 4; group_start(j, g) = first element in the block
//   kOffset         w = scale * (u - kOffset) - min for the unsigned quant u of a group
//   kRawWords, load()  the quant bytes of unit j, loaded once per row into registers
//   quants(raw, j, g, r)  the 4 quants of run r of group g, one per byte
//   params(block, j)      scale and min of each group
//   kXSkewShift     x padding period (log2): lanes reading x at the same run land in distinct banks
//   kBlockAlign     alignment of every block when W is 16-byte aligned (gcd of block size and 16)
// Plain types (F32, F16, BF16) are cut into virtual blocks of kPlainBlockElems elements, one unit each,
// and give float values(raw, r) instead of quants; the last virtual block of a row may be partial.

template <class Block>
struct GemvUnit;

template <class Block>
struct QuantUnitBase {
    using Traits = QuantTraits<Block>;
    static constexpr bool kPlain = false;
    static constexpr int kBlockElems = Traits::block_elems;
    static constexpr int kBlockBytes = Traits::block_bytes;
    static constexpr int kBlockAlign = std::gcd(Traits::block_bytes, 16);
};

template <int kGroupCount>
struct GroupParams {
    float scale[kGroupCount];
    float min[kGroupCount];
};

/// K-quant (Q4_K, Q5_K) scales and mins of sub-blocks 2c and 2c+1, from the header words s0 = scales[0..3],
/// s1 = scales[4..7], s2 = scales[8..11]: all four bytes of the half are unpacked at once
/// (k_quant_scale_min_words, matmul_dequant.h), then two are picked.
GEMMA4_HD inline void k_quant_scale_min(uint32_t s0, uint32_t s1, uint32_t s2, int c, float d, float dmin,
                                                  GroupParams<2>& p) {
    uint32_t sc = 0, mn = 0;
    k_quant_scale_min_words(s0, s1, s2, c >= 2, sc, mn);
    const uint32_t shift = 16u * static_cast<uint32_t>(c & 1);  // bytes 2(c&1), 2(c&1)+1
GEMMA4_UNROLL
    for (int g = 0; g < 2; ++g) {
        p.scale[g] = d * static_cast<float>((sc >> (shift + 8 * g)) & 0xFFu);
        p.min[g] = dmin * static_cast<float>((mn >> (shift + 8 * g)) & 0xFFu);
    }
}

/// Q4_0: unit = block (32 weights); qs[j] holds weight j (low nibble) and j + 16 (high nibble).
template <>
struct GemvUnit<Q4_0> : QuantUnitBase<Q4_0> {
    static constexpr int kUnitsPerBlock = 1, kGroups = 1, kGroupElems = 32, kOffset = kQ4Offset;
    static constexpr int kRawWords = 4, kXSkewShift = 5;
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int, int) { return 0; }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int, uint32_t (&raw)[kRawWords]) {
        load_words<kBlockAlign, kExact>(b + offsetof(Q4_0, qs), raw);
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int, int, int r) {
        return r < 4 ? raw[r] & kNibbles : (raw[r - 4] >> kNibbleBits) & kNibbles;
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int) {
        return {{half_bits_to_float(*reinterpret_cast<const uint16_t*>(b + offsetof(Q4_0, d)))}, {0.0f}};
    }
};

/// Q4_1: as Q4_0 with w = d * q + m (min = -m), no offset.
template <>
struct GemvUnit<Q4_1> : QuantUnitBase<Q4_1> {
    static constexpr int kUnitsPerBlock = 1, kGroups = 1, kGroupElems = 32, kOffset = 0;
    static constexpr int kRawWords = 4, kXSkewShift = 5;
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int, int) { return 0; }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int, uint32_t (&raw)[kRawWords]) {
        load_words<kBlockAlign, kExact>(b + offsetof(Q4_1, qs), raw);
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int, int, int r) {
        return r < 4 ? raw[r] & kNibbles : (raw[r - 4] >> kNibbleBits) & kNibbles;
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int) {
        const uint32_t dm = *reinterpret_cast<const uint32_t*>(b);  // d | m << 16
        return {{half_bits_to_float(dm)}, {-half_bits_to_float(dm >> 16)}};
    }
};

/// Q5_0: Q4_0 nibbles plus a fifth bit: bit j of qh for weight j (j < 32); offset 16.
template <>
struct GemvUnit<Q5_0> : QuantUnitBase<Q5_0> {
    static constexpr int kUnitsPerBlock = 1, kGroups = 1, kGroupElems = 32, kOffset = kQ5Offset;
    static constexpr int kRawWords = 5, kXSkewShift = 5;  // qs[0..15] in words 0-3, qh in word 4
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int, int) { return 0; }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int, uint32_t (&raw)[kRawWords]) {
        uint32_t qs[4], qh[1];
        load_words<kBlockAlign, kExact>(b + offsetof(Q5_0, qs), qs);
        load_words<kBlockAlign, kExact>(b + offsetof(Q5_0, qh), qh);
GEMMA4_UNROLL
        for (int i = 0; i < 4; ++i) raw[i] = qs[i];
        raw[4] = qh[0];
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int, int, int r) {
        const uint32_t lo = r < 4 ? raw[r] & kNibbles : (raw[r - 4] >> kNibbleBits) & kNibbles;
        const uint32_t hi = (((raw[4] >> (4 * r)) & kLowNibble) * kSpreadNibbleBits) & kLowBits;  // weights 4r..4r+3
        return lo | (hi << kNibbleBits);
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int) {
        return {{half_bits_to_float(*reinterpret_cast<const uint16_t*>(b + offsetof(Q5_0, d)))}, {0.0f}};
    }
};

/// Q5_1: as Q5_0 with w = d * q + m, no offset.
template <>
struct GemvUnit<Q5_1> : QuantUnitBase<Q5_1> {
    static constexpr int kUnitsPerBlock = 1, kGroups = 1, kGroupElems = 32, kOffset = 0;
    static constexpr int kRawWords = 5, kXSkewShift = 5;
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int, int) { return 0; }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int, uint32_t (&raw)[kRawWords]) {
        uint32_t qs[4], qh[1];
        load_words<kBlockAlign, kExact>(b + offsetof(Q5_1, qs), qs);
        load_words<4, kExact>(b + offsetof(Q5_1, qh), qh);
GEMMA4_UNROLL
        for (int i = 0; i < 4; ++i) raw[i] = qs[i];
        raw[4] = qh[0];
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int, int, int r) {
        const uint32_t lo = r < 4 ? raw[r] & kNibbles : (raw[r - 4] >> kNibbleBits) & kNibbles;
        const uint32_t hi = (((raw[4] >> (4 * r)) & kLowNibble) * kSpreadNibbleBits) & kLowBits;
        return lo | (hi << kNibbleBits);
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int) {
        const uint32_t dm = *reinterpret_cast<const uint32_t*>(b);
        return {{half_bits_to_float(dm)}, {-half_bits_to_float(dm >> 16)}};
    }
};

/// Q8_0: unit = block; int8 q read as u = q + 128 (XOR of the sign bit), offset 128.
template <>
struct GemvUnit<Q8_0> : QuantUnitBase<Q8_0> {
    static constexpr int kUnitsPerBlock = 1, kGroups = 1, kGroupElems = 32, kOffset = 128;
    static constexpr int kRawWords = 8, kXSkewShift = 5;
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int, int) { return 0; }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int, uint32_t (&raw)[kRawWords]) {
        load_words<kBlockAlign, kExact>(b + offsetof(Q8_0, qs), raw);
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int, int, int r) { return raw[r] ^ kByteSigns; }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int) {
        return {{half_bits_to_float(*reinterpret_cast<const uint16_t*>(b + offsetof(Q8_0, d)))}, {0.0f}};
    }
};

/// Q2_K: unit j = (c = j / 4, l0 = 8 (j % 4)): bytes qs[32c + l0 .. +7]; group s < 4 = weights 128c + 32s +
/// l0 .. +7 (bits 2s..2s+1), sub-block 8c + 2s + l0 / 16 with scale d * (sc & 15) and min dmin * (sc >> 4).
template <>
struct GemvUnit<Q2K> : QuantUnitBase<Q2K> {
    static constexpr int kUnitsPerBlock = 8, kGroups = 4, kGroupElems = 8, kOffset = 0;
    static constexpr int kRawWords = 2, kXSkewShift = 7;
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int j, int g) { return 128 * (j >> 2) + 32 * g + 8 * (j & 3); }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int j, uint32_t (&raw)[kRawWords]) {
        load_words<kBlockAlign, kExact>(b + offsetof(Q2K, qs) + 32 * (j >> 2) + 8 * (j & 3), raw);
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int, int g, int r) {
        return (raw[r] >> (2 * g)) & kTwoBitFields;
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int j) {
        uint32_t s[2], dd[1];
        load_words<kBlockAlign, kExact>(b + offsetof(Q2K, scales) + 8 * (j >> 2), s);  // scales[8c .. 8c+7]
        load_words<kBlockAlign, kExact>(b + offsetof(Q2K, d), dd);                     // d | dmin << 16
        const float d = half_bits_to_float(dd[0]);
        const float dmin = half_bits_to_float(dd[0] >> 16);
        Params p;
GEMMA4_UNROLL
        for (int g = 0; g < kGroups; ++g) {
            // scales byte 8c + 2g + (j & 3) / 2: word g / 2, byte 2 (g % 2) + (j & 3) / 2 of the two loaded
            const uint32_t sb = (s[g / 2] >> (8 * (2 * (g % 2) + ((j & 3) >> 1)))) & 0xFFu;
            p.scale[g] = d * static_cast<float>(sb & kLowNibble);
            p.min[g] = dmin * static_cast<float>(sb >> kNibbleBits);
        }
        return p;
    }
};

/// Q3_K: units as Q2_K; the third bit of weight 128c + 32s + l is bit 4c + s of hmask[l], u = low2 + 4 * bit
/// (in 0..7), offset 4; signed 6-bit scales (formats.h: unpack_q3k_scale).
template <>
struct GemvUnit<Q3K> : QuantUnitBase<Q3K> {
    static constexpr int kUnitsPerBlock = 8, kGroups = 4, kGroupElems = 8, kOffset = kQ3HighBit;
    static constexpr int kRawWords = 4, kXSkewShift = 7;  // qs in words 0-1, hmask in words 2-3
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int j, int g) { return 128 * (j >> 2) + 32 * g + 8 * (j & 3); }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int j, uint32_t (&raw)[kRawWords]) {
        uint32_t qs[2], hm[2];
        load_words<kBlockAlign, kExact>(b + offsetof(Q3K, qs) + 32 * (j >> 2) + 8 * (j & 3), qs);
        load_words<kBlockAlign, kExact>(b + offsetof(Q3K, hmask) + 8 * (j & 3), hm);
        raw[0] = qs[0];
        raw[1] = qs[1];
        raw[2] = hm[0];
        raw[3] = hm[1];
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int j, int g, int r) {
        const uint32_t low = (raw[r] >> (2 * g)) & kTwoBitFields;
        const uint32_t high = (raw[2 + r] >> (4 * (j >> 2) + g)) & kLowBits;
        return low | (high << 2);
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int j) {
        const float d = half_bits_to_float(*reinterpret_cast<const uint16_t*>(b + offsetof(Q3K, d)));
        Params p;
GEMMA4_UNROLL
        for (int g = 0; g < kGroups; ++g) {
            p.scale[g] = d * static_cast<float>(unpack_q3k_scale(b + offsetof(Q3K, scales), 8 * (j >> 2) + 2 * g + ((j & 3) >> 1)));
            p.min[g] = 0.0f;
        }
        return p;
    }
};

/// Q4_K: unit c < 4 = 64 weights: qs[32c .. 32c+31]; group 0 = low nibbles (sub-block 2c, weights 64c + l),
/// group 1 = high nibbles (sub-block 2c+1, weights 64c + 32 + l).
template <>
struct GemvUnit<Q4K> : QuantUnitBase<Q4K> {
    static constexpr int kUnitsPerBlock = 4, kGroups = 2, kGroupElems = 32, kOffset = 0;
    static constexpr int kRawWords = 8, kXSkewShift = 6;
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int j, int g) { return 64 * j + 32 * g; }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int j, uint32_t (&raw)[kRawWords]) {
        load_words<kBlockAlign, kExact>(b + offsetof(Q4K, qs) + 32 * j, raw);
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int, int g, int r) {
        return (raw[r] >> (kNibbleBits * g)) & kNibbles;
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int j) {
        uint32_t h[4];  // d | dmin << 16, scales[0..11]
        load_words<kBlockAlign, kExact>(b, h);
        Params p;
        k_quant_scale_min(h[1], h[2], h[3], j, half_bits_to_float(h[0]), half_bits_to_float(h[0] >> 16), p);
        return p;
    }
};

/// Q5_K: Q4_K plus bit 2c + g of qh[l] as bit 4 of weight 64c + 32g + l.
template <>
struct GemvUnit<Q5K> : QuantUnitBase<Q5K> {
    static constexpr int kUnitsPerBlock = 4, kGroups = 2, kGroupElems = 32, kOffset = 0;
    static constexpr int kRawWords = 16, kXSkewShift = 6;  // qs in words 0-7, qh in words 8-15
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int j, int g) { return 64 * j + 32 * g; }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int j, uint32_t (&raw)[kRawWords]) {
        uint32_t qs[8], qh[8];
        load_words<kBlockAlign, kExact>(b + offsetof(Q5K, qs) + 32 * j, qs);
        load_words<kBlockAlign, kExact>(b + offsetof(Q5K, qh), qh);
GEMMA4_UNROLL
        for (int i = 0; i < 8; ++i) {
            raw[i] = qs[i];
            raw[8 + i] = qh[i];
        }
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int j, int g, int r) {
        const uint32_t low = (raw[r] >> (kNibbleBits * g)) & kNibbles;
        const uint32_t high = (raw[8 + r] >> (2 * j + g)) & kLowBits;
        return low | (high << kNibbleBits);
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int j) {
        uint32_t h[4];
        load_words<kBlockAlign, kExact>(b, h);
        Params p;
        k_quant_scale_min(h[1], h[2], h[3], j, half_bits_to_float(h[0]), half_bits_to_float(h[0] >> 16), p);
        return p;
    }
};

/// Q6_K: unit j = (half h = j / 4, l0 = 8 (j % 4)); group g < 4 = weights 128h + 32g + l0 .. +7, low 4 bits
/// from ql[64h + l0 + 32 (g & 1) ..] (low nibble for g < 2, high for g >= 2), top 2 bits from bits 2g..2g+1
/// of qh[32h + l0 ..]; sub-block 8h + 2g + l0 / 16 with int8 scale; offset 32.
template <>
struct GemvUnit<Q6K> : QuantUnitBase<Q6K> {
    static constexpr int kUnitsPerBlock = 8, kGroups = 4, kGroupElems = 8, kOffset = kQ6Offset;
    static constexpr int kRawWords = 6, kXSkewShift = 7;  // ql[l0..], ql[l0 + 32..], qh[l0..]: 2 words each
    using Params = GroupParams<kGroups>;
    GEMMA4_HD static int group_start(int j, int g) { return 128 * (j >> 2) + 32 * g + 8 * (j & 3); }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int j, uint32_t (&raw)[kRawWords]) {
        const int h = j >> 2, l0 = 8 * (j & 3);
        uint32_t lo[2], hi[2], qh[2];
        load_words<kBlockAlign, kExact>(b + offsetof(Q6K, ql) + 64 * h + l0, lo);
        load_words<kBlockAlign, kExact>(b + offsetof(Q6K, ql) + 64 * h + 32 + l0, hi);
        load_words<kBlockAlign, kExact>(b + offsetof(Q6K, qh) + 32 * h + l0, qh);
        raw[0] = lo[0];
        raw[1] = lo[1];
        raw[2] = hi[0];
        raw[3] = hi[1];
        raw[4] = qh[0];
        raw[5] = qh[1];
    }
    GEMMA4_HD static uint32_t quants(const uint32_t (&raw)[kRawWords], int, int g, int r) {
        const uint32_t low = (raw[2 * (g & 1) + r] >> (kNibbleBits * (g >> 1))) & kNibbles;
        const uint32_t high = ((raw[4 + r] >> (2 * g)) & kTwoBitFields) << kNibbleBits;
        return low | high;
    }
    template <bool kExact>
    GEMMA4_HD static Params params(const uint8_t* b, int j) {
        const int h = j >> 2, half_sub = (j & 3) >> 1;  // l0 / 16
        uint32_t s[2];
        load_words<kBlockAlign, kExact>(b + offsetof(Q6K, scales) + 8 * h, s);  // scales[8h .. 8h+7]
        const float d = half_bits_to_float(*reinterpret_cast<const uint16_t*>(b + offsetof(Q6K, d)));
        Params p;
GEMMA4_UNROLL
        for (int g = 0; g < kGroups; ++g) {
            const auto sc = static_cast<int8_t>((s[g / 2] >> (8 * (2 * (g % 2) + half_sub))) & 0xFFu);
            p.scale[g] = d * static_cast<float>(sc);
            p.min[g] = 0.0f;
        }
        return p;
    }
};

constexpr int kPlainBlockElems = 16;  // elements per virtual block (= unit) of F32/F16/BF16

template <class Elem, int kElemBytes>
struct PlainUnitBase {
    static constexpr bool kPlain = true;
    static constexpr int kBlockElems = kPlainBlockElems;
    static constexpr int kBlockBytes = kPlainBlockElems * kElemBytes;
    static constexpr int kBlockAlign = kElemBytes;  // rows start at multiples of d_in * kElemBytes
    static constexpr int kUnitsPerBlock = 1, kGroups = 1, kGroupElems = kPlainBlockElems, kOffset = 0;
    static constexpr int kRawWords = kBlockBytes / 4, kXSkewShift = 4;
    GEMMA4_HD static int group_start(int, int) { return 0; }
    template <bool kExact>
    GEMMA4_HD static void load(const uint8_t* b, int, uint32_t (&raw)[kRawWords]) {
        load_words<kBlockAlign, kExact>(b, raw);
    }
};

template <>
struct GemvUnit<F32> : PlainUnitBase<F32, 4> {
    GEMMA4_HD static float4 values(const uint32_t (&raw)[kRawWords], int r) {
        return make_float4(f32_from_bits(raw[4 * r]), f32_from_bits(raw[4 * r + 1]), f32_from_bits(raw[4 * r + 2]),
                           f32_from_bits(raw[4 * r + 3]));
    }
};

template <>
struct GemvUnit<F16> : PlainUnitBase<F16, 2> {
    GEMMA4_HD static float4 values(const uint32_t (&raw)[kRawWords], int r) {
        return make_float4(half_bits_to_float(raw[2 * r]), half_bits_to_float(raw[2 * r] >> 16),
                           half_bits_to_float(raw[2 * r + 1]), half_bits_to_float(raw[2 * r + 1] >> 16));
    }
};

template <>
struct GemvUnit<BF16> : PlainUnitBase<BF16, 2> {
    GEMMA4_HD static float4 values(const uint32_t (&raw)[kRawWords], int r) {
        constexpr uint32_t kHigh = 0xFFFF0000u;
        return make_float4(f32_from_bits(raw[2 * r] << 16), f32_from_bits(raw[2 * r] & kHigh),
                           f32_from_bits(raw[2 * r + 1] << 16), f32_from_bits(raw[2 * r + 1] & kHigh));
    }
};

template <class Block>
constexpr bool kHasGemvUnit = requires { GemvUnit<Block>::kUnitsPerBlock; };

// ---------------------------------------------------------------------------------------------------
// The matrix-vector kernel

/// Shared-memory layout of one pipeline stage (see the file header).
template <class U, int NT>
struct StageLayout {
    static constexpr int kChunkBlocks = kUnitsPerChunk / U::kUnitsPerBlock;
    static constexpr int kChunkElems = kChunkBlocks * U::kBlockElems;
    static constexpr int kXStride = kChunkElems + kXPadFloats * (kChunkElems >> U::kXSkewShift);  // floats per token
    static constexpr int kXBytes = NT * kXStride * 4;
    static constexpr int kSumsBytes = U::kPlain ? 0 : NT * U::kGroups * kWarpSize * 4;
    static constexpr int kSegBytes = kChunkBlocks * U::kBlockBytes;       // one row's bytes of a chunk
    static constexpr int kSlotBytes = (kSegBytes + 14 + 15) / 16 * 16;  // + up to 14 bytes of misalignment
    static_assert(kChunkBlocks * U::kUnitsPerBlock == kUnitsPerChunk, "a chunk is 32 whole units");
    static_assert(U::kGroupElems % 4 == 0 && (1 << U::kXSkewShift) % U::kGroupElems == 0,
                  "a group lies within one padding period");
};

template <class U>
GEMMA4_HD inline int skewed(int e) {
    return e + kXPadFloats * (e >> U::kXSkewShift);
}

struct GemvArgs {
    const uint8_t* w[2];   // M matrices of [d_out][row_bytes] (gate, up for the fused GeGLU)
    const float* x;        // [n_tokens][d_in]
    float* y;              // [n_tokens][d_out]
    size_t row_bytes;
    size_t matrix_bytes;   // d_out * row_bytes
    int d_in;
    int d_out;
    int n_blocks;          // blocks per row (plain types: virtual blocks, the last one may be partial)
    int n_chunks;
    int n_tokens;          // tokens of this launch, <= NT
    int x_vec;             // x rows are 16-byte aligned: copy them in 16-byte pieces
    int stages;            // pipeline depth: 2 or 3 (<= the tile's max_stages)
};

// cp.async wrappers; host code (the check harness replaying a CTA thread by thread) copies at once.
GEMMA4_HD inline void copy_16_async(void* dst, const void* src, uint32_t src_bytes, bool keep_in_l1) {
#ifdef __CUDA_ARCH__
    if (keep_in_l1) {
        cp_async_16_ca(dst, src, src_bytes);
    } else {
        cp_async_16(dst, src, static_cast<int>(src_bytes));
    }
#else
    static_cast<void>(keep_in_l1);
    std::memcpy(dst, src, src_bytes);
    std::memset(static_cast<uint8_t*>(dst) + src_bytes, 0, 16 - src_bytes);
#endif
}
GEMMA4_HD inline void copy_4_async(void* dst, const void* src, uint32_t src_bytes) {
#ifdef __CUDA_ARCH__
    cp_async_4(dst, src, src_bytes);
#else
    std::memcpy(dst, src, src_bytes);
    std::memset(static_cast<uint8_t*>(dst) + src_bytes, 0, 4 - src_bytes);
#endif
}

/// acc + (u * 2^-149) * x, with u's bits read as a subnormal float (see fma_quant).
GEMMA4_HD inline float quant_fma(uint32_t u, float x, float acc) {
#ifdef __CUDA_ARCH__
    return fma_quant(u, x, acc);
#else
    return std::fma(std::bit_cast<float>(u), x, acc);
#endif
}
GEMMA4_HD inline float exact_fma(float a, float b, float c) {
#ifdef __CUDA_ARCH__
    return fma_exact(a, b, c);
#else
    return std::fma(a, b, c);
#endif
}

/// One CTA of the matrix-vector kernel: W * RW output rows (per matrix), all NT tokens. The kernel below
/// drives it; the member functions are what one thread (or one lane) does between two barriers, with
/// the thread index passed in, so host code can replay a CTA thread by thread.
template <class U, int NT, int M>
struct GemvCta {
    using L = StageLayout<U, NT>;
    static constexpr int RW = gemv_rows_per_warp(NT, M);
    static constexpr int kMaxStages = gemv_tile(NT).max_stages;
    static constexpr int kRuns = U::kGroupElems / 4;
    static_assert(kMaxStages == 2 || kMaxStages == 3, "cp_async_wait_stages handles 2 and 3");
    static_assert(RW >= 1, "rows per warp");

    const GemvArgs& a;
    uint8_t* smem;
    int warps;
    int rows_cta;   // output rows per CTA (per matrix)
    int o_cta;      // first output row
    int stage_bytes;

    GEMMA4_HD GemvCta(const GemvArgs& args, uint8_t* shared, int threads, int block)
        : a(args), smem(shared), warps(threads / kWarpSize), rows_cta(warps * RW), o_cta(block * rows_cta),
          stage_bytes(smem_bytes_per_stage(warps)) {}

    GEMMA4_HD static int smem_bytes_per_stage(int warps) { return L::kXBytes + L::kSumsBytes + M * warps * RW * L::kSlotBytes; }
    GEMMA4_HD static int smem_bytes(int warps, int stages) { return stages * smem_bytes_per_stage(warps); }

    GEMMA4_HD float* x_of(int s) const { return reinterpret_cast<float*>(smem + s * stage_bytes); }
    GEMMA4_HD float* sums_of(int s) const { return reinterpret_cast<float*>(smem + s * stage_bytes + L::kXBytes); }
    GEMMA4_HD uint8_t* slot_of(int s, int slot) const {
        return smem + s * stage_bytes + L::kXBytes + L::kSumsBytes + slot * L::kSlotBytes;
    }
    // Byte range of chunk k within a row, and the address of row o's segment in matrix m.
    GEMMA4_HD static size_t seg_begin(int k) { return static_cast<size_t>(k) * L::kChunkBlocks * U::kBlockBytes; }
    GEMMA4_HD size_t seg_size(int k) const {
        const size_t rest = a.row_bytes - seg_begin(k);
        return rest < static_cast<size_t>(L::kSegBytes) ? rest : static_cast<size_t>(L::kSegBytes);
    }
    GEMMA4_HD uintptr_t seg_start(int m, int o, int k) const {
        return reinterpret_cast<uintptr_t>(a.w[m]) + static_cast<size_t>(o) * a.row_bytes + seg_begin(k);
    }

    /// Thread tid's share of copying chunk k into stage s: warp tid / 32 copies its own rows' segments (16-byte
    /// pieces from the aligned address at or below the segment start; the piece holding the matrix's last
    /// byte reads no further), all threads the x slice (padding tokens and elements past d_in zero-filled).
    GEMMA4_HD void issue(int k, int s, int tid) const {
        const int warp = tid / kWarpSize, lane = tid % kWarpSize;
        const size_t size = seg_size(k);
        for (int m = 0; m < M; ++m) {
            const uintptr_t mat_end = reinterpret_cast<uintptr_t>(a.w[m]) + a.matrix_bytes;
            for (int i = 0; i < RW; ++i) {
                const int o = o_cta + warp * RW + i;
                if (o >= a.d_out) continue;
                const uintptr_t start = seg_start(m, o, k);
                const uintptr_t first = start & ~uintptr_t{15};
                const int pieces = static_cast<int>((start + size - first + 15) / 16);
                uint8_t* dst = slot_of(s, m * rows_cta + warp * RW + i);
                for (int p = lane; p < pieces; p += kWarpSize) {
                    const uintptr_t src = first + 16u * static_cast<uintptr_t>(p);
                    const uintptr_t left = mat_end - src;
                    if (left < 16) {
                        // The matrix's last bytes: plain loads, so nothing past the allocation is even
                        // addressed (a partial cp.async still names 16 source bytes); zero the rest. Made
                        // visible by the __syncthreads that precedes every read of the stage.
                        const auto* from = reinterpret_cast<const uint8_t*>(src);
                        for (uintptr_t b = 0; b < 16; ++b) dst[16 * p + b] = b < left ? from[b] : uint8_t{0};
                    } else {
                        copy_16_async(dst + 16 * p, reinterpret_cast<const void*>(src), 16u, false);
                    }
                }
            }
        }
        float* xs = x_of(s);
        const int e0 = k * L::kChunkElems;
        const int threads = warps * kWarpSize;
        if (a.x_vec) {
            constexpr int kGranules = L::kChunkElems / 4;
            for (int q = tid; q < NT * kGranules; q += threads) {
                const int t = q / kGranules, e = 4 * (q % kGranules);
                const bool in = t < a.n_tokens && e0 + e < a.d_in;  // d_in % 4 == 0: a granule is all in or out
                const float* src = in ? a.x + static_cast<size_t>(t) * a.d_in + e0 + e : a.x;
                copy_16_async(xs + t * L::kXStride + skewed<U>(e), src, in ? 16u : 0u, true);
            }
        } else {
            for (int q = tid; q < NT * L::kChunkElems; q += threads) {
                const int t = q / L::kChunkElems, e = q % L::kChunkElems;
                const bool in = t < a.n_tokens && e0 + e < a.d_in;
                const float* src = in ? a.x + static_cast<size_t>(t) * a.d_in + e0 + e : a.x;
                copy_4_async(xs + t * L::kXStride + skewed<U>(e), src, in ? 4u : 0u);
            }
        }
    }

    /// Quantized types, in place in stage s: x *= 2^64, and the sum of the unscaled x of every group instance
    /// (token t, group g, lane ln) into sums[t][g][ln].
    GEMMA4_HD void prep(int k, int s, int tid) const {
        float* xs = x_of(s);
        float* sums = sums_of(s);
        const int blk0 = k * L::kChunkBlocks;
        const int threads = warps * kWarpSize;
        constexpr int kItems = U::kGroups * kWarpSize;  // group instances per token
        for (int q = tid; q < NT * kItems; q += threads) {
            const int t = q / kItems, g = (q % kItems) / kWarpSize, ln = q % kWarpSize;
            const int bl = ln / U::kUnitsPerBlock, j = ln % U::kUnitsPerBlock;
            if (blk0 + bl >= a.n_blocks) continue;
            auto* p = reinterpret_cast<float4*>(xs + t * L::kXStride + skewed<U>(bl * U::kBlockElems + U::group_start(j, g)));
            float sum = 0.0f;
            for (int r = 0; r < kRuns; ++r) {
                float4 v = p[r];
                sum += v.x;
                sum += v.y;
                sum += v.z;
                sum += v.w;
                v.x *= kXScale;
                v.y *= kXScale;
                v.z *= kXScale;
                v.w *= kXScale;
                p[r] = v;
            }
            sums[(t * U::kGroups + g) * kWarpSize + ln] = sum;
        }
    }

    /// Lane `lane` of warp `warp`: adds its unit of chunk k (stage s) to acc, for the warp's rows and all tokens.
    GEMMA4_HD void compute(int k, int s, int warp, int lane, float (&acc)[M][RW][NT]) const {
        const int bl = lane / U::kUnitsPerBlock, j = lane % U::kUnitsPerBlock;
        const int blk = k * L::kChunkBlocks + bl;
        const int o_warp = o_cta + warp * RW;
        if (blk >= a.n_blocks || o_warp >= a.d_out) return;  // past the row's last block / the last row
        const float* xs = x_of(s);
        const float* sums = sums_of(s);
        const uint8_t* bp[M][RW];
GEMMA4_UNROLL
        for (int m = 0; m < M; ++m)
GEMMA4_UNROLL
            for (int i = 0; i < RW; ++i) {
                // The segment starts (start mod 16) bytes into its slot; rows past d_out hold no data.
                const size_t mis = o_warp + i < a.d_out ? seg_start(m, o_warp + i, k) & 15u : 0u;
                bp[m][i] = slot_of(s, m * rows_cta + warp * RW + i) + mis + bl * U::kBlockBytes;
            }
        uint32_t raw[M][RW][U::kRawWords];
GEMMA4_UNROLL
        for (int m = 0; m < M; ++m)
GEMMA4_UNROLL
            for (int i = 0; i < RW; ++i) U::template load<false>(bp[m][i], j, raw[m][i]);

        if constexpr (U::kPlain) {
            // Elements of this virtual block inside the row (the last block may be partial).
            const int valid = a.d_in - blk * U::kBlockElems;
            float part[M][RW][NT] = {};
GEMMA4_UNROLL
            for (int r = 0; r < kRuns; ++r) {
                float4 xv[NT];
GEMMA4_UNROLL
                for (int t = 0; t < NT; ++t)
                    xv[t] = *reinterpret_cast<const float4*>(xs + t * L::kXStride + skewed<U>(bl * U::kBlockElems + 4 * r));
GEMMA4_UNROLL
                for (int m = 0; m < M; ++m)
GEMMA4_UNROLL
                    for (int i = 0; i < RW; ++i) {
                        float4 wv = U::values(raw[m][i], r);
                        if (valid < U::kBlockElems) {  // bytes past the row end must not meet x = 0 as NaN
                            wv.x = 4 * r + 0 < valid ? wv.x : 0.0f;
                            wv.y = 4 * r + 1 < valid ? wv.y : 0.0f;
                            wv.z = 4 * r + 2 < valid ? wv.z : 0.0f;
                            wv.w = 4 * r + 3 < valid ? wv.w : 0.0f;
                        }
GEMMA4_UNROLL
                        for (int t = 0; t < NT; ++t) {
                            float v = part[m][i][t];
                            v = fmaf(wv.x, xv[t].x, v);
                            v = fmaf(wv.y, xv[t].y, v);
                            v = fmaf(wv.z, xv[t].z, v);
                            v = fmaf(wv.w, xv[t].w, v);
                            part[m][i][t] = v;
                        }
                    }
            }
GEMMA4_UNROLL
            for (int m = 0; m < M; ++m)
GEMMA4_UNROLL
                for (int i = 0; i < RW; ++i)
GEMMA4_UNROLL
                    for (int t = 0; t < NT; ++t) acc[m][i][t] += part[m][i][t];
        } else {
            typename U::Params par[M][RW];
GEMMA4_UNROLL
            for (int m = 0; m < M; ++m)
GEMMA4_UNROLL
                for (int i = 0; i < RW; ++i) par[m][i] = U::template params<false>(bp[m][i], j);
GEMMA4_UNROLL
            for (int g = 0; g < U::kGroups; ++g) {
                float part[M][RW][NT] = {};  // sum of u * x * 2^-85 over the group
                const int e_group = bl * U::kBlockElems + U::group_start(j, g);
GEMMA4_UNROLL
                for (int r = 0; r < kRuns; ++r) {
                    float4 xv[NT];
GEMMA4_UNROLL
                    for (int t = 0; t < NT; ++t)
                        xv[t] = *reinterpret_cast<const float4*>(xs + t * L::kXStride + skewed<U>(e_group + 4 * r));
GEMMA4_UNROLL
                    for (int m = 0; m < M; ++m)
GEMMA4_UNROLL
                        for (int i = 0; i < RW; ++i) {
                            const uint32_t q = U::quants(raw[m][i], j, g, r);
                            const uint32_t q0 = byte_of<0>(q), q1 = byte_of<1>(q), q2 = byte_of<2>(q), q3 = q >> 24;
GEMMA4_UNROLL
                            for (int t = 0; t < NT; ++t) {
                                float v = part[m][i][t];
                                v = quant_fma(q0, xv[t].x, v);
                                v = quant_fma(q1, xv[t].y, v);
                                v = quant_fma(q2, xv[t].z, v);
                                v = quant_fma(q3, xv[t].w, v);
                                part[m][i][t] = v;
                            }
                        }
                }
                float xsum[NT];
GEMMA4_UNROLL
                for (int t = 0; t < NT; ++t) xsum[t] = sums[(t * U::kGroups + g) * kWarpSize + lane];
GEMMA4_UNROLL
                for (int m = 0; m < M; ++m)
GEMMA4_UNROLL
                    for (int i = 0; i < RW; ++i) {
                        const float scale = par[m][i].scale[g] * kQuantUnscale;
                        const float shift = par[m][i].scale[g] * static_cast<float>(U::kOffset) + par[m][i].min[g];
GEMMA4_UNROLL
                        for (int t = 0; t < NT; ++t) {
                            const float v = exact_fma(scale, part[m][i][t], acc[m][i][t]);
                            acc[m][i][t] = exact_fma(-shift, xsum[t], v);
                        }
                    }
            }
        }
    }

    /// Writes output (row i of warp `warp`, token t) from the lane-reduced sums (v1: the up row when M = 2).
    GEMMA4_HD void store(int warp, int i, int t, float v0, float v1) const {
        const int o = o_cta + warp * RW + i;
        if (o < a.d_out && t < a.n_tokens) a.y[static_cast<size_t>(t) * a.d_out + o] = M == 2 ? gelu_tanh(v0) * v1 : v0;
    }
};

/// Waits until at most stages - 2 commit groups are pending (stages is 2 or 3, uniform over the CTA).
__device__ __forceinline__ void cp_async_wait_stages(int stages) {
    if (stages == 3) {
        cp_async_wait<1>();
    } else {
        cp_async_wait<0>();
    }
}

/// y = W x for NT tokens (M = 1), or y = gelu(W_gate x) * (W_up x) (M = 2). blockDim.x = 32 * warps.
/// The pipeline: one cp.async commit group per chunk (empty ones keep the count uniform); chunk k is
/// waited for, then a barrier makes everyone's copies visible and frees the stage of chunk k - 1, which
/// receives chunk k + stages - 1; then x is prepared (a second barrier) and the chunk computed.
template <class U, int NT, int M>
__global__ void __launch_bounds__(kGemvMaxThreads) gemv_kernel(const GemvArgs a) {
    using Cta = GemvCta<U, NT, M>;
    extern __shared__ __align__(16) uint8_t smem[];
    const Cta cta(a, smem, blockDim.x, blockIdx.x);
    const int tid = threadIdx.x, warp = tid / kWarpSize, lane = tid % kWarpSize;

    float acc[M][Cta::RW][NT] = {};
    for (int s = 0; s < a.stages - 1; ++s) {
        if (s < a.n_chunks) cta.issue(s, s, tid);
        cp_async_commit();
    }
    for (int k = 0; k < a.n_chunks; ++k) {
        cp_async_wait_stages(a.stages);  // chunk k has landed (this thread's copies) ...
        __syncthreads();                 // ... and everyone's; chunk k-1 is computed, its stage is free
        const int next = k + a.stages - 1;
        if (next < a.n_chunks) cta.issue(next, next % a.stages, tid);
        cp_async_commit();
        const int s = k % a.stages;
        if constexpr (!U::kPlain) {
            cta.prep(k, s, tid);
            __syncthreads();
        }
        cta.compute(k, s, warp, lane, acc);
    }

GEMMA4_UNROLL
    for (int i = 0; i < Cta::RW; ++i)
GEMMA4_UNROLL
        for (int t = 0; t < NT; ++t) {
            const float v0 = warp_sum(acc[0][i][t]);
            const float v1 = M == 2 ? warp_sum(acc[M - 1][i][t]) : 0.0f;
            if (lane == (i * NT + t) % kWarpSize) cta.store(warp, i, t, v0, v1);
        }
}

// ---------------------------------------------------------------------------------------------------
// Prefill kernels

/// out[r][0..d_in) = f16(dequantized row r) for the rows of `w`, in runs of kRunElems elements
/// (matmul_dequant.h): run n of the matrix (row n / runs_per_row) goes to out[8n .. 8n+7] as one 16-byte
/// store. Thread t of CTA c takes runs c * kDequantCtaRuns + t + i * kDequantThreads (i < kDequantRunsPerThread):
/// a warp's 32 consecutive runs are 512 contiguous output bytes per store, and the bytes of one K-quant
/// block or a few consecutive small blocks per load. In every CTA but the last all runs exist, and the
/// code is straight-line: every run's loads can be issued before the first store.
template <class Block>
__global__ void __launch_bounds__(kDequantThreads)
    dequant_f16_kernel(const uint8_t* __restrict__ w, size_t row_bytes, uint32_t runs_per_row, uint32_t n_runs,
                       __half* __restrict__ out) {
    using R = DequantRun<Block>;
    const auto decode = [&](uint32_t run) {
        const uint32_t row = run / runs_per_row, in_row = run - row * runs_per_row;
        const uint32_t block = in_row / R::kRunsPerBlock, k = in_row % R::kRunsPerBlock;
        float v[kRunElems];
        dequant_run<Block>(w + row * row_bytes + static_cast<size_t>(block) * R::kBlockBytes, static_cast<int>(k), v);
        // One rounding to f16 each (round to nearest even), as __float2half_rn.
        const __half2 h[kRunElems / 2] = {__floats2half2_rn(v[0], v[1]), __floats2half2_rn(v[2], v[3]),
                                          __floats2half2_rn(v[4], v[5]), __floats2half2_rn(v[6], v[7])};
        static_assert(sizeof(h) == sizeof(uint4), "a run is one 16-byte store");
        uint4 bits;
        memcpy(&bits, h, sizeof(bits));
        return bits;
    };
    auto* out_runs = reinterpret_cast<uint4*>(out);  // run n at out + 8n: 16-byte aligned
    const uint32_t cta_first = blockIdx.x * kDequantCtaRuns;
    const uint32_t first = cta_first + threadIdx.x;
    if (cta_first + kDequantCtaRuns <= n_runs) {
        uint4 packed[kDequantRunsPerThread];
GEMMA4_UNROLL
        for (int i = 0; i < kDequantRunsPerThread; ++i) packed[i] = decode(first + i * kDequantThreads);
GEMMA4_UNROLL
        for (int i = 0; i < kDequantRunsPerThread; ++i) out_runs[first + i * kDequantThreads] = packed[i];
    } else {
        for (uint32_t run = first; run < n_runs; run += kDequantThreads) out_runs[run] = decode(run);
    }
}

/// BF16 weights to f16, elementwise (exact for |w| in [2^-17, 65504]).
__global__ void bf16_to_f16_kernel(const uint16_t* w, int64_t n, __half* out) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        out[i] = __float2half_rn(bf16_to_f32(w[i]));
    }
}

/// The power-of-two exponent e that brings a row's max |x| into f16's comfortable range (x / 2^e).
__device__ int f16_scale_exponent(float max_abs) {
    if (!(max_abs > 0.0f) || isinf(max_abs)) return 0;
    if (max_abs >= ldexpf(1.0f, kF16LowExp) && max_abs < ldexpf(1.0f, kF16HighExp)) return 0;
    return max(-kMaxScaleExp, min(kMaxScaleExp, ilogbf(max_abs) - kF16TargetExp));
}

/// The row's scale exponent from each thread's partial max |x| (every thread gets it). One barrier.
__device__ int row_scale_exponent(float m) {
    __shared__ float warp_max[kConvertThreads / kWarpSize];
GEMMA4_UNROLL
    for (int o = kWarpSize / 2; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (threadIdx.x % kWarpSize == 0) warp_max[threadIdx.x / kWarpSize] = m;
    __syncthreads();
    m = 0.0f;
    for (int w = 0; w < kConvertThreads / kWarpSize; ++w) m = fmaxf(m, warp_max[w]);
    return f16_scale_exponent(m);
}

/// x16[t] = f16(x[t] / scales[t]), scales[t] = 2^e_t. One CTA of kConvertThreads per token row. Any d_in and
/// alignment; x_to_f16_vec_kernel is the fast path.
__global__ void __launch_bounds__(kConvertThreads) x_to_f16_kernel(const float* x, int d_in, __half* x16, float* scales) {
    const float* row = x + static_cast<size_t>(blockIdx.x) * d_in;
    __half* out = x16 + static_cast<size_t>(blockIdx.x) * d_in;
    float m = 0.0f;
    for (int i = threadIdx.x; i < d_in; i += blockDim.x) m = fmaxf(m, fabsf(row[i]));
    const int e = row_scale_exponent(m);
    const float inv = ldexpf(1.0f, -e);
    for (int i = threadIdx.x; i < d_in; i += blockDim.x) out[i] = __float2half_rn(row[i] * inv);
    if (threadIdx.x == 0) scales[blockIdx.x] = ldexpf(1.0f, e);
}

/// x_to_f16_kernel (same results) for rows of d_in % 4 == 0 floats at 16-byte aligned addresses with
/// d_in <= 4 * kVecs * kConvertThreads: thread t loads float4 t + i * kConvertThreads (i < kVecs; a warp
/// reads 512 contiguous bytes per load) all at once, keeps them in registers through the max reduction,
/// and writes each as 4 halves in one 8-byte store.
template <int kVecs>
__global__ void __launch_bounds__(kConvertThreads) x_to_f16_vec_kernel(const float* x, int d_in, __half* x16, float* scales) {
    const auto* row = reinterpret_cast<const float4*>(x + static_cast<size_t>(blockIdx.x) * d_in);
    auto* out = reinterpret_cast<uint2*>(x16 + static_cast<size_t>(blockIdx.x) * d_in);
    const int n_vecs = d_in / 4;
    float4 v[kVecs];
    float m = 0.0f;
GEMMA4_UNROLL
    for (int i = 0; i < kVecs; ++i) {
        const int j = static_cast<int>(threadIdx.x) + i * kConvertThreads;
        v[i] = j < n_vecs ? row[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        m = fmaxf(m, fmaxf(fmaxf(fabsf(v[i].x), fabsf(v[i].y)), fmaxf(fabsf(v[i].z), fabsf(v[i].w))));
    }
    const int e = row_scale_exponent(m);
    const float inv = ldexpf(1.0f, -e);
GEMMA4_UNROLL
    for (int i = 0; i < kVecs; ++i) {
        const int j = static_cast<int>(threadIdx.x) + i * kConvertThreads;
        if (j >= n_vecs) continue;
        const __half2 h[2] = {__floats2half2_rn(v[i].x * inv, v[i].y * inv), __floats2half2_rn(v[i].z * inv, v[i].w * inv)};
        uint2 bits;
        memcpy(&bits, h, sizeof(bits));
        out[j] = bits;
    }
    if (threadIdx.x == 0) scales[blockIdx.x] = ldexpf(1.0f, e);
}

/// y[t][:] *= scales[t], tokens strided over grid.y; rows with the usual scale of 1 are not touched.
__global__ void scale_rows_kernel(float* y, int n_tokens, int d_out, const float* scales) {
    for (int t = blockIdx.y; t < n_tokens; t += gridDim.y) {
        const float s = scales[t];
        if (s == 1.0f) continue;
        float* row = y + static_cast<size_t>(t) * d_out;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < d_out; i += gridDim.x * blockDim.x) row[i] *= s;
    }
}

/// out[t][j] = gelu_tanh(s_t * gate[t][j]) * (s_t * up[t][j]), s_t = scales ? scales[t] : 1. out may be up.
__global__ void geglu_kernel(const float* gate, const float* up, int64_t n, int d_ff, const float* scales, float* out) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float s = scales ? scales[i / d_ff] : 1.0f;
        out[i] = gelu_tanh(s * gate[i]) * (s * up[i]);
    }
}

// ---------------------------------------------------------------------------------------------------
// Host side

cudaStream_t stream_of(Context& ctx) { return static_cast<cudaStream_t>(ctx.stream()); }

void check_cublas(cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        throw Error(ErrorCode::device_error, std::string("cuBLAS ") + what + " failed: " + cublasGetStatusName(status) + " (" +
                                                 cublasGetStatusString(status) + ")");
    }
}

/// Shapes and the type, for both launchers. Throws Error(invalid_argument).
void validate(const WeightMatrix& w, const char* who) {
    const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(w.type));
    const std::string name = ggml_type_name(static_cast<uint32_t>(w.type));
    if (info == nullptr || !info->supported) {
        throw Error(ErrorCode::invalid_argument, std::string(who) + ": weight type " + name + " is not supported");
    }
    if (w.d_in <= 0 || w.d_in > INT_MAX || w.d_out < 0 || w.d_out > INT_MAX) {
        throw Error(ErrorCode::invalid_argument, std::string(who) + ": bad shape d_in " + std::to_string(w.d_in) + ", d_out " +
                                                     std::to_string(w.d_out));
    }
    if (ggml_row_bytes(w.type, w.d_in) != static_cast<int64_t>(w.row_bytes)) {
        throw Error(ErrorCode::invalid_argument, std::string(who) + ": " + name + " rows of " + std::to_string(w.d_in) +
                                                     " elements cannot be " + std::to_string(w.row_bytes) + " bytes");
    }
    if (w.d_out > 0 && (w.data == nullptr || reinterpret_cast<uintptr_t>(w.data) % 16 != 0)) {
        throw Error(ErrorCode::invalid_argument, std::string(who) + ": weight data must be non-null and 16-byte aligned");
    }
}

void validate_tokens(int n_tokens, const void* x, const void* y, const char* who) {
    if (n_tokens < 0) throw Error(ErrorCode::invalid_argument, std::string(who) + ": n_tokens " + std::to_string(n_tokens));
    if (n_tokens > 0 && (x == nullptr || y == nullptr)) {
        throw Error(ErrorCode::invalid_argument, std::string(who) + ": null activations");
    }
}

/// Raises the dynamic shared-memory limit of `kernel` on the current device once.
void allow_smem(const void* kernel, int bytes, std::atomic<bool> (&raised)[kMaxDevices]) {
    if (bytes <= kDefaultSmemBytes) return;
    int device = 0;
    GEMMA4_CUDA_CHECK(cudaGetDevice(&device));
    if (device < kMaxDevices && raised[device].load(std::memory_order_acquire)) return;
    GEMMA4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    if (device < kMaxDevices) raised[device].store(true, std::memory_order_release);
}

/// A GEMV launch: arguments and geometry.
struct GemvPlan {
    GemvArgs args;
    int warps;  // per CTA
    int ctas;
    int smem_bytes;
};

/// Plans one GEMV launch: NT-token tile, n_tokens <= NT of them real; M = 2: out = gelu(gate x) * (up x).
/// Fewer warps per CTA when d_out is small, so that the CTAs cover the SMs (kGemvWarps).
template <class Block, int NT, int M>
GemvPlan plan_gemv(const WeightMatrix& w, const uint8_t* w_up, const float* x, int n_tokens, float* y, int sm_count) {
    using U = GemvUnit<Block>;
    using Cta = GemvCta<U, NT, M>;
    const int d_in = static_cast<int>(w.d_in), d_out = static_cast<int>(w.d_out);
    const int n_blocks = U::kPlain ? ceil_div(d_in, U::kBlockElems) : d_in / U::kBlockElems;
    GemvPlan plan{};
    for (const int candidate : kGemvWarps) {
        plan.warps = candidate;
        if (ceil_div(d_out, candidate * Cta::RW) >= sm_count) break;
    }
    plan.ctas = ceil_div(d_out, plan.warps * Cta::RW);
    const int stages = plan.ctas <= kDeepPipelineCtasPerSm * sm_count ? Cta::kMaxStages : 2;
    plan.smem_bytes = Cta::smem_bytes(plan.warps, stages);
    GemvArgs& a = plan.args;
    a.w[0] = static_cast<const uint8_t*>(w.data);
    a.w[1] = M == 2 ? w_up : a.w[0];
    a.x = x;
    a.y = y;
    a.row_bytes = w.row_bytes;
    a.matrix_bytes = static_cast<size_t>(d_out) * w.row_bytes;
    a.d_in = d_in;
    a.d_out = d_out;
    a.n_blocks = n_blocks;
    a.n_chunks = ceil_div(n_blocks, Cta::L::kChunkBlocks);
    a.n_tokens = n_tokens;
    a.x_vec = reinterpret_cast<uintptr_t>(x) % 16 == 0 && d_in % 4 == 0;
    a.stages = stages;
    return plan;
}

template <class Block, int NT, int M>
void launch_gemv(const WeightMatrix& w, const uint8_t* w_up, const float* x, int n_tokens, float* y, Context& ctx) {
    using U = GemvUnit<Block>;
    const GemvPlan plan = plan_gemv<Block, NT, M>(w, w_up, x, n_tokens, y, ctx.sm_count());
    static std::atomic<bool> raised[kMaxDevices];
    allow_smem(reinterpret_cast<const void*>(&gemv_kernel<U, NT, M>),
               GemvCta<U, NT, M>::smem_bytes(kGemvWarps[0], GemvCta<U, NT, M>::kMaxStages), raised);
    gemv_kernel<U, NT, M><<<plan.ctas, plan.warps * kWarpSize, plan.smem_bytes, stream_of(ctx)>>>(plan.args);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

/// Decode: passes of up to kMaxPassTokens tokens, each one GEMV launch (the NT tile rounded up).
template <class Block>
void gemv_matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, Context& ctx) {
    for (int t0 = 0; t0 < n_tokens; t0 += kMaxPassTokens) {
        const int n = std::min(kMaxPassTokens, n_tokens - t0);
        const float* xp = x + static_cast<size_t>(t0) * w.d_in;
        float* yp = y + static_cast<size_t>(t0) * w.d_out;
        if (n == 1) {
            launch_gemv<Block, 1, 1>(w, nullptr, xp, n, yp, ctx);
        } else if (n == 2) {
            launch_gemv<Block, 2, 1>(w, nullptr, xp, n, yp, ctx);
        } else {
            launch_gemv<Block, 4, 1>(w, nullptr, xp, n, yp, ctx);
        }
    }
}

/// x in f16 for the GEMMs, with the per-token scales (see x_to_f16_kernel), in scratch slot 1.
struct XHalf {
    const __half* x16;
    const float* scales;
};

XHalf convert_x(const float* x, int n_tokens, int d_in, Context& ctx) {
    const size_t x16_bytes = (static_cast<size_t>(n_tokens) * d_in * sizeof(__half) + 255) / 256 * 256;
    auto* base = static_cast<uint8_t*>(ctx.scratch(kScratchSlotX, x16_bytes + static_cast<size_t>(n_tokens) * sizeof(float)));
    auto* x16 = reinterpret_cast<__half*>(base);
    auto* scales = reinterpret_cast<float*>(base + x16_bytes);
    const bool vec = d_in % kConvertVecElems == 0 && reinterpret_cast<uintptr_t>(x) % sizeof(float4) == 0;
    const int vecs_needed = ceil_div(d_in, kConvertVecElems * kConvertThreads);
    const auto launch = [&](auto kernel) { kernel<<<n_tokens, kConvertThreads, 0, stream_of(ctx)>>>(x, d_in, x16, scales); };
    if (!vec || vecs_needed > kConvertVecs[std::size(kConvertVecs) - 1]) {
        launch(x_to_f16_kernel);
    } else if (vecs_needed <= kConvertVecs[0]) {
        launch(x_to_f16_vec_kernel<kConvertVecs[0]>);
    } else if (vecs_needed <= kConvertVecs[1]) {
        launch(x_to_f16_vec_kernel<kConvertVecs[1]>);
    } else if (vecs_needed <= kConvertVecs[2]) {
        launch(x_to_f16_vec_kernel<kConvertVecs[2]>);
    } else if (vecs_needed <= kConvertVecs[3]) {
        launch(x_to_f16_vec_kernel<kConvertVecs[3]>);
    } else {
        launch(x_to_f16_vec_kernel<kConvertVecs[4]>);
    }
    GEMMA4_CUDA_CHECK_LAUNCH();
    return {x16, scales};
}

/// Makes sure the shared cuBLAS handle runs on the context's stream with host-side alpha/beta.
cublasHandle_t cublas_of(Context& ctx) {
    auto handle = static_cast<cublasHandle_t>(ctx.cublas());
    cudaStream_t s = nullptr;
    check_cublas(cublasGetStream(handle, &s), "cublasGetStream");
    if (s != stream_of(ctx)) check_cublas(cublasSetStream(handle, stream_of(ctx)), "cublasSetStream");
    cublasPointerMode_t mode{};
    check_cublas(cublasGetPointerMode(handle, &mode), "cublasGetPointerMode");
    if (mode != CUBLAS_POINTER_MODE_HOST) check_cublas(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
    return handle;
}

/// y[t][o] = W[o] . x[t] (column-major: C[d_out x n] = W^T[d_out x d_in] * X[d_in x n]) for f32 weights:
/// plain f32 arithmetic (PEDANTIC: no TF32).
void gemm_f32(const WeightMatrix& w, const float* x, int n_tokens, float* y, Context& ctx) {
    const float one = 1.0f, zero = 0.0f;
    const int d_in = static_cast<int>(w.d_in), d_out = static_cast<int>(w.d_out);
    check_cublas(cublasGemmEx(cublas_of(ctx), CUBLAS_OP_T, CUBLAS_OP_N, d_out, n_tokens, d_in, &one, w.data, CUDA_R_32F, d_in, x,
                              CUDA_R_32F, d_in, &zero, y, CUDA_R_32F, d_out, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT),
                 "f32 GEMM");
}

/// y (unscaled by the token scales) = W x16 with W dequantized to f16 in row chunks (scratch slot 0).
template <class Block>
void gemm_f16(const WeightMatrix& w, const XHalf& xh, int n_tokens, float* y, Context& ctx) {
    const int d_in = static_cast<int>(w.d_in), d_out = static_cast<int>(w.d_out);
    const float one = 1.0f, zero = 0.0f;
    cublasHandle_t handle = cublas_of(ctx);
    const auto gemm = [&](const __half* a, int o0, int rows) {
        check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, rows, n_tokens, d_in, &one, a, CUDA_R_16F, d_in, xh.x16,
                                  CUDA_R_16F, d_in, &zero, y + o0, CUDA_R_32F, d_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "f16 GEMM");
    };
    if constexpr (std::is_same_v<Block, F16>) {
        gemm(static_cast<const __half*>(w.data), 0, d_out);
    } else {
        const size_t row_f16_bytes = static_cast<size_t>(d_in) * sizeof(__half);
        int chunk_rows = static_cast<int>(std::min<size_t>(d_out, std::max<size_t>(1, kDequantScratchBytes / row_f16_bytes)));
        if (chunk_rows >= kDequantRowAlign) chunk_rows = chunk_rows / kDequantRowAlign * kDequantRowAlign;
        auto* w16 = static_cast<__half*>(ctx.scratch(kScratchSlotWeights, static_cast<size_t>(chunk_rows) * row_f16_bytes));
        const auto* base = static_cast<const uint8_t*>(w.data);
        for (int o0 = 0; o0 < d_out; o0 += chunk_rows) {
            const int rows = std::min(chunk_rows, d_out - o0);
            const uint8_t* src = base + static_cast<size_t>(o0) * w.row_bytes;
            if constexpr (std::is_same_v<Block, BF16>) {
                const int64_t n = static_cast<int64_t>(rows) * d_in;
                bf16_to_f16_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(
                    reinterpret_cast<const uint16_t*>(src), n, w16);
            } else {
                // Runs per launch: at most kDequantScratchBytes / 16, or one row's d_in / 8 when a row alone
                // exceeds the scratch size; both fit the kernel's 32-bit run index.
                const auto runs_per_row = static_cast<uint32_t>(d_in / kRunElems);
                const auto n_runs = static_cast<uint32_t>(static_cast<int64_t>(rows) * runs_per_row);
                const auto grid = static_cast<unsigned>(ceil_div(n_runs, kDequantCtaRuns));
                dequant_f16_kernel<Block><<<grid, kDequantThreads, 0, stream_of(ctx)>>>(src, w.row_bytes, runs_per_row, n_runs, w16);
            }
            GEMMA4_CUDA_CHECK_LAUNCH();
            gemm(w16, o0, rows);
        }
    }
}

void scale_rows(float* y, int n_tokens, int d_out, const float* scales, Context& ctx) {
    const dim3 grid(static_cast<unsigned>(std::min(ceil_div(d_out, kElementwiseThreads * 4), kMaxElementwiseBlocks)),
                    static_cast<unsigned>(std::min(n_tokens, kMaxGridY)));
    scale_rows_kernel<<<grid, kElementwiseThreads, 0, stream_of(ctx)>>>(y, n_tokens, d_out, scales);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void launch_geglu(const float* gate, const float* up, int n_tokens, int d_ff, const float* scales, float* out, Context& ctx) {
    const int64_t n = static_cast<int64_t>(n_tokens) * d_ff;
    geglu_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(gate, up, n, d_ff, scales, out);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------------------------------------------
// Per-type entry points, explicitly instantiated at the end of the file for the types with a GemvUnit.

template <class Block>
struct TypedOps {
    static void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, Context& ctx);
    static void gate_up(const WeightMatrix& gate, const WeightMatrix& up, const float* x, int n_tokens, float* scratch,
                        float* out, Context& ctx);
};

template <class Block>
void TypedOps<Block>::matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, Context& ctx) {
    if (n_tokens == 1 && !exact_decode_requested() && gemv_q8_supports(w, x)) {
        gemv_q8(w, nullptr, x, y, ctx);
    } else if (n_tokens <= kMaxDecodeTokens) {
        gemv_matmul<Block>(w, x, n_tokens, y, ctx);
    } else if constexpr (std::is_same_v<Block, F32>) {
        gemm_f32(w, x, n_tokens, y, ctx);
    } else {
        const XHalf xh = convert_x(x, n_tokens, static_cast<int>(w.d_in), ctx);
        gemm_f16<Block>(w, xh, n_tokens, y, ctx);
        scale_rows(y, n_tokens, static_cast<int>(w.d_out), xh.scales, ctx);
    }
}

template <class Block>
void TypedOps<Block>::gate_up(const WeightMatrix& gate, const WeightMatrix& up, const float* x, int n_tokens, float* scratch,
                              float* out, Context& ctx) {
    const int d_ff = static_cast<int>(gate.d_out);
    if (n_tokens == 1 && !exact_decode_requested() && gemv_q8_supports(gate, x) && gemv_q8_supports(up, x)) {
        gemv_q8(gate, &up, x, out, ctx);
    } else if (n_tokens == 1) {
        launch_gemv<Block, 1, 2>(gate, static_cast<const uint8_t*>(up.data), x, 1, out, ctx);
    } else if (n_tokens <= kMaxDecodeTokens) {
        gemv_matmul<Block>(gate, x, n_tokens, scratch, ctx);
        gemv_matmul<Block>(up, x, n_tokens, out, ctx);
        launch_geglu(scratch, out, n_tokens, d_ff, nullptr, out, ctx);
    } else if constexpr (std::is_same_v<Block, F32>) {
        gemm_f32(gate, x, n_tokens, scratch, ctx);
        gemm_f32(up, x, n_tokens, out, ctx);
        launch_geglu(scratch, out, n_tokens, d_ff, nullptr, out, ctx);
    } else {
        const XHalf xh = convert_x(x, n_tokens, static_cast<int>(gate.d_in), ctx);
        gemm_f16<Block>(gate, xh, n_tokens, scratch, ctx);
        gemm_f16<Block>(up, xh, n_tokens, out, ctx);
        launch_geglu(scratch, out, n_tokens, d_ff, xh.scales, out, ctx);
    }
}

// Defined by the explicit instantiations at the end; nothing else is instantiated.
extern template struct TypedOps<F32>;
extern template struct TypedOps<F16>;
extern template struct TypedOps<BF16>;
extern template struct TypedOps<Q4_0>;
extern template struct TypedOps<Q4_1>;
extern template struct TypedOps<Q5_0>;
extern template struct TypedOps<Q5_1>;
extern template struct TypedOps<Q8_0>;
extern template struct TypedOps<Q2K>;
extern template struct TypedOps<Q3K>;
extern template struct TypedOps<Q4K>;
extern template struct TypedOps<Q5K>;
extern template struct TypedOps<Q6K>;

/// Calls f.template operator()<Block>() for the weight type of `w`, or throws for types without a kernel.
template <class F>
void dispatch(const WeightMatrix& w, const char* who, F&& f) {
    visit_quant_type(w.type, [&]<class Traits>(Traits) {
        using Block = typename Traits::block_type;
        if constexpr (kHasGemvUnit<Block>) {
            f.template operator()<Block>();
        } else {
            throw Error(ErrorCode::invalid_argument,
                        std::string(who) + ": no CUDA kernel for weight type " + ggml_type_name(static_cast<uint32_t>(w.type)));
        }
    });
}

}  // namespace matmul_detail

// ---------------------------------------------------------------------------------------------------
// Launchers

void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, Context& ctx) {
    using namespace matmul_detail;
    validate(w, "cuda::matmul");
    validate_tokens(n_tokens, x, y, "cuda::matmul");
    if (n_tokens == 0 || w.d_out == 0) return;
    dispatch(w, "cuda::matmul", [&]<class Block>() { TypedOps<Block>::matmul(w, x, n_tokens, y, ctx); });
}

void gate_up_geglu(const WeightMatrix& gate, const WeightMatrix& up, const float* x, int n_tokens, float* scratch, float* out,
                   Context& ctx) {
    using namespace matmul_detail;
    validate(gate, "cuda::gate_up_geglu (gate)");
    validate(up, "cuda::gate_up_geglu (up)");
    validate_tokens(n_tokens, x, out, "cuda::gate_up_geglu");
    if (gate.d_in != up.d_in || gate.d_out != up.d_out) {
        throw Error(ErrorCode::invalid_argument, "cuda::gate_up_geglu: gate is " + std::to_string(gate.d_out) + "x" +
                                                     std::to_string(gate.d_in) + " but up is " + std::to_string(up.d_out) + "x" +
                                                     std::to_string(up.d_in));
    }
    if (n_tokens > 0 && scratch == nullptr) throw Error(ErrorCode::invalid_argument, "cuda::gate_up_geglu: null scratch");
    if (n_tokens == 0 || gate.d_out == 0) return;
    if (gate.type == up.type) {
        dispatch(gate, "cuda::gate_up_geglu",
                 [&]<class Block>() { TypedOps<Block>::gate_up(gate, up, x, n_tokens, scratch, out, ctx); });
    } else {
        // Mixed types (possible in some quant mixes): two matmuls, then the elementwise GeGLU.
        matmul(gate, x, n_tokens, scratch, ctx);
        matmul(up, x, n_tokens, out, ctx);
        launch_geglu(scratch, out, n_tokens, static_cast<int>(gate.d_out), nullptr, out, ctx);
    }
}

// ---------------------------------------------------------------------------------------------------
// Explicit instantiations: the weight types with a GemvUnit, and nothing else.

namespace matmul_detail {
template struct TypedOps<F32>;
template struct TypedOps<F16>;
template struct TypedOps<BF16>;
template struct TypedOps<Q4_0>;
template struct TypedOps<Q4_1>;
template struct TypedOps<Q5_0>;
template struct TypedOps<Q5_1>;
template struct TypedOps<Q8_0>;
template struct TypedOps<Q2K>;
template struct TypedOps<Q3K>;
template struct TypedOps<Q4K>;
template struct TypedOps<Q5K>;
template struct TypedOps<Q6K>;
}  // namespace matmul_detail

}  // namespace gemma4::cuda
