// Dot products of quantized weight rows with f32 activations: dot_row and dot_rows (formats.h), the
// building block of the CPU matmul (y = W x, W stored [d_out rows, d_in / block_elems blocks]).
//
// Kernels (AVX2 + FMA + F16C, the project's x86-64 baseline; 8 f32 lanes per __m256). The weights are
// dequantized in registers and FMAed against x in f32; x is never quantized.
//   Q8_0  per block: 32 int8 -> 4 x 8 f32 (vpmovsxbd + vcvtdq2ps), sum_j q_j x_j in two partial sums,
//         then acc += d * sum.
//   Q4_K  per block: 8 scales and 8 mins unpacked in one go (bytes -> lanes), then each 32-weight
//         sub-block j gives s_j = sum_l q_l x_l (nibbles zero-extended to 32-bit lanes) and
//         acc += (d * sc_j) * s_j. The mins are factored out: sum_l (dl q - ml) x_l = dl s_j - ml X_j,
//         where X_j = sum of the 32 x under sub-block j is computed once per dot_rows call (it does not
//         depend on the row), so the mins cost one FMA per block for all 8 sub-blocks.
//   Q6_K  per 128-weight half: ql/qh bytes combined into four 32-byte vectors of signed 6-bit quants
//         (q - 32) with byte ops, sign-extended to lanes, and acc += (d * sc) * sum_l q_l x_l per
//         16-weight sub-block.
//   F32/F16/BF16: loaded (F16 via vcvtph2ps) and FMAed directly.
//   Other types: QuantTraits::dequantize_block into a 1 KiB stack buffer, then the F32 dot.
// Q8_0, Q4_K and Q6_K take 4 rows at a time (kRowGroup, below) so x is fetched from L2 once per 4 rows.
//
// Why this design, and its limit: without quantizing x, each 8 weights cost about 4 vector ops (widen,
// mask/shift, convert, FMA), so a core with 4 vector pipes tops out near 0.5 ops per weight: ~35 cycles
// per Q4_K block. Measured on a Zen 5 core (L2-resident, single thread): Q4_K ~14 ns per 256 weights
// (~10 GB/s of weights), Q6_K ~18.5 ns (~11 GB/s), Q8_0 ~12 ns (~22 GB/s). llama.cpp is faster by
// quantizing x to 8 bits and using integer dot products, at a cost in accuracy this engine does not take.
//
// All sums are f32 in several independent accumulators; the error bound is in formats.h. Nothing is
// allocated; no state is shared, so any number of threads may call these at once.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "quant/formats.h"

namespace gemma4 {
namespace {

constexpr int kLanes = 8;  // f32 lanes in a __m256

float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Sums of each of 8 vectors, as the 8 lanes of one vector: [sum v0, sum v1, ..., sum v7].
__m256 hsum8(const __m256 v[8]) {
    const __m256 t0 = _mm256_hadd_ps(v[0], v[1]);
    const __m256 t1 = _mm256_hadd_ps(v[2], v[3]);
    const __m256 t2 = _mm256_hadd_ps(v[4], v[5]);
    const __m256 t3 = _mm256_hadd_ps(v[6], v[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1);  // [v0..v3 low-half sums | v0..v3 high-half sums]
    const __m256 u1 = _mm256_hadd_ps(t2, t3);
    constexpr int kLowHalves = 0x20, kHighHalves = 0x31;  // vperm2f128 selectors
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, kLowHalves), _mm256_permute2f128_ps(u0, u1, kHighHalves));
}

// 8 int8 / uint8 at p -> 8 f32 lanes.
__m256 i8x8_to_f32(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
__m256i u8x8_to_i32(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }  // F16C; exact like f16_to_f32

// ---------------------------------------------------------------------------------------------------
// Plain types: w[i] comes straight from a loader. 32 elements per step in four accumulators.

template <class Load8, class Load1>
float dot_plain(int64_t n, const float* x, Load8 load8, Load1 load1) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
        for (int k = 0; k < 4; ++k) {
            acc[k] = _mm256_fmadd_ps(load8(i + kLanes * k), _mm256_loadu_ps(x + i + kLanes * k), acc[k]);
        }
    }
    for (; i + kLanes <= n; i += kLanes) acc[0] = _mm256_fmadd_ps(load8(i), _mm256_loadu_ps(x + i), acc[0]);
    float tail = 0.0f;
    for (; i < n; ++i) tail += load1(i) * x[i];
    return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) + tail;
}

