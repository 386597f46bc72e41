// Decoding of GGUF quant blocks for cuda/matmul_quant.cu, host + device (GEMMA4_HD): the bit-layout
// constants and byte helpers its decoders share, and the per-run decoders of the prefill dequantization
// (dequant_f16_kernel), which tests/unit/dequant8_test.cpp checks on the CPU against dequantize_row.
//
// Runs. The prefill path writes W as f16, [rows][d_in] row-major, in runs of kRunElems = 8 consecutive
// elements: one run is one 16-byte store, so the consecutive threads of a warp, which take consecutive
// runs, write 512 contiguous bytes per store instruction. Run k of a block holds its elements
// [8k, 8k + 8); DequantRun<Block>::decode(block, k) reads just the bytes that hold them (formats.h has
// the layouts) and returns their 8 unsigned quants u_i, one per byte of two words, with the run's scale
// and min. Element i is then
//     w_i = scale * (u_i - kOffset) - min,   in f32, then one rounding to f16 in the kernel.
// In every type a run lies in one scale group (K-quant sub-blocks are 16 or 32 elements), and its quant
// bits are 8 consecutive bytes of each field they come from, at a multiple of 8 bytes into the field:
//     Q4_0/Q4_1   run k < 4: qs[8 (k % 2) ..], low nibbles for k < 2, high nibbles for k >= 2
//     Q5_0/Q5_1   as Q4_0, plus byte k of qh (bit i: the fifth bit of element i)
//     Q8_0        qs[8k ..] (int8 q, read as u = q + 128 by flipping the sign bit)
//     Q2_K/Q3_K   run k < 32 = (half c = k / 16, bit pair s = k / 4 % 4, m = k % 4): qs[32c + 8m ..]
//                 bits 2s..2s+1 (Q3_K: plus bit k / 4 of hmask[8m ..]); sub-block k / 2
//     Q4_K/Q5_K   run k < 32 = (sub-block i = k / 4, m = k % 4): qs[32 (i / 2) + 8m ..], low nibbles for
//                 even i, high for odd (Q5_K: plus bit i of qh[8m ..]); scales from the 16-byte header
//     Q6_K        run k < 32 = (half h = k / 16, g = k / 4 % 4, m = k % 4): ql[64h + 32 (g % 2) + 8m ..]
//                 nibble g / 2, qh[32h + 8m ..] bits 2g..2g+1; sub-block k / 2
//
// Bit-exactness. The value is computed exactly as formats.h's dequantize_block computes it: scale and min
// are the same f32 products (d * sc, dmin * mn), and u - kOffset is an exact small integer, so
// scale * (u - kOffset) - min rounds once, as the reference does (its products are exact, or the only
// rounding for Q6_K, whose min is 0). The f32 results are bit-identical to dequantize_row.
// u becomes a float without an int->float conversion (1/4 rate or less on the GPU): OR-ing a byte into
// the mantissa of 2^23 gives the float 2^23 + u exactly (kMagicBits), one byte permute on the GPU, and
// (2^23 + u) - (2^23 + kOffset) = u - kOffset is exact (integers below 2^24).
//
// Alignment. W is 16-byte aligned and rows are whole blocks, so every block starts at a multiple of
// gcd(block_bytes, 16) (2 bytes for Q4_0, Q5_0, Q8_0, Q3_K, Q6_K); a field at offset f then has alignment
// gcd(block alignment, f, 8), and every load is exactly that wide (never a misaligned wider load), and
// never touches a byte outside the block. Host code makes the same typed loads, so the unit test under
// -fsanitize=alignment checks these claims, and under ASan that no decoder reads past a block.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <numeric>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

#include "quant/formats.h"

// "#pragma unroll" for the device passes only: the host compiler warns about it in GEMMA4_HD code.
#ifdef __CUDA_ARCH__
#define GEMMA4_UNROLL _Pragma("unroll")
#else
#define GEMMA4_UNROLL
#endif

