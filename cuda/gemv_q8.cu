// One-token decode matrix-vector products with 8-bit activations and integer dot products: cuda::gemv_q8.
//
// Math. y[o] = sum_i W[o][i] x[i] for ONE token, W as stored in the GGUF (Q4_K, Q6_K, Q8_0 or Q4_0 blocks),
// with x rounded to a 16-bit integer per element on a per-32-block scale:
//     dx_b = max_i |x_i| / 32639 over block b,   v_i = rint(x_i * (1 / dx_b)) in [-32639, 32639]
//     (dx_b = 0 gives v = 0), then split into two int8 planes: v = 256 hi + lo, hi = (v + 128) >> 8 in
//     [-127, 127], lo in [-128, 127]
// so that a weight group with scale s and min m (w = s * u - m, u the unsigned quant) contributes
//     sum_i w_i x_i ~= s * dx_b * (256 sum_i u_i hi_i + sum_i u_i lo_i)  -  m * dx_b * sum_i v_i
// where both sums are exact in 32-bit integers, four products per dp4a instruction. The only rounding
// beyond f32 accumulation is that of x, |x_i - dx_b v_i| <= dx_b / 2 = max|x| / 65278: ~1e-5 relative,
// below the f16 rounding of the prefill path (llama.cpp rounds decode activations to 8 bits, ~100x
// coarser; the 8-bit version of this kernel moved our CUDA logits ~1e-2 from the CPU backend's).
// tests/kernels/matmul_test.cpp checks the kernel against a host emulation of this rounding and the
// size of the error against the f32 CPU reference. The f32 decode kernel of cuda/matmul_quant.cu stays
// available (GEMMA4_EXACT_DECODE=1, and for other types); prefill never uses this file.
//
// Why. The f32 kernel spends ~3 instructions per weight (decode, convert, FMA); at the HBM rate that is
// over half of the SM issue slots, and it reached 40-55 % of the bandwidth. Here a weight costs ~3/4
// instruction (a quarter of a byte mask and half a dp4a per plane), leaving the loads in charge.
//
// Geometry (persistent CTAs of W = 2..8 warps). Each CTA first copies x into shared memory as the two
// int8 planes plus, per 32-block, dx (f32) and, per 16 elements, the integer sum of v (for the mins and
// the Q6_K/Q4_0 offsets). Each warp then streams its rows, warp_id, warp_id + total_warps, ..., two
// "streams" at a time: two of its rows together (r and r + total_warps), or for the fused gate/up a
// gate row and an up row. Every x load from shared memory then serves two weight rows: x is two bytes
// per weight against ~0.56 (Q4_K) of weights, so reading it once per row made shared memory, not DRAM,
// the limit (H100, ncu: ~2.4 instructions issued per cycle at 47 % of DRAM bandwidth on ffn_down).
// A row is cut into chunks of 32 "pieces", one per lane (a piece: 64 weights of a Q4_K or Q6_K block, a
// whole Q8_0 or Q4_0 block). A step's chunks (contiguous in their rows) are copied by the warp into its
// own shared-memory slots with 16-byte cp.async from the 16-byte aligned address at or below the segment
// (any block size and alignment works; Q6_K blocks are 210 bytes, Q8_0 34), kStages - 1 steps ahead:
// the pipeline runs across row boundaries, so a warp keeps 2 steps (4-7 KiB) in flight at all times. The
// position of the pipeline is a cursor advanced chunk by chunk (row pointers set once per row, no
// divisions). Only __syncwarp inside the loop; the x copy is the one CTA-wide barrier, and the first
// weight chunks are already in flight while it runs (and, with programmatic dependent launch, while the
// previous kernel finishes). A row's sum is a warp reduction, written by lane 0.
//
// Long rows (d_in >= 2 x 3840: ffn_down, a full layer's attn_output) are split (split-K, see GemvQ8Args): the
// CTAs form equal runs, each run rounds and holds one slice of x and streams that slice of every row into
// partial sums, and the last CTA of each row group adds the slices' sums in a fixed order (deterministic). A
// CTA then holds a quarter of ffn_down's x (15 KB instead of 61) and three CTAs fit per SM.
//
// Shared-memory layout: [hi plane][lo plane] (each d_in int8 with 16 bytes of padding every 2^kXPadShift
// bytes so that the lanes of a 16-byte load phase hit distinct banks)[dx: n_xblocks f32][sums: 2 n_xblocks int32]
// [warp 0: stage 0: kStreams slots, stage 1 ...][warp 1 ...]. A slot holds a chunk's bytes at their address
// modulo 16, plus 16 bytes so that the aligned 4-byte reads of 2-byte aligned fields may overrun.
//
// Constraints (gemv_q8_supports): d_in a multiple of 256 for K-quants and 32 otherwise, row_bytes as
// ggml's, W and x 16-byte aligned; x finite.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "cuda/common.cuh"
#include "cuda/matmul_dequant.h"
#include "cuda/ops.h"
#include "cuda/row_reduce.cuh"
#include "model/activations.h"
#include "quant/types.h"

