// Quantized weight formats: the ggml block structs, their traits, and the row-level CPU entry points.
//
// Every weight type the engine runs (types.h marks them `supported`) has
//   - a block struct with ggml's exact byte layout (static_assert on its size), and
//   - one QuantTraits<Block> specialization: block_elems, block_bytes, the GgmlType id, and
//     dequantize_block(), which is GEMMA4_HD so CUDA kernels use the very same code.
// Plain types (F32, F16, BF16) are blocks of one element and go through the same traits.
// visit_quant_type() is the one GgmlType -> traits switch in the codebase; everything else
// (row functions, kernels, tests) is written once as a template over the traits.
//
// Layouts are little-endian, from ../shared/spec/gguf-and-quants.md §3. In the formulas below `d`,
// `dmin` and `m` are f16 scales converted to f32 exactly (fp16.h); `q` are the small integers.
//
// Bit-exactness. dequantize_block() reproduces llama.cpp's reference dequantizers (ggml-quants.c and
// gguf-py's numpy port; tests/golden/quant/) bit for bit, NaN payloads aside, and it does so for a reason
// that survives any compiler: every output is the exact value of the spec formula rounded ONCE to f32.
// d (an f16) has at most 11 significant bits, a scale at most 8 (6 for the K-quant scales and mins) and
// a quant at most 6, and f16 magnitudes stay within [2^-24, 65504], so:
//   - d * sc, dmin * mn, d * q (Q4_0..Q8_0, Q4_1/Q5_1) and (d * sc) * q for Q2_K..Q5_K (<= 22 bits) are
//     exact in f32 (24 bits), without overflow or underflow;
//   - the one rounding is the final subtraction/addition of the min (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) or the
//     final multiply (Q6_K: 11 + 8 + 6 = 25 bits; Q8_K: an f32 d times an int8); Q4_0, Q5_0, Q8_0 and
//     Q3_K outputs are exact.
// Hence neither the grouping of the products nor FMA contraction (GCC fuses a*b + c by default even with
// -std=c++20, nvcc too) can change a result: fma(dl, q, -ml) == dl * q - ml here. The code still writes the
// reference's order, (d * sc) * q - (dmin * mn), so the argument is easy to check. Specials follow IEEE:
// an Inf scale times a zero quant gives NaN, exactly as in the reference.
//
// Alignment: a row pointer must be aligned to alignof(Block) (2 bytes; 4 for F32 and Q8_K). GGUF tensor
// data starts on 32-byte boundaries and every block size is even, so mapped tensors always are.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "gemma4/error.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace gemma4 {

#ifndef __CUDA_ARCH__
static_assert(std::endian::native == std::endian::little, "GGUF blocks are little-endian; so must the host be");
#endif

// ---------------------------------------------------------------------------------------------------
// Block structs. Field order and sizes are ggml's; f16 fields are stored as raw IEEE binary16 bits.

/// F32: one f32 element.
struct F32 {
    float value;
};

/// F16: one IEEE binary16 element.
struct F16 {
    uint16_t bits;
};

/// BF16: one bfloat16 element (the high half of an f32).
struct BF16 {
    uint16_t bits;
};

/// Q4_0, 32 weights: y[j] = d * (nibble - 8). Byte qs[j] holds weight j in its low nibble and weight
/// j + 16 in its high nibble (halves, not interleaved pairs).
struct Q4_0 {
    uint16_t d;
    uint8_t qs[16];
};

/// Q4_1, 32 weights: y[j] = d * nibble + m, nibbles as in Q4_0.
struct Q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[16];
};

/// Q5_0, 32 weights: y[j] = d * (q - 16), q = nibble | (bit j of qh) << 4, nibbles as in Q4_0.
/// qh is a little-endian uint32 (stored as bytes: the block is only 2-byte aligned).
struct Q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[16];
};

/// Q5_1, 32 weights: y[j] = d * q + m, q as in Q5_0.
struct Q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[16];
};

/// Q8_0, 32 weights: y[j] = d * qs[j].
struct Q8_0 {
    uint16_t d;
    int8_t qs[32];
};

