// Quant formats (src/quant/formats.h, fp16.h) and the CPU dot kernels (cpu/quant_dot.cpp):
//   1. dequantize_row is bit-identical to llama.cpp's gguf-py dequantizers on the golden blocks in
//      tests/golden/quant/ (extreme, subnormal, zero, Inf, NaN and negative scales; see its script).
//   2. dot_row / dot_rows match a double-precision reference within the bound stated in formats.h.
//   3. f16 and bf16 conversions are bit-exact over all 65536 patterns against references derived from
//      the bit formulas, and agree with x86 F16C.
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "quant/formats.h"

namespace gemma4 {
namespace {

// ---------------------------------------------------------------------------------------------------
// Helpers

bool same_bits_or_both_nan(float got, float want) {
    if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want);
    return std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(want);
}

std::string hex32(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "0x%08x", v);
    return buf;
}

struct Golden {
    uint32_t type_id = 0;
    uint32_t n_blocks = 0;
    uint32_t block_elems = 0;
    uint32_t block_bytes = 0;
    std::vector<uint8_t> raw;  // n_blocks * block_bytes
    std::vector<float> want;   // n_blocks * block_elems
};

// Format: make_quant_golden.py's docstring.
Golden load_golden(const std::string& name) {
    const std::string path = std::string(GEMMA4_TEST_DATA_DIR) + "/golden/quant/" + name + ".bin";
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    constexpr size_t kHeaderBytes = 24;
    REQUIRE(bytes.size() >= kHeaderBytes);
    REQUIRE(std::memcmp(bytes.data(), "G4QG", 4) == 0);
    uint32_t header[5];
    std::memcpy(header, bytes.data() + 4, sizeof(header));
    REQUIRE(header[0] == 1);  // version
    Golden g{header[1], header[2], header[3], header[4], {}, {}};
    const size_t raw_bytes = size_t{g.n_blocks} * g.block_bytes;
    const size_t n_out = size_t{g.n_blocks} * g.block_elems;
    REQUIRE(bytes.size() == kHeaderBytes + raw_bytes + 4 * n_out);
    g.raw.assign(bytes.begin() + kHeaderBytes, bytes.begin() + kHeaderBytes + raw_bytes);
    g.want.resize(n_out);
    std::memcpy(g.want.data(), bytes.data() + kHeaderBytes + raw_bytes, 4 * n_out);
    return g;
}

struct TypeGeometry {
    int block_elems;
    int block_bytes;
};
TypeGeometry geometry(GgmlType type) {
    return visit_quant_type(type, []<class T>(T) { return TypeGeometry{T::block_elems, T::block_bytes}; });
}

const GgmlType kSupported[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                               GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                               GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K};

// ---------------------------------------------------------------------------------------------------
// 1. Golden dequantization

TEST_CASE("quant: dequantize_row is bit-identical to gguf-py on extreme blocks", "[unit][quant]") {
    for (const GgmlType type : kSupported) {
        const GgmlTypeInfo& info = ggml_type_info(type);
        CAPTURE(info.name);
        const Golden g = load_golden(info.name);
        REQUIRE(g.type_id == static_cast<uint32_t>(type));
        REQUIRE(g.block_elems == info.block_elems);
        REQUIRE(g.block_bytes == info.block_bytes);
        const int64_t n = int64_t{g.n_blocks} * g.block_elems;
        std::vector<float> got(static_cast<size_t>(n), -1.0f);
        dequantize_row(type, g.raw.data(), got.data(), n);
        int mismatches = 0, nans = 0, infs = 0;
        for (int64_t i = 0; i < n; ++i) {
            nans += std::isnan(g.want[i]);
            infs += std::isinf(g.want[i]);
            if (!same_bits_or_both_nan(got[i], g.want[i])) {
                if (++mismatches <= 5) {
                    UNSCOPED_INFO("element " << i << " (block " << i / g.block_elems << "): got "
                                             << hex32(std::bit_cast<uint32_t>(got[i])) << " = " << got[i] << ", want "
                                             << hex32(std::bit_cast<uint32_t>(g.want[i])) << " = " << g.want[i]);
                }
            }
        }
        CHECK(mismatches == 0);
        // The golden data must exercise the special values, or the test proves less than it claims.
        if (type != GgmlType::F32) {
            CHECK(nans > 0);
            CHECK(infs > 0);
        }
    }
}