namespace gemma4::cuda {
namespace {

using matmul_detail::half_bits_to_float;
using matmul_detail::kHalfBits;
using matmul_detail::kNibbles;

constexpr int kXBlock = 32;             // x elements per quantization block (one dx)
constexpr int kXHalf = 16;              // elements per integer sum
constexpr int kMaxWarps = 8;            // per CTA
static_assert(kMaxWarps * kWarpSize <= kRowThreads, "block_sum reduces blocks of up to kRowThreads threads");
constexpr int kChunkPieces = kWarpSize; // one piece per lane per chunk
constexpr int kSlotSlack = 16;          // a slot holds (address mod 16) + chunk bytes + overrun room
constexpr float kVMax = 32639.0f;       // largest |v|: 127 * 256 + 127, so hi = (v + 128) >> 8 stays in int8
constexpr int kHiShift = 8;             // v = hi << 8 + lo
constexpr uint32_t kQ6High = 0x30303030u;  // bits 4-5 of each byte: the top two bits of a 6-bit quant
constexpr int kQ6Offset = 32;             // Q6_K: w = d * sc * (q - 32)
constexpr int kQ4Offset = 8;              // Q4_0: w = d * (q - 8)
constexpr int kMaxDevices = 16;

__device__ __forceinline__ float half_at(const uint8_t* p) {
    return half_bits_to_float(*reinterpret_cast<const unsigned short*>(p));
}

/// N consecutive 32-bit words from a 2-byte aligned shared-memory address: aligned reads and funnel shifts.
/// Reads up to 4 bytes past the range (slots have room).
template <int N>
__device__ __forceinline__ void words_at(const uint8_t* p, uint32_t (&w)[N]) {
    const auto addr = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p));
    const uint32_t lead = addr & 3u;
    const auto* base = reinterpret_cast<const uint32_t*>(p - lead);
    uint32_t a[N + 1];
#pragma unroll
    for (int i = 0; i <= N; ++i) a[i] = base[i];
#pragma unroll
    for (int i = 0; i < N; ++i) w[i] = __funnelshift_r(a[i], a[i + 1], 8 * lead);
}

/// 16 elements of x: four words of each plane.
struct X16 {
    int4 hi, lo;
};

/// The rounded x in shared memory.
struct XShared {
    const uint8_t* hi;  // int8 planes, padded (see x_offset)
    const uint8_t* lo;
    const float* d;     // per 32-block
    const int* sums;    // sum of v per 16 elements
    int pad_shift;

    __device__ __forceinline__ X16 load16(int elem) const {  // elements [elem, elem + 16), elem a multiple of 16
        const int off = elem + 16 * (elem >> pad_shift);
        return {*reinterpret_cast<const int4*>(hi + off), *reinterpret_cast<const int4*>(lo + off)};
    }
};

/// acc += the dot product of the four bytes of w (signed or unsigned < 128) with 4 elements of x, per plane.
struct Dot {
    int hi = 0, lo = 0;
    __device__ __forceinline__ void add(uint32_t w, int x_hi, int x_lo) {
        hi = __dp4a(static_cast<int>(w), x_hi, hi);
        lo = __dp4a(static_cast<int>(w), x_lo, lo);
    }
    /// Four words of weights (16 bytes) with the 16 elements of x.
    __device__ __forceinline__ void add4(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, const X16& x) {
        add(w0, x.hi.x, x.lo.x);
        add(w1, x.hi.y, x.lo.y);
        add(w2, x.hi.z, x.lo.z);
        add(w3, x.hi.w, x.lo.w);
    }
    /// 256 hi + lo: |result| <= 32 * 255 * 32639 < 2^31 for the 16- and 32-element groups used here.
    __device__ __forceinline__ int value() const { return (hi << kHiShift) + lo; }
};

__host__ __device__ constexpr int x_offset(int elem, int pad_shift) { return elem + 16 * (elem >> pad_shift); }

// ---------------------------------------------------------------------------------------------------
// Piece decoders: Dec::piece(b, j, xb0, x, out) computes, for each of kStreams weight blocks b[n] in shared
// memory (two rows, or a gate row and an up row), the dot product of its piece j with x; xb0 is the first
// x block of these weight blocks. Every x load (the costly part: two bytes of x per weight, against
// 0.56-1.06 bytes of weights) is issued once and used for both streams.

constexpr int kStreams = 2;  // weight rows per step of a warp, sharing x

/// Q4_K: d, dmin (f16), 12 bytes of 6-bit scales/mins, qs[128]. Piece j < 4 = qs[32j .. 32j + 32): low
/// nibbles are sub-block 2j (elements 64j + l), high nibbles sub-block 2j + 1 (64j + 32 + l).
struct Q4KDec {
    static constexpr int kBlockBytes = 144, kBlockElems = 256, kPieces = 4, kXPadShift = 6;
    // 144 = 9 x 16: every block of a 16-byte aligned matrix is 16-byte aligned (read as uint4).
    __device__ static void piece(const uint8_t* const (&b)[kStreams], int j, int xb0, const XShared& x,
                                 float (&out)[kStreams]) {
        const int xlo = xb0 + 2 * j, xhi = xlo + 1;
        uint4 qa[kStreams], qb[kStreams];
        Dot dl[kStreams], dh[kStreams];
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            qa[n] = *reinterpret_cast<const uint4*>(b[n] + 16 + 32 * j);
            qb[n] = *reinterpret_cast<const uint4*>(b[n] + 32 + 32 * j);
        }
        X16 xv = x.load16(xlo * kXBlock);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            dl[n].add4(qa[n].x & kNibbles, qa[n].y & kNibbles, qa[n].z & kNibbles, qa[n].w & kNibbles, xv);
        }
        xv = x.load16(xlo * kXBlock + 16);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            dl[n].add4(qb[n].x & kNibbles, qb[n].y & kNibbles, qb[n].z & kNibbles, qb[n].w & kNibbles, xv);
        }
        xv = x.load16(xhi * kXBlock);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            dh[n].add4((qa[n].x >> 4) & kNibbles, (qa[n].y >> 4) & kNibbles, (qa[n].z >> 4) & kNibbles,
                       (qa[n].w >> 4) & kNibbles, xv);
        }
        xv = x.load16(xhi * kXBlock + 16);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            dh[n].add4((qb[n].x >> 4) & kNibbles, (qb[n].y >> 4) & kNibbles, (qb[n].z >> 4) & kNibbles,
                       (qb[n].w >> 4) & kNibbles, xv);
        }
        const float dx0 = x.d[xlo], dx1 = x.d[xhi];
        const float s0 = static_cast<float>(x.sums[2 * xlo] + x.sums[2 * xlo + 1]);
        const float s1 = static_cast<float>(x.sums[2 * xhi] + x.sums[2 * xhi + 1]);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            // 6-bit scale and min of sub-blocks 2j, 2j + 1 (ggml's get_scale_min_k4). Scale bytes 0-3 are h.y,
            // 4-7 h.z, 8-11 h.w. Sub-block s < 4: sc = byte s & 63, m = byte s+4 & 63; s >= 4: sc = low nibble
            // of byte s+4 | (top 2 bits of byte s-4) << 4, m = high nibble of byte s+4 | (top 2 bits of byte s) << 4.
            const uint4 h = *reinterpret_cast<const uint4*>(b[n]);
            const uint32_t sh = 16u * static_cast<uint32_t>(j & 1);  // byte 2j or 2j - 4 of its word
            uint32_t sc0, sc1, m0, m1;
            if (j < 2) {
                const uint32_t sc = h.y >> sh, m = h.z >> sh;
                sc0 = sc & 63;
                sc1 = (sc >> 8) & 63;
                m0 = m & 63;
                m1 = (m >> 8) & 63;
            } else {
                const uint32_t low = h.w >> sh, top_sc = h.y >> sh, top_m = h.z >> sh;
                sc0 = (low & 0xF) | ((top_sc >> 6) & 3) << 4;
                sc1 = ((low >> 8) & 0xF) | ((top_sc >> 14) & 3) << 4;
                m0 = ((low >> 4) & 0xF) | ((top_m >> 6) & 3) << 4;
                m1 = ((low >> 12) & 0xF) | ((top_m >> 14) & 3) << 4;
            }
            const float d = half_bits_to_float(h.x);
            const float dmin = half_bits_to_float(h.x >> kHalfBits);
            out[n] = d * (dx0 * static_cast<float>(sc0) * static_cast<float>(dl[n].value()) +
                          dx1 * static_cast<float>(sc1) * static_cast<float>(dh[n].value())) -
                     dmin * (dx0 * static_cast<float>(m0) * s0 + dx1 * static_cast<float>(m1) * s1);
        }
    }
};

