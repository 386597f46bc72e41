// Attention on the GPU over the paged KV cache: Q/K/V preparation (per-head RMS norms, NEOX RoPE, cache
// writes) and masked softmax attention with tensor cores (mma.sync m16n8k16, f16 operands, f32 sums).
// The CPU twin is cpu/attention.cpp; shapes and the cache layout are in src/backend/backend.h.
//
// ---- attention_prepare_kernel: grid (n_tokens, n_heads + 2 * n_kv_heads), kPrepareThreads threads.
//   One block per head vector (a q head, a k head or a v head of one token):
//     x = src / sqrt(mean(src^2) + eps)   sum of squares in double, then f32, as the CPU does
//     q, k: x = (x * s) * weight, then NEOX RoPE on the pairs (i, i + R/2), i < R/2:
//           theta_0 = pos, theta_{i+1} = theta_i * theta_scale (ggml's f32 recurrence; theta_scale is
//           std::pow(base, -2/R) evaluated on the host exactly as the CPU evaluates it), angle =
//           theta_i / rope_freqs[i], sincosf in full precision, and the rotation as
//           fmaf(x0, c, -(x1 * s)) / fmaf(x0, s, x1 * c), the form GCC contracts the CPU's code to.
//           So the angles are bit-identical to the CPU's, and only sincosf may differ in the last ulp.
//     v:    x = x * s (no weight, no RoPE).
//   q is written back in place; k and v go to the cache slot of `pos` (f16 round-to-nearest or f32).
//   A null page (the caller's table does not cover `pos`) skips the write rather than faulting.
//
// ---- attention_flash_kernel<Cfg>: flash attention over the page table, one kernel for decode and
//   prefill. A "row" is one (token, head) pair; the heads_per_kv heads sharing a KV head are packed
//   into the rows of one block (row r -> token r / heads_per_kv, head kv_head * heads_per_kv +
//   r % heads_per_kv), so each K/V row read from memory serves the whole GQA group: 16 heads on
//   Gemma 4 full layers, 2 on sliding layers.
//   grid  = (n_parts, row_groups, n_kv_heads): blockIdx.x picks a partition of the key range
//           (split-K / flash-decoding), blockIdx.y a group of kRows rows, blockIdx.z the KV head.
//   block = kRowWarps x kDimWarps warps. Warp (rw, dw) owns query rows [16 rw, 16 rw + 16) and head
//           dims [kWarpDims dw, kWarpDims (dw + 1)), kWarpDims = min(head_dim, 64 or 128): splitting
//           the head dims over warps keeps the per-warp O accumulator (16 x kWarpDims f32) in
//           registers even for head_dim 512.
//   Per tile of kTileKeys = 32 keys (staged in shared memory, a ring of kStages tiles filled by
//   16-byte cp.async copies, so the next one or two tiles load while this one is computed):
//     S_partial = Q[:, dims of dw] K[:, dims of dw]^T             (mma; K via ldmatrix)
//     S = sum of the kDimWarps partials, in a fixed order, through shared memory
//     mask (full: pk <= pq; sliding: pq - pk < window, and pk <= pq unless both are tokens of the
//     same media group), online softmax in f32 (running max m, sum l, O rescaled by exp(m - m'))
//     O[:, dims of dw] += P V[:, dims of dw]                      (mma; V via ldmatrix.trans)
//   The sum, mask and softmax are done once per row: with kDimWarps >= 4 ("slices", FlashConfig::kSlice)
//   warp dw takes 16 / kDimWarps rows of its row group, one key per lane, and hands P (f16, or hi + lo),
//   the rescale factors and at the end (m, l) to the other warps through shared memory; with fewer dim
//   warps every warp sums all partials itself in the same order, so all hold bit-identical scores (and
//   identical running max / sum / P). The slices took the decode kernel from ~1.6 to ~2.9 TB/s on long
//   key ranges: it was bound by the issue latency of that repeated work, not by memory.
//   Finally O / l goes to `out` (one partition) or O, m, l to the split-K scratch (several), and
//   attention_reduce_kernel combines the partitions: out = sum_p e^(m_p - M) O_p / sum_p e^(m_p - M) l_p.
//
//   Two configurations (one small table, kDecodeMaxTokens decides):
//   * decode (n_tokens <= 4): 1 row warp (16 rows), 64 dims per warp (8 warps at head_dim 512, 4 at
//     256), exact operands: Q and P enter the tensor cores as f16 hi + lo pairs (hi = f16(x),
//     lo = f16(x - hi): 22 significant bits), and an f32 cache's K/V too, so scores and outputs are
//     f32-grade (~1e-6 relative) while the kernel stays bound by reading K/V: the extra mma work is
//     free next to the memory traffic. The key range is split into about one wave of partitions
//     (sm_count * blocks per SM / blocks per partition), so 262144 keys still fill the GPU.
//   * prefill: 128 dims per warp and 4 row warps (64 rows) at head_dim <= 256; at head_dim 512, 64 dims
//     per warp and 2 row warps (32 rows, 16 warps of <= 128 registers: twice the warps of a 128-dim split
//     to hide the mma and shared-memory latencies; 17 % faster at depth 32768), so each K/V tile is read
//     once per 64 (32) (token, head) rows. Q and P are rounded to f16 as llama.cpp's tensor-core kernel does
//     (relative 2^-11); the row sum l uses the rounded P so that the weights stay normalised.
//     Partitions are added only when the row groups alone do not fill a wave.
//   An f16 cache streams through cp.async (3 stages for decode, 2 for prefill: FlashConfig::kStages);
//   an f32 cache is loaded through registers and converted to f16 planes, one stage (the f32 cache is
//   the non-default precision option; it runs at a fraction of the f16 path's bandwidth).
//
// Layouts: q, out [n_tokens][n_heads * head_dim] f32; cache pages as in KvLayerView. Keys outside
// [kv_lo, kv_hi) = [max(0, pos0 - window + 1) or 0, pos0 + n_tokens) are never read, so null pages
// below the window and unwritten (NaN) slots past the batch are never touched; tile slots past a
// range are zero-filled so that masked keys contribute exact zeros (P = 0 times a finite V).
// Constraints: head_dim in {64, 128, 256, 512} (dispatched by one switch; anything else throws
// invalid_argument), n_heads % n_kv_heads == 0, page pointers 16-byte aligned (cudaMalloc'd pages).
// Scratch: slot 2 holds the partial outputs, slot 3 the partial (max, sum) pairs.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/ops.h"
#include "gemma4/error.h"

