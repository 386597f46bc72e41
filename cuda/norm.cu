// Row-wise and elementwise kernels: embedding lookup, RMS norms (plain, and fused with the residual
// add and the layer scale), soft-capping and GeGLU.
//
// Layouts: activations f32 row-major [n_rows][dim]; weight [dim] (may be null for rms_norm); the
// embedding table [vocab][row_bytes] of GGUF blocks, ids [n_tokens], out [n_tokens][d_model].
//
// RMS norms (rms_norm: out = (x * s) * w; add_rms_norm: x = x + (a * s) * w, then * scale if scale != 1;
// s = 1 / sqrtf(sum(v^2) / dim + eps) over the normalized row v = x resp. a). At decode they run on one
// row (d_model 3840) and are pure latency: the old kernels issued one dependent load per thread at a
// time and read the row twice (~10 us). Now:
//   - Packs: a thread moves kVecFloats = 4 floats per access (float4, 16-byte LDG/STG) when dim % 4 == 0
//     and every pointer is 16-byte aligned (cudaMalloc'd activations are); otherwise single floats.
//   - Register tile: each thread owns packs t, t + T, t + 2T, ... (T threads per row: coalesced) and
//     keeps up to kPacks of them of every input (v, the weight, and x for the residual) in registers.
//     All loads are issued before any use, so a row costs one memory latency, not one per element; then
//     one reduction, and the outputs are written from registers. kPacks is a template parameter
//     (1, 2, 4 or kMaxTilePacks = 8), the smallest that covers the row.
//   - Geometry, by the number of packs n in a row:
//       n <= 32 * 8 (dim <= 1024 in float4): a warp per row, 8 rows per 256-thread CTA; the reduction is
//         shuffles only, no barrier (short rows such as the audio frames of 640 or head-sized rows: a
//         CTA per row would leave most threads idle and pay two barriers per row);
//       n <= 256 * 8 (dim <= 8192 in float4): a 256-thread CTA per row and block_sum (d_model 3840 is
//         960 float4, 4 per thread);
//       longer rows: a 256-thread CTA per row that loops, reading the row a second time for the output
//         (it stays in L1/L2). Used for dim > 8192, or dim > 2048 without float4.
//   Expected at decode (dim 3840, one CTA): 8 warps issue ~2k independent 16-byte loads at once, so
//   ~one L2/DRAM round trip (~1 us) + one block reduction + the stores: ~2-3 us per launch, most of
//   it launch and memory latency, against ~10 us before.
//   Numerics are the old kernels': f32 sum of squares (only the order of the f32 additions changed:
//   per thread, then a shuffle tree, then the warp sums in order), 1 / sqrtf(mean + eps), and the same
//   output expressions. The CPU reference sums in double; the difference is ~1e-7 relative.
//   x and out may alias in rms_norm (in-place calls): every element is read, into registers or by the
//   thread that later writes it, before the reduction and hence before any write.
//
// Embedding: out[t] = dequantize(table row ids[t]) * scale, bit-identical to
// QuantTraits::dequantize_block (then * scale), as the CPU. Two kernels:
//   - Lane kernel (F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K): a lane produces kEmbedLaneElems = 8
//     consecutive outputs, stored as two float4 when d_model % 8 == 0 and out is 16-byte aligned. A warp
//     covers 256 outputs (one K-quant super-block, eight Q4_0/Q8_0 blocks), a 256-thread CTA 2048; grid
//     (n_tokens, ceil(d_model / 2048)): a 3840 row is 2 CTAs with 15 busy warps, every lane's loads
//     (its ~20 bytes of the block) in flight at once, so one token costs the ids load plus one block
//     load (~2-3 us per launch at decode, against 15.6 us for one warp dequantizing whole blocks).
//     LaneDequant<Block> computes each of its 8 elements with the exact expression of the traits
//     (formats.h: every output is the spec formula rounded once to f32, so the bits cannot differ).
//   - Block kernel (Q4_1, Q5_0, Q5_1, Q2_K, Q3_K: rare for token embeddings): one thread per block, up
//     to 256 blocks per CTA, grid (n_tokens, ceil(n_blocks / threads)); the thread dequantizes its block
//     with the traits and stores it.
//
// softcap, geglu: a grid-stride loop over the elements.
#include <cmath>
#include <string>