/// Q2_K, 256 weights in 16 sub-blocks of 16. scales[i]: low nibble = scale, high nibble = min of sub-block
/// i. qs packs 2-bit quants: weight 128c + 32s + l (c < 2, s < 4, l < 32) is bits 2s..2s+1 of qs[32c + l].
/// y = (d * scale) * q - (dmin * min). Note d and dmin come last.
struct Q2K {
    uint8_t scales[16];
    uint8_t qs[64];
    uint16_t d;
    uint16_t dmin;
};

/// Q3_K, 256 weights in 16 sub-blocks of 16. The 2 low quant bits are packed as in Q2_K; the third bit of
/// weight 32b + l is bit b of hmask[l], and a CLEAR bit subtracts 4: q = low2 - (hbit ? 0 : 4), in -4..3.
/// Sixteen 6-bit signed scales (stored + 32) are packed in scales[12] (see kQ3K* below).
/// y = (d * (scale - 32)) * q.
struct Q3K {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint16_t d;
};

/// Q4_K, 256 weights in 8 sub-blocks of 32, with 6-bit scales and mins (unpack_k_scale_min). Chunk c < 4 of 64
/// weights uses qs[32c .. 32c+31]: low nibbles are sub-block 2c, high nibbles sub-block 2c + 1.
/// y = (d * sc) * q - (dmin * mn).
struct Q4K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[128];
};

/// Q5_K: Q4_K plus a fifth bit: weight 32i + l (sub-block i < 8) has bit i of qh[l] as bit 4.
struct Q5K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};

/// Q6_K, 256 weights in 16 sub-blocks of 16 with signed int8 scales; 6-bit quants minus 32.
/// Half h < 2 (128 weights) uses ql[64h ..], qh[32h ..]; for l < 32 its weights l, l+32, l+64, l+96 take
/// their low 4 bits from: low nibble of ql[l], low nibble of ql[l+32], high nibble of ql[l], high nibble
/// of ql[l+32], and their top 2 bits from bits 0-1, 2-3, 4-5, 6-7 of qh[l]. y = (d * scales[k / 16]) * q.
/// Note d comes last.
struct Q6K {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
};

/// Q8_K, 256 weights: y[j] = d * qs[j] with an f32 d. bsums (sums of 16 quants) serve integer dot
/// products in ggml and are not needed to dequantize.
struct Q8K {
    float d;
    int8_t qs[256];
    int16_t bsums[16];
};

// ---------------------------------------------------------------------------------------------------
// Named bit-layout constants.

inline constexpr uint8_t kLowNibble = 0x0F;  // 4-bit quant or field in bits 0-3 of a byte
inline constexpr int kNibbleBits = 4;        // the high nibble is the byte shifted right by this
inline constexpr int kQ4Offset = 8;          // Q4_0 stores q + 8, q in -8..7
inline constexpr int kQ5Offset = 16;         // Q5_0 stores q + 16, q in -16..15
inline constexpr int kQ6Offset = 32;         // Q6_K stores q + 32, q in -32..31
inline constexpr int kQ3ScaleOffset = 32;    // Q3_K stores 6-bit scales + 32, scale in -32..31
inline constexpr uint8_t kTwoBits = 0x03;    // 2-bit quant (Q2_K, Q3_K low bits) or Q6_K high bits
inline constexpr uint8_t kSixBits = 0x3F;    // 6-bit K-quant scale or min
inline constexpr int kQ3HighBit = 4;         // a clear Q3_K hmask bit subtracts this

// K-quant scale packing for Q4_K and Q5_K: scales[12] holds eight 6-bit scales sc[0..7] and mins mn[0..7].
//   bytes 0..3 : sc[0..3] in bits 0-5; bits 6-7 are bits 4-5 of sc[4..7]
//   bytes 4..7 : mn[0..3] in bits 0-5; bits 6-7 are bits 4-5 of mn[4..7]
//   bytes 8..11: bits 0-3 are bits 0-3 of sc[4..7]; bits 4-7 are bits 0-3 of mn[4..7]
inline constexpr int kKScaleMinOffset = 4;  // mn[j] (j < 4) sits 4 bytes after sc[j]
inline constexpr int kKScaleLowOffset = 8;  // low nibbles of sc/mn[4 + j] sit in byte 8 + j
inline constexpr int kKScaleTopShift = 6;   // bits 6-7 carry the top two bits of the upper four
inline constexpr int kKScaleTopPos = 4;     // ... which become bits 4-5 of the 6-bit value