namespace gemma4::cuda {
namespace {

// ---------------------------------------------------------------------------------------------------
// Named constants

constexpr int kMaxHeadDim = 512;
constexpr int kPrepareThreads = 128;     // head vectors of 64..512 floats: 0.5..4 elements per thread
constexpr int kMmaM = 16;                // mma.sync m16n8k16: rows of A and C (query rows per warp)
constexpr int kMmaN = 8;                 //                    columns of B and C
constexpr int kMmaK = 16;                //                    reduction depth
constexpr int kDecodeWarpDims = 64;      // head dims per warp, decode: Q hi + lo and O in 32 + 32 registers per lane
constexpr int kPrefillWarpDims = 128;    // head dims per warp, prefill: Q 32 + O 64 registers per lane
constexpr int kTileKeys = 32;            // keys per shared-memory tile: 4 score n-tiles, 2 PV k-steps
constexpr int kRowPadHalves = 8;         // +16 bytes per smem row: the 8 rows of an ldmatrix 8x8 hit distinct banks
constexpr int kXsPadFloats = 8;          // score exchange pitch 40 floats = 8 mod 32: float2 stores conflict-free
constexpr int kChunkBytes = 16;          // one cp.async / one 16-byte load
constexpr int kDecodeMaxTokens = 4;      // batches up to this use the exact (hi + lo) decode configuration
constexpr int kF32LoadBatch = 2;         // f32 cache: key rows in registers per batch (more spills next to Q and O)
constexpr int kMaxCachedDevices = 64;    // per-device kernel setup cache
constexpr int kReduceThreads = 128;
constexpr int kReduceCols = 64;          // output floats of one row per reduce block (head_dim / 64 blocks per row)
constexpr int kReduceColLanes = kReduceCols / 4;                   // float4 columns
constexpr int kReducePartLanes = kReduceThreads / kReduceColLanes; // threads striding over partitions
constexpr int kReduceEarly = 4;          // partial outputs per thread loaded before the partition weights are known
constexpr int kMaxParts = 4096;          // partition weights in the reduce kernel's shared memory: 16 KiB
constexpr int kMaxGridY = 65535;
constexpr size_t kMaxSmemBytes = 227 * 1024;  // Hopper: opt-in dynamic shared memory per block
constexpr unsigned kFullWarp = 0xffffffffu;

enum class VecKind { q, k, v };

// ---------------------------------------------------------------------------------------------------
// Device helpers

__device__ __forceinline__ uint32_t half2_bits(__half2 h) {
    uint32_t u;
    memcpy(&u, &h, sizeof(u));
    return u;
}

// Two floats as one f16x2 register (a in the low half: the lower column of an mma fragment pair).
__device__ __forceinline__ uint32_t pack_f16(float a, float b) { return half2_bits(__floats2half2_rn(a, b)); }

// a = hi + lo with hi, lo in f16: 22 significant bits between them.
__device__ __forceinline__ void split_f16(float a, float b, uint32_t& hi, uint32_t& lo) {
    const __half2 h = __floats2half2_rn(a, b);
    const float2 back = __half22float2(h);
    hi = half2_bits(h);
    lo = pack_f16(a - back.x, b - back.y);
}

// D += A B, m16n8k16, f16 inputs, f32 accumulators. a: 4 regs (rows g, g+8 x cols 2t..2t+1, +8);
// b0/b1: B rows 2t..2t+1 and 2t+8..2t+9 of column g.
__device__ __forceinline__ void mma_f16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 f16 matrices; lane i gives the address of row i % 8 of matrix i / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __half* row) {
    const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __half* row) {
    const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// cp_async_16 / cp_async_commit / cp_async_wait: cuda/common.cuh.

// ---------------------------------------------------------------------------------------------------
// attention_prepare_kernel

struct PrepareParams {
    float* q;                  // [n_tokens][n_heads * head_dim], in place
    const float* k;            // [n_tokens][n_kv_heads * head_dim]
    const float* v;            // [n_tokens][n_kv_heads * head_dim] (may equal k)
    const float* q_norm;       // [head_dim]
    const float* k_norm;       // [head_dim]
    const float* rope_freqs;   // [rope_dims / 2] frequency divisors, or null
    void* const* pages;        // page table
    size_t half_page_bytes;
    int page_tokens;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int rope_dims;
    int pos0;
    const int32_t* pos0_device;  // graph replay: pos0 is read here when set
    float theta_scale;         // base^(-2/R), computed on the host as the CPU does
    float eps;
    bool f16_cache;
};

constexpr int kPrepareElems = kMaxHeadDim / kPrepareThreads;       // head-vector elements per thread, at most
constexpr int kRopePairsPerThread = kPrepareElems / 2;

__global__ void __launch_bounds__(kPrepareThreads) attention_prepare_kernel(const PrepareParams p) {
    allow_dependents();  // launched with launch_dependent (common.cuh)
    __shared__ float x[kMaxHeadDim];
    __shared__ double warp_sums[kPrepareThreads / kWarpSize];

    const int t = blockIdx.x;
    const int vec = blockIdx.y;
    const int tid = threadIdx.x;
    const int hd = p.head_dim;
    const int pos = (p.pos0_device ? *p.pos0_device : p.pos0) + t;  // an upload: readable before the wait
    const bool rope = vec < p.n_heads + p.n_kv_heads && p.rope_dims > 0;

    // The rotation angles depend only on the position: computed (serial recurrence, sincosf) before waiting
    // for the kernel that writes q, k and v. Pair i = tid + j * kPrepareThreads.
    float rope_cos[kRopePairsPerThread], rope_sin[kRopePairsPerThread];
    if (rope) {
        const int half = p.rope_dims / 2;
        float theta = static_cast<float>(pos);
        int steps = 0;
#pragma unroll
        for (int j = 0; j < kRopePairsPerThread; ++j) {
            const int i = tid + j * kPrepareThreads;
            rope_cos[j] = 1.0f, rope_sin[j] = 0.0f;
            if (i >= half) continue;
            for (; steps < i; ++steps) theta *= p.theta_scale;  // theta = pos * base^(-2i/R), ggml's way
            const float angle = p.rope_freqs ? theta / p.rope_freqs[i] : theta;
            sincosf(angle, &rope_sin[j], &rope_cos[j]);
        }
    }

    VecKind kind;
    int head;
    const float* src;
    const float* weight;
    if (vec < p.n_heads) {
        kind = VecKind::q;
        head = vec;
        src = p.q + (static_cast<size_t>(t) * p.n_heads + head) * hd;
        weight = p.q_norm;
    } else if (vec < p.n_heads + p.n_kv_heads) {
        kind = VecKind::k;
        head = vec - p.n_heads;
        src = p.k + (static_cast<size_t>(t) * p.n_kv_heads + head) * hd;
        weight = p.k_norm;
    } else {
        kind = VecKind::v;
        head = vec - p.n_heads - p.n_kv_heads;
        src = p.v + (static_cast<size_t>(t) * p.n_kv_heads + head) * hd;
        weight = nullptr;
    }
    // Also before the wait: this thread's norm weights and the cache page (the page table is uploaded
    // before the step, like pos0), so that no load after the wait depends on another.
    float w_reg[kPrepareElems];
#pragma unroll
    for (int j = 0; j < kPrepareElems; ++j) {
        const int i = tid + j * kPrepareThreads;
        w_reg[j] = weight && i < hd ? weight[i] : 1.0f;
    }
    char* const page = kind == VecKind::q ? nullptr : static_cast<char*>(p.pages[pos / p.page_tokens]);
    grid_dependency_wait();

    // Sum of squares in double: every product is exact, so only the summation order differs from
    // the CPU, which moves the double far below the f32 rounding of mean + eps.
    double ss = 0.0;
    for (int i = tid; i < hd; i += kPrepareThreads) {
        const float xi = src[i];
        x[i] = xi;
        ss += static_cast<double>(xi) * xi;
    }
    for (int o = kWarpSize / 2; o > 0; o /= 2) ss += __shfl_xor_sync(kFullWarp, ss, o);
    if (tid % kWarpSize == 0) warp_sums[tid / kWarpSize] = ss;
    __syncthreads();
    double total = 0.0;
    for (int w = 0; w < kPrepareThreads / kWarpSize; ++w) total += warp_sums[w];
    const float s = 1.0f / sqrtf(static_cast<float>(total / hd) + p.eps);

#pragma unroll
    for (int j = 0; j < kPrepareElems; ++j) {
        const int i = tid + j * kPrepareThreads;
        if (i < hd) x[i] = weight ? (x[i] * s) * w_reg[j] : x[i] * s;
    }

    if (rope) {
        __syncthreads();
        const int half = p.rope_dims / 2;
#pragma unroll
        for (int j = 0; j < kRopePairsPerThread; ++j) {
            const int i = tid + j * kPrepareThreads;
            if (i >= half) continue;
            const float cs = rope_cos[j], sn = rope_sin[j];
            const float x0 = x[i];
            const float x1 = x[i + half];
            x[i] = __fmaf_rn(x0, cs, -__fmul_rn(x1, sn));
            x[i + half] = __fmaf_rn(x0, sn, __fmul_rn(x1, cs));
        }
    }
    __syncthreads();

    if (kind == VecKind::q) {
        float* dst = p.q + (static_cast<size_t>(t) * p.n_heads + head) * hd;
        for (int i = tid; i < hd; i += kPrepareThreads) dst[i] = x[i];
        return;
    }
    if (page == nullptr) return;
    char* base = page + (kind == VecKind::v ? p.half_page_bytes : 0);
    const size_t slot = static_cast<size_t>(head) * p.page_tokens + pos % p.page_tokens;
    if (p.f16_cache) {
        __half* dst = reinterpret_cast<__half*>(base) + slot * hd;
        for (int i = tid; i < hd; i += kPrepareThreads) dst[i] = __float2half_rn(x[i]);
    } else {
        float* dst = reinterpret_cast<float*>(base) + slot * hd;
        for (int i = tid; i < hd; i += kPrepareThreads) dst[i] = x[i];
    }
}

// ---------------------------------------------------------------------------------------------------
// attention_flash_kernel

template <int HeadDim, int RowWarps, int MaxWarpDims, class KvType, bool Exact>
struct FlashConfig {
    using KvT = KvType;
    static constexpr int kHeadDim = HeadDim;
    static constexpr bool kExact = Exact;
    static constexpr int kWarpDims = HeadDim < MaxWarpDims ? HeadDim : MaxWarpDims;
    static constexpr int kDimWarps = HeadDim / kWarpDims;
    static constexpr int kRowWarps = RowWarps;
    static constexpr int kThreads = kRowWarps * kDimWarps * kWarpSize;
    static constexpr int kRows = kRowWarps * kMmaM;
    static constexpr bool kF32Cache = std::is_same_v<KvType, float>;
    static constexpr int kQPlanes = Exact ? 2 : 1;                 // Q as hi (+ lo)
    static constexpr int kKvPlanes = Exact && kF32Cache ? 2 : 1;   // K/V tiles as hi (+ lo)
    // f16: cp.async ring of tiles. Decode runs one block per SM at head_dim 512 (215 KiB), so it keeps
    // two tiles (128 KiB) in flight while computing a third; prefill keeps one, so that two blocks fit
    // per SM at head_dim 256. f32: loaded through registers, one buffer.
    static constexpr int kStages = kF32Cache ? 1 : (RowWarps == 1 ? 3 : 2);
    static constexpr int kPitch = HeadDim + kRowPadHalves;         // halves per smem key row
    static constexpr int kTileHalves = kTileKeys * kPitch;         // one plane of K or V, one tile
    static constexpr size_t kKvBytes = size_t{kStages} * 2 * kKvPlanes * kTileHalves * sizeof(__half);
    static constexpr int kXsPitch = kTileKeys + kXsPadFloats;
    static constexpr size_t kXsBytes =
        kDimWarps > 1 ? size_t{kRowWarps} * kDimWarps * kMmaM * kXsPitch * sizeof(float) : 0;
    // Four or more dim warps ("slices"): the scores of a row group are summed, masked and turned into P once,
    // warp dw taking kSliceRows of its 16 rows with one key per lane, and P (f16, or hi and lo planes), the
    // rescale factors and the final (max, sum) pairs reach the other warps through shared memory
    // (kSliceBytes: per row group, kPPlanes P planes, then the factors, then the pairs).
    static constexpr bool kSlice = kDimWarps >= 4;
    static constexpr int kSliceRows = kMmaM / kDimWarps;
    static constexpr int kPPlanes = Exact ? 2 : 1;
    static constexpr int kPPitch = kTileKeys + kRowPadHalves;  // halves per P row: 80 bytes, ldmatrix conflict-free
    static constexpr size_t kPPlaneHalves = size_t{kMmaM} * kPPitch;
    static constexpr size_t kSliceBytes =
        kSlice ? size_t{kRowWarps} * (kPPlanes * kPPlaneHalves * sizeof(__half) + kMmaM * sizeof(float) + kMmaM * sizeof(float2))
               : 0;
    static constexpr size_t kSmemBytes = kKvBytes + kXsBytes + kSliceBytes;

    static_assert(HeadDim % kWarpDims == 0 && kWarpDims % (2 * kMmaK) == 0, "two QK k-steps per ldmatrix.x4");
    static_assert(kKvBytes % 16 == 0, "score exchange must stay 16-byte aligned");
    static_assert(HeadDim % kReduceCols == 0, "whole reduce blocks per row");
    static_assert(kSmemBytes <= kMaxSmemBytes, "shared memory");
    static_assert(kThreads % (HeadDim * sizeof(KvType) / kChunkBytes) == 0, "whole key rows per loader pass");
    static_assert(!kSlice || (kTileKeys == kWarpSize && kMmaM % kDimWarps == 0), "slices: one key per lane, whole rows");
    static_assert((kPPlaneHalves * sizeof(__half)) % 16 == 0, "slice buffers stay aligned");
};

// The configuration table. Decode: 16 rows, exact operands, 64 dims per warp (8 warps at head_dim
// 512, 4 at 256). Prefill: f16 operands; 64 rows per block and 128 dims per warp, except at head_dim
// 512: 32 rows and 64 dims per warp (16 warps, 128 registers per thread with ~100 bytes of spill; the
// 128-dim split, 8 warps of ~210 registers, was 17 % slower: latency-bound at 2 warps per scheduler).
template <int HeadDim, class KvT>
using DecodeConfig = FlashConfig<HeadDim, 1, kDecodeWarpDims, KvT, true>;
template <int HeadDim, class KvT>
using PrefillConfig = FlashConfig<HeadDim, HeadDim == 512 ? 2 : 4, HeadDim == 512 ? kDecodeWarpDims : kPrefillWarpDims, KvT, false>;

struct FlashParams {
    const float* q;           // [n_tokens][n_heads * head_dim]
    float* out;               // [n_tokens][n_heads * head_dim]
    float* part_o;            // [n_tokens * n_heads][n_parts][head_dim] unnormalised partial outputs
    float2* part_ml;          // [n_tokens * n_heads][n_parts] (running max, sum of weights)
    void* const* pages;       // page table
    const int32_t* groups;    // [n_tokens] media groups; null unless a sliding layer has groups
    size_t half_page_bytes;
    int page_tokens;
    int n_heads;
    int heads_per_kv;
    int n_tokens;
    int pos0;
    int window;               // 0 = full causal
    float scale;
    int kv_lo;                // first key any query of the batch may see
    int kv_hi;                // one past the last: pos0 + n_tokens
    int part_keys;            // keys per partition, a multiple of kTileKeys
    int n_parts;
    // Graph replay: pos0 is read here, and pos0, kv_lo, kv_hi and part_keys are derived from it in
    // the kernel (n_parts stays as launched).
    const int32_t* pos0_device;
    bool early_tiles;         // request tiles below pos0 before grid_dependency_wait (GEMMA4_ATTN_EARLY=0: after)
};

// The per-position fields of FlashParams, from *p.pos0_device in graph replay (as the host computes them
// otherwise).
struct FlashPositions {
    int pos0, kv_lo, kv_hi, part_keys;
};

__device__ __forceinline__ FlashPositions resolve_positions(const FlashParams& p) {
    if (p.pos0_device == nullptr) return {p.pos0, p.kv_lo, p.kv_hi, p.part_keys};
    FlashPositions r;
    r.pos0 = *p.pos0_device;
    r.kv_hi = r.pos0 + p.n_tokens;
    r.kv_lo = p.window > 0 ? max(0, r.pos0 - p.window + 1) : 0;
    const int key_tiles = (r.kv_hi - r.kv_lo + kTileKeys - 1) / kTileKeys;
    r.part_keys = (key_tiles + p.n_parts - 1) / p.n_parts * kTileKeys;
    return r;
}

template <class Cfg>
__device__ __forceinline__ __half* kv_tile(__half* base, int stage, int tensor, int plane) {
    return base + ((stage * 2 + tensor) * Cfg::kKvPlanes + plane) * Cfg::kTileHalves;
}

// Launch bounds (threads, 1): shared memory already limits these blocks to 1-2 per SM, so ptxas may
// use up to 255 registers; without the 1 it stopped at 128 on some variants and spilled.
template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1) attention_flash_kernel(const FlashParams p) {
    allow_dependents();  // launched with launch_dependent (common.cuh)
    // Up to grid_dependency_wait() below, only what was written before this batch began is read: positions,
    // page table and media groups (uploads) and the keys below pos0 (earlier batches, each ended by a host
    // synchronization); never what the kernels just before this one (this batch's prepare) write.
    const FlashPositions pp = resolve_positions(p);
    using KvT = typename Cfg::KvT;
    constexpr int HD = Cfg::kHeadDim;
    constexpr int kPitch = Cfg::kPitch;
    constexpr int kWarpDims = Cfg::kWarpDims;
    constexpr int kDimWarps = Cfg::kDimWarps;
    constexpr int kKSteps = kWarpDims / kMmaK;      // QK reduction steps per warp
    constexpr int kKeyTiles = kTileKeys / kMmaN;    // score n-tiles per key tile
    constexpr int kPvSteps = kTileKeys / kMmaK;     // PV reduction steps per key tile
    constexpr int kDimTiles = kWarpDims / kMmaN;    // O n-tiles per warp

    extern __shared__ __align__(16) unsigned char smem[];
    __half* const kv_smem = reinterpret_cast<__half*>(smem);
    float* const xs = reinterpret_cast<float*>(smem + Cfg::kKvBytes);

    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int rw = Cfg::kRowWarps == 1 ? 0 : warp / kDimWarps;
    const int dw = warp % kDimWarps;
    // Slice buffers (Cfg::kSlice): all row groups' P planes, then their rescale factors, then their (m, l);
    // these pointers are this warp's row group's.
    unsigned char* const slice_smem = smem + Cfg::kKvBytes + Cfg::kXsBytes;
    constexpr size_t kPBytesAll = Cfg::kRowWarps * Cfg::kPPlanes * Cfg::kPPlaneHalves * sizeof(__half);
    [[maybe_unused]] __half* const p_smem = reinterpret_cast<__half*>(slice_smem) + rw * Cfg::kPPlanes * Cfg::kPPlaneHalves;
    [[maybe_unused]] float* const corr_smem = reinterpret_cast<float*>(slice_smem + kPBytesAll) + rw * kMmaM;
    [[maybe_unused]] float2* const ml_smem =
        reinterpret_cast<float2*>(slice_smem + kPBytesAll + Cfg::kRowWarps * kMmaM * sizeof(float)) + rw * kMmaM;
    const int g8 = lane / 4;  // mma fragment row (and B column)
    const int t4 = lane % 4;  // mma fragment column pair
    const int part = blockIdx.x;
    const int kv_head = blockIdx.z;
    const int heads_per_kv = p.heads_per_kv;
    const int rows_per_kv = p.n_tokens * heads_per_kv;
    const int block_row0 = blockIdx.y * Cfg::kRows;
    const bool sliding = p.window > 0;

    // The lane's two query rows: fragment rows g8 and g8 + 8 of the warp's 16.
    bool row_ok[2];
    int row_t[2], row_h[2], row_pq[2], row_lo[2], row_grp[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int r = block_row0 + rw * kMmaM + g8 + 8 * i;
        row_ok[i] = r < rows_per_kv;
        row_t[i] = row_ok[i] ? r / heads_per_kv : 0;
        row_h[i] = kv_head * heads_per_kv + (row_ok[i] ? r % heads_per_kv : 0);
        row_pq[i] = pp.pos0 + row_t[i];
        row_lo[i] = sliding ? row_pq[i] - p.window + 1 : 0;
        row_grp[i] = (row_ok[i] && p.groups != nullptr) ? __ldg(p.groups + row_t[i]) : -1;
    }

    // Slices (Cfg::kSlice): the rows dw * kSliceRows + i this warp sums, masks and softmaxes, and their
    // running max and sum (the fragment rows' m_run and l_run are filled from ml_smem at the end).
    constexpr int kSR = Cfg::kSliceRows;
    [[maybe_unused]] bool srow_ok[kSR];
    [[maybe_unused]] int srow_pq[kSR], srow_lo[kSR], srow_grp[kSR];
    [[maybe_unused]] float sm_run[kSR], sl_run[kSR];
    if constexpr (Cfg::kSlice) {
#pragma unroll
        for (int i = 0; i < kSR; ++i) {
            const int r = block_row0 + rw * kMmaM + dw * kSR + i;
            srow_ok[i] = r < rows_per_kv;
            const int t = srow_ok[i] ? r / heads_per_kv : 0;
            srow_pq[i] = pp.pos0 + t;
            srow_lo[i] = sliding ? srow_pq[i] - p.window + 1 : 0;
            srow_grp[i] = (srow_ok[i] && p.groups != nullptr) ? __ldg(p.groups + t) : -1;
            sm_run[i] = -INFINITY;
            sl_run[i] = 0.0f;
        }
    }

    // Keys this block needs: its partition, cut to what its rows can see.
    const int t_first = block_row0 / heads_per_kv;
    const int t_last = (min(rows_per_kv, block_row0 + Cfg::kRows) - 1) / heads_per_kv;
    const int rows_lo = sliding ? max(0, pp.pos0 + t_first - p.window + 1) : 0;
    const int rows_hi = p.groups != nullptr ? pp.kv_hi : pp.pos0 + t_last + 1;
    const int part_lo = pp.kv_lo + part * pp.part_keys;
    const int part_hi = min(pp.kv_hi, part_lo + pp.part_keys);
    const int k_lo = max(part_lo, rows_lo);
    const int k_hi = min(part_hi, rows_hi);
    const int n_tiles = k_hi > k_lo ? (k_hi - k_lo + kTileKeys - 1) / kTileKeys : 0;

    // Cache address of the key in slot `slot` of logical page `page` (K; V is half_page_bytes further), or
    // null when that page is absent; key_row: of key `pk`.
    const auto page_row = [&](int page, int slot) -> const char* {
        const char* base = static_cast<const char*>(p.pages[page]);
        if (base == nullptr) return nullptr;
        return base + (static_cast<size_t>(kv_head) * p.page_tokens + slot) * HD * sizeof(KvT);
    };
    const auto key_row = [&](int pk) -> const char* { return page_row(pk / p.page_tokens, pk % p.page_tokens); };

    // f16 cache: one tile of K and V into `stage` with cp.async (the caller commits the group); keys
    // >= k_hi are zero-filled. The thread's key rows are kRowsPerPass apart: one division for the first,
    // then its page and slot are stepped.
    const auto load_tile_async = [&](int k0, int stage) {
        constexpr int kChunks = HD * static_cast<int>(sizeof(__half)) / kChunkBytes;
        constexpr int kRowsPerPass = Cfg::kThreads / kChunks;
        const int chunk = tid % kChunks;
        __half* ks = kv_tile<Cfg>(kv_smem, stage, 0, 0);
        __half* vs = kv_tile<Cfg>(kv_smem, stage, 1, 0);
        int pk = k0 + tid / kChunks;
        int page = pk / p.page_tokens;
        int slot = pk - page * p.page_tokens;
#pragma unroll
        for (int pass = 0; pass < kTileKeys / kRowsPerPass; ++pass) {
            const int j = pass * kRowsPerPass + tid / kChunks;
            const char* row = pk < k_hi ? page_row(page, slot) : nullptr;
            pk += kRowsPerPass;
            slot += kRowsPerPass;
            while (slot >= p.page_tokens) {
                slot -= p.page_tokens;
                ++page;
            }
            const void* fallback = p.pages;  // any valid, aligned address: nothing is read from it
            const void* src_k = row ? static_cast<const void*>(row + chunk * kChunkBytes) : fallback;
            const void* src_v = row ? static_cast<const void*>(row + p.half_page_bytes + chunk * kChunkBytes) : fallback;
            const int bytes = row ? kChunkBytes : 0;
            cp_async_16(ks + j * kPitch + chunk * (kChunkBytes / 2), src_k, bytes);
            cp_async_16(vs + j * kPitch + chunk * (kChunkBytes / 2), src_v, bytes);
        }
    };

    // f32 cache: one tile through registers, converted to the f16 plane(s) of stage 0.
    const auto load_tile_f32 = [&](int k0) {
        constexpr int kChunks = HD / 4;  // float4 per key row
        constexpr int kRowsPerPass = Cfg::kThreads / kChunks;
        constexpr int kPasses = kTileKeys / kRowsPerPass;
        constexpr int kBatch = kPasses < kF32LoadBatch ? kPasses : kF32LoadBatch;
        static_assert(kPasses % kBatch == 0);
        const int chunk = tid % kChunks;
#pragma unroll
        for (int j0 = 0; j0 < kPasses; j0 += kBatch) {
            float4 kr[kBatch], vr[kBatch];
#pragma unroll
            for (int b = 0; b < kBatch; ++b) {
                const int j = (j0 + b) * kRowsPerPass + tid / kChunks;
                const int pk = k0 + j;
                const char* row = pk < k_hi ? key_row(pk) : nullptr;
                kr[b] = vr[b] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (row) {
                    kr[b] = __ldg(reinterpret_cast<const float4*>(row) + chunk);
                    vr[b] = __ldg(reinterpret_cast<const float4*>(row + p.half_page_bytes) + chunk);
                }
            }
#pragma unroll
            for (int b = 0; b < kBatch; ++b) {
                const int j = (j0 + b) * kRowsPerPass + tid / kChunks;
                const int off = j * kPitch + chunk * 4;
#pragma unroll
                for (int tensor = 0; tensor < 2; ++tensor) {
                    const float4 f = tensor == 0 ? kr[b] : vr[b];
                    uint2 hi, lo;
                    if constexpr (Cfg::kKvPlanes == 2) {
                        split_f16(f.x, f.y, hi.x, lo.x);
                        split_f16(f.z, f.w, hi.y, lo.y);
                        *reinterpret_cast<uint2*>(kv_tile<Cfg>(kv_smem, 0, tensor, 1) + off) = lo;
                    } else {
                        hi = make_uint2(pack_f16(f.x, f.y), pack_f16(f.z, f.w));
                    }
                    *reinterpret_cast<uint2*>(kv_tile<Cfg>(kv_smem, 0, tensor, 0) + off) = hi;
                }
            }
        }
    };

    // Pipeline: tiles 0 .. kStages - 2 in flight before the loop; iteration `it` waits for tile `it`,
    // then issues tile it + kStages - 1 into the stage that iteration it - 1 computed on. One commit
    // group per tile (empty past the end), so "all but the newest kStages - 2 groups" is tile `it`.
    // Tiles wholly below pos0 (the cache as earlier batches left it) are requested before waiting for the
    // prepare kernel that writes this batch's keys; the rest after.
    int early = 0;
    if constexpr (!Cfg::kF32Cache) {
        while (p.early_tiles && early < Cfg::kStages - 1 && early < n_tiles &&
               min(k_lo + (early + 1) * kTileKeys, k_hi) <= pp.pos0) {
            load_tile_async(k_lo + early * kTileKeys, early);
            cp_async_commit();
            ++early;
        }
    }
    grid_dependency_wait();
    if constexpr (!Cfg::kF32Cache) {
        for (int st = early; st < Cfg::kStages - 1; ++st) {
            if (st < n_tiles) load_tile_async(k_lo + st * kTileKeys, st);
            cp_async_commit();
        }
    }

    // Q fragments of the warp's rows and dims, straight from global memory (f32 -> f16 hi [+ lo]),
    // while the first tiles are on their way.
    uint32_t qa[Cfg::kQPlanes][kKSteps][4];
    {
        const size_t q_stride = static_cast<size_t>(p.n_heads) * HD;
#pragma unroll
        for (int s = 0; s < kKSteps; ++s) {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int i = j & 1;  // a0a1, a4a5: row g8; a2a3, a6a7: row g8 + 8
                const int col = dw * kWarpDims + s * kMmaK + 2 * t4 + (j >> 1) * 8;
                float2 v = make_float2(0.0f, 0.0f);
                if (row_ok[i]) v = *reinterpret_cast<const float2*>(p.q + row_t[i] * q_stride + row_h[i] * HD + col);
                if constexpr (Cfg::kExact) {
                    split_f16(v.x, v.y, qa[0][s][j], qa[Cfg::kQPlanes - 1][s][j]);
                } else {
                    qa[0][s][j] = pack_f16(v.x, v.y);
                }
            }
        }
    }