namespace gemma4::cuda::matmul_detail {

// ---------------------------------------------------------------------------------------------------
// Bit layouts (four bytes per 32-bit word, little-endian)

inline constexpr uint32_t kNibbles = 0x0F0F0F0Fu;       // the low nibble of each byte
inline constexpr uint32_t kTwoBitFields = 0x03030303u;  // bits 0-1 of each byte
inline constexpr uint32_t kLowBits = 0x01010101u;       // bit 0 of each byte
inline constexpr uint32_t kByteSigns = 0x80808080u;     // XOR: int8 q -> unsigned q + 128
inline constexpr int kInt8Offset = 128;                 // ... so the int8 is u - kInt8Offset
inline constexpr uint32_t kKScale6 = 0x3F3F3F3Fu;       // K-quant 6-bit scale/min in bits 0-5
inline constexpr uint32_t kKScaleTop = 0x30303030u;     // bits 4-5 of the upper four K-quant scales/mins
inline constexpr uint32_t kByteMask = 0xFFu;            // one byte of a word
inline constexpr uint32_t kHalfMask = 0xFFFFu;          // the low f16 of a word
inline constexpr int kHalfBits = 16;                    // the high f16 of a word is the word shifted by this
// Spreads bits 0..3 of a value to bits 0, 8, 16, 24: v * (1 + 2^7 + 2^14 + 2^21) puts bit k at bit 8k
// (the four shifted copies of a 4-bit value do not overlap, so no carries).
inline constexpr uint32_t kSpreadNibbleBits = 0x00204081u;
inline constexpr int kQ3HighBitShift = 2;               // the Q3_K high bit is worth kQ3HighBit = 1 << this

// The float 2^23 has an all-zero mantissa whose low byte is worth 1: its bits OR a byte u are 2^23 + u.
inline constexpr uint32_t kMagicBits = 0x4B000000u;
inline constexpr float kMagic = 0x1p23f;
// __byte_perm selector: result byte 0 = byte i of the first operand (selector i, OR-ed in), bytes 1-3 =
// bytes 1-3 of the second (selectors 5, 6, 7), i.e. of kMagicBits.
inline constexpr uint32_t kPermByteIntoMagic = 0x7650u;

// ---------------------------------------------------------------------------------------------------
// Byte helpers

using detail::f32_from_bits;  // a float from its bits (quant/fp16.h), host and device

/// The f16 in the low 16 bits of `bits`, exactly.
GEMMA4_HD inline float half_bits_to_float(uint32_t bits) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(static_cast<unsigned short>(bits & kHalfMask)));
#else
    return f16_to_f32(static_cast<uint16_t>(bits & kHalfMask));
#endif
}

/// Byte i of w as a 32-bit value (0..255).
template <int i>
GEMMA4_HD inline uint32_t byte_of(uint32_t w) {
#ifdef __CUDA_ARCH__
    return __byte_perm(w, 0u, 0x4440u | i);  // result byte 0 = w byte i, bytes 1-3 = zero (byte 4 = 0)
#else
    return (w >> (8 * i)) & kByteMask;
#endif
}

/// 2^23 + (byte i of w), exactly, as a float (see kMagicBits).
template <int i>
GEMMA4_HD inline float byte_plus_magic(uint32_t w) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(__byte_perm(w, kMagicBits, kPermByteIntoMagic | i));
#else
    return std::bit_cast<float>(((w >> (8 * i)) & kByteMask) | kMagicBits);
#endif
}

/// N little-endian words, aligned to their size (host stand-in for uint2 / uint4). Host code dereferences
/// typed pointers just as device code does, so a sanitizer build (GEMMA4_SANITIZE: -fsanitize=alignment)
/// checks the decoders' alignment claims on the CPU too.
template <size_t N>
struct alignas(sizeof(uint32_t) * N) AlignedWords {
    uint32_t w[N];
};

/// A T (uint16_t, uint32_t) from p, which is aligned to sizeof(T).
template <class T>
GEMMA4_HD inline T load_aligned(const uint8_t* p) {
    return *reinterpret_cast<const T*>(p);
}

/// The 4 bytes at p as a little-endian word; kAlign (2 or 4) is p's alignment known at compile time.
template <int kAlign>
GEMMA4_HD inline uint32_t load_4_bytes(const uint8_t* p) {
    if constexpr (kAlign >= 4) {
        return load_aligned<uint32_t>(p);
    } else {
        static_assert(kAlign == 2, "blocks are at least 2-byte aligned");
        return uint32_t{load_aligned<uint16_t>(p)} | (uint32_t{load_aligned<uint16_t>(p + 2)} << kHalfBits);
    }
}