/// Scale and min of sub-block j < 8 of a Q4_K/Q5_K super-block.
GEMMA4_HD inline void unpack_k_scale_min(const uint8_t* scales, int j, int& sc, int& mn) {
    if (j < kKScaleMinOffset) {
        sc = scales[j] & kSixBits;
        mn = scales[j + kKScaleMinOffset] & kSixBits;
    } else {
        const int low = scales[j + kKScaleMinOffset];  // byte 8 + (j - 4)
        sc = (low & kLowNibble) | ((scales[j - kKScaleMinOffset] >> kKScaleTopShift) << kKScaleTopPos);
        mn = (low >> kNibbleBits) | ((scales[j] >> kKScaleTopShift) << kKScaleTopPos);
    }
}

// Q3_K scale packing: scales[12] holds sixteen 6-bit values s[0..15] (stored + 32).
//   bytes 0..7 : bits 0-3 are bits 0-3 of s[0..7]; bits 4-7 are bits 0-3 of s[8..15]
//   bytes 8..11: byte 8 + i holds bits 4-5 of s[i], s[i+4], s[i+8], s[i+12] in bit pairs 0-1, 2-3, 4-5, 6-7
inline constexpr int kQ3ScaleLowBytes = 8;   // bytes with the low nibbles
inline constexpr int kQ3ScaleHighGroup = 4;  // s[k] takes its top bits from byte 8 + k % 4, pair k / 4

/// Signed scale (-32..31) of sub-block k < 16 of a Q3_K super-block.
GEMMA4_HD inline int unpack_q3k_scale(const uint8_t* scales, int k) {
    const int low = k < kQ3ScaleLowBytes ? scales[k] & kLowNibble : scales[k - kQ3ScaleLowBytes] >> kNibbleBits;
    const int top = (scales[kQ3ScaleLowBytes + k % kQ3ScaleHighGroup] >> (2 * (k / kQ3ScaleHighGroup))) & kTwoBits;
    return (low | (top << kNibbleBits)) - kQ3ScaleOffset;
}