    float o[kDimTiles][4];
#pragma unroll
    for (int d = 0; d < kDimTiles; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY};
    float l_run[2] = {0.0f, 0.0f};

    for (int it = 0; it < n_tiles; ++it) {
        const int k0 = k_lo + it * kTileKeys;
        int stage = 0;
        if constexpr (Cfg::kF32Cache) {
            __syncthreads();  // everyone is done with the previous tile
            load_tile_f32(k0);
            __syncthreads();
        } else {
            stage = it % Cfg::kStages;
            cp_async_wait<Cfg::kStages - 2>();
            __syncthreads();  // tile `it` is visible to all; everyone is done with tile it - 1
            const int next = it + Cfg::kStages - 1;
            if (next < n_tiles) load_tile_async(k_lo + next * kTileKeys, next % Cfg::kStages);
            cp_async_commit();
        }

        // ---- S = Q K^T over this warp's dims
        float s[kKeyTiles][4];
#pragma unroll
        for (int n = 0; n < kKeyTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        const __half* ks = kv_tile<Cfg>(kv_smem, stage, 0, 0) + dw * kWarpDims;
        const __half* ks_lo = kv_tile<Cfg>(kv_smem, stage, 0, Cfg::kKvPlanes - 1) + dw * kWarpDims;
#pragma unroll
        for (int kk = 0; kk < kKSteps; kk += 2) {
#pragma unroll
            for (int n = 0; n < kKeyTiles; ++n) {
                // Matrices: keys n*8..n*8+7 x dims 16kk + {0, 8, 16, 24}: b-fragments of steps kk, kk + 1.
                const int off = (n * kMmaN + (lane & 7)) * kPitch + kk * kMmaK + (lane >> 3) * 8;
                uint32_t b[4];
                ldmatrix_x4(b, ks + off);
                mma_f16(s[n], qa[0][kk], b[0], b[1]);
                mma_f16(s[n], qa[0][kk + 1], b[2], b[3]);
                if constexpr (Cfg::kExact) {
                    mma_f16(s[n], qa[Cfg::kQPlanes - 1][kk], b[0], b[1]);
                    mma_f16(s[n], qa[Cfg::kQPlanes - 1][kk + 1], b[2], b[3]);
                }
                if constexpr (Cfg::kKvPlanes == 2) {
                    uint32_t bl[4];
                    ldmatrix_x4(bl, ks_lo + off);
                    mma_f16(s[n], qa[0][kk], bl[0], bl[1]);
                    mma_f16(s[n], qa[0][kk + 1], bl[2], bl[3]);
                }
            }
        }

        // ---- The dim warps' partial scores to shared memory (the row group's kDimWarps x 16 x 32 block).
        constexpr int kXsPitch = Cfg::kXsPitch;
        [[maybe_unused]] float* const row_group_xs = xs + rw * kDimWarps * kMmaM * kXsPitch;
        if constexpr (kDimWarps > 1) {
            float* mine = row_group_xs + dw * kMmaM * kXsPitch;
#pragma unroll
            for (int n = 0; n < kKeyTiles; ++n) {
                const int col = n * kMmaN + 2 * t4;
                *reinterpret_cast<float2*>(mine + g8 * kXsPitch + col) = make_float2(s[n][0], s[n][1]);
                *reinterpret_cast<float2*>(mine + (g8 + 8) * kXsPitch + col) = make_float2(s[n][2], s[n][3]);
            }
            __syncthreads();
        }

        // P = exp(S - m) as the A operand of the PV mma: pa (f16, or hi), pl (lo halves, exact configuration).
        uint32_t pa[kPvSteps][4];
        [[maybe_unused]] uint32_t pl[kPvSteps][4];
        if constexpr (Cfg::kSlice) {
            // ---- Warp dw takes rows dw * kSR + i, one key per lane: the sum of the kDimWarps partials in order
            // 0, 1, ..., the mask, the online softmax, and P split into hi + lo halves (as split_f16), written for
            // every warp to load as A fragments.
            const int pk = k0 + lane;
            __half* const p_hi = p_smem;
            [[maybe_unused]] __half* const p_lo = p_smem + (Cfg::kPPlanes - 1) * Cfg::kPPlaneHalves;
#pragma unroll
            for (int i = 0; i < kSR; ++i) {
                const int r = dw * kSR + i;
                float v = row_group_xs[r * kXsPitch + lane];
#pragma unroll
                for (int w = 1; w < kDimWarps; ++w) v += row_group_xs[(w * kMmaM + r) * kXsPitch + lane];
                bool visible = srow_ok[i] && pk < k_hi && pk >= srow_lo[i];
                if (visible && pk > srow_pq[i]) {
                    visible = srow_grp[i] >= 0 && pk < pp.kv_hi && __ldg(p.groups + (pk - pp.pos0)) == srow_grp[i];
                }
                v = visible ? v * p.scale : -INFINITY;
                float mx = v;
#pragma unroll
                for (int o = kWarpSize / 2; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(kFullWarp, mx, o));
                mx = fmaxf(mx, sm_run[i]);
                const float base = mx == -INFINITY ? 0.0f : mx;  // no visible key yet: weights stay 0, no NaN
                const float corr = expf(sm_run[i] - base);
                sm_run[i] = mx;
                const float w = expf(v - base);
                const __half h = __float2half_rn(w);
                p_hi[r * Cfg::kPPitch + lane] = h;
                float rs;
                if constexpr (Cfg::kExact) {
                    p_lo[r * Cfg::kPPitch + lane] = __float2half_rn(w - __half2float(h));
                    rs = warp_sum(w);
                } else {
                    rs = warp_sum(__half2float(h));  // the weights the mma uses, so they stay normalised
                }
                sl_run[i] = sl_run[i] * corr + rs;
                if (lane == 0) corr_smem[r] = corr;
            }
            __syncthreads();
            const float corr0 = corr_smem[g8], corr1 = corr_smem[g8 + 8];
#pragma unroll
            for (int d = 0; d < kDimTiles; ++d) {
                o[d][0] *= corr0;
                o[d][1] *= corr0;
                o[d][2] *= corr1;
                o[d][3] *= corr1;
            }
#pragma unroll
            for (int kk = 0; kk < kPvSteps; ++kk) {
                // Matrices: rows 0-7 / 8-15 x keys 16kk + {0, 8}: a0a1, a2a3, a4a5, a6a7.
                const int off = (lane & 15) * Cfg::kPPitch + kk * kMmaK + (lane >> 4) * 8;
                ldmatrix_x4(pa[kk], p_hi + off);
                if constexpr (Cfg::kExact) ldmatrix_x4(pl[kk], p_lo + off);
            }
        } else {
            // ---- Sum the dim warps' partial scores in a fixed order (identical in every warp).
            if constexpr (kDimWarps > 1) {
                float total[kKeyTiles][4];
#pragma unroll
                for (int w = 0; w < kDimWarps; ++w) {
                    const float* theirs = row_group_xs + w * kMmaM * kXsPitch;
#pragma unroll
                    for (int n = 0; n < kKeyTiles; ++n) {
                        const int col = n * kMmaN + 2 * t4;
                        float2 a = make_float2(s[n][0], s[n][1]);
                        float2 c = make_float2(s[n][2], s[n][3]);
                        if (w != dw) {
                            a = *reinterpret_cast<const float2*>(theirs + g8 * kXsPitch + col);
                            c = *reinterpret_cast<const float2*>(theirs + (g8 + 8) * kXsPitch + col);
                        }
                        const float part_scores[4] = {a.x, a.y, c.x, c.y};
#pragma unroll
                        for (int e = 0; e < 4; ++e) total[n][e] = w == 0 ? part_scores[e] : total[n][e] + part_scores[e];
                    }
                }
#pragma unroll
                for (int n = 0; n < kKeyTiles; ++n) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) s[n][e] = total[n][e];
                }
            }

            // ---- Scale and mask (visibility exactly as cpu::attention).
#pragma unroll
            for (int n = 0; n < kKeyTiles; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int i = e >> 1;
                    const int pk = k0 + n * kMmaN + 2 * t4 + (e & 1);
                    bool visible = row_ok[i] && pk < k_hi && pk >= row_lo[i];
                    if (visible && pk > row_pq[i]) {
                        visible = row_grp[i] >= 0 && pk < pp.kv_hi && __ldg(p.groups + (pk - pp.pos0)) == row_grp[i];
                    }
                    s[n][e] = visible ? s[n][e] * p.scale : -INFINITY;
                }
            }