float dot_f32(const float* w, const float* x, int64_t n) {
    return dot_plain(
        n, x, [w](int64_t i) { return _mm256_loadu_ps(w + i); }, [w](int64_t i) { return w[i]; });
}

float row_dot(const F32* w, const float* x, int64_t n_blocks) {
    return dot_f32(reinterpret_cast<const float*>(w), x, n_blocks);
}

float row_dot(const F16* w, const float* x, int64_t n_blocks) {
    const auto* h = reinterpret_cast<const uint16_t*>(w);
    return dot_plain(
        n_blocks, x,
        [h](int64_t i) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))); },
        [h](int64_t i) { return f16_scalar(h[i]); });
}

float row_dot(const BF16* w, const float* x, int64_t n_blocks) {
    const auto* h = reinterpret_cast<const uint16_t*>(w);
    constexpr int kBf16Shift = 16;  // bf16 bits are the high half of an f32
    return dot_plain(
        n_blocks, x,
        [h](int64_t i) {
            const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
            return _mm256_castsi256_ps(_mm256_slli_epi32(u, kBf16Shift));
        },
        [h](int64_t i) { return bf16_to_f32(h[i]); });
}

// ---------------------------------------------------------------------------------------------------
// Any other type: dequantize a chunk of blocks to the stack, then FMA it with x.

constexpr int kChunkElems = 256;  // a multiple of every block size (32 or 256): 1 KiB of stack