/// The 8 bytes at p as two little-endian words, in loads as wide as kAlign (2, 4 or 8: p's alignment
/// known at compile time) allows.
template <int kAlign>
GEMMA4_HD inline void load_8_bytes(const uint8_t* p, uint32_t (&w)[2]) {
    if constexpr (kAlign >= 8) {
#ifdef __CUDA_ARCH__
        const uint2 v = *reinterpret_cast<const uint2*>(p);
        w[0] = v.x;
        w[1] = v.y;
#else
        const AlignedWords<2> v = *reinterpret_cast<const AlignedWords<2>*>(p);
        w[0] = v.w[0];
        w[1] = v.w[1];
#endif
    } else {
        w[0] = load_4_bytes<kAlign>(p);
        w[1] = load_4_bytes<kAlign>(p + 4);
    }
}

/// The 16 bytes at p (16-byte aligned) as four little-endian words, in one load.
GEMMA4_HD inline void load_16_bytes(const uint8_t* p, uint32_t (&w)[4]) {
#ifdef __CUDA_ARCH__
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    w[0] = v.x;
    w[1] = v.y;
    w[2] = v.z;
    w[3] = v.w;
#else
    const AlignedWords<4> v = *reinterpret_cast<const AlignedWords<4>*>(p);
GEMMA4_UNROLL
    for (int i = 0; i < 4; ++i) w[i] = v.w[i];
#endif
}

/// (v * kSpreadNibbleBits) & kLowBits for v < 16: bit k of v at bit 8k (bit 0 of byte k).
GEMMA4_HD inline uint32_t spread_nibble_bits(uint32_t v) { return (v * kSpreadNibbleBits) & kLowBits; }

/// The 6-bit K-quant (Q4_K, Q5_K) scales and mins of sub-blocks 4 * upper .. 4 * upper + 3, one per byte,
/// from the header words s0 = scales[0..3], s1 = scales[4..7], s2 = scales[8..11] (formats.h:
/// unpack_k_scale_min). Sub-blocks 0-3 keep 6 bits in bytes 0-3 (scales) and 4-7 (mins); 4-7 take their
/// low 4 bits from bytes 8-11 and their top 2 bits from bits 6-7 of bytes 0-3 / 4-7.
GEMMA4_HD inline void k_quant_scale_min_words(uint32_t s0, uint32_t s1, uint32_t s2, bool upper, uint32_t& sc,
                                              uint32_t& mn) {
    sc = upper ? (s2 & kNibbles) | ((s0 >> 2) & kKScaleTop) : s0 & kKScale6;
    mn = upper ? ((s2 >> kNibbleBits) & kNibbles) | ((s1 >> 2) & kKScaleTop) : s1 & kKScale6;
}

// ---------------------------------------------------------------------------------------------------
// Run decoders (see the top)

inline constexpr int kRunElems = 8;      // elements per run = halves per 16-byte store
inline constexpr int kRunBytes = 8;      // bytes of a run in a field with one byte per element
inline constexpr int kRunWords = 2;      // 32-bit words of quants per run (one byte per element)
inline constexpr int kWeightAlign = 16;  // W's alignment (cuda::matmul checks it)

/// The quants of one run, u_i = byte i % 4 of q[i / 4], and the scale and min of its group.
struct RunQuants {
    uint32_t q[kRunWords];
    float scale;
    float min;
};

template <class Block>
struct DequantRun;

template <class Block>
struct DequantRunBase {
    using Traits = QuantTraits<Block>;
    static constexpr int kBlockElems = Traits::block_elems;
    static constexpr int kBlockBytes = Traits::block_bytes;
    static constexpr int kRunsPerBlock = kBlockElems / kRunElems;
    static constexpr int kRunsPerHalf = kRunsPerBlock / 2;  // Q4_0..Q5_1: low nibbles, then high nibbles
    static constexpr int kBlockAlign = std::gcd(kBlockBytes, kWeightAlign);
    /// Alignment of a run's bytes in the field at byte `offset` of the block (runs start a multiple of
    /// kRunBytes into a field).
    static constexpr int field_align(size_t offset) {
        return std::gcd(std::gcd(kBlockAlign, static_cast<int>(offset)), kRunBytes);
    }
    /// The kRunBytes bytes at offset_in_field (a multiple of kRunBytes) into field kField of block b.
    template <size_t kField>
    GEMMA4_HD static void run_bytes(const uint8_t* b, int offset_in_field, uint32_t (&w)[2]) {
        load_8_bytes<field_align(kField)>(b + kField + offset_in_field, w);
    }
    template <size_t kField>
    GEMMA4_HD static float half_field(const uint8_t* b) {
        static_assert(kField % 2 == 0, "f16 fields are 2-byte aligned");
        return half_bits_to_float(load_aligned<uint16_t>(b + kField));
    }
    static_assert(kBlockElems % kRunElems == 0, "a block is whole runs");
};