            // ---- Online softmax: running max over the quad of lanes that shares a row.
            float mx[2] = {m_run[0], m_run[1]};
#pragma unroll
            for (int n = 0; n < kKeyTiles; ++n) {
                mx[0] = fmaxf(mx[0], fmaxf(s[n][0], s[n][1]));
                mx[1] = fmaxf(mx[1], fmaxf(s[n][2], s[n][3]));
            }
            float base[2], corr[2];
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(kFullWarp, mx[i], 1));
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(kFullWarp, mx[i], 2));
                base[i] = mx[i] == -INFINITY ? 0.0f : mx[i];  // no visible key yet: weights stay 0, no NaN
                corr[i] = expf(m_run[i] - base[i]);
                m_run[i] = mx[i];
            }

            // P = exp(S - m), as the A operand of the PV mma (the C layout of two score n-tiles is the A
            // layout of one k16 step), and its row sums.
            float rs[2] = {0.0f, 0.0f};
#pragma unroll
            for (int kk = 0; kk < kPvSteps; ++kk) {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const int n = 2 * kk + (j >> 1);  // a0a1/a2a3: keys 16kk + 2t4; a4a5/a6a7: 16kk + 8 + 2t4
                    const int i = j & 1;              // a0a1/a4a5: row g8; a2a3/a6a7: row g8 + 8
                    const float w0 = expf(s[n][2 * i] - base[i]);
                    const float w1 = expf(s[n][2 * i + 1] - base[i]);
                    if constexpr (Cfg::kExact) {
                        split_f16(w0, w1, pa[kk][j], pl[kk][j]);
                        rs[i] += w0 + w1;
                    } else {
                        const __half2 h = __floats2half2_rn(w0, w1);
                        pa[kk][j] = half2_bits(h);
                        const float2 r = __half22float2(h);
                        rs[i] += r.x + r.y;  // the weights the mma uses, so they stay normalised
                    }
                }
            }
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                rs[i] += __shfl_xor_sync(kFullWarp, rs[i], 1);
                rs[i] += __shfl_xor_sync(kFullWarp, rs[i], 2);
                l_run[i] = l_run[i] * corr[i] + rs[i];
            }