template <class Block>
float row_dot(const Block* w, const float* x, int64_t n_blocks) {
    using Traits = QuantTraits<Block>;
    static_assert(kChunkElems % Traits::block_elems == 0);
    constexpr int kBlocksPerChunk = kChunkElems / Traits::block_elems;
    alignas(32) float buf[kChunkElems];
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < n_blocks; b += kBlocksPerChunk) {
        const int n_chunk_blocks = static_cast<int>(std::min<int64_t>(kBlocksPerChunk, n_blocks - b));
        for (int i = 0; i < n_chunk_blocks; ++i) Traits::dequantize_block(w[b + i], buf + i * Traits::block_elems);
        const float* xb = x + b * Traits::block_elems;
        const int n_elems = n_chunk_blocks * Traits::block_elems;  // a multiple of 32
        for (int i = 0; i < n_elems; i += 4 * kLanes) {
            for (int k = 0; k < 4; ++k) {
                const int e = i + kLanes * k;
                acc[k] = _mm256_fmadd_ps(_mm256_load_ps(buf + e), _mm256_loadu_ps(xb + e), acc[k]);
            }
        }
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

// The fast kernels below take kRowGroup rows at once, block by block: the x under a block (up to 1 KiB)
// then comes from L2 once and from L1 for the other rows. That matters because an x of 15360 f32
// (60 KiB, ffn_down) does not fit in L1, and x is 4 bytes per weight against 0.56 to 1.06 bytes of
// weights. Each row keeps its own accumulators, and its arithmetic does not depend on the group: a
// row's result has the same bits whichever R computed it (dot_row == dot_rows, any thread split).
constexpr int kRowGroup = 4;

// Software prefetch: a block's ~35 cycles of work keep too few cache misses in flight for the hardware
// prefetchers alone, and rows are short (2-8 KiB), so each of the R streams fetches kPrefetchBytes ahead
// of where it reads. Near the end of a row that is the start of the row it reads next, R rows further
// on (past the last row it is a harmless prefetch: prefetches never fault). Measured on Zen 5 with
// weights streaming from DRAM: +5-40% (Q4_K 3840x4096: 6.3 -> 8.8 GB/s); 512 beat 0, 1024 and 2048.
constexpr int kPrefetchBytes = 512;
constexpr int kCacheLineBytes = 64;

// p = block i of a row whose tile has n_blocks blocks; rows are stride blocks apart. The address is
// computed as an integer: it may lie past the end of the weights, where no pointer may point.
template <int R, class Block>
void prefetch_ahead(const Block* p, int64_t i, int64_t n_blocks, int64_t stride) {
    constexpr int64_t kAheadBlocks = std::max<int64_t>(1, kPrefetchBytes / static_cast<int64_t>(sizeof(Block)));
    const int64_t ahead_blocks = i + kAheadBlocks < n_blocks ? kAheadBlocks : R * stride + kAheadBlocks - n_blocks;
    const uintptr_t ahead = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(ahead_blocks) * sizeof(Block);
    for (uintptr_t off = 0; off < sizeof(Block); off += kCacheLineBytes) {
        _mm_prefetch(reinterpret_cast<const char*>(ahead + off), _MM_HINT_T0);
    }
}

// ---------------------------------------------------------------------------------------------------
// Q8_0: y = d * q.

template <int R>
void q8_0_rows(const Q8_0* w, int64_t blocks_per_row, const float* x, int64_t n_blocks, float* y) {
    __m256 acc[R][2];  // per row: even / odd blocks
    for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const float* xb = x + i * QuantTraits<Q8_0>::block_elems;
        for (int r = 0; r < R; ++r) {
            const Q8_0& b = w[r * blocks_per_row + i];
            prefetch_ahead<R>(&b, i, n_blocks, blocks_per_row);
            __m256 s0 = _mm256_mul_ps(i8x8_to_f32(b.qs), _mm256_loadu_ps(xb));
            __m256 s1 = _mm256_mul_ps(i8x8_to_f32(b.qs + 8), _mm256_loadu_ps(xb + 8));
            s0 = _mm256_fmadd_ps(i8x8_to_f32(b.qs + 16), _mm256_loadu_ps(xb + 16), s0);
            s1 = _mm256_fmadd_ps(i8x8_to_f32(b.qs + 24), _mm256_loadu_ps(xb + 24), s1);
            acc[r][i & 1] = _mm256_fmadd_ps(_mm256_set1_ps(f16_scalar(b.d)), _mm256_add_ps(s0, s1), acc[r][i & 1]);
        }
    }
    for (int r = 0; r < R; ++r) y[r] = hsum(_mm256_add_ps(acc[r][0], acc[r][1]));
}

// ---------------------------------------------------------------------------------------------------
// Q4_K: y = (d * sc_j) * q - (dmin * mn_j), 8 sub-blocks j of 32.

constexpr int kQ4KSubBlocks = 8;
constexpr int kQ4KSubElems = QuantTraits<Q4K>::sub_elems;  // 32

// The 8 six-bit scales and the 8 mins of a block as two 64-bit words of bytes (byte j = sub-block j),
// unpacked four at a time from the 32-bit words of scales[12] (layout next to unpack_k_scale_min).
struct KScaleBytes {
    uint64_t sc;
    uint64_t mn;
};
KScaleBytes unpack_k_scales8(const uint8_t* scales) {
    constexpr uint32_t kSixBits4 = 0x3F3F3F3Fu;  // kSixBits in each byte
    constexpr uint32_t kNibble4 = 0x0F0F0F0Fu;   // kLowNibble in each byte
    constexpr uint32_t kTop4 = 0x30303030u;      // bits 4-5 of each byte: where bits 6-7 >> 2 land
    uint32_t w[3];
    std::memcpy(w, scales, sizeof(w));
    const uint32_t sc_lo = w[0] & kSixBits4;                                            // sc[0..3]
    const uint32_t mn_lo = w[1] & kSixBits4;                                            // mn[0..3]
    const uint32_t sc_hi = (w[2] & kNibble4) | ((w[0] >> 2) & kTop4);                   // sc[4..7]
    const uint32_t mn_hi = ((w[2] >> kNibbleBits) & kNibble4) | ((w[1] >> 2) & kTop4);  // mn[4..7]
    return {uint64_t{sc_lo} | (uint64_t{sc_hi} << 32), uint64_t{mn_lo} | (uint64_t{mn_hi} << 32)};
}