/// Q4_0: w = d * (nibble - 8).
template <>
struct DequantRun<Q4_0> : DequantRunBase<Q4_0> {
    static constexpr int kOffset = kQ4Offset;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        const int half = k / kRunsPerHalf;  // 0: low nibbles (elements 0-15), 1: high (16-31)
        uint32_t w[2];
        run_bytes<offsetof(Q4_0, qs)>(b, kRunBytes * (k % kRunsPerHalf), w);
        const int shift = kNibbleBits * half;
        return {{(w[0] >> shift) & kNibbles, (w[1] >> shift) & kNibbles}, half_field<offsetof(Q4_0, d)>(b), 0.0f};
    }
};

/// Q4_1: w = d * nibble + m (min = -m).
template <>
struct DequantRun<Q4_1> : DequantRunBase<Q4_1> {
    static constexpr int kOffset = 0;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        const int half = k / kRunsPerHalf;
        uint32_t w[2];
        run_bytes<offsetof(Q4_1, qs)>(b, kRunBytes * (k % kRunsPerHalf), w);
        const int shift = kNibbleBits * half;
        return {{(w[0] >> shift) & kNibbles, (w[1] >> shift) & kNibbles},
                half_field<offsetof(Q4_1, d)>(b),
                -half_field<offsetof(Q4_1, m)>(b)};
    }
};

/// Q5_0 and Q5_1: the Q4 nibbles plus bit i of qh byte k as bit 4 of element i of run k.
template <class Block>
GEMMA4_HD inline void q5_run_quants(const uint8_t* b, int k, uint32_t (&q)[kRunWords]) {
    using R = DequantRunBase<Block>;
    const int half = k / R::kRunsPerHalf;
    uint32_t w[2];
    R::template run_bytes<offsetof(Block, qs)>(b, kRunBytes * (k % R::kRunsPerHalf), w);
    const uint32_t qh = (b + offsetof(Block, qh))[k];  // bits 8k .. 8k+7 of the little-endian qh
    const int shift = kNibbleBits * half;
    q[0] = ((w[0] >> shift) & kNibbles) | (spread_nibble_bits(qh & kLowNibble) << kNibbleBits);
    q[1] = ((w[1] >> shift) & kNibbles) | (spread_nibble_bits(qh >> kNibbleBits) << kNibbleBits);
}

/// Q5_0: w = d * (q - 16).
template <>
struct DequantRun<Q5_0> : DequantRunBase<Q5_0> {
    static constexpr int kOffset = kQ5Offset;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        RunQuants r{{}, half_field<offsetof(Q5_0, d)>(b), 0.0f};
        q5_run_quants<Q5_0>(b, k, r.q);
        return r;
    }
};

/// Q5_1: w = d * q + m.
template <>
struct DequantRun<Q5_1> : DequantRunBase<Q5_1> {
    static constexpr int kOffset = 0;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        RunQuants r{{}, half_field<offsetof(Q5_1, d)>(b), -half_field<offsetof(Q5_1, m)>(b)};
        q5_run_quants<Q5_1>(b, k, r.q);
        return r;
    }
};

/// Q8_0: w = d * q, int8 q = u - 128.
template <>
struct DequantRun<Q8_0> : DequantRunBase<Q8_0> {
    static constexpr int kOffset = kInt8Offset;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        uint32_t w[2];
        run_bytes<offsetof(Q8_0, qs)>(b, kRunBytes * k, w);
        return {{w[0] ^ kByteSigns, w[1] ^ kByteSigns}, half_field<offsetof(Q8_0, d)>(b), 0.0f};
    }
};