#pragma unroll
            for (int d = 0; d < kDimTiles; ++d) {
                o[d][0] *= corr[0];
                o[d][1] *= corr[0];
                o[d][2] *= corr[1];
                o[d][3] *= corr[1];
            }

        }

        // ---- O += P V over this warp's dims
        const __half* vs = kv_tile<Cfg>(kv_smem, stage, 1, 0) + dw * kWarpDims;
        const __half* vs_lo = kv_tile<Cfg>(kv_smem, stage, 1, Cfg::kKvPlanes - 1) + dw * kWarpDims;
#pragma unroll
        for (int kk = 0; kk < kPvSteps; ++kk) {
#pragma unroll
            for (int d = 0; d < kDimTiles; d += 2) {
                // Matrices (transposed): keys 16kk + {0, 8} x dims 8d + {0, 8}: b-fragments of n-tiles d, d + 1.
                const int off = (kk * kMmaK + (lane & 7) + ((lane >> 3) & 1) * 8) * kPitch + d * kMmaN + (lane >> 4) * 8;
                uint32_t b[4];
                ldmatrix_x4_trans(b, vs + off);
                mma_f16(o[d], pa[kk], b[0], b[1]);
                mma_f16(o[d + 1], pa[kk], b[2], b[3]);
                if constexpr (Cfg::kExact) {
                    mma_f16(o[d], pl[kk], b[0], b[1]);
                    mma_f16(o[d + 1], pl[kk], b[2], b[3]);
                }
                if constexpr (Cfg::kKvPlanes == 2) {
                    uint32_t bl[4];
                    ldmatrix_x4_trans(bl, vs_lo + off);
                    mma_f16(o[d], pa[kk], bl[0], bl[1]);
                    mma_f16(o[d + 1], pa[kk], bl[2], bl[3]);
                }
            }
        }
    }

    if constexpr (Cfg::kSlice) {
        // The slice warps' final (max, sum) for the fragment rows g8, g8 + 8 of every warp.
        if (lane == 0) {
#pragma unroll
            for (int i = 0; i < kSR; ++i) ml_smem[dw * kSR + i] = make_float2(sm_run[i], sl_run[i]);
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const float2 ml = ml_smem[g8 + 8 * i];
            m_run[i] = ml.x;
            l_run[i] = ml.y;
        }
    }

    // ---- Results: normalised output (one partition) or the partition's O, m, l.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        if (!row_ok[i]) continue;
        const size_t row = static_cast<size_t>(row_t[i]) * p.n_heads + row_h[i];
        if (p.n_parts == 1) {
            const float inv = l_run[i] > 0.0f ? 1.0f / l_run[i] : 0.0f;
            float* dst = p.out + row * HD + dw * kWarpDims + 2 * t4;
#pragma unroll
            for (int d = 0; d < kDimTiles; ++d) {
                *reinterpret_cast<float2*>(dst + d * kMmaN) = make_float2(o[d][2 * i] * inv, o[d][2 * i + 1] * inv);
            }
        } else {
            const size_t slot = row * p.n_parts + part;
            float* dst = p.part_o + slot * HD + dw * kWarpDims + 2 * t4;
#pragma unroll
            for (int d = 0; d < kDimTiles; ++d) {
                *reinterpret_cast<float2*>(dst + d * kMmaN) = make_float2(o[d][2 * i], o[d][2 * i + 1]);
            }
            if (dw == 0 && t4 == 0) p.part_ml[slot] = make_float2(m_run[i], l_run[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// attention_reduce_kernel: grid (n_tokens * n_heads, head_dim / kReduceCols), kReduceThreads threads.
//   Each block combines the partitions of kReduceCols output columns of one row. First the block
//   finds M = max_p m_p and the weights w_p = e^(m_p - M) (into shared memory) and L = sum_p w_p l_p,
//   in parallel over p; then kReduceColLanes x kReducePartLanes threads sum w_p O_p, each thread
//   striding over partitions with several independent 16-byte loads in flight (the partials are in
//   L2: ~130 partitions of a 32K-key decode would otherwise cost one L2 latency each, in series).

__device__ __forceinline__ float block_reduce(float v, bool take_max, float* scratch) {
    for (int o = kWarpSize / 2; o > 0; o /= 2) {
        const float other = __shfl_xor_sync(kFullWarp, v, o);
        v = take_max ? fmaxf(v, other) : v + other;
    }
    __syncthreads();  // scratch may still be read by a previous call
    if (threadIdx.x % kWarpSize == 0) scratch[threadIdx.x / kWarpSize] = v;
    __syncthreads();
    float r = scratch[0];
    for (int w = 1; w < kReduceThreads / kWarpSize; ++w) r = take_max ? fmaxf(r, scratch[w]) : r + scratch[w];
    return r;
}

__global__ void __launch_bounds__(kReduceThreads) attention_reduce_kernel(const float* part_o, const float2* part_ml,
                                                                          int n_parts, int head_dim, float* out) {
    allow_dependents();  // launched with launch_dependent (common.cuh)
    grid_dependency_wait();
    extern __shared__ float weights[];  // [n_parts]
    __shared__ float scratch[kReduceThreads / kWarpSize];
    __shared__ float4 lane_sums[kReducePartLanes][kReduceColLanes];
    const int tid = threadIdx.x;
    const size_t row = blockIdx.x;
    const int col0 = blockIdx.y * kReduceCols;
    const float2* ml = part_ml + row * n_parts;
    const int col_lane = tid % kReduceColLanes;
    const int part_lane = tid / kReduceColLanes;
    const size_t part_stride = static_cast<size_t>(head_dim) / 4;  // float4 per partition row
    const float4* src = reinterpret_cast<const float4*>(part_o + row * n_parts * head_dim + col0) + col_lane;

    // The thread's first kReduceEarly partial outputs are requested together with the (max, sum) pairs, so
    // the two reads cost one memory latency, not two in a row.
    float4 early[kReduceEarly];
#pragma unroll
    for (int k = 0; k < kReduceEarly; ++k) {
        const int i = part_lane + k * kReducePartLanes;
        early[k] = i < n_parts ? src[i * part_stride] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }

    float m = -INFINITY;
    for (int i = tid; i < n_parts; i += kReduceThreads) m = fmaxf(m, ml[i].x);
    m = block_reduce(m, true, scratch);
    float l = 0.0f;
    for (int i = tid; i < n_parts; i += kReduceThreads) {
        const float2 v = ml[i];
        const float w = v.x == -INFINITY ? 0.0f : expf(v.x - m);  // an empty partition weighs 0
        weights[i] = w;
        l += w * v.y;
    }
    l = block_reduce(l, false, scratch);  // its barriers also publish `weights`

    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const auto accumulate = [&](int i, float4 v) {
        const float w = weights[i];
        acc.x += w * v.x;
        acc.y += w * v.y;
        acc.z += w * v.z;
        acc.w += w * v.w;
    };
#pragma unroll
    for (int k = 0; k < kReduceEarly; ++k) {
        const int i = part_lane + k * kReducePartLanes;
        if (i >= n_parts) break;
        accumulate(i, early[k]);
    }
#pragma unroll 4
    for (int i = part_lane + kReduceEarly * kReducePartLanes; i < n_parts; i += kReducePartLanes) accumulate(i, src[i * part_stride]);
    lane_sums[part_lane][col_lane] = acc;
    __syncthreads();
    if (part_lane == 0) {
        float4 sum = lane_sums[0][col_lane];
        for (int j = 1; j < kReducePartLanes; ++j) {
            const float4 v = lane_sums[j][col_lane];
            sum.x += v.x;
            sum.y += v.y;
            sum.z += v.z;
            sum.w += v.w;
        }
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        reinterpret_cast<float4*>(out + row * head_dim + col0)[col_lane] =
            make_float4(sum.x * inv, sum.y * inv, sum.z * inv, sum.w * inv);
    }
}

// ---------------------------------------------------------------------------------------------------
// Host side

[[noreturn]] void invalid(const std::string& what) { throw Error(ErrorCode::invalid_argument, "attention: " + what); }

void validate(const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv) {
    const int hd = layer.head_dim;
    if (hd != 64 && hd != 128 && hd != 256 && hd != 512) {
        invalid("head_dim " + std::to_string(hd) + " is not supported (64, 128, 256 or 512)");
    }
    if (layer.n_heads <= 0 || layer.n_kv_heads <= 0 || layer.n_heads % layer.n_kv_heads != 0) {
        invalid(std::to_string(layer.n_heads) + " heads do not split over " + std::to_string(layer.n_kv_heads) +
                " KV heads");
    }
    if (kv.head_dim != hd || kv.n_kv_heads != layer.n_kv_heads) {
        invalid("the cache holds " + std::to_string(kv.n_kv_heads) + " x " + std::to_string(kv.head_dim) +
                " heads, the layer " + std::to_string(layer.n_kv_heads) + " x " + std::to_string(hd));
    }
    if (kv.page_tokens <= 0 || kv.pages == nullptr) invalid("the cache has no pages");
    if (batch.pos0 < 0 || batch.n_tokens < 0 || layer.window < 0) {
        invalid("negative position, batch size or window");
    }
}

void check_pointer(const void* ptr, size_t align, const char* name) {
    if (reinterpret_cast<uintptr_t>(ptr) % align != 0) {
        invalid(std::string(name) + " is not " + std::to_string(align) + "-byte aligned");
    }
}

bool early_tiles_enabled() {
    static const bool on = !env_is("GEMMA4_ATTN_EARLY", "0");
    return on;
}

// Raises the kernel's shared-memory limit and returns how many blocks fit on one SM (per device).
template <class Cfg>
int flash_blocks_per_sm() {
    static std::array<std::atomic<int>, kMaxCachedDevices> cache{};
    int device = 0;
    GEMMA4_CUDA_CHECK(cudaGetDevice(&device));
    if (device < kMaxCachedDevices) {
        const int known = cache[device].load(std::memory_order_relaxed);
        if (known > 0) return known;
    }
    const auto kernel = attention_flash_kernel<Cfg>;
    GEMMA4_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(Cfg::kSmemBytes)));
    int blocks = 0;
    GEMMA4_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, Cfg::kThreads, Cfg::kSmemBytes));
    if (blocks < 1) throw Error(ErrorCode::device_error, "attention: the kernel does not fit on this GPU");
    if (device < kMaxCachedDevices) cache[device].store(blocks, std::memory_order_relaxed);
    return blocks;
}