TEST_CASE("quant: per-block dequantize_block matches dequantize_row", "[unit][quant]") {
    const Golden g = load_golden("q4_K");
    std::vector<float> row(size_t{g.n_blocks} * g.block_elems);
    dequantize_row(GgmlType::Q4_K, g.raw.data(), row.data(), static_cast<int64_t>(row.size()));
    float block[QuantTraits<Q4K>::block_elems];
    for (uint32_t b = 0; b < g.n_blocks; ++b) {
        Q4K q;
        std::memcpy(&q, g.raw.data() + size_t{b} * sizeof(Q4K), sizeof(Q4K));
        QuantTraits<Q4K>::dequantize_block(q, block);
        for (int i = 0; i < QuantTraits<Q4K>::block_elems; ++i) {
            REQUIRE(same_bits_or_both_nan(block[i], row[size_t{b} * QuantTraits<Q4K>::block_elems + i]));
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Traits vs the type table, and errors

TEST_CASE("quant: traits agree with the ggml type table; unsupported types throw", "[unit][quant]") {
    int n_supported = 0;
    for (uint32_t id = 0; id < 64; ++id) {
        const GgmlTypeInfo* info = ggml_type_info(id);
        if (info == nullptr) continue;
        CAPTURE(info->name);
        if (info->supported) {
            ++n_supported;
            const TypeGeometry geo = geometry(info->type);
            CHECK(geo.block_elems == static_cast<int>(info->block_elems));
            CHECK(geo.block_bytes == static_cast<int>(info->block_bytes));
            CHECK(visit_quant_type(info->type, []<class T>(T) { return T::type; }) == info->type);
        } else {
            float out[32] = {};
            const uint8_t zeros[512] = {};
            const auto is_invalid_argument = [](const Error& e) { return e.code() == ErrorCode::invalid_argument; };
            CHECK_THROWS_MATCHES(geometry(info->type), Error, Catch::Predicate<Error>(is_invalid_argument));
            CHECK_THROWS_AS(dequantize_row(info->type, zeros, out, 32), Error);
            CHECK_THROWS_AS(dot_row(info->type, zeros, out, 32), Error);
            CHECK_THROWS_AS(dot_rows(info->type, zeros, info->block_bytes, 1, out, out), Error);
        }
    }
    CHECK(n_supported == static_cast<int>(std::size(kSupported)));
}

TEST_CASE("quant: bad sizes and pointers throw invalid_argument, n = 0 is fine", "[unit][quant]") {
    alignas(32) uint8_t blocks[4 * 292] = {};
    alignas(32) float x[1024] = {};
    float out[1024];
    const auto code_of = [](auto&& fn) {
        try {
            fn();
        } catch (const Error& e) {
            return static_cast<int>(e.code());
        }
        return -1;
    };
    const int bad = static_cast<int>(ErrorCode::invalid_argument);
    CHECK(code_of([&] { dequantize_row(GgmlType::Q4_K, blocks, out, 255); }) == bad);
    CHECK(code_of([&] { dequantize_row(GgmlType::Q8_0, blocks, out, -32); }) == bad);
    CHECK(code_of([&] { dot_row(GgmlType::Q6_K, blocks, x, 100); }) == bad);
    CHECK(code_of([&] { dot_row(GgmlType::Q8_0, blocks + 1, x, 32); }) == bad);         // misaligned
    CHECK(code_of([&] { dequantize_row(GgmlType::F32, blocks + 2, out, 4); }) == bad);  // misaligned
    CHECK(code_of([&] { dot_rows(GgmlType::Q4_K, blocks, 143, 1, x, out); }) == bad);   // not whole blocks
    CHECK(code_of([&] { dot_rows(GgmlType::Q4_K, blocks, 144, -1, x, out); }) == bad);
    CHECK(code_of([&] { dot_rows(GgmlType::Q8_0, blocks + 1, 34, 2, x, out); }) == bad);
    CHECK(dot_row(GgmlType::Q4_K, blocks, x, 0) == 0.0f);
    CHECK(dot_row(GgmlType::F16, nullptr, x, 0) == 0.0f);
    out[0] = 1.0f;
    dot_rows(GgmlType::Q4_K, blocks, 0, 1, x, out);  // rows of zero blocks
    CHECK(out[0] == 0.0f);
    dot_rows(GgmlType::Q6_K, blocks, 210, 0, x, out);  // no rows: nothing written, nothing read
    dequantize_row(GgmlType::Q2_K, blocks, out, 0);
}

// ---------------------------------------------------------------------------------------------------
// 2. Dot products

// Byte offsets of a block's f16 scales (d, dmin, m), read off the block structs. Random bytes with these
// overwritten by realistic finite scales make realistic blocks. (Q8_K's d is an f32: handled apart.)
std::vector<int> f16_scale_offsets(GgmlType type) {
    return visit_quant_type(type, []<class T>(T) {
        using B = typename T::block_type;
        std::vector<int> offsets;
        if constexpr (requires { &B::d; }) {
            if constexpr (std::is_same_v<decltype(B::d), uint16_t>) offsets.push_back(static_cast<int>(offsetof(B, d)));
        }
        if constexpr (requires { &B::dmin; }) offsets.push_back(static_cast<int>(offsetof(B, dmin)));
        if constexpr (requires { &B::m; }) offsets.push_back(static_cast<int>(offsetof(B, m)));
        return offsets;
    });
}

// Random row data of n elements: realistic scales (+-2^-12 .. 2^-2) and random quants; plain types get
// uniform values in (-1, 1).
std::vector<uint8_t> random_rows(GgmlType type, int64_t n_rows, int64_t n, std::mt19937& rng) {
    const TypeGeometry geo = geometry(type);
    const size_t n_blocks = static_cast<size_t>(n_rows * n / geo.block_elems);
    std::vector<uint8_t> data(n_blocks * geo.block_bytes);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    std::uniform_real_distribution<float> scale(0.25f, 1.0f);
    std::uniform_int_distribution<int> scale_exp(-10, 0);
    const auto random_scale = [&] { return std::ldexp(scale(rng), scale_exp(rng)) * (byte(rng) & 1 ? 1.0f : -1.0f); };
    for (size_t b = 0; b < n_blocks; ++b) {
        uint8_t* p = data.data() + b * geo.block_bytes;
        if (type == GgmlType::F32) {
            const float v = unit(rng);
            std::memcpy(p, &v, 4);
            continue;
        }
        if (type == GgmlType::F16 || type == GgmlType::BF16) {
            const uint16_t h = type == GgmlType::F16 ? f32_to_f16(unit(rng)) : f32_to_bf16(unit(rng));
            std::memcpy(p, &h, 2);
            continue;
        }
        for (int i = 0; i < geo.block_bytes; ++i) p[i] = static_cast<uint8_t>(byte(rng));
        for (const int off : f16_scale_offsets(type)) {
            const uint16_t h = f32_to_f16(random_scale());
            std::memcpy(p + off, &h, 2);
        }
        if (type == GgmlType::Q8_K) {
            const float d = random_scale() * 0x1p-6f;
            std::memcpy(p, &d, 4);
        }
    }
    return data;
}

// Q4_K's dot factors its mins out (formats.h): sum (dl*q - ml) x = dl*sum q x - ml*sum x, so its error
// scales with |dl*q| + |ml| rather than |w|. Zeroing the quants (bytes 16..143) leaves w = -ml, the offset.
std::vector<float> min_offsets(GgmlType type, const uint8_t* row, int64_t n) {
    std::vector<float> off(static_cast<size_t>(n), 0.0f);
    if (type != GgmlType::Q4_K) return off;
    std::vector<uint8_t> zeroed(row, row + n / QuantTraits<Q4K>::block_elems * sizeof(Q4K));
    for (size_t b = 0; b < zeroed.size(); b += sizeof(Q4K)) {
        std::fill(zeroed.begin() + b + offsetof(Q4K, qs), zeroed.begin() + b + sizeof(Q4K), uint8_t{0});
    }
    dequantize_row(type, zeroed.data(), off.data(), n);
    return off;
}

struct Reference {
    double dot;  // sum w x in double: exact up to double rounding, ~1e-16 relative
    double tol;  // formats.h bound: (n/8 + 32) * 2^-24 * S
};

Reference reference_dot(GgmlType type, const uint8_t* row, const float* x, int64_t n) {
    std::vector<float> w(static_cast<size_t>(n));
    dequantize_row(type, row, w.data(), n);
    const std::vector<float> off = min_offsets(type, row, n);
    double dot = 0.0, magnitude = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        dot += double{w[i]} * x[i];
        magnitude += (std::abs(double{w[i]} - off[i]) + std::abs(double{off[i]})) * std::abs(double{x[i]});
    }
    // f32 sums: no partial sum sees more than n/8 + 32 roundings of relative size 2^-24 (formats.h),
    // so the total error is at most that many epsilons of the sum of magnitudes. The tiny absolute term
    // only matters when every weight is zero.
    constexpr double kF32Eps = 0x1p-24;
    const double depth = static_cast<double>(n) / 8.0 + 32.0;
    return {dot, depth * kF32Eps * magnitude + 1e-30};
}

std::vector<int64_t> dot_sizes(GgmlType type) {
    const int be = geometry(type).block_elems;
    if (be == 1) return {1, 7, 8, 31, 33, 100, 3840, 15360};
    std::vector<int64_t> sizes = {be, 3 * be, 37 * be, 3840, 15360};
    if (type == GgmlType::Q4_K) sizes.push_back(130 * 256);  // > 32768: crosses the x-sum tiles
    return sizes;
}

TEST_CASE("quant: dot_row and dot_rows match a double reference within the stated bound", "[unit][quant]") {
    const uint32_t seed = 1234;
    CAPTURE(seed);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    for (const GgmlType type : kSupported) {
        CAPTURE(ggml_type_info(type).name);
        for (const int64_t n : dot_sizes(type)) {
            CAPTURE(n);
            constexpr int kRows = 5;
            const std::vector<uint8_t> w = random_rows(type, kRows, n, rng);
            std::vector<float> x(static_cast<size_t>(n));
            for (float& v : x) v = unit(rng);
            const size_t row_bytes = static_cast<size_t>(ggml_row_bytes(type, n));
            float y[kRows];
            dot_rows(type, w.data(), row_bytes, kRows, x.data(), y);
            double worst = 0.0;
            for (int r = 0; r < kRows; ++r) {
                CAPTURE(r);
                const uint8_t* row = w.data() + r * row_bytes;
                const Reference ref = reference_dot(type, row, x.data(), n);
                const float single = dot_row(type, row, x.data(), n);
                CHECK(std::abs(double{single} - ref.dot) <= ref.tol);
                CHECK(std::bit_cast<uint32_t>(single) == std::bit_cast<uint32_t>(y[r]));  // same kernel
                worst = std::max(worst, std::abs(double{single} - ref.dot) / ref.tol);
            }
            CHECK(worst <= 1.0);
        }
    }
}

TEST_CASE("quant: a NaN scale makes the dot NaN, an Inf scale makes it non-finite", "[unit][quant]") {
    // With an Inf scale the dequantized weights are Inf or NaN (Inf * 0); kernels that sum q * x before
    // scaling (all of Q4_K, Q6_K, Q8_0) may return Inf where the dequantized sum is NaN. Both flag the
    // broken block; no valid file has one.
    std::mt19937 rng(7);
    std::vector<float> x(3840, 0.5f);
    for (const GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0}) {
        CAPTURE(ggml_type_info(type).name);
        std::vector<uint8_t> w = random_rows(type, 1, 3840, rng);
        uint8_t* scale = w.data() + 2 * geometry(type).block_bytes + f16_scale_offsets(type).front();
        const uint16_t nan_bits = 0x7E00, inf_bits = 0x7C00;
        std::memcpy(scale, &nan_bits, 2);
        CHECK(std::isnan(dot_row(type, w.data(), x.data(), 3840)));
        std::memcpy(scale, &inf_bits, 2);
        CHECK(!std::isfinite(dot_row(type, w.data(), x.data(), 3840)));
    }
}

// ---------------------------------------------------------------------------------------------------
// 3. f16 / bf16 conversions, exhaustively. References come from the bit formulas, in double.

double f16_formula(uint16_t h) {  // finite h only
    const int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    const double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

double bf16_formula(uint16_t b) {  // finite b only
    const int s = b >> 15, e = (b >> 7) & 0xFF, m = b & 0x7F;
    const double v = e == 0 ? std::ldexp(m, -133) : std::ldexp(128 + m, e - 134);
    return s ? -v : v;
}

bool f16_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0; }
bool bf16_is_nan(uint16_t b) { return (b & 0x7F80) == 0x7F80 && (b & 0x7F) != 0; }

TEST_CASE("fp16: f16_to_f32 over all 65536 patterns matches the bit formula and F16C", "[unit][quant]") {
    int failures = 0;
    for (uint32_t i = 0; i < 65536; ++i) {
        const auto h = static_cast<uint16_t>(i);
        const uint32_t got = std::bit_cast<uint32_t>(f16_to_f32(h));
        uint32_t want;
        if ((h & 0x7C00) == 0x7C00) {  // Inf, or NaN with the payload kept and the quiet bit set
            const uint32_t sign = uint32_t{h & 0x8000u} << 16, mant = h & 0x3FFu;
            want = sign | 0x7F800000u | (mant ? 0x400000u | (mant << 13) : 0u);
        } else {
            want = std::bit_cast<uint32_t>(static_cast<float>(f16_formula(h)));  // exact: fits in f32
        }
        const uint32_t hw = std::bit_cast<uint32_t>(_cvtsh_ss(h));
        if (got != want || got != hw) {
            if (++failures <= 5)
                UNSCOPED_INFO("h=" << hex32(h) << " got " << hex32(got) << " want " << hex32(want) << " F16C "
                                   << hex32(hw));
        }
    }
    CHECK(failures == 0);
}

TEST_CASE("fp16: f32_to_f16 round-trips all 65536 patterns and rounds ties to even", "[unit][quant]") {
    int failures = 0;
    const auto check = [&](float f, uint16_t want, const char* what) {
        const uint16_t got = f32_to_f16(f);
        const auto hw = static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
        if (got != want || got != hw) {
            if (++failures <= 5)
                UNSCOPED_INFO(what << ": f=" << hex32(std::bit_cast<uint32_t>(f)) << " got " << hex32(got) << " want "
                                   << hex32(want) << " F16C " << hex32(hw));
        }
    };
    for (uint32_t i = 0; i < 65536; ++i) {
        const auto h = static_cast<uint16_t>(i);
        if (f16_is_nan(h)) {
            check(f16_to_f32(h), static_cast<uint16_t>(h | 0x200), "NaN keeps sign and payload, quiet");
            continue;
        }
        check(f16_to_f32(h), h, "round trip");
        // Between h and the next f16 away from zero (h + 1 in bits), for finite non-max magnitudes.
        if ((h & 0x7FFF) >= 0x7BFF) continue;
        const auto next = static_cast<uint16_t>(h + 1);
        const double lo = f16_formula(h), hi = f16_formula(next);
        const auto mid = static_cast<float>((lo + hi) / 2);  // exact: 12 significant bits
        REQUIRE(static_cast<double>(mid) == (lo + hi) / 2);
        check(mid, (h & 1) == 0 ? h : next, "tie to even");
        check(std::nextafter(mid, 0.0f), h, "just below a tie");
        check(std::nextafter(mid, mid * 2), next, "just above a tie");
    }
    // Overflow: 65504 + half an ulp (65520) rounds to Inf (even); just below stays 65504.
    check(65520.0f, 0x7C00, "overflow tie");
    check(std::nextafter(65520.0f, 0.0f), 0x7BFF, "below overflow");
    check(-1e30f, 0xFC00, "large");
    check(std::numeric_limits<float>::infinity(), 0x7C00, "inf");
    // Underflow: half the smallest subnormal ties to zero; f32 subnormals flush to signed zero.
    check(0x1p-25f, 0x0000, "underflow tie");
    check(std::nextafter(0x1p-25f, 1.0f), 0x0001, "above underflow tie");
    check(-0x1p-140f, 0x8000, "f32 subnormal");
    check(std::bit_cast<float>(0x7F800001u), 0x7E00, "f32 sNaN");  // quiet, payload's top bits (none)
    check(std::bit_cast<float>(0xFFC12345u), static_cast<uint16_t>(0xFE00 | (0x412345u >> 13)), "NaN payload");
    // A sweep over the f32 bit space against F16C (every 65521st pattern: 65550 values).
    for (uint64_t u = 0; u < (1ull << 32); u += 65521) {
        const float f = std::bit_cast<float>(static_cast<uint32_t>(u));
        const auto hw = static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
        check(f, hw, "sweep");
    }
    CHECK(failures == 0);
}

TEST_CASE("fp16: bf16 conversions over all 65536 patterns", "[unit][quant]") {
    int failures = 0;
    const auto fail = [&](const char* what, uint32_t in, uint32_t got, uint32_t want) {
        if (++failures <= 5)
            UNSCOPED_INFO(what << ": in " << hex32(in) << " got " << hex32(got) << " want " << hex32(want));
    };
    for (uint32_t i = 0; i < 65536; ++i) {
        const auto b = static_cast<uint16_t>(i);
        const float f = bf16_to_f32(b);
        const uint32_t bits = std::bit_cast<uint32_t>(f);
        if ((b & 0x7F80) == 0x7F80) {  // Inf and NaN: the bits are placed unchanged
            if (bits != i << 16) fail("bf16_to_f32 special", i, bits, i << 16);
        } else {
            const uint32_t want = std::bit_cast<uint32_t>(static_cast<float>(bf16_formula(b)));
            if (bits != want) fail("bf16_to_f32", i, bits, want);
        }
        if (bf16_is_nan(b)) {
            if (f32_to_bf16(f) != (b | 0x40)) fail("NaN quiet", i, f32_to_bf16(f), b | 0x40);
            continue;
        }
        if (f32_to_bf16(f) != b) fail("round trip", i, f32_to_bf16(f), b);
        if ((b & 0x7FFF) >= 0x7F7F) continue;  // max finite and above: no next finite value
        const auto next = static_cast<uint16_t>(b + 1);
        const double lo = bf16_formula(b), hi = bf16_formula(next);
        const auto mid = static_cast<float>((lo + hi) / 2);  // 9 significant bits: exact
        const uint16_t even = (b & 1) == 0 ? b : next;
        if (f32_to_bf16(mid) != even) fail("tie to even", std::bit_cast<uint32_t>(mid), f32_to_bf16(mid), even);
        if (f32_to_bf16(std::nextafter(mid, 0.0f)) != b)
            fail("below tie", i, f32_to_bf16(std::nextafter(mid, 0.0f)), b);
        if (f32_to_bf16(std::nextafter(mid, mid * 2)) != next)
            fail("above tie", i, f32_to_bf16(std::nextafter(mid, mid * 2)), next);
    }
    // The largest f32 rounds up past the largest bf16 (0x7F7F) to Inf.
    if (f32_to_bf16(std::numeric_limits<float>::max()) != 0x7F80)
        fail("max", 0, f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
    CHECK(failures == 0);
}

}  // namespace
}  // namespace gemma4