// Q2_K, Q3_K and Q6_K: run k of a 256-element block is (half c = k / kHalfRuns, field s = k / kFieldRuns
// % kFieldsPerHalf, m = k % kFieldRuns): elements 128c + 32s + 8m .. +7, i.e. bytes 8m .. 8m+7 of a
// 32-byte stripe, and sub-block (16 elements) k / 2.
inline constexpr int kKHalfElems = 128;   // elements per half block (Q2_K/Q3_K/Q6_K)
inline constexpr int kKFieldElems = 32;   // elements per bit field of a half (one per byte of a stripe)
inline constexpr int kFieldsPerHalf = kKHalfElems / kKFieldElems;  // 4: 2-bit pairs of a byte, Q6_K nibble x stripe
inline constexpr int kHalfRuns = kKHalfElems / kRunElems;          // 16
inline constexpr int kFieldRuns = kKFieldElems / kRunElems;        // 4
inline constexpr int kStripeBytes = kKFieldElems;                  // bytes of one 32-element stripe
inline constexpr int kSubBlockRuns = 2;                            // runs per 16-element sub-block
inline constexpr int kTwoBitWidth = 2;                             // bit pair s is bits 2s .. 2s+1

/// Q2_K: w = (d * (sc & 15)) * q - dmin * (sc >> 4), 2-bit q.
template <>
struct DequantRun<Q2K> : DequantRunBase<Q2K> {
    static constexpr int kOffset = 0;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        const int c = k / kHalfRuns, s = k / kFieldRuns % kFieldsPerHalf, m = k % kFieldRuns;
        uint32_t w[2];
        run_bytes<offsetof(Q2K, qs)>(b, kStripeBytes * c + kRunBytes * m, w);
        const uint32_t sm = (b + offsetof(Q2K, scales))[k / kSubBlockRuns];
        const uint32_t dd = load_4_bytes<field_align(offsetof(Q2K, d))>(b + offsetof(Q2K, d));  // d | dmin << 16
        return {{(w[0] >> (kTwoBitWidth * s)) & kTwoBitFields, (w[1] >> (kTwoBitWidth * s)) & kTwoBitFields},
                half_bits_to_float(dd) * static_cast<float>(sm & kLowNibble),
                half_bits_to_float(dd >> kHalfBits) * static_cast<float>(sm >> kNibbleBits)};
    }
    static_assert(offsetof(Q2K, dmin) == offsetof(Q2K, d) + 2, "d and dmin share a word");
};

/// Q3_K: w = (d * scale) * (low2 + 4 * hbit - 4), the high bit of element 32j + l being bit j of hmask[l].
template <>
struct DequantRun<Q3K> : DequantRunBase<Q3K> {
    static constexpr int kOffset = kQ3HighBit;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        const int c = k / kHalfRuns, s = k / kFieldRuns % kFieldsPerHalf, m = k % kFieldRuns;
        uint32_t w[2], h[2];
        run_bytes<offsetof(Q3K, qs)>(b, kStripeBytes * c + kRunBytes * m, w);
        run_bytes<offsetof(Q3K, hmask)>(b, kRunBytes * m, h);
        const int j = k / kFieldRuns;  // 32-element stripe of the block: its hmask bit
        RunQuants r{{}, half_field<offsetof(Q3K, d)>(b) *
                            static_cast<float>(unpack_q3k_scale(b + offsetof(Q3K, scales), k / kSubBlockRuns)),
                    0.0f};
GEMMA4_UNROLL
        for (int i = 0; i < kRunWords; ++i)
            r.q[i] = ((w[i] >> (kTwoBitWidth * s)) & kTwoBitFields) | (((h[i] >> j) & kLowBits) << kQ3HighBitShift);
        return r;
    }
};

/// Q4_K and Q5_K: sub-block i = k / 4 of 32 elements; its scale d * sc and min dmin * mn from the 16-byte
/// header (d | dmin << 16, scales[0..11]); qs[32 (i / 2) + 8m ..] nibble i % 2.
inline constexpr int kKSubBlockRuns = 4;  // Q4_K/Q5_K: runs per 32-element sub-block
inline constexpr int kKHeaderBytes = 16;  // d, dmin, scales[12]
inline constexpr int kKLowSubBlocks = 4;  // sub-blocks 0-3 have their scales in bytes 0-3, mins in 4-7