template <class Cfg>
void run_flash(const float* q, const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv,
               float* out, Context& ctx) {
    constexpr int HD = Cfg::kHeadDim;
    const int blocks_per_sm = flash_blocks_per_sm<Cfg>();
    const auto stream = static_cast<cudaStream_t>(ctx.stream());

    const int heads_per_kv = layer.n_heads / layer.n_kv_heads;
    const int64_t rows_per_kv = static_cast<int64_t>(batch.n_tokens) * heads_per_kv;
    const int row_groups = ceil_div(rows_per_kv, Cfg::kRows);
    if (row_groups > kMaxGridY) invalid("batch of " + std::to_string(batch.n_tokens) + " tokens is too large");

    FlashParams p{};
    p.q = q;
    p.out = out;
    p.pages = kv.pages;
    p.groups = layer.window > 0 ? batch.groups : nullptr;  // full layers stay causal inside images
    p.half_page_bytes = kv.half_page_bytes();
    p.page_tokens = kv.page_tokens;
    p.n_heads = layer.n_heads;
    p.heads_per_kv = heads_per_kv;
    p.n_tokens = batch.n_tokens;
    p.pos0 = batch.pos0;
    p.window = layer.window;
    p.scale = layer.scale;
    p.kv_hi = batch.pos0 + batch.n_tokens;
    p.kv_lo = layer.window > 0 ? std::max(0, batch.pos0 - layer.window + 1) : 0;
    p.pos0_device = batch.pos0_device;
    p.early_tiles = early_tiles_enabled();
    if (batch.pos0_device) {
        // Graph replay: size the split for the largest key range this cache can hold, so the launch
        // shape never depends on pos0 (the kernel derives the ranges from *pos0_device).
        if (batch.max_positions < batch.n_tokens) invalid("graph replay needs max_positions >= n_tokens");
        p.kv_lo = 0;
        p.kv_hi = layer.window > 0 ? std::min(batch.max_positions, layer.window + batch.n_tokens - 1) : batch.max_positions;
    }

    // Split-K: about one wave of blocks in all, whole tiles per partition.
    const int key_tiles = ceil_div(p.kv_hi - p.kv_lo, kTileKeys);
    const int64_t other_blocks = static_cast<int64_t>(row_groups) * layer.n_kv_heads;
    const int64_t slots = static_cast<int64_t>(ctx.sm_count()) * blocks_per_sm;
    const int wanted_parts = static_cast<int>(std::clamp<int64_t>(slots / other_blocks, 1, std::min(key_tiles, kMaxParts)));
    const int part_tiles = ceil_div(key_tiles, wanted_parts);
    p.part_keys = part_tiles * kTileKeys;
    p.n_parts = ceil_div(key_tiles, part_tiles);

    const size_t rows_total = static_cast<size_t>(batch.n_tokens) * layer.n_heads;
    if (p.n_parts > 1) {
        p.part_o = static_cast<float*>(ctx.scratch(2, rows_total * p.n_parts * HD * sizeof(float)));
        p.part_ml = static_cast<float2*>(ctx.scratch(3, rows_total * p.n_parts * sizeof(float2)));
    }

    const dim3 grid(p.n_parts, row_groups, layer.n_kv_heads);
    launch_dependent(attention_flash_kernel<Cfg>, grid, dim3(Cfg::kThreads), Cfg::kSmemBytes, stream, p);
    if (p.n_parts > 1) {
        const dim3 reduce_grid(static_cast<unsigned>(rows_total), HD / kReduceCols);
        launch_dependent(attention_reduce_kernel, reduce_grid, dim3(kReduceThreads), p.n_parts * sizeof(float), stream,
                         p.part_o, p.part_ml, p.n_parts, HD, out);
    }
}