/// Q6_K: ql[128], qh[64], int8 scales[16], d (f16). Half hf < 2 holds elements 128 hf + 32 k + l (k < 4,
/// l < 32): low 4 bits from ql[64 hf + 32 (k & 1) + l] (low nibble for k < 2, high for k >= 2), top 2 bits
/// from bits 2k..2k+1 of qh[32 hf + l]; scale scales[8 hf + 2k + l / 16]; w = d * scale * (q - 32). Piece
/// j < 4: hf = j / 2 and the l-half lh = j % 2 (l in [16 lh, 16 lh + 16)), all four k: 64 weights.
struct Q6KDec {
    static constexpr int kBlockBytes = 210, kBlockElems = 256, kPieces = 4, kXPadShift = 6;
    __device__ static void piece(const uint8_t* const (&b)[kStreams], int j, int xb0, const XShared& x,
                                 float (&out)[kStreams]) {
        const int hf = j >> 1, lh = j & 1;
        uint32_t ql0[kStreams][4], ql1[kStreams][4], qh[kStreams][4];
        float sum[kStreams];
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            words_at(b[n] + 64 * hf + 16 * lh, ql0[n]);
            words_at(b[n] + 64 * hf + 32 + 16 * lh, ql1[n]);
            words_at(b[n] + 128 + 32 * hf + 16 * lh, qh[n]);
            sum[n] = 0.0f;
        }
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const int xb = xb0 + 4 * hf + k;
            const X16 xv = x.load16(xb * kXBlock + 16 * lh);
            const int offset = kQ6Offset * x.sums[2 * xb + lh];
            const float dx = x.d[xb];
#pragma unroll
            for (int n = 0; n < kStreams; ++n) {
                uint32_t q[4];
#pragma unroll
                for (int w = 0; w < 4; ++w) {
                    const uint32_t l = (k & 1) ? ql1[n][w] : ql0[n][w];
                    const uint32_t lo = (k < 2 ? l : l >> 4) & kNibbles;
                    const uint32_t hi = (k < 2 ? qh[n][w] << (4 - 2 * k) : qh[n][w] >> (2 * k - 4)) & kQ6High;
                    q[w] = lo | hi;
                }
                Dot dot;
                dot.add4(q[0], q[1], q[2], q[3], xv);
                const auto* scales = reinterpret_cast<const int8_t*>(b[n] + 192 + 8 * hf + lh);
                sum[n] += dx * static_cast<float>(scales[2 * k]) * static_cast<float>(dot.value() - offset);
            }
        }
#pragma unroll
        for (int n = 0; n < kStreams; ++n) out[n] = half_at(b[n] + 208) * sum[n];
    }
};

/// Q8_0: d (f16), 32 int8 quants; one piece per block.
struct Q80Dec {
    static constexpr int kBlockBytes = 34, kBlockElems = 32, kPieces = 1, kXPadShift = 7;
    __device__ static void piece(const uint8_t* const (&b)[kStreams], int, int xb0, const XShared& x,
                                 float (&out)[kStreams]) {
        uint32_t q[kStreams][8];
        Dot dot[kStreams];
#pragma unroll
        for (int n = 0; n < kStreams; ++n) words_at(b[n] + 2, q[n]);
        X16 xv = x.load16(xb0 * kXBlock);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) dot[n].add4(q[n][0], q[n][1], q[n][2], q[n][3], xv);
        xv = x.load16(xb0 * kXBlock + 16);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) dot[n].add4(q[n][4], q[n][5], q[n][6], q[n][7], xv);
        const float dx = x.d[xb0];
#pragma unroll
        for (int n = 0; n < kStreams; ++n) out[n] = half_at(b[n]) * dx * static_cast<float>(dot[n].value());
    }
};