#include "cuda/common.cuh"
#include "cuda/ops.h"
#include "cuda/row_reduce.cuh"
#include "model/activations.h"
#include "quant/formats.h"

namespace gemma4::cuda {
namespace {

// ---------------------------------------------------------------------------------------------------
// Named constants.

constexpr int kNormThreads = kRowThreads;  // threads per CTA of the norm kernels: 8 warps (block_sum's size)
constexpr int kVecFloats = 4;              // floats per vector access: one 16-byte float4
constexpr int kVecBytes = kVecFloats * static_cast<int>(sizeof(float));
constexpr int kMaxTilePacks = 8;  // packs a thread keeps per input: with float4 and 3 inputs, 96 registers
constexpr int kWarpRowMaxPacks = kWarpSize * kMaxTilePacks;       // longest row for a warp per row
constexpr int kBlockRowMaxPacks = kNormThreads * kMaxTilePacks;  // longest row held in registers

constexpr int kEmbedThreads = kRowThreads;                          // 8 warps per CTA
constexpr int kEmbedLaneElems = 8;                                  // consecutive outputs per lane: two float4
constexpr int kEmbedWarpElems = kWarpSize * kEmbedLaneElems;        // 256: one K-quant super-block per warp
constexpr int kEmbedCtaElems = kEmbedThreads * kEmbedLaneElems;    // 2048 outputs per CTA
static_assert(kEmbedWarpElems == QuantTraits<Q6K>::block_elems, "a warp dequantizes one super-block");

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// ---------------------------------------------------------------------------------------------------
// RMS norms.

/// kWidth floats moved as one access (kWidth 4: a 16-byte vector load/store). The array is indexed with
/// compile-time indices only, so it lives in registers.
template <int kWidth>
struct alignas(sizeof(float) * kWidth) FloatPack {
    float v[kWidth];
};

/// The reduction over the T threads of a row: shuffles for a warp per row, else block_sum (a whole
/// CTA of kNormThreads threads, two barriers).
template <int kThreadsPerRow>
__device__ float row_sum(float v) {
    if constexpr (kThreadsPerRow == kWarpSize) {
        return warp_sum(v);
    } else {
        static_assert(kThreadsPerRow == kRowThreads, "block_sum reduces a CTA of kRowThreads threads");
        return block_sum(v);
    }
}

/// The one output element: rms_norm writes (v * s) * w (v * s without a weight); add_rms_norm writes
/// x + (v * s) * w, times scale unless scale == 1 (`x` is the residual it reads).
template <bool kResidual>
__device__ float norm_output(float v, float w, float x, float s, bool has_weight, float scale) {
    if constexpr (kResidual) {
        const float y = x + (v * s) * w;
        return scale == 1.0f ? y : y * scale;
    } else {
        return has_weight ? (v * s) * w : v * s;
    }
}

/// Register-tile RMS norm: kThreadsPerRow threads per row (a warp, or the whole CTA), each holding up to
/// kPacks packs of kWidth floats; requires dim / kWidth <= kThreadsPerRow * kPacks and dim % kWidth == 0.
/// src: [n_rows][dim] the normalized rows (x of rms_norm, a of add_rms_norm); dst: [n_rows][dim] the
/// output (rms_norm, may equal src) or the residual x, read then written (add_rms_norm).
template <int kWidth, int kThreadsPerRow, int kPacks, bool kResidual>
__global__ void __launch_bounds__(kNormThreads)
    rms_norm_tile_kernel(const float* src, const float* weight, float* dst, int n_rows, int dim, float eps,
                         float scale) {
    allow_dependents();  // launched with launch_dependent (common.cuh)
    grid_dependency_wait();
    using Pack = FloatPack<kWidth>;
    constexpr int kRowsPerCta = kNormThreads / kThreadsPerRow;
    const int row = static_cast<int>(blockIdx.x) * kRowsPerCta + static_cast<int>(threadIdx.x) / kThreadsPerRow;
    const int t = static_cast<int>(threadIdx.x) % kThreadsPerRow;
    // Only a warp per row can run past the last row, and it leaves whole: no barrier follows.
    if (kRowsPerCta > 1 && row >= n_rows) return;
    const int n_packs = dim / kWidth;
    const size_t offset = static_cast<size_t>(row) * dim;
    const Pack* v_row = reinterpret_cast<const Pack*>(src + offset);
    const Pack* w_row = reinterpret_cast<const Pack*>(weight);
    Pack* d_row = reinterpret_cast<Pack*>(dst + offset);
    const bool has_weight = weight != nullptr;

    // Every load first. Packs past the row stay zero and add nothing to the sum.
    Pack v[kPacks] = {}, w[kPacks] = {}, x[kPacks] = {};
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
        const int i = t + k * kThreadsPerRow;
        if (i < n_packs) {
            v[k] = v_row[i];
            if (has_weight) w[k] = w_row[i];
            if constexpr (kResidual) x[k] = d_row[i];
        }
    }
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
#pragma unroll
        for (int j = 0; j < kWidth; ++j) ss += v[k].v[j] * v[k].v[j];
    }
    const float mean = row_sum<kThreadsPerRow>(ss) / static_cast<float>(dim);
    const float s = 1.0f / sqrtf(mean + eps);
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
        const int i = t + k * kThreadsPerRow;
        if (i < n_packs) {
            Pack o;
#pragma unroll
            for (int j = 0; j < kWidth; ++j) {
                o.v[j] = norm_output<kResidual>(v[k].v[j], w[k].v[j], x[k].v[j], s, has_weight, scale);
            }
            d_row[i] = o;
        }
    }
}

