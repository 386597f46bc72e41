// Exact conversions between f32 and the two 16-bit float formats GGUF files use: IEEE-754 binary16
// ("f16", ggml_half) and bfloat16 ("bf16"). Pure bit manipulation, so host code and CUDA device code
// (GEMMA4_HD) produce the same bits, independent of FTZ/DAZ modes, -ffast-math or F16C.
//
//   binary16: s | eeeee (bias 15) | mmmmmmmmmm        f32: s | eeeeeeee (bias 127) | 23-bit mantissa
//   bfloat16: the high 16 bits of an f32 (s | 8-bit exponent | 7-bit mantissa)
//
// Semantics (IEEE-754 conversions, round to nearest, ties to even):
// - f16 -> f32 and bf16 -> f32 are exact for every finite value, subnormals included, and for ±Inf.
// - NaNs keep sign and payload and come out quiet (the quiet bit, the top mantissa bit, is set), as
//   x86 F16C (vcvtph2ps/vcvtps2ph) does. A signalling NaN thus changes bits but stays a NaN.
// - f32 -> f16 rounds to nearest even; |x| >= 65520 becomes ±Inf; tiny values become subnormals or ±0.
// - f32 -> bf16 rounds to nearest even; values that round past the largest bf16 become ±Inf.
#pragma once

#include <bit>
#include <cstdint>

// GEMMA4_HD marks functions compiled for host and device under nvcc, and plain functions otherwise.
#ifndef GEMMA4_HD
#ifdef __CUDACC__
#define GEMMA4_HD __host__ __device__
#else
#define GEMMA4_HD
#endif
#endif

namespace gemma4 {
namespace detail {

GEMMA4_HD inline uint32_t f32_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    return std::bit_cast<uint32_t>(f);
#endif
}

GEMMA4_HD inline float f32_from_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    return std::bit_cast<float>(u);
#endif
}

// binary16 fields.
inline constexpr uint32_t kF16SignBit = 0x8000;  // bit 15
inline constexpr uint32_t kF16ExpMask = 0x1F;    // 5 exponent bits, after >> kF16MantBits
inline constexpr uint32_t kF16MantMask = 0x3FF;  // 10 mantissa bits
inline constexpr uint32_t kF16MantBits = 10;
inline constexpr uint32_t kF16QuietBit = 0x200;  // top mantissa bit: set in a quiet NaN
inline constexpr uint32_t kF16Inf = 0x7C00;      // exponent all ones, mantissa zero

// f32 fields.
inline constexpr uint32_t kF32SignBit = 0x80000000u;
inline constexpr uint32_t kF32AbsMask = 0x7FFFFFFFu;
inline constexpr uint32_t kF32MantMask = 0x7FFFFFu;  // 23 mantissa bits
inline constexpr uint32_t kF32MantBits = 23;
inline constexpr uint32_t kF32Inf = 0x7F800000u;     // exponent all ones, mantissa zero
inline constexpr uint32_t kF32QuietBit = 0x400000u;  // top mantissa bit: set in a quiet NaN
inline constexpr uint32_t kF32ImplicitOne = 0x800000u;

// Mantissa bits dropped going from f32 (23) to f16 (10) or bf16 (7).
inline constexpr uint32_t kF32ToF16Shift = kF32MantBits - kF16MantBits;  // 13
inline constexpr uint32_t kBf16Shift = 16;                               // bf16 = high half of f32

// Exponent rebias f16 -> f32: 127 - 15 = 112, placed at the f32 exponent field.
inline constexpr uint32_t kF16ToF32Rebias = 112u << kF32MantBits;  // 0x38000000

// f32 bit patterns of the f16 range limits (absolute values).
inline constexpr uint32_t kF32HalfOverflow = 0x477FF000u;   // 65520 = 65504 + half an ulp: ties to even -> Inf
inline constexpr uint32_t kF32HalfMinNormal = 0x38800000u;  // 2^-14, smallest normal f16
inline constexpr uint32_t kF32HalfTiny = 0x33000000u;       // 2^-25, half the smallest subnormal: rounds to 0
inline constexpr uint32_t kF32HalfTinyExp = 102;            // biased f32 exponent of 2^-25
inline constexpr uint32_t kF32HalfSubnormalExp = 126;       // f32 exponent e maps to a f16 subnormal unit shift 126-e