template <class Block>
GEMMA4_HD inline RunQuants k_quant_run(const uint8_t* b, int k) {
    using R = DequantRunBase<Block>;
    static_assert(offsetof(Block, dmin) == 2 && offsetof(Block, scales) == 4, "K-quant header layout");
    static_assert(R::kBlockAlign == kKHeaderBytes, "the header is one aligned 16-byte load");
    const int i = k / kKSubBlockRuns, m = k % kKSubBlockRuns;
    uint32_t h[4];
    load_16_bytes(b, h);
    uint32_t sc = 0, mn = 0;
    k_quant_scale_min_words(h[1], h[2], h[3], i >= kKLowSubBlocks, sc, mn);
    const int byte = 8 * (i % kKLowSubBlocks);  // sub-block i's byte of the four unpacked
    RunQuants r{{}, half_bits_to_float(h[0]) * static_cast<float>((sc >> byte) & kByteMask),
                half_bits_to_float(h[0] >> kHalfBits) * static_cast<float>((mn >> byte) & kByteMask)};
    uint32_t w[2];
    R::template run_bytes<offsetof(Block, qs)>(b, kStripeBytes * (i / 2) + kRunBytes * m, w);
    const int shift = kNibbleBits * (i % 2);
GEMMA4_UNROLL
    for (int n = 0; n < kRunWords; ++n) r.q[n] = (w[n] >> shift) & kNibbles;
    return r;
}

/// Q4_K: w = (d * sc) * q - dmin * mn, 4-bit q.
template <>
struct DequantRun<Q4K> : DequantRunBase<Q4K> {
    static constexpr int kOffset = 0;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) { return k_quant_run<Q4K>(b, k); }
};

/// Q5_K: Q4_K plus bit i of qh[l] as bit 4 of element 32i + l.
template <>
struct DequantRun<Q5K> : DequantRunBase<Q5K> {
    static constexpr int kOffset = 0;
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        RunQuants r = k_quant_run<Q5K>(b, k);
        const int i = k / kKSubBlockRuns, m = k % kKSubBlockRuns;
        uint32_t h[2];
        run_bytes<offsetof(Q5K, qh)>(b, kRunBytes * m, h);
GEMMA4_UNROLL
        for (int n = 0; n < kRunWords; ++n) r.q[n] |= ((h[n] >> i) & kLowBits) << kNibbleBits;
        return r;
    }
};

/// Q6_K: w = (d * scales[k / 2]) * (q - 32), 6-bit q: nibble from ql, top 2 bits from qh.
template <>
struct DequantRun<Q6K> : DequantRunBase<Q6K> {
    static constexpr int kOffset = kQ6Offset;
    static constexpr int kQlHalfBytes = 64;  // ql bytes per half (two 32-byte stripes)
    static constexpr int kQhHalfBytes = 32;  // qh bytes per half (one stripe)
    GEMMA4_HD static RunQuants decode(const uint8_t* b, int k) {
        const int c = k / kHalfRuns, g = k / kFieldRuns % kFieldsPerHalf, m = k % kFieldRuns;
        uint32_t lo[2], hi[2];
        run_bytes<offsetof(Q6K, ql)>(b, kQlHalfBytes * c + kStripeBytes * (g % 2) + kRunBytes * m, lo);
        run_bytes<offsetof(Q6K, qh)>(b, kQhHalfBytes * c + kRunBytes * m, hi);
        const auto sc = static_cast<int8_t>((b + offsetof(Q6K, scales))[k / kSubBlockRuns]);
        RunQuants r{{}, half_field<offsetof(Q6K, d)>(b) * static_cast<float>(sc), 0.0f};
        const int shift = kNibbleBits * (g / 2);
GEMMA4_UNROLL
        for (int n = 0; n < kRunWords; ++n)
            r.q[n] = ((lo[n] >> shift) & kNibbles) | (((hi[n] >> (kTwoBitWidth * g)) & kTwoBitFields) << kNibbleBits);
        return r;
    }
};

/// v[i] = element 8k + i of the block b, in f32, bit-identical to dequantize_block (see the top).
template <class Block>
GEMMA4_HD inline void dequant_run(const uint8_t* b, int k, float (&v)[kRunElems]) {
    using R = DequantRun<Block>;
    constexpr float kBias = kMagic + static_cast<float>(R::kOffset);  // exact: 2^23 + a small integer
    const RunQuants r = R::decode(b, k);
GEMMA4_UNROLL
    for (int n = 0; n < kRunWords; ++n) {
        v[4 * n + 0] = r.scale * (byte_plus_magic<0>(r.q[n]) - kBias) - r.min;
        v[4 * n + 1] = r.scale * (byte_plus_magic<1>(r.q[n]) - kBias) - r.min;
        v[4 * n + 2] = r.scale * (byte_plus_magic<2>(r.q[n]) - kBias) - r.min;
        v[4 * n + 3] = r.scale * (byte_plus_magic<3>(r.q[n]) - kBias) - r.min;
    }
}

}  // namespace gemma4::cuda::matmul_detail