/// Rows longer than a register tile: a CTA per row loops over its packs twice (sum, then output), the
/// second pass re-reading the row from L1/L2. Same arguments as rms_norm_tile_kernel.
template <int kWidth, bool kResidual>
__global__ void __launch_bounds__(kNormThreads)
    rms_norm_loop_kernel(const float* src, const float* weight, float* dst, int dim, float eps, float scale) {
    allow_dependents();  // launched with launch_dependent (common.cuh)
    grid_dependency_wait();
    using Pack = FloatPack<kWidth>;
    constexpr int kUnroll = 4;  // loads in flight per thread in the sum loop
    const int n_packs = dim / kWidth;
    const size_t offset = static_cast<size_t>(blockIdx.x) * dim;
    const Pack* v_row = reinterpret_cast<const Pack*>(src + offset);
    const Pack* w_row = reinterpret_cast<const Pack*>(weight);
    Pack* d_row = reinterpret_cast<Pack*>(dst + offset);
    const bool has_weight = weight != nullptr;

    float ss = 0.0f;
#pragma unroll kUnroll
    for (int i = static_cast<int>(threadIdx.x); i < n_packs; i += kNormThreads) {
        const Pack v = v_row[i];
#pragma unroll
        for (int j = 0; j < kWidth; ++j) ss += v.v[j] * v.v[j];
    }
    const float mean = row_sum<kNormThreads>(ss) / static_cast<float>(dim);
    const float s = 1.0f / sqrtf(mean + eps);
#pragma unroll kUnroll
    for (int i = static_cast<int>(threadIdx.x); i < n_packs; i += kNormThreads) {
        const Pack v = v_row[i];
        Pack w = {}, x = {}, o;
        if (has_weight) w = w_row[i];
        if constexpr (kResidual) x = d_row[i];
#pragma unroll
        for (int j = 0; j < kWidth; ++j) o.v[j] = norm_output<kResidual>(v.v[j], w.v[j], x.v[j], s, has_weight, scale);
        d_row[i] = o;
    }
}