/// Q4_0: d (f16), qs[16]: element l < 16 is the low nibble of qs[l], element 16 + l the high nibble; w = d (q - 8).
struct Q40Dec {
    static constexpr int kBlockBytes = 18, kBlockElems = 32, kPieces = 1, kXPadShift = 7;
    __device__ static void piece(const uint8_t* const (&b)[kStreams], int, int xb0, const XShared& x,
                                 float (&out)[kStreams]) {
        uint32_t q[kStreams][4];
        Dot dot[kStreams];
#pragma unroll
        for (int n = 0; n < kStreams; ++n) words_at(b[n] + 2, q[n]);
        X16 xv = x.load16(xb0 * kXBlock);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            dot[n].add4(q[n][0] & kNibbles, q[n][1] & kNibbles, q[n][2] & kNibbles, q[n][3] & kNibbles, xv);
        }
        xv = x.load16(xb0 * kXBlock + 16);
#pragma unroll
        for (int n = 0; n < kStreams; ++n) {
            dot[n].add4((q[n][0] >> 4) & kNibbles, (q[n][1] >> 4) & kNibbles, (q[n][2] >> 4) & kNibbles,
                        (q[n][3] >> 4) & kNibbles, xv);
        }
        const int s = x.sums[2 * xb0] + x.sums[2 * xb0 + 1];
        const float dx = x.d[xb0];
#pragma unroll
        for (int n = 0; n < kStreams; ++n) out[n] = half_at(b[n]) * dx * static_cast<float>(dot[n].value() - kQ4Offset * s);
    }
};

// ---------------------------------------------------------------------------------------------------
// The kernel

template <class Dec>
struct Geometry {
    static constexpr int kChunkBlocks = kChunkPieces / Dec::kPieces;
    static constexpr int kChunkBytes = kChunkBlocks * Dec::kBlockBytes;
    static constexpr int kSlotBytes = (kChunkBytes + 15 + kSlotSlack + 15) / 16 * 16;
    static_assert(kChunkBlocks * Dec::kPieces == kChunkPieces, "a chunk is whole blocks");
};

constexpr int kScratchSlotPartial = 4;  // Context scratch slot of the split-K partial sums

/// Pipeline depth: steps per warp in flight + the one being computed (a step is kStreams chunks).
constexpr int kStages = 3;

constexpr int kMaxMatrices = 3;  // one launch: up to three matrices with the same x, type and d_in (Q, K, V)

/// Rows [row_begin[k], row_begin[k + 1]) of the launch are the rows of matrix k; with kGeglu one matrix
/// pair, w[0] gate and w[1] up, y[0] = gelu(gate x) * (up x).
struct GemvQ8Args {
    const uint8_t* w[kMaxMatrices];
    float* y[kMaxMatrices];
    int row_begin[kMaxMatrices + 1];
    const float* x;        // [d_in]
    const float* norm_w;   // RMSNorm weight applied to x first, or null
    float eps;
    bool x_regs;           // a normed x of up to 16 floats per thread is read once into registers (quantize_x_regs)
    size_t row_bytes;      // from one row to the next
    int d_in;              // elements of x (and of a row) one CTA takes: the whole row, or its split's slice
    int d_out;             // total rows
    int n_blocks;          // weight blocks per row (per split)
    int n_chunks;          // chunks per row (per split)
    // Split-K (k_splits > 1; no norm, no GeGLU): the CTAs form k_splits equal runs; run s takes
    // x[s d_in, (s + 1) d_in) and bytes [s split_bytes, (s + 1) split_bytes) of every row, and writes
    // partial[s][row]. The CTAs with the same index in every run own the same rows (a "group"); the last of
    // them to finish (counters[group]) adds the k_splits partials in order s = 0, 1, ... and writes y.
    int k_splits;
    size_t split_bytes;
    float* partial;        // [k_splits][d_out]
    unsigned* counters;    // [CTAs per run], zero between launches
};

/// The matrix of launch row r.
__device__ __forceinline__ int matrix_of(const GemvQ8Args& a, int r) { return (r >= a.row_begin[1]) + (r >= a.row_begin[2]); }
/// v[k] for a run-time k < kMaxMatrices + 1, by selects: indexing a kernel parameter array with a
/// run-time index would copy it to local memory.
template <class T, size_t N>
__device__ __forceinline__ T pick(const T (&v)[N], int k) {
    T r = v[0];
#pragma unroll
    for (int i = 1; i < static_cast<int>(N); ++i) r = k == i ? v[i] : r;
    return r;
}

/// Bytes of one padded x plane (a multiple of 16), and of all of x in shared memory.
__host__ __device__ constexpr int x_plane_bytes(int d_in, int pad_shift) { return (x_offset(d_in, pad_shift) + 15) / 16 * 16; }
__host__ __device__ constexpr int x_smem_bytes(int d_in, int pad_shift) {  // a multiple of 16: the slots follow
    return (2 * x_plane_bytes(d_in, pad_shift) + (d_in / kXBlock) * 4 + (d_in / kXHalf) * 4 + 15) / 16 * 16;
}