__m256 bytes8_to_f32(uint64_t bytes) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(bytes))));
}

// x_sums[8 * b + j] = sum of the 32 x under sub-block j of block b, for n_blocks blocks.
void q4k_x_sums(const float* x, int64_t n_blocks, float* x_sums) {
    for (int64_t b = 0; b < n_blocks; ++b) {
        __m256 v[kQ4KSubBlocks];
        for (int j = 0; j < kQ4KSubBlocks; ++j) {
            const float* xs = x + b * QuantTraits<Q4K>::block_elems + j * kQ4KSubElems;
            v[j] = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xs), _mm256_loadu_ps(xs + 8)),
                                 _mm256_add_ps(_mm256_loadu_ps(xs + 16), _mm256_loadu_ps(xs + 24)));
        }
        _mm256_storeu_ps(x_sums + kQ4KSubBlocks * b, hsum8(v));
    }
}

template <int R>
void q4k_rows(const Q4K* w, int64_t blocks_per_row, const float* x, const float* x_sums, int64_t n_blocks, float* y) {
    const __m256i low_nibble = _mm256_set1_epi32(kLowNibble);
    __m256 acc[R][2];  // per row: low / high nibble sub-blocks (the mins go to [0])
    for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
    alignas(32) float dl[kQ4KSubBlocks];
    for (int64_t i = 0; i < n_blocks; ++i) {
        const float* xb = x + i * QuantTraits<Q4K>::block_elems;
        const __m256 xs = _mm256_loadu_ps(x_sums + kQ4KSubBlocks * i);
        for (int r = 0; r < R; ++r) {
            const Q4K& b = w[r * blocks_per_row + i];
            prefetch_ahead<R>(&b, i, n_blocks, blocks_per_row);
            const KScaleBytes s = unpack_k_scales8(b.scales);
            _mm256_store_ps(dl, _mm256_mul_ps(_mm256_set1_ps(f16_scalar(b.d)), bytes8_to_f32(s.sc)));
            const __m256 ml = _mm256_mul_ps(_mm256_set1_ps(f16_scalar(b.dmin)), bytes8_to_f32(s.mn));
            acc[r][0] = _mm256_fnmadd_ps(ml, xs, acc[r][0]);  // - sum_j ml_j X_j
#pragma GCC unroll 4
            for (int c = 0; c < 4; ++c) {  // 64 weights: sub-blocks 2c (low nibbles) and 2c+1 (high)
                const uint8_t* q = b.qs + 32 * c;
                const float* xc = xb + 64 * c;
                __m256 s_lo = _mm256_setzero_ps(), s_hi = _mm256_setzero_ps();
#pragma GCC unroll 4
                for (int k = 0; k < 4; ++k) {
                    const __m256i v = u8x8_to_i32(q + 8 * k);
                    const __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, low_nibble));
                    const __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, kNibbleBits));
                    s_lo = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xc + 8 * k), s_lo);
                    s_hi = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xc + 32 + 8 * k), s_hi);
                }
                acc[r][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(dl + 2 * c), s_lo, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(_mm256_broadcast_ss(dl + 2 * c + 1), s_hi, acc[r][1]);
            }
        }
    }
    for (int r = 0; r < R; ++r) y[r] = hsum(_mm256_add_ps(acc[r][0], acc[r][1]));
}

