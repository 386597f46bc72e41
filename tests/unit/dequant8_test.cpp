// The prefill run decoders of cuda/matmul_dequant.h (dequant_run<Block>: 8 consecutive elements of a
// block, as dequant_f16_kernel computes them before rounding to f16), run on the host: they must give the
// f32 values of dequantize_row bit for bit (NaNs: both NaN), for every quant type the prefill path
// dequantizes, on
//   - seeded random blocks: every byte random, f16 scale fields included (so ~1/32 of them are Inf or
//     NaN and some are subnormal), and
//   - the golden extreme blocks of tests/golden/quant/ (largest, subnormal, zero, Inf and NaN scales),
//     whose expected values come from llama.cpp's gguf-py.
// The blocks sit back to back in a 16-byte aligned buffer, as in a GPU weight matrix.
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "cuda/matmul_dequant.h"
#include "quant/formats.h"

namespace gemma4 {
namespace {

using cuda::matmul_detail::DequantRun;
using cuda::matmul_detail::dequant_run;
using cuda::matmul_detail::kRunElems;

constexpr int kRandomBlocks = 256;          // per type and seed
constexpr uint32_t kSeeds[] = {1, 2, 3};
constexpr size_t kBufferAlign = 16;         // a GPU weight matrix starts 16-byte aligned

bool same_bits_or_both_nan(float got, float want) {
    if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want);
    return std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(want);
}

std::string hex32(float v) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "0x%08x", std::bit_cast<uint32_t>(v));
    return buf;
}

/// `bytes` bytes at a 16-byte aligned address inside `storage`; with new's usual 16-byte alignment they end
/// where the allocation ends, so a sanitizer build flags a decoder that reads past the last block.
struct AlignedBlocks {
    std::vector<uint8_t> storage;
    uint8_t* data = nullptr;

    explicit AlignedBlocks(size_t bytes) : storage(bytes + kBufferAlign) {
        const auto misalign = reinterpret_cast<uintptr_t>(storage.data()) % kBufferAlign;
        data = storage.data() + (kBufferAlign - misalign);
    }
};

/// Checks every run of every block in `blocks` against dequantize_row (and `want`, when given); returns
/// the number of mismatching elements, reporting the first few.
template <class Block>
int check_runs(const uint8_t* blocks, int n_blocks, const std::vector<float>* want) {
    using Traits = QuantTraits<Block>;
    using R = DequantRun<Block>;
    static_assert(R::kRunsPerBlock * kRunElems == Traits::block_elems);
    const int64_t n = int64_t{n_blocks} * Traits::block_elems;
    std::vector<float> ref(static_cast<size_t>(n));
    dequantize_row(Traits::type, blocks, ref.data(), n);
    int mismatches = 0;
    for (int b = 0; b < n_blocks; ++b) {
        const uint8_t* block = blocks + static_cast<size_t>(b) * Traits::block_bytes;
        for (int k = 0; k < R::kRunsPerBlock; ++k) {
            float v[kRunElems];
            dequant_run<Block>(block, k, v);
            for (int i = 0; i < kRunElems; ++i) {
                const size_t e = static_cast<size_t>(b) * Traits::block_elems + static_cast<size_t>(kRunElems * k + i);
                const bool ok = same_bits_or_both_nan(v[i], ref[e]) && (want == nullptr || same_bits_or_both_nan(v[i], (*want)[e]));
                if (!ok && ++mismatches <= 5) {
                    UNSCOPED_INFO("block " << b << " run " << k << " element " << i << ": got " << hex32(v[i]) << " = "
                                           << v[i] << ", dequantize_row " << hex32(ref[e]) << " = " << ref[e]);
                }
            }
        }
    }
    return mismatches;
}

/// The raw blocks and expected outputs of tests/golden/quant/<name>.bin (format: make_quant_golden.py).
struct Golden {
    uint32_t n_blocks = 0;
    std::vector<uint8_t> raw;
    std::vector<float> want;
};

Golden load_golden(const std::string& name, uint32_t block_elems, uint32_t block_bytes) {
    const std::string path = std::string(GEMMA4_TEST_DATA_DIR) + "/golden/quant/" + name + ".bin";
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    constexpr size_t kHeaderBytes = 24;  // magic, version, type id, n_blocks, block_elems, block_bytes
    REQUIRE(bytes.size() >= kHeaderBytes);
    REQUIRE(std::memcmp(bytes.data(), "G4QG", 4) == 0);
    uint32_t header[5];
    std::memcpy(header, bytes.data() + 4, sizeof(header));
    REQUIRE(header[3] == block_elems);
    REQUIRE(header[4] == block_bytes);
    Golden g;
    g.n_blocks = header[2];
    const size_t raw_bytes = size_t{g.n_blocks} * block_bytes;
    const size_t n_out = size_t{g.n_blocks} * block_elems;
    REQUIRE(bytes.size() == kHeaderBytes + raw_bytes + sizeof(float) * n_out);
    g.raw.assign(bytes.begin() + kHeaderBytes, bytes.begin() + static_cast<std::ptrdiff_t>(kHeaderBytes + raw_bytes));
    g.want.resize(n_out);
    std::memcpy(g.want.data(), bytes.data() + kHeaderBytes + raw_bytes, sizeof(float) * n_out);
    return g;
}

template <class Block>
void check_type() {
    using Traits = QuantTraits<Block>;
    const std::string name = ggml_type_info(Traits::type).name;
    CAPTURE(name);
    for (const uint32_t seed : kSeeds) {
        CAPTURE(seed);
        AlignedBlocks blocks(static_cast<size_t>(kRandomBlocks) * Traits::block_bytes);
        std::mt19937 rng(seed);
        std::uniform_int_distribution<int> byte(0, 255);
        for (int i = 0; i < kRandomBlocks * Traits::block_bytes; ++i) blocks.data[i] = static_cast<uint8_t>(byte(rng));
        CHECK(check_runs<Block>(blocks.data, kRandomBlocks, nullptr) == 0);
    }
    const Golden g = load_golden(name, Traits::block_elems, Traits::block_bytes);
    AlignedBlocks blocks(g.raw.size());
    std::memcpy(blocks.data, g.raw.data(), g.raw.size());
    CHECK(check_runs<Block>(blocks.data, static_cast<int>(g.n_blocks), &g.want) == 0);
}

TEST_CASE("dequant8: prefill run decoders match dequantize_row bit for bit", "[unit][quant]") {
    check_type<Q4_0>();
    check_type<Q4_1>();
    check_type<Q5_0>();
    check_type<Q5_1>();
    check_type<Q8_0>();
    check_type<Q2K>();
    check_type<Q3K>();
    check_type<Q4K>();
    check_type<Q5K>();
    check_type<Q6K>();
}

}  // namespace
}  // namespace gemma4