// f16 subnormals are m * 2^-24 with m < 1024: exact in f32 as a product of two exact values.
inline constexpr float kF16SubnormalUnit = 0x1p-24f;

}  // namespace detail

/// IEEE binary16 bits -> f32. Exact; NaNs stay NaN (quieted, payload kept).
GEMMA4_HD inline float f16_to_f32(uint16_t h) {
    using namespace detail;
    const uint32_t sign = (uint32_t{h} & kF16SignBit) << 16;
    const uint32_t exp = (uint32_t{h} >> kF16MantBits) & kF16ExpMask;
    const uint32_t mant = uint32_t{h} & kF16MantMask;
    if (exp == kF16ExpMask) {  // Inf or NaN
        const uint32_t nan_bits = mant != 0 ? kF32QuietBit | (mant << kF32ToF16Shift) : 0u;
        return f32_from_bits(sign | kF32Inf | nan_bits);
    }
    if (exp != 0) return f32_from_bits(sign | ((exp << kF32MantBits) + kF16ToF32Rebias) | (mant << kF32ToF16Shift));
    // Zero or subnormal: mant * 2^-24, exact in f32 (mant fits in 10 bits, 2^-24 is a normal f32).
    return f32_from_bits(sign | f32_bits(static_cast<float>(mant) * kF16SubnormalUnit));
}

/// f32 -> IEEE binary16 bits, round to nearest even. NaNs stay NaN (quiet, top payload bits kept).
GEMMA4_HD inline uint16_t f32_to_f16(float f) {
    using namespace detail;
    const uint32_t u = f32_bits(f);
    const uint32_t sign = (u >> 16) & kF16SignBit;
    const uint32_t a = u & kF32AbsMask;
    if (a > kF32Inf) {  // NaN
        return static_cast<uint16_t>(sign | kF16Inf | kF16QuietBit | ((a >> kF32ToF16Shift) & kF16MantMask));
    }
    if (a >= kF32HalfOverflow) return static_cast<uint16_t>(sign | kF16Inf);  // rounds past 65504, or Inf
    if (a >= kF32HalfMinNormal) {
        // Rebias the exponent, then round the 13 dropped mantissa bits to nearest even. A mantissa carry
        // moves into the exponent, which is the correct next binade (a < kF32HalfOverflow keeps it finite).
        const uint32_t v = a - kF16ToF32Rebias;
        const uint32_t round_bias = (1u << (kF32ToF16Shift - 1)) - 1 + ((v >> kF32ToF16Shift) & 1u);
        return static_cast<uint16_t>(sign | ((v + round_bias) >> kF32ToF16Shift));
    }
    if (a < kF32HalfTiny) return static_cast<uint16_t>(sign);  // below 2^-25 (f32 subnormals too): ±0
    // Subnormal f16 result: value = m * 2^(e-150) with the implicit one; in units of 2^-24 that is
    // m * 2^(e-126) = m >> (126 - e), rounded to nearest even. A result of 1024 is the smallest normal
    // f16, whose encoding is exactly 1024 (0x0400), so no special case is needed.
    const uint32_t e = a >> kF32MantBits;  // kF32HalfTinyExp .. 112
    const uint32_t m = (a & kF32MantMask) | kF32ImplicitOne;
    const uint32_t shift = kF32HalfSubnormalExp - e;  // 14 .. 24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u) != 0)) ++q;
    return static_cast<uint16_t>(sign | q);
}

/// bfloat16 bits -> f32. Exact: the bits become the high half of the f32, the low half is zero.
GEMMA4_HD inline float bf16_to_f32(uint16_t b) { return detail::f32_from_bits(uint32_t{b} << detail::kBf16Shift); }

/// f32 -> bfloat16 bits, round to nearest even. NaNs stay NaN (quiet bit set, top payload bits kept).
GEMMA4_HD inline uint16_t f32_to_bf16(float f) {
    using namespace detail;
    const uint32_t u = f32_bits(f);
    if ((u & kF32AbsMask) > kF32Inf) return static_cast<uint16_t>((u | kF32QuietBit) >> kBf16Shift);
    const uint32_t round_bias = (1u << (kBf16Shift - 1)) - 1 + ((u >> kBf16Shift) & 1u);
    return static_cast<uint16_t>((u + round_bias) >> kBf16Shift);  // no wrap: |u| <= 0x7F800000 here
}

}  // namespace gemma4