// ---------------------------------------------------------------------------------------------------
// Q6_K: y = (d * sc_k) * (q - 32), 16 sub-blocks k of 16.

template <int R>
void q6k_rows(const Q6K* w, int64_t blocks_per_row, const float* x, int64_t n_blocks, float* y) {
    const __m256i low_nibble = _mm256_set1_epi8(static_cast<char>(kLowNibble));
    constexpr int kHighPos = 0x30;  // bits 4-5: where the two high bits of a 6-bit quant go
    const __m256i high_pos = _mm256_set1_epi8(kHighPos);
    const __m256i offset = _mm256_set1_epi8(kQ6Offset);
    __m256 acc[R][2];  // per row: first / second 16 weights of each 32
    for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
    alignas(32) float dsc[16];
    const auto cvt = [](__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); };
    for (int64_t i = 0; i < n_blocks; ++i) {
        for (int r = 0; r < R; ++r) {
            const Q6K& b = w[r * blocks_per_row + i];
            prefetch_ahead<R>(&b, i, n_blocks, blocks_per_row);
            const __m256 d = _mm256_set1_ps(f16_scalar(b.d));
            _mm256_store_ps(dsc, _mm256_mul_ps(d, i8x8_to_f32(b.scales)));
            _mm256_store_ps(dsc + 8, _mm256_mul_ps(d, i8x8_to_f32(b.scales + 8)));
            for (int h = 0; h < 2; ++h) {
                const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h));
                const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32));
                const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
                // Byte l of group g is weight 32g + l of the half (formats.h, Q6K). 16-bit shifts are
                // fine: the masks drop every bit that crossed a byte boundary.
                const __m256i g[4] = {
                    _mm256_or_si256(_mm256_and_si256(a, low_nibble),
                                    _mm256_and_si256(_mm256_slli_epi16(hb, 4), high_pos)),
                    _mm256_or_si256(_mm256_and_si256(c, low_nibble),
                                    _mm256_and_si256(_mm256_slli_epi16(hb, 2), high_pos)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low_nibble),
                                    _mm256_and_si256(hb, high_pos)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low_nibble),
                                    _mm256_and_si256(_mm256_srli_epi16(hb, 2), high_pos)),
                };
                const float* xh = x + i * QuantTraits<Q6K>::block_elems + 128 * h;
#pragma GCC unroll 4
                for (int k = 0; k < 4; ++k) {
                    const __m256i q = _mm256_sub_epi8(g[k], offset);
                    const __m128i q_lo = _mm256_castsi256_si128(q);
                    const __m128i q_hi = _mm256_extracti128_si256(q, 1);
                    const float* xg = xh + 32 * k;
                    __m256 s0 = _mm256_mul_ps(cvt(q_lo), _mm256_loadu_ps(xg));
                    __m256 s1 = _mm256_mul_ps(cvt(q_hi), _mm256_loadu_ps(xg + 16));
                    s0 = _mm256_fmadd_ps(cvt(_mm_srli_si128(q_lo, 8)), _mm256_loadu_ps(xg + 8), s0);
                    s1 = _mm256_fmadd_ps(cvt(_mm_srli_si128(q_hi, 8)), _mm256_loadu_ps(xg + 24), s1);
                    const int sub = 8 * h + 2 * k;  // sub-blocks of weights 32k .. 32k+15 and 32k+16 .. 32k+31
                    acc[r][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(dsc + sub), s0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(_mm256_broadcast_ss(dsc + sub + 1), s1, acc[r][1]);
                }
            }
        }
    }
    for (int r = 0; r < R; ++r) y[r] = hsum(_mm256_add_ps(acc[r][0], acc[r][1]));
}

// ---------------------------------------------------------------------------------------------------
// Rows.