/// Rounds a batch of x into the planes, dx and sums (see quantize_x): v[r] holds float4 number
/// base + r * blockDim.x + threadIdx.x.
template <int Batch>
__device__ __forceinline__ void store_x_batch(const float4 (&v)[Batch], int base, int n4, uint8_t* x_hi, uint8_t* x_lo,
                                              float* xd, int* xs, int pad_shift) {
    const int threads = blockDim.x;
#pragma unroll
    for (int r = 0; r < Batch; ++r) {
        const int i = base + r * threads + threadIdx.x;
        // All 8 threads of a 32-block are in range together (n4 and threads are multiples of 8).
        if (base + r * threads >= n4) break;
        float amax = fmaxf(fmaxf(fabsf(v[r].x), fabsf(v[r].y)), fmaxf(fabsf(v[r].z), fabsf(v[r].w)));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 4));
        const float d = amax / kVMax;
        const float inv = d > 0.0f ? 1.0f / d : 0.0f;
        const int q[4] = {__float2int_rn(v[r].x * inv), __float2int_rn(v[r].y * inv), __float2int_rn(v[r].z * inv),
                          __float2int_rn(v[r].w * inv)};
        int s = q[0] + q[1] + q[2] + q[3];
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        if (i < n4) {
            uint32_t hi = 0, lo = 0;
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int h = (q[e] + (1 << (kHiShift - 1))) >> kHiShift;  // arithmetic shift: round to nearest
                hi |= (static_cast<uint32_t>(h) & 0xFFu) << (8 * e);
                lo |= (static_cast<uint32_t>(q[e] - (h << kHiShift)) & 0xFFu) << (8 * e);
            }
            *reinterpret_cast<uint32_t*>(x_hi + x_offset(4 * i, pad_shift)) = hi;
            *reinterpret_cast<uint32_t*>(x_lo + x_offset(4 * i, pad_shift)) = lo;
            if (i % 4 == 0) xs[i / 4] = s;
            if (i % 8 == 0) xd[i / 8] = d;
        }
    }
}

__device__ __forceinline__ float4 scaled(float4 v, float s, float4 g) {
    return make_float4((v.x * s) * g.x, (v.y * s) * g.y, (v.z * s) * g.z, (v.w * s) * g.w);
}
__device__ __forceinline__ float sum_squares(float4 v) { return v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w; }
/// 1 / sqrt(mean(x^2) + eps) from each thread's partial sum of squares `ss` (block_sum: call from every thread).
__device__ __forceinline__ float inverse_rms(float ss, int d_in, float eps) {
    return 1.0f / sqrtf(block_sum(ss) / static_cast<float>(d_in) + eps);
}

/// x -> the hi and lo planes, dx per 32-block, integer sums of v per 16, in shared memory. With norm_w, x is
/// first RMS-normalized as cuda::rms_norm does: x_i * (1 / sqrt(mean(x^2) + eps)) * norm_w_i (f32; the sum
/// of squares in another order). Each thread takes 4 consecutive elements (one float4) per step, 8
/// consecutive threads one 32-block; a thread's loads for up to kXBatch steps are issued before any is used.
constexpr int kXBatch = 8;
__device__ float rms_inverse(const float4* x4, int n4, int d_in, float eps) {
    float ss = 0.0f;
    for (int base = 0; base < n4; base += kXBatch * static_cast<int>(blockDim.x)) {
        float4 v[kXBatch];
#pragma unroll
        for (int r = 0; r < kXBatch; ++r) {
            const int i = base + r * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x);
            v[r] = i < n4 ? x4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int r = 0; r < kXBatch; ++r) ss += sum_squares(v[r]);
    }
    return inverse_rms(ss, d_in, eps);
}

__device__ void quantize_x(const float* x, const float* norm_w, float eps, int d_in, uint8_t* x_hi, uint8_t* x_lo, float* xd,
                           int* xs, int pad_shift) {
    const int n4 = d_in / 4;
    const int threads = blockDim.x;
    const auto* x4 = reinterpret_cast<const float4*>(x);
    const auto* w4 = reinterpret_cast<const float4*>(norm_w);
    const float inv_rms = norm_w ? rms_inverse(x4, n4, d_in, eps) : 1.0f;
    for (int base = 0; base < n4; base += kXBatch * threads) {
        float4 v[kXBatch];
#pragma unroll
        for (int r = 0; r < kXBatch; ++r) {
            const int i = base + r * threads + threadIdx.x;
            v[r] = i < n4 ? x4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        if (norm_w) {
#pragma unroll
            for (int r = 0; r < kXBatch; ++r) {
                const int i = base + r * threads + threadIdx.x;
                v[r] = scaled(v[r], inv_rms, i < n4 ? w4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f));
            }
        }
        store_x_batch<kXBatch>(v, base, n4, x_hi, x_lo, xd, xs, pad_shift);
    }
}

/// quantize_x with a norm for x of up to kRegX float4 per thread (d_in <= 16 blockDim.x: 3840 with 8 warps):
/// x and the norm weight are each loaded once, in one round of requests, and kept in registers (quantize_x
/// reads x again after the sum of squares: one more dependent trip to L2 before the products can start).
constexpr int kRegX = 4;
__device__ void quantize_x_regs(const float* x, const float* norm_w, float eps, int d_in, uint8_t* x_hi, uint8_t* x_lo,
                                float* xd, int* xs, int pad_shift) {
    const int n4 = d_in / 4;
    const int threads = blockDim.x;
    const auto* x4 = reinterpret_cast<const float4*>(x);
    const auto* g4 = reinterpret_cast<const float4*>(norm_w);
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float4 v[kRegX], g[kRegX];
#pragma unroll
    for (int r = 0; r < kRegX; ++r) {
        const int i = r * threads + threadIdx.x;
        v[r] = i < n4 ? x4[i] : zero;
        g[r] = i < n4 ? g4[i] : zero;
    }
    float ss = 0.0f;
#pragma unroll
    for (int r = 0; r < kRegX; ++r) ss += sum_squares(v[r]);
    const float inv_rms = inverse_rms(ss, d_in, eps);
#pragma unroll
    for (int r = 0; r < kRegX; ++r) v[r] = scaled(v[r], inv_rms, g[r]);
    store_x_batch<kRegX>(v, 0, n4, x_hi, x_lo, xd, xs, pad_shift);
}