/// Packs per thread of the register tile: the smallest of 1, 2, 4, kMaxTilePacks with
/// threads * packs >= n_packs (the caller checked that kMaxTilePacks suffices).
int tile_packs(int n_packs, int threads) {
    int packs = 1;
    while (packs < kMaxTilePacks && static_cast<int64_t>(threads) * packs < n_packs) packs *= 2;
    return packs;
}

template <int kWidth, int kThreadsPerRow, bool kResidual>
void launch_tile(int packs, int n_rows, const float* src, const float* weight, float* dst, int dim, float eps,
                 float scale, cudaStream_t stream) {
    constexpr int kRowsPerCta = kNormThreads / kThreadsPerRow;
    const int grid = ceil_div(n_rows, kRowsPerCta);
    const auto run = [&](auto kernel) {
        launch_dependent(kernel, dim3(grid), dim3(kNormThreads), 0, stream, src, weight, dst, n_rows, dim, eps, scale);
    };
    switch (packs) {
        case 1: run(rms_norm_tile_kernel<kWidth, kThreadsPerRow, 1, kResidual>); break;
        case 2: run(rms_norm_tile_kernel<kWidth, kThreadsPerRow, 2, kResidual>); break;
        case 4: run(rms_norm_tile_kernel<kWidth, kThreadsPerRow, 4, kResidual>); break;
        default: run(rms_norm_tile_kernel<kWidth, kThreadsPerRow, kMaxTilePacks, kResidual>); break;
    }
}

/// Picks the geometry for rows of dim / kWidth packs (see the top) and launches.
template <int kWidth, bool kResidual>
void launch_norm_width(const float* src, const float* weight, float* dst, int n_rows, int dim, float eps, float scale,
                       cudaStream_t stream) {
    const int n_packs = dim / kWidth;
    if (n_packs <= kWarpRowMaxPacks) {
        launch_tile<kWidth, kWarpSize, kResidual>(tile_packs(n_packs, kWarpSize), n_rows, src, weight, dst, dim, eps,
                                                  scale, stream);
    } else if (n_packs <= kBlockRowMaxPacks) {
        launch_tile<kWidth, kNormThreads, kResidual>(tile_packs(n_packs, kNormThreads), n_rows, src, weight, dst, dim,
                                                     eps, scale, stream);
    } else {
        launch_dependent(rms_norm_loop_kernel<kWidth, kResidual>, dim3(n_rows), dim3(kNormThreads), 0, stream, src,
                         weight, dst, dim, eps, scale);
    }
}

/// float4 packs when the shape and every pointer allow 16-byte accesses, else single floats.
template <bool kResidual>
void launch_norm(const float* src, const float* weight, float* dst, int n_rows, int dim, float eps, float scale,
                 cudaStream_t stream) {
    const bool vec = dim % kVecFloats == 0 && aligned(src, kVecBytes) && aligned(dst, kVecBytes) &&
                     (weight == nullptr || aligned(weight, kVecBytes));
    if (vec) {
        launch_norm_width<kVecFloats, kResidual>(src, weight, dst, n_rows, dim, eps, scale, stream);
    } else {
        launch_norm_width<1, kResidual>(src, weight, dst, n_rows, dim, eps, scale, stream);
    }
}

// ---------------------------------------------------------------------------------------------------
// Elementwise.