// Runs kernel.template operator()<R> over rows in groups of kRowGroup, then one by one.
template <class Kernel>
void in_row_groups(int n_rows, Kernel&& kernel) {
    int r = 0;
    for (; r + kRowGroup <= n_rows; r += kRowGroup) kernel.template operator()<kRowGroup>(r);
    for (; r < n_rows; ++r) kernel.template operator()<1>(r);
}

template <class Block>
void rows_dot(const Block* w, int64_t blocks_per_row, int n_rows, const float* x, float* y) {
    for (int r = 0; r < n_rows; ++r) y[r] = row_dot(w + r * blocks_per_row, x, blocks_per_row);
}

void rows_dot(const Q8_0* w, int64_t blocks_per_row, int n_rows, const float* x, float* y) {
    in_row_groups(
        n_rows, [&]<int R>(int r) { q8_0_rows<R>(w + r * blocks_per_row, blocks_per_row, x, blocks_per_row, y + r); });
}

void rows_dot(const Q6K* w, int64_t blocks_per_row, int n_rows, const float* x, float* y) {
    in_row_groups(n_rows,
                  [&]<int R>(int r) { q6k_rows<R>(w + r * blocks_per_row, blocks_per_row, x, blocks_per_row, y + r); });
}

// Q4_K: the x sums are computed once per call, in column tiles that bound the stack buffer. Gemma 4's
// rows (<= 15360 weights) fit in one tile.
constexpr int64_t kQ4KTileBlocks = 128;  // 32768 weights: 1024 x sums, 4 KiB of stack

void rows_dot(const Q4K* w, int64_t blocks_per_row, int n_rows, const float* x, float* y) {
    alignas(32) float x_sums[kQ4KTileBlocks * kQ4KSubBlocks];
    if (blocks_per_row == 0) std::fill(y, y + n_rows, 0.0f);
    for (int64_t t = 0; t < blocks_per_row; t += kQ4KTileBlocks) {
        const int64_t n_tile = std::min(kQ4KTileBlocks, blocks_per_row - t);
        const float* xt = x + t * QuantTraits<Q4K>::block_elems;
        q4k_x_sums(xt, n_tile, x_sums);
        in_row_groups(n_rows, [&]<int R>(int r) {
            float part[R];
            q4k_rows<R>(w + r * blocks_per_row + t, blocks_per_row, xt, x_sums, n_tile, part);
            for (int k = 0; k < R; ++k) y[r + k] = t == 0 ? part[k] : y[r + k] + part[k];
        });
    }
}

}  // namespace

float dot_row(GgmlType type, const void* w, const float* x, int64_t n) {
    return visit_quant_type(type, [&]<class Traits>(Traits) {
        using Block = typename Traits::block_type;
        detail::check_row<Traits>("dot_row", w, n);
        float y = 0.0f;
        rows_dot(static_cast<const Block*>(w), n / Traits::block_elems, 1, x, &y);
        return y;
    });
}

void dot_rows(GgmlType type, const void* w, size_t row_bytes, int n_rows, const float* x, float* y) {
    visit_quant_type(type, [&]<class Traits>(Traits) {
        using Block = typename Traits::block_type;
        if (n_rows < 0) throw Error(ErrorCode::invalid_argument, "dot_rows: n_rows " + std::to_string(n_rows) + " < 0");
        if (row_bytes % Traits::block_bytes != 0) {
            throw Error(ErrorCode::invalid_argument, "dot_rows: row of " + std::to_string(row_bytes) +
                                                         " bytes is not a whole number of " +
                                                         ggml_type_info(Traits::type).name + " blocks");
        }
        const int64_t blocks_per_row = static_cast<int64_t>(row_bytes / Traits::block_bytes);
        detail::check_row<Traits>("dot_rows", w, blocks_per_row * Traits::block_elems);
        rows_dot(static_cast<const Block*>(w), blocks_per_row, n_rows, x, y);
    });
}

}  // namespace gemma4