/// Split-K epilogue (GemvQ8Args): the last CTA of `group` to finish sums the partials of the group's rows.
__device__ void combine_splits(const GemvQ8Args& a, int group, int first_row, int total_warps, int lane) {
    __shared__ bool last;
    __threadfence();  // this CTA's partial rows (stored by lane 0 of each warp) are visible device-wide
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&a.counters[group], 1u) == static_cast<unsigned>(a.k_splits - 1);
    __syncthreads();
    if (!last) return;
    __threadfence();  // the other runs' partials, made visible before their increments, are read after ours
    for (int r = first_row + lane * total_warps; r < a.d_out; r += kWarpSize * total_warps) {
        float sum = 0.0f;
        for (int sp = 0; sp < a.k_splits; ++sp) sum += __ldcg(a.partial + static_cast<size_t>(sp) * a.d_out + r);
        const int k = matrix_of(a, r);
        pick(a.y, k)[r - pick(a.row_begin, k)] = sum;
    }
    if (threadIdx.x == 0) a.counters[group] = 0;  // ready for the next launch
}

/// Resident 8-warp CTAs per SM the register budget must allow (ptxas then caps registers per thread: 80 for
/// 3, 128 for 2). Q6_K stages (2 x 3 chunks of 1680 bytes per warp) leave room for only 2 CTAs anyway.
template <class Dec>
inline constexpr int kMinCtas = Dec::kBlockBytes == 210 ? 2 : 3;

/// Streams of a step: kGeglu, the gate row and the up row of one launch row; otherwise two launch rows of
/// the warp, r and r + total_warps (the second absent past the last row).
template <class Dec, bool kGeglu>
__global__ void __launch_bounds__(kMaxWarps * kWarpSize, kMinCtas<Dec>) gemv_q8_kernel(const GemvQ8Args a) {
    using G = Geometry<Dec>;
    constexpr int S = kStages;
    constexpr int N = kStreams;
    extern __shared__ __align__(16) uint8_t smem[];
    const int warps = blockDim.x / kWarpSize;
    const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;

    const int x_bytes = x_smem_bytes(a.d_in, Dec::kXPadShift);
    const int plane = x_plane_bytes(a.d_in, Dec::kXPadShift);
    uint8_t* x_hi = smem;
    uint8_t* x_lo = smem + plane;
    auto* xd = reinterpret_cast<float*>(smem + 2 * plane);
    auto* xs = reinterpret_cast<int*>(xd + a.d_in / kXBlock);
    uint8_t* slots = smem + x_bytes + warp * S * N * G::kSlotBytes;

    const int groups = gridDim.x / a.k_splits;  // CTAs per split run
    const int split = blockIdx.x / groups, group = blockIdx.x % groups;
    const int total_warps = groups * warps;
    const int first_row = group * warps + warp;
    const size_t split_off = static_cast<size_t>(split) * a.split_bytes;
    const int my_rows = first_row < a.d_out ? (a.d_out - 1 - first_row) / total_warps + 1 : 0;
    const int row_stride = kGeglu ? total_warps : N * total_warps;  // from one step's first row to the next's
    const int steps = (kGeglu ? my_rows : (my_rows + N - 1) / N) * a.n_chunks;
    const int last_chunk_blocks = a.n_blocks - (a.n_chunks - 1) * G::kChunkBlocks;

    // A position in the warp's sequence of steps: first launch row `row`, chunk c. Each stream's row address,
    // output and flags are set once per row (no divisions in the loop).
    struct Cursor {
        int row, c;
        const uint8_t* ptr[N];  // the stream's row, first byte
        float* y[N];            // where its result goes (kGeglu: y[0] only)
        bool on[N];             // the stream has a row (warp-uniform)
        bool last_row[N];       // the last row of its matrix: its last chunk may end at the allocation's end
    };
    const auto set_row = [&](Cursor& cur, int row) {
        cur.row = row;
        cur.c = 0;
#pragma unroll
        for (int n = 0; n < N; ++n) {
            const int r = kGeglu ? row : row + n * total_warps;
            cur.on[n] = r < a.d_out;
            if (!cur.on[n]) continue;
            const int k = kGeglu ? 0 : matrix_of(a, r);
            const int local = r - pick(a.row_begin, k);
            cur.ptr[n] = (kGeglu ? a.w[n] : pick(a.w, k)) + static_cast<size_t>(local) * a.row_bytes + split_off;
            cur.y[n] = a.k_splits > 1 ? a.partial + static_cast<size_t>(split) * a.d_out + r : pick(a.y, k) + local;
            // Only the last split of a matrix's last row ends at the end of the allocation.
            cur.last_row[n] = r + 1 == pick(a.row_begin, k + 1) && split == a.k_splits - 1;
        }
    };
    const auto advance = [&](Cursor& cur) {
        if (++cur.c == a.n_chunks) set_row(cur, cur.row + row_stride);
    };

    // Copies the chunks at `cur` into stage `stage`: 16-byte cp.async from the 16-byte aligned address at or
    // below each. Only the last chunk of a matrix's last row can reach past the allocation; it takes plain
    // loads for its final bytes.
    constexpr int kCopyIters = (G::kChunkBytes + 15 + 15) / 16 / kWarpSize + 1;
    const auto issue = [&](const Cursor& cur, int stage) {
        const bool last = cur.c == a.n_chunks - 1;
        const int size = (last ? last_chunk_blocks : G::kChunkBlocks) * Dec::kBlockBytes;
#pragma unroll
        for (int n = 0; n < N; ++n) {
            if (!cur.on[n]) continue;
            const uintptr_t start = reinterpret_cast<uintptr_t>(cur.ptr[n]) + static_cast<uintptr_t>(cur.c) * G::kChunkBytes;
            const uintptr_t first = start & ~uintptr_t{15};
            const int pieces = static_cast<int>((start + size - first + 15) / 16);
            uint8_t* dst = slots + (stage * N + n) * G::kSlotBytes;
            if (!(last && cur.last_row[n])) {
#pragma unroll
                for (int i = 0; i < kCopyIters; ++i) {
                    const int p = lane + i * kWarpSize;
                    if (p < pieces) cp_async_16(dst + 16 * p, reinterpret_cast<const void*>(first + 16u * p));
                }
            } else {
                const uintptr_t end = reinterpret_cast<uintptr_t>(cur.ptr[n]) + a.split_bytes;
                for (int p = lane; p < pieces; p += kWarpSize) {
                    const uintptr_t src = first + 16u * static_cast<uintptr_t>(p);
                    if (src + 16 <= end) {
                        cp_async_16(dst + 16 * p, reinterpret_cast<const void*>(src));
                    } else {
                        // The matrix's last bytes: plain loads, nothing past the allocation is addressed.
                        const auto* from = reinterpret_cast<const uint8_t*>(src);
                        for (uintptr_t i = 0; i < 16; ++i) dst[16 * p + i] = src + i < end ? from[i] : uint8_t{0};
                    }
                }
            }
        }
    };

    // Programmatic dependent launch (common.cuh): the weights are read-only, so their first chunks are
    // requested before waiting for the kernel that writes x (and reads y) to finish.
    allow_dependents();
    Cursor in{}, cur{};
    set_row(in, first_row);
    set_row(cur, first_row);
    for (int f = 0; f < S - 1; ++f) {
        if (f < steps) {
            issue(in, f);
            advance(in);
        }
        cp_async_commit();
    }
    grid_dependency_wait();
    if (a.x_regs && a.norm_w && a.d_in <= 4 * kRegX * static_cast<int>(blockDim.x)) {
        quantize_x_regs(a.x, a.norm_w, a.eps, a.d_in, x_hi, x_lo, xd, xs, Dec::kXPadShift);
    } else {
        quantize_x(a.x + static_cast<size_t>(split) * a.d_in, a.norm_w, a.eps, a.d_in, x_hi, x_lo, xd, xs, Dec::kXPadShift);
    }
    __syncthreads();
    const XShared x{x_hi, x_lo, xd, xs, Dec::kXPadShift};

    const int bl = lane / Dec::kPieces, j = lane % Dec::kPieces;
    float acc[N] = {};
    int stage = 0, in_stage = S - 1;
    for (int f = 0; f < steps; ++f) {
        cp_async_wait<S - 2>();
        __syncwarp();  // every lane's copies of step f landed; step f - 1 is computed, its stage is free
        if (f + S - 1 < steps) {
            issue(in, in_stage);
            advance(in);
        }
        cp_async_commit();
        in_stage = in_stage == S - 1 ? 0 : in_stage + 1;
        const int blk = cur.c * G::kChunkBlocks + bl;
        if (blk < a.n_blocks) {
            // An absent second row computes on stale slot bytes; its result is never written.
            const uint8_t* b[N];
#pragma unroll
            for (int n = 0; n < N; ++n) {
                const auto mis = static_cast<int>(
                    (reinterpret_cast<uintptr_t>(cur.ptr[n]) + static_cast<uintptr_t>(cur.c) * G::kChunkBytes) & 15u);
                b[n] = slots + (stage * N + n) * G::kSlotBytes + (cur.on[n] ? mis : 0) + bl * Dec::kBlockBytes;
            }
            float part[N];
            Dec::piece(b, j, blk * (Dec::kBlockElems / kXBlock), x, part);
#pragma unroll
            for (int n = 0; n < N; ++n) acc[n] += part[n];
        }
        stage = stage == S - 1 ? 0 : stage + 1;
        if (cur.c == a.n_chunks - 1) {
            float v[N];
#pragma unroll
            for (int n = 0; n < N; ++n) {
                v[n] = warp_sum(acc[n]);
                acc[n] = 0.0f;
            }
            if (lane == 0) {
                if (kGeglu) {
                    *cur.y[0] = gelu_tanh(v[0]) * v[1];
                } else {
#pragma unroll
                    for (int n = 0; n < N; ++n) {
                        if (cur.on[n]) *cur.y[n] = v[n];
                    }
                }
            }
        }
        advance(cur);
    }
    cp_async_wait<0>();
    if (a.k_splits > 1) combine_splits(a, group, first_row, total_warps, lane);
}