__global__ void softcap_kernel(float* x, int64_t n, float cap) {
    allow_dependents();  // launched with launch_dependent (common.cuh)
    grid_dependency_wait();
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

// ---------------------------------------------------------------------------------------------------
// Embedding.

/// LaneDequant<Block>::run(row, e, y): y[j] = element e + j (j < kEmbedLaneElems, e % kEmbedLaneElems == 0)
/// of the row of Blocks, with the same expression, hence the same bits, as QuantTraits<Block>::
/// dequantize_block. Types without a specialization take the block kernel.
template <class Block>
struct LaneDequant {
    static constexpr bool kAvailable = false;
};

template <>
struct LaneDequant<Q8_0> {
    static constexpr bool kAvailable = true;
    __device__ static void run(const Q8_0* row, int64_t e, float (&y)[kEmbedLaneElems]) {
        constexpr int kElems = QuantTraits<Q8_0>::block_elems;
        const Q8_0& b = row[e / kElems];
        const int j0 = static_cast<int>(e % kElems);
        const float d = f16_to_f32(b.d);
#pragma unroll
        for (int j = 0; j < kEmbedLaneElems; ++j) y[j] = d * static_cast<float>(b.qs[j0 + j]);
    }
};

/// Q4_0: weight j < 16 of a block is the low nibble of qs[j], weight j + 16 its high nibble.
template <>
struct LaneDequant<Q4_0> {
    static constexpr bool kAvailable = true;
    __device__ static void run(const Q4_0* row, int64_t e, float (&y)[kEmbedLaneElems]) {
        constexpr int kElems = QuantTraits<Q4_0>::block_elems;
        constexpr int kHalf = kElems / 2;
        const Q4_0& b = row[e / kElems];
        const int j0 = static_cast<int>(e % kElems);
        const int shift = j0 < kHalf ? 0 : kNibbleBits;
        const int byte0 = j0 % kHalf;
        const float d = f16_to_f32(b.d);
#pragma unroll
        for (int j = 0; j < kEmbedLaneElems; ++j) {
            y[j] = d * static_cast<float>(((b.qs[byte0 + j] >> shift) & kLowNibble) - kQ4Offset);
        }
    }
};

template <>
struct LaneDequant<Q8K> {
    static constexpr bool kAvailable = true;
    __device__ static void run(const Q8K* row, int64_t e, float (&y)[kEmbedLaneElems]) {
        constexpr int kElems = QuantTraits<Q8K>::block_elems;
        const Q8K& b = row[e / kElems];
        const int j0 = static_cast<int>(e % kElems);
#pragma unroll
        for (int j = 0; j < kEmbedLaneElems; ++j) y[j] = b.d * static_cast<float>(b.qs[j0 + j]);
    }
};

/// Q4_K and Q5_K share the layout of the low nibbles and the scales: weight k = 64c + 32h + l of a
/// super-block is nibble h of qs[32c + l], in sub-block i = k / 32 = 2c + h. kHighBit adds Q5_K's fifth
/// bit, bit i of qh[l].
template <class Block, bool kHighBit>
__device__ void dequantize_lane_k4(const Block* row, int64_t e, float (&y)[kEmbedLaneElems]) {
    constexpr int kElems = QuantTraits<Block>::block_elems;
    constexpr int kSub = QuantTraits<Block>::sub_elems;  // 32
    const Block& b = row[e / kElems];
    const int k = static_cast<int>(e % kElems);
    const int c = k / (2 * kSub);
    const int h = (k / kSub) % 2;
    const int i = k / kSub;
    const int l0 = k % kSub;
    const float d = f16_to_f32(b.d);
    const float dmin = f16_to_f32(b.dmin);
    int sc = 0, mn = 0;
    unpack_k_scale_min(b.scales, i, sc, mn);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(mn);
#pragma unroll
    for (int j = 0; j < kEmbedLaneElems; ++j) {
        const int l = l0 + j;
        int q = (b.qs[kSub * c + l] >> (kNibbleBits * h)) & kLowNibble;
        if constexpr (kHighBit) q |= ((b.qh[l] >> i) & 1) << kNibbleBits;
        y[j] = dl * static_cast<float>(q) - ml;  // dl*q exact (formats.h)
    }
}

template <>
struct LaneDequant<Q4K> {
    static constexpr bool kAvailable = true;
    __device__ static void run(const Q4K* row, int64_t e, float (&y)[kEmbedLaneElems]) {
        dequantize_lane_k4<Q4K, false>(row, e, y);
    }
};

template <>
struct LaneDequant<Q5K> {
    static constexpr bool kAvailable = true;
    __device__ static void run(const Q5K* row, int64_t e, float (&y)[kEmbedLaneElems]) {
        dequantize_lane_k4<Q5K, true>(row, e, y);
    }
};

/// Q6_K: weight k = 128h + 32g + l of a super-block (see formats.h) takes its low 4 bits from nibble
/// g / 2 of ql[64h + 32(g % 2) + l] and its top 2 bits from bits 2g..2g+1 of qh[32h + l]; scale k / 16.
template <>
struct LaneDequant<Q6K> {
    static constexpr bool kAvailable = true;
    __device__ static void run(const Q6K* row, int64_t e, float (&y)[kEmbedLaneElems]) {
        constexpr int kElems = QuantTraits<Q6K>::block_elems;
        constexpr int kHalf = kElems / 2;  // 128 weights per half
        constexpr int kGroup = 32;         // weights per g
        const Q6K& b = row[e / kElems];
        const int k = static_cast<int>(e % kElems);
        const int h = k / kHalf;
        const int g = (k % kHalf) / kGroup;
        const int l0 = k % kGroup;
        const uint8_t* lo = b.ql + 2 * kGroup * h + kGroup * (g & 1);
        const uint8_t* hi = b.qh + kGroup * h;
        const int lo_shift = kNibbleBits * (g >> 1);
        const float d = f16_to_f32(b.d);
        const float dl = d * static_cast<float>(b.scales[k / QuantTraits<Q6K>::sub_elems]);  // one sub-block
#pragma unroll
        for (int j = 0; j < kEmbedLaneElems; ++j) {
            const int l = l0 + j;
            const int q =
                (((lo[l] >> lo_shift) & kLowNibble) | (((hi[l] >> (2 * g)) & kTwoBits) << kNibbleBits)) - kQ6Offset;
            y[j] = dl * static_cast<float>(q);
        }
    }
};

template <class Traits>
constexpr bool kLaneEmbed = Traits::block_elems == 1 || LaneDequant<typename Traits::block_type>::kAvailable;

/// Lane kernel (see the top): grid (n_tokens, ceil(d_model / kEmbedCtaElems)), kEmbedThreads threads.
/// table: [vocab][row_bytes]; ids: [n_tokens]; out: [n_tokens][d_model]. kVecStore: d_model % 8 == 0 and
/// out 16-byte aligned, so every lane writes its 8 outputs as two float4 (else one float at a time).
template <class Traits, bool kVecStore>
__global__ void __launch_bounds__(kEmbedThreads)
    embed_lanes_kernel(const uint8_t* table, size_t row_bytes, const int32_t* ids, int64_t d_model, float scale,
                       float* out) {
    allow_dependents();  // launched with launch_dependent (common.cuh)
    grid_dependency_wait();
    using Block = typename Traits::block_type;
    static_assert(Traits::block_elems == 1 || Traits::block_elems % kEmbedLaneElems == 0, "a lane stays in one block");
    const int64_t e = (static_cast<int64_t>(blockIdx.y) * kEmbedThreads + threadIdx.x) * kEmbedLaneElems;
    if (e >= d_model) return;
    const auto* row = reinterpret_cast<const Block*>(table + static_cast<size_t>(ids[blockIdx.x]) * row_bytes);
    float* o = out + static_cast<size_t>(blockIdx.x) * d_model + e;
    // Quantized rows are whole blocks, so only plain types can end inside a lane's 8 elements.
    const int n = d_model - e < kEmbedLaneElems ? static_cast<int>(d_model - e) : kEmbedLaneElems;
    float y[kEmbedLaneElems] = {};
    if constexpr (Traits::block_elems == 1) {
#pragma unroll
        for (int j = 0; j < kEmbedLaneElems; ++j) {
            if (j < n) Traits::dequantize_block(row[e + j], &y[j]);
        }
    } else {
        LaneDequant<Block>::run(row, e, y);
    }
#pragma unroll
    for (int j = 0; j < kEmbedLaneElems; ++j) y[j] = y[j] * scale;
    if constexpr (kVecStore) {
        auto* o4 = reinterpret_cast<float4*>(o);
        o4[0] = make_float4(y[0], y[1], y[2], y[3]);
        o4[1] = make_float4(y[4], y[5], y[6], y[7]);
    } else {
#pragma unroll
        for (int j = 0; j < kEmbedLaneElems; ++j) {
            if (j < n) o[j] = y[j];
        }
    }
}

/// Block kernel: grid (n_tokens, ceil(n_blocks / blockDim.x)); a thread dequantizes one block of row ids[t].
template <class Traits>
__global__ void __launch_bounds__(kEmbedThreads)
    embed_blocks_kernel(const uint8_t* table, size_t row_bytes, const int32_t* ids, int64_t d_model, float scale,
                        float* out) {
    allow_dependents();  // launched with launch_dependent (common.cuh)
    grid_dependency_wait();
    using Block = typename Traits::block_type;
    const int64_t b = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
    if (b >= d_model / Traits::block_elems) return;
    const auto* row = reinterpret_cast<const Block*>(table + static_cast<size_t>(ids[blockIdx.x]) * row_bytes);
    float* o = out + static_cast<size_t>(blockIdx.x) * d_model + b * Traits::block_elems;
    float y[Traits::block_elems];
    Traits::dequantize_block(row[b], y);
    for (int j = 0; j < Traits::block_elems; ++j) o[j] = y[j] * scale;
}

cudaStream_t stream_of(Context& ctx) { return static_cast<cudaStream_t>(ctx.stream()); }

}  // namespace

void embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out, Context& ctx) {
    if (n_tokens <= 0 || table.d_in <= 0) return;
    const int64_t d_model = table.d_in;
    visit_quant_type(table.type, [&](auto traits) {
        using Traits = decltype(traits);
        if (d_model % Traits::block_elems != 0) {
            throw Error(ErrorCode::invalid_argument, "embed: a row of " + std::to_string(d_model) +
                                                         " elements is not a whole number of " +
                                                         std::to_string(Traits::block_elems) + "-element blocks");
        }
        const auto* data = static_cast<const uint8_t*>(table.data);
        if constexpr (kLaneEmbed<Traits>) {
            const dim3 grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(ceil_div(d_model, kEmbedCtaElems)));
            const size_t row_bytes = table.row_bytes;
            if (d_model % kEmbedLaneElems == 0 && aligned(out, kVecBytes)) {
                launch_dependent(embed_lanes_kernel<Traits, true>, grid, dim3(kEmbedThreads), 0, stream_of(ctx), data,
                                 row_bytes, ids, d_model, scale, out);
            } else {
                launch_dependent(embed_lanes_kernel<Traits, false>, grid, dim3(kEmbedThreads), 0, stream_of(ctx), data,
                                 row_bytes, ids, d_model, scale, out);
            }
        } else {
            const int64_t n_blocks = d_model / Traits::block_elems;
            const int threads = n_blocks < kEmbedThreads ? ceil_div(n_blocks, kWarpSize) * kWarpSize : kEmbedThreads;
            const dim3 grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(ceil_div(n_blocks, threads)));
            launch_dependent(embed_blocks_kernel<Traits>, grid, dim3(threads), 0, stream_of(ctx), data, table.row_bytes,
                             ids, d_model, scale, out);
        }
    });
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out, Context& ctx) {
    if (n_rows <= 0 || dim <= 0) return;
    launch_norm<false>(x, weight, out, n_rows, dim, eps, 1.0f, stream_of(ctx));
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps, float scale, Context& ctx) {
    if (n_tokens <= 0 || dim <= 0) return;
    launch_norm<true>(a, weight, x, n_tokens, dim, eps, scale, stream_of(ctx));
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void softcap(float* x, int64_t n, float cap, Context& ctx) {
    if (n <= 0) return;
    launch_dependent(softcap_kernel, dim3(elementwise_blocks(n)), dim3(kElementwiseThreads), 0, stream_of(ctx), x, n,
                     cap);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

void geglu(const float* gate, const float* up, int64_t n, float* out, Context& ctx) {
    if (n <= 0) return;
    geglu_kernel<<<elementwise_blocks(n), kElementwiseThreads, 0, stream_of(ctx)>>>(gate, up, n, out);
    GEMMA4_CUDA_CHECK_LAUNCH();
}

}  // namespace gemma4::cuda