template <int HD, class KvT>
void attention_typed(const float* q, const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv,
                     float* out, Context& ctx) {
    if (batch.n_tokens <= kDecodeMaxTokens) {
        run_flash<DecodeConfig<HD, KvT>>(q, batch, layer, kv, out, ctx);
    } else {
        run_flash<PrefillConfig<HD, KvT>>(q, batch, layer, kv, out, ctx);
    }
}

template <int HD>
void attention_hd(const float* q, const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv,
                  float* out, Context& ctx) {
    if (kv.kv_type == KvType::f16) {
        attention_typed<HD, __half>(q, batch, layer, kv, out, ctx);
    } else {
        attention_typed<HD, float>(q, batch, layer, kv, out, ctx);
    }
}

}  // namespace

void attention_prepare(float* q, const float* k, const float* v, const BatchPositions& batch, const AttentionLayer& layer,
                       const KvLayerView& kv, Context& ctx) {
    validate(batch, layer, kv);
    if (layer.rope_dims < 0 || layer.rope_dims > layer.head_dim || layer.rope_dims % 2 != 0) {
        invalid("rope_dims " + std::to_string(layer.rope_dims) + " must be even and at most head_dim");
    }
    if (layer.q_norm == nullptr || layer.k_norm == nullptr) invalid("q_norm and k_norm are required");
    if (batch.n_tokens == 0) return;
    if (layer.n_heads + 2 * layer.n_kv_heads > kMaxGridY) invalid("too many heads");

    PrepareParams p{};
    p.q = q;
    p.k = k;
    p.v = v;
    p.q_norm = layer.q_norm;
    p.k_norm = layer.k_norm;
    p.rope_freqs = layer.rope_freqs;
    p.pages = kv.pages;
    p.half_page_bytes = kv.half_page_bytes();
    p.page_tokens = kv.page_tokens;
    p.n_heads = layer.n_heads;
    p.n_kv_heads = layer.n_kv_heads;
    p.head_dim = layer.head_dim;
    p.rope_dims = layer.rope_dims;
    p.pos0 = batch.pos0;
    p.pos0_device = batch.pos0_device;
    // The CPU's expression, evaluated by the same host libm: the angles then match bit for bit.
    p.theta_scale = layer.rope_dims > 0 ? std::pow(layer.rope_base, -2.0f / static_cast<float>(layer.rope_dims)) : 1.0f;
    p.eps = layer.rms_eps;
    p.f16_cache = kv.kv_type == KvType::f16;

    const dim3 grid(batch.n_tokens, layer.n_heads + 2 * layer.n_kv_heads);
    launch_dependent(attention_prepare_kernel, grid, dim3(kPrepareThreads), 0, static_cast<cudaStream_t>(ctx.stream()),
                     p);
}

void attention(const float* q, const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv,
               float* out, Context& ctx) {
    validate(batch, layer, kv);
    if (batch.n_tokens == 0) return;
    check_pointer(q, sizeof(float2), "q");
    check_pointer(out, sizeof(float4), "out");
    switch (layer.head_dim) {
        case 64: return attention_hd<64>(q, batch, layer, kv, out, ctx);
        case 128: return attention_hd<128>(q, batch, layer, kv, out, ctx);
        case 256: return attention_hd<256>(q, batch, layer, kv, out, ctx);
        case 512: return attention_hd<512>(q, batch, layer, kv, out, ctx);
        default: invalid("head_dim " + std::to_string(layer.head_dim) + " is not supported");
    }
}

}  // namespace gemma4::cuda