// ---------------------------------------------------------------------------------------------------
// Host side

/// Split-K factor for a product: long rows (ffn_down, a full layer's attn_output) are cut into slices of
/// about kSplitTarget elements (whole weight blocks), so that each CTA rounds and holds only its slice of x
/// and more CTAs fit on an SM. GEMMA4_GEMV_SPLITK=0 turns it off (for measuring what it saves);
/// GEMMA4_GEMV_SPLIT_ELEMS sets the target (for tuning).
constexpr int kSplitTarget = 3840;
int k_splits_for(const GemvQ8Args& a, int block_elems, bool geglu) {
    static const int target = [] {
        if (env_is("GEMMA4_GEMV_SPLITK", "0")) return 0;
        const char* env = std::getenv("GEMMA4_GEMV_SPLIT_ELEMS");
        const int t = env ? std::atoi(env) : kSplitTarget;
        return t >= 256 ? t : kSplitTarget;
    }();
    if (target == 0 || geglu || a.norm_w != nullptr) return 1;
    for (int p = a.d_in / target; p > 1; --p) {
        if (a.d_in % (p * block_elems) == 0) return p;
    }
    return 1;
}

template <class Dec, bool kGeglu>
void launch(GemvQ8Args a, Context& ctx) {
    using G = Geometry<Dec>;
    const int sm = ctx.sm_count();
    a.k_splits = k_splits_for(a, Dec::kBlockElems, kGeglu);
    a.split_bytes = a.row_bytes / static_cast<size_t>(a.k_splits);
    a.d_in /= a.k_splits;
    // Warp-steps of one split run: a row each with kGeglu (its gate and up rows), else two rows each.
    const int units = kGeglu ? a.d_out : (a.d_out + kStreams - 1) / kStreams;
    int warps = kMaxWarps;
    while (warps > 2 && (units + warps - 1) / warps * a.k_splits < sm) warps /= 2;
    const int smem = x_smem_bytes(a.d_in, Dec::kXPadShift) + warps * kStages * kStreams * G::kSlotBytes;

    auto* kernel = &gemv_q8_kernel<Dec, kGeglu>;
    static std::array<std::atomic<int>, kMaxDevices> raised{};
    int dev = 0;
    GEMMA4_CUDA_CHECK(cudaGetDevice(&dev));
    auto& limit = raised[static_cast<size_t>(std::min(dev, kMaxDevices - 1))];
    if (smem > limit.load()) {
        GEMMA4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        limit.store(smem);
    }
    int per_sm = 0;
    GEMMA4_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, warps * kWarpSize, smem));
    const int groups = std::max(1, std::min((units + warps - 1) / warps, std::max(1, per_sm) * sm / a.k_splits));
    const int ctas = groups * a.k_splits;
    if (a.k_splits > 1) {
        a.partial = static_cast<float*>(ctx.scratch(kScratchSlotPartial, static_cast<size_t>(a.k_splits) * a.d_out * sizeof(float)));
        a.counters = ctx.counters(static_cast<size_t>(groups));
    }
    a.n_blocks = a.d_in / Dec::kBlockElems;
    a.n_chunks = (a.n_blocks + G::kChunkBlocks - 1) / G::kChunkBlocks;
    launch_dependent(kernel, dim3(ctas), dim3(warps * kWarpSize), smem, static_cast<cudaStream_t>(ctx.stream()), a);
}