/// Little-endian uint32 from 4 bytes at any alignment (the qh field of Q5_0/Q5_1).
GEMMA4_HD inline uint32_t load_le32(const uint8_t* p) {
    return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

// ---------------------------------------------------------------------------------------------------
// Traits. QuantTraits<Block>: block_type, type, block_elems, block_bytes, dequantize_block(block, y).

template <class Block>
struct QuantTraits;

template <>
struct QuantTraits<F32> {
    using block_type = F32;
    static constexpr GgmlType type = GgmlType::F32;
    static constexpr int block_elems = 1;
    static constexpr int block_bytes = 4;
    GEMMA4_HD static void dequantize_block(const F32& b, float* y) { y[0] = b.value; }
};

template <>
struct QuantTraits<F16> {
    using block_type = F16;
    static constexpr GgmlType type = GgmlType::F16;
    static constexpr int block_elems = 1;
    static constexpr int block_bytes = 2;
    GEMMA4_HD static void dequantize_block(const F16& b, float* y) { y[0] = f16_to_f32(b.bits); }
};

template <>
struct QuantTraits<BF16> {
    using block_type = BF16;
    static constexpr GgmlType type = GgmlType::BF16;
    static constexpr int block_elems = 1;
    static constexpr int block_bytes = 2;
    GEMMA4_HD static void dequantize_block(const BF16& b, float* y) { y[0] = bf16_to_f32(b.bits); }
};

template <>
struct QuantTraits<Q4_0> {
    using block_type = Q4_0;
    static constexpr GgmlType type = GgmlType::Q4_0;
    static constexpr int block_elems = 32;
    static constexpr int block_bytes = 18;
    GEMMA4_HD static void dequantize_block(const Q4_0& b, float* y) {
        const float d = f16_to_f32(b.d);
        for (int j = 0; j < block_elems / 2; ++j) {
            y[j] = d * static_cast<float>((b.qs[j] & kLowNibble) - kQ4Offset);
            y[j + block_elems / 2] = d * static_cast<float>((b.qs[j] >> kNibbleBits) - kQ4Offset);
        }
    }
};

template <>
struct QuantTraits<Q4_1> {
    using block_type = Q4_1;
    static constexpr GgmlType type = GgmlType::Q4_1;
    static constexpr int block_elems = 32;
    static constexpr int block_bytes = 20;
    GEMMA4_HD static void dequantize_block(const Q4_1& b, float* y) {
        const float d = f16_to_f32(b.d);
        const float m = f16_to_f32(b.m);
        for (int j = 0; j < block_elems / 2; ++j) {
            y[j] = d * static_cast<float>(b.qs[j] & kLowNibble) + m;  // d*q exact (see the top)
            y[j + block_elems / 2] = d * static_cast<float>(b.qs[j] >> kNibbleBits) + m;
        }
    }
};

template <>
struct QuantTraits<Q5_0> {
    using block_type = Q5_0;
    static constexpr GgmlType type = GgmlType::Q5_0;
    static constexpr int block_elems = 32;
    static constexpr int block_bytes = 22;
    GEMMA4_HD static void dequantize_block(const Q5_0& b, float* y) {
        const float d = f16_to_f32(b.d);
        const uint32_t qh = load_le32(b.qh);
        constexpr int half = block_elems / 2;
        for (int j = 0; j < half; ++j) {
            const int q0 = (b.qs[j] & kLowNibble) | static_cast<int>(((qh >> j) & 1u) << kNibbleBits);
            const int q1 = (b.qs[j] >> kNibbleBits) | static_cast<int>(((qh >> (j + half)) & 1u) << kNibbleBits);
            y[j] = d * static_cast<float>(q0 - kQ5Offset);
            y[j + half] = d * static_cast<float>(q1 - kQ5Offset);
        }
    }
};

template <>
struct QuantTraits<Q5_1> {
    using block_type = Q5_1;
    static constexpr GgmlType type = GgmlType::Q5_1;
    static constexpr int block_elems = 32;
    static constexpr int block_bytes = 24;
    GEMMA4_HD static void dequantize_block(const Q5_1& b, float* y) {
        const float d = f16_to_f32(b.d);
        const float m = f16_to_f32(b.m);
        const uint32_t qh = load_le32(b.qh);
        constexpr int half = block_elems / 2;
        for (int j = 0; j < half; ++j) {
            const int q0 = (b.qs[j] & kLowNibble) | static_cast<int>(((qh >> j) & 1u) << kNibbleBits);
            const int q1 = (b.qs[j] >> kNibbleBits) | static_cast<int>(((qh >> (j + half)) & 1u) << kNibbleBits);
            y[j] = d * static_cast<float>(q0) + m;  // d*q exact (see the top)
            y[j + half] = d * static_cast<float>(q1) + m;
        }
    }
};

template <>
struct QuantTraits<Q8_0> {
    using block_type = Q8_0;
    static constexpr GgmlType type = GgmlType::Q8_0;
    static constexpr int block_elems = 32;
    static constexpr int block_bytes = 34;
    GEMMA4_HD static void dequantize_block(const Q8_0& b, float* y) {
        const float d = f16_to_f32(b.d);
        for (int j = 0; j < block_elems; ++j) y[j] = d * static_cast<float>(b.qs[j]);
    }
};

template <>
struct QuantTraits<Q2K> {
    using block_type = Q2K;
    static constexpr GgmlType type = GgmlType::Q2_K;
    static constexpr int block_elems = 256;
    static constexpr int block_bytes = 84;
    static constexpr int sub_elems = 16;
    GEMMA4_HD static void dequantize_block(const Q2K& b, float* y) {
        const float d = f16_to_f32(b.d);
        const float dmin = f16_to_f32(b.dmin);
        for (int c = 0; c < 2; ++c) {      // 128-weight halves
            for (int s = 0; s < 4; ++s) {  // 2-bit fields of a byte
                for (int l = 0; l < 32; ++l) {
                    const int k = 128 * c + 32 * s + l;
                    const uint8_t sm = b.scales[k / sub_elems];
                    const float dl = d * static_cast<float>(sm & kLowNibble);
                    const float ml = dmin * static_cast<float>(sm >> kNibbleBits);
                    const int q = (b.qs[32 * c + l] >> (2 * s)) & kTwoBits;
                    y[k] = dl * static_cast<float>(q) - ml;  // dl*q exact (see the top)
                }
            }
        }
    }
};

template <>
struct QuantTraits<Q3K> {
    using block_type = Q3K;
    static constexpr GgmlType type = GgmlType::Q3_K;
    static constexpr int block_elems = 256;
    static constexpr int block_bytes = 110;
    static constexpr int sub_elems = 16;
    GEMMA4_HD static void dequantize_block(const Q3K& b, float* y) {
        const float d = f16_to_f32(b.d);
        for (int c = 0; c < 2; ++c) {
            for (int s = 0; s < 4; ++s) {
                for (int l = 0; l < 32; ++l) {
                    const int k = 128 * c + 32 * s + l;
                    const float dl = d * static_cast<float>(unpack_q3k_scale(b.scales, k / sub_elems));
                    const int low = (b.qs[32 * c + l] >> (2 * s)) & kTwoBits;
                    const int high_set = (b.hmask[l] >> (k / 32)) & 1;
                    y[k] = dl * static_cast<float>(low - (high_set ? 0 : kQ3HighBit));
                }
            }
        }
    }
};

template <>
struct QuantTraits<Q4K> {
    using block_type = Q4K;
    static constexpr GgmlType type = GgmlType::Q4_K;
    static constexpr int block_elems = 256;
    static constexpr int block_bytes = 144;
    static constexpr int sub_elems = 32;
    GEMMA4_HD static void dequantize_block(const Q4K& b, float* y) {
        const float d = f16_to_f32(b.d);
        const float dmin = f16_to_f32(b.dmin);
        for (int c = 0; c < 4; ++c) {      // 64-weight chunks: two sub-blocks sharing 32 bytes
            for (int h = 0; h < 2; ++h) {  // low nibbles, then high nibbles
                int sc = 0, mn = 0;
                unpack_k_scale_min(b.scales, 2 * c + h, sc, mn);
                const float dl = d * static_cast<float>(sc);
                const float ml = dmin * static_cast<float>(mn);
                for (int l = 0; l < 32; ++l) {
                    const int q = (b.qs[32 * c + l] >> (kNibbleBits * h)) & kLowNibble;
                    y[64 * c + 32 * h + l] = dl * static_cast<float>(q) - ml;  // dl*q exact (see the top)
                }
            }
        }
    }
};

template <>
struct QuantTraits<Q5K> {
    using block_type = Q5K;
    static constexpr GgmlType type = GgmlType::Q5_K;
    static constexpr int block_elems = 256;
    static constexpr int block_bytes = 176;
    static constexpr int sub_elems = 32;
    GEMMA4_HD static void dequantize_block(const Q5K& b, float* y) {
        const float d = f16_to_f32(b.d);
        const float dmin = f16_to_f32(b.dmin);
        for (int c = 0; c < 4; ++c) {
            for (int h = 0; h < 2; ++h) {
                const int i = 2 * c + h;  // sub-block
                int sc = 0, mn = 0;
                unpack_k_scale_min(b.scales, i, sc, mn);
                const float dl = d * static_cast<float>(sc);
                const float ml = dmin * static_cast<float>(mn);
                for (int l = 0; l < 32; ++l) {
                    const int q =
                        ((b.qs[32 * c + l] >> (kNibbleBits * h)) & kLowNibble) | (((b.qh[l] >> i) & 1) << kNibbleBits);
                    y[32 * i + l] = dl * static_cast<float>(q) - ml;  // dl*q exact (see the top)
                }
            }
        }
    }
};

template <>
struct QuantTraits<Q6K> {
    using block_type = Q6K;
    static constexpr GgmlType type = GgmlType::Q6_K;
    static constexpr int block_elems = 256;
    static constexpr int block_bytes = 210;
    static constexpr int sub_elems = 16;
    GEMMA4_HD static void dequantize_block(const Q6K& b, float* y) {
        const float d = f16_to_f32(b.d);
        for (int h = 0; h < 2; ++h) {  // 128-weight halves
            const uint8_t* ql = b.ql + 64 * h;
            const uint8_t* qh = b.qh + 32 * h;
            for (int g = 0; g < 4; ++g) {  // weight l + 32g of the half
                const uint8_t* lo = ql + 32 * (g & 1);
                const int lo_shift = kNibbleBits * (g >> 1);
                for (int l = 0; l < 32; ++l) {
                    const int k = 128 * h + 32 * g + l;
                    const int q =
                        (((lo[l] >> lo_shift) & kLowNibble) | (((qh[l] >> (2 * g)) & kTwoBits) << kNibbleBits)) -
                        kQ6Offset;
                    const float dl = d * static_cast<float>(b.scales[k / sub_elems]);
                    y[k] = dl * static_cast<float>(q);
                }
            }
        }
    }
};

template <>
struct QuantTraits<Q8K> {
    using block_type = Q8K;
    static constexpr GgmlType type = GgmlType::Q8_K;
    static constexpr int block_elems = 256;
    static constexpr int block_bytes = 292;
    GEMMA4_HD static void dequantize_block(const Q8K& b, float* y) {
        for (int j = 0; j < block_elems; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
    }
};

// Sizes must match ggml (and types.cpp, which a unit test checks through visit_quant_type).
static_assert(sizeof(F32) == QuantTraits<F32>::block_bytes);
static_assert(sizeof(F16) == QuantTraits<F16>::block_bytes);
static_assert(sizeof(BF16) == QuantTraits<BF16>::block_bytes);
static_assert(sizeof(Q4_0) == QuantTraits<Q4_0>::block_bytes);
static_assert(sizeof(Q4_1) == QuantTraits<Q4_1>::block_bytes);
static_assert(sizeof(Q5_0) == QuantTraits<Q5_0>::block_bytes);
static_assert(sizeof(Q5_1) == QuantTraits<Q5_1>::block_bytes);
static_assert(sizeof(Q8_0) == QuantTraits<Q8_0>::block_bytes);
static_assert(sizeof(Q2K) == QuantTraits<Q2K>::block_bytes);
static_assert(sizeof(Q3K) == QuantTraits<Q3K>::block_bytes);
static_assert(sizeof(Q4K) == QuantTraits<Q4K>::block_bytes);
static_assert(sizeof(Q5K) == QuantTraits<Q5K>::block_bytes);
static_assert(sizeof(Q6K) == QuantTraits<Q6K>::block_bytes);
static_assert(sizeof(Q8K) == QuantTraits<Q8K>::block_bytes);

// ---------------------------------------------------------------------------------------------------
// The one GgmlType -> traits switch.

/// Calls f(QuantTraits<Block>{}) for the block type of `type` and returns its result.
/// Throws Error(invalid_argument) for a type without a format here (types.h `supported == false`).
template <class F>
decltype(auto) visit_quant_type(GgmlType type, F&& f) {
    switch (type) {
        case GgmlType::F32: return std::forward<F>(f)(QuantTraits<F32>{});
        case GgmlType::F16: return std::forward<F>(f)(QuantTraits<F16>{});
        case GgmlType::BF16: return std::forward<F>(f)(QuantTraits<BF16>{});
        case GgmlType::Q4_0: return std::forward<F>(f)(QuantTraits<Q4_0>{});
        case GgmlType::Q4_1: return std::forward<F>(f)(QuantTraits<Q4_1>{});
        case GgmlType::Q5_0: return std::forward<F>(f)(QuantTraits<Q5_0>{});
        case GgmlType::Q5_1: return std::forward<F>(f)(QuantTraits<Q5_1>{});
        case GgmlType::Q8_0: return std::forward<F>(f)(QuantTraits<Q8_0>{});
        case GgmlType::Q2_K: return std::forward<F>(f)(QuantTraits<Q2K>{});
        case GgmlType::Q3_K: return std::forward<F>(f)(QuantTraits<Q3K>{});
        case GgmlType::Q4_K: return std::forward<F>(f)(QuantTraits<Q4K>{});
        case GgmlType::Q5_K: return std::forward<F>(f)(QuantTraits<Q5K>{});
        case GgmlType::Q6_K: return std::forward<F>(f)(QuantTraits<Q6K>{});
        case GgmlType::Q8_K: return std::forward<F>(f)(QuantTraits<Q8K>{});
        default: break;
    }
    throw Error(ErrorCode::invalid_argument,
                "quant: ggml type " + ggml_type_name(static_cast<uint32_t>(type)) + " is not supported");
}

// ---------------------------------------------------------------------------------------------------
// Row functions (host). A row is n elements = n / block_elems blocks, back to back. They allocate
// nothing, are thread-safe (no shared state), and throw Error(invalid_argument) for an unsupported type,
// n < 0 or n not a multiple of the block size, or a row pointer not aligned to alignof(Block).

/// dst[0..n) = the dequantized row src. Bit-identical to llama.cpp's dequantizers (see the top).
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

/// Returns sum_i w[i] * x[i] for the row w of n elements: w is dequantized in registers and multiplied
/// with x in f32 (AVX2 + FMA kernels for Q4_K, Q6_K and Q8_0, a stack buffer for the other types).
///
/// Accuracy: f32 accumulation in blocked partial sums; no partial sum takes more than n/8 + 32 roundings,
/// so |error| <= (n/8 + 32) * 2^-24 * S with S = sum_i |w[i] x[i]|. The Q4_K kernel factors the mins
/// out of the sum (sum (dl*q - ml) x = dl*sum q x - ml*sum x), so for Q4_K S is
/// sum_i (|dl*q_i| + |ml|) |x[i]|. Typical errors are far smaller (~sqrt(n) * 2^-24 * S).
float dot_row(GgmlType type, const void* w, const float* x, int64_t n);

/// y[r] = dot_row(type, w + r * row_bytes, x, n) for r < n_rows, with n = row_bytes / block_bytes *
/// block_elems: rows are packed back to back (row_bytes is both the row size and the stride). Faster than
/// calling dot_row per row (x-only work is done once per call, rows share x loads), yet each y[r] has the
/// same bits as dot_row on that row, so results do not depend on how callers split rows across threads.
/// Single-threaded. Also throws if row_bytes is not a multiple of the block size or n_rows < 0.
void dot_rows(GgmlType type, const void* w, size_t row_bytes, int n_rows, const float* x, float* y);

namespace detail {

/// Checks a row of `n` elements at `p` for the block type of `traits`; throws Error(invalid_argument)
/// naming `who` otherwise. Shared by the row functions in formats.cpp and cpu/quant_dot.cpp.
template <class Traits>
void check_row(const char* who, const void* p, int64_t n) {
    using Block = typename Traits::block_type;
    if (n < 0 || n % Traits::block_elems != 0) {
        throw Error(ErrorCode::invalid_argument, std::string(who) + ": row of " + std::to_string(n) + " " +
                                                     ggml_type_info(Traits::type).name +
                                                     " elements is not a whole number of " +
                                                     std::to_string(Traits::block_elems) + "-element blocks");
    }
    if (n > 0 && reinterpret_cast<uintptr_t>(p) % alignof(Block) != 0) {
        throw Error(ErrorCode::invalid_argument, std::string(who) + ": " + ggml_type_info(Traits::type).name +
                                                     " row pointer is not " + std::to_string(alignof(Block)) +
                                                     "-byte aligned");
    }
}

}  // namespace detail
}  // namespace gemma4