template <class Dec>
void dispatch_m(const GemvQ8Args& a, bool pair, Context& ctx) {
    if (pair) {
        launch<Dec, true>(a, ctx);
    } else {
        launch<Dec, false>(a, ctx);
    }
}

void run(const GemvQ8Args& a, GgmlType type, bool pair, Context& ctx) {
    switch (type) {
        case GgmlType::Q4_K: dispatch_m<Q4KDec>(a, pair, ctx); break;
        case GgmlType::Q6_K: dispatch_m<Q6KDec>(a, pair, ctx); break;
        case GgmlType::Q8_0: dispatch_m<Q80Dec>(a, pair, ctx); break;
        case GgmlType::Q4_0: dispatch_m<Q40Dec>(a, pair, ctx); break;
        default: throw Error(ErrorCode::invalid_argument, "gemv_q8: unsupported weight type");
    }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

GemvQ8Args base_args(const WeightMatrix& w, const float* x, const float* norm_w, float eps) {
    GemvQ8Args a{};
    a.x = x;
    a.norm_w = norm_w;
    a.eps = eps;
    a.row_bytes = w.row_bytes;
    a.d_in = static_cast<int>(w.d_in);
    static const bool regs_off = env_is("GEMMA4_GEMV_XREGS", "0");  // for measuring what it saves
    a.x_regs = !regs_off;
    return a;
}

}  // namespace

bool gemv_q8_supports(const WeightMatrix& w, const float* x) {
    int block = 0;
    switch (w.type) {
        case GgmlType::Q4_K:
        case GgmlType::Q6_K: block = 256; break;
        case GgmlType::Q8_0:
        case GgmlType::Q4_0: block = 32; break;
        default: return false;
    }
    return w.d_in > 0 && w.d_in % block == 0 && w.d_out > 0 && w.d_out < (int64_t{1} << 30) &&
           w.d_in <= (int64_t{1} << 16) && w.row_bytes == ggml_row_bytes(w.type, w.d_in) && aligned16(w.data) &&
           aligned16(x);
}

bool exact_decode_requested() {
    static const bool exact = env_is("GEMMA4_EXACT_DECODE", "1");
    return exact;
}

void gemv_q8(const WeightMatrix& w, const WeightMatrix* up, const float* x, float* y, Context& ctx) {
    const WeightMatrix* ws[] = {&w};
    gemv_q8_norm(ws, &y, 1, up, x, nullptr, 0.0f, ctx);
}

void gemv_q8_norm(const WeightMatrix* const* ws, float* const* ys, int count, const WeightMatrix* up, const float* x,
                  const float* norm_w, float eps, Context& ctx) {
    if (count < 1 || count > kMaxMatrices || (up && count != 1)) {
        throw Error(ErrorCode::invalid_argument, "gemv_q8: 1 to 3 matrices, or one gate/up pair");
    }
    const WeightMatrix& w0 = *ws[0];
    const auto compatible = [&](const WeightMatrix& m) {
        return gemv_q8_supports(m, x) && m.type == w0.type && m.d_in == w0.d_in && (!up || m.d_out == w0.d_out);
    };
    bool ok = !norm_w || aligned16(norm_w);
    for (int k = 0; k < count; ++k) ok = ok && compatible(*ws[k]);
    if (up) ok = ok && compatible(*up);
    if (!ok) throw Error(ErrorCode::invalid_argument, "gemv_q8: unsupported weight type, shape or alignment");
    GemvQ8Args a = base_args(w0, x, norm_w, eps);
    int rows = 0;
    for (int k = 0; k < kMaxMatrices; ++k) {
        a.row_begin[k] = rows;
        if (k < count) {
            a.w[k] = static_cast<const uint8_t*>(ws[k]->data);
            a.y[k] = ys[k];
            rows += static_cast<int>(ws[k]->d_out);
        }
    }
    a.row_begin[kMaxMatrices] = rows;
    for (int k = count; k < kMaxMatrices; ++k) a.row_begin[k] = rows;  // empty ranges
    if (up) a.w[1] = static_cast<const uint8_t*>(up->data);
    a.d_out = rows;
    run(a, w0.type, up != nullptr, ctx);
}

}  // namespace gemma4::cuda
