// CPU dot_rows (cpu/quant_dot.cpp) for the weight types of Q4_K_M and Q8_0 files, at real Gemma 4 12B
// matrix-vector shapes, single thread: y[d_out] = W[d_out, d_in] x[d_in], one decode token.
//
// Reported: bytes_per_second = weight bytes read per second (SetBytesProcessed), and GFLOP/s (2 flops
// per weight). Two variants per shape:
//   /hot  the same weights every iteration (cache-resident as far as they fit: kernel throughput);
//   /cold rotate through copies of the weights totalling kColdSetBytes, more than the last-level cache,
//         so every iteration streams from DRAM as decode does.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "quant/formats.h"

namespace gemma4 {
namespace {

struct Shape {
    const char* name;
    int d_in;
    int d_out;
};
constexpr Shape kAttnQProj{"attn_q", 3840, 4096};   // d_model -> n_heads * head_dim (16 x 256)
constexpr Shape kFfnDown{"ffn_down", 15360, 3840};  // d_ff -> d_model

constexpr size_t kColdSetBytes = size_t{1} << 30;  // more than the L3 of the hosts we run on (<= 512 MiB)

// xorshift64: cheap deterministic bytes, enough for weights whose values do not affect timing.
uint64_t next_random(uint64_t& s) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

// Random blocks with finite, realistic f16 scales (2^-16 .. 2^-6) so no NaN/Inf slows anything down.
std::vector<uint8_t> random_weights(GgmlType type, const Shape& shape) {
    const size_t row_bytes = static_cast<size_t>(ggml_row_bytes(type, shape.d_in));
    std::vector<uint8_t> w(row_bytes * shape.d_out);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < w.size(); i += 8) {
        const uint64_t r = next_random(s);
        std::memcpy(w.data() + i, &r, std::min<size_t>(8, w.size() - i));
    }
    const auto set_scale = [&](size_t offset) {
        const uint16_t h = f32_to_f16(static_cast<float>(next_random(s) % 1000 + 1) * 0x1p-16f);
        std::memcpy(w.data() + offset, &h, 2);
    };
    visit_quant_type(type, [&]<class Traits>(Traits) {  // every f16 scale field of every block
        using Block = typename Traits::block_type;
        for (size_t b = 0; b < w.size(); b += Traits::block_bytes) {
            if constexpr (requires { &Block::d; }) {
                if constexpr (std::is_same_v<decltype(Block::d), uint16_t>) set_scale(b + offsetof(Block, d));
            }
            if constexpr (requires { &Block::dmin; }) set_scale(b + offsetof(Block, dmin));
        }
    });
    return w;
}

void bm_dot_rows(benchmark::State& state, GgmlType type, Shape shape, bool cold) {
    const std::vector<uint8_t> one = random_weights(type, shape);
    const size_t n_copies = cold ? kColdSetBytes / one.size() + 1 : 1;
    std::vector<uint8_t> weights(one.size() * n_copies);
    for (size_t c = 0; c < n_copies; ++c) std::memcpy(weights.data() + c * one.size(), one.data(), one.size());
    std::vector<float> x(shape.d_in), y(shape.d_out);
    uint64_t s = 42;
    for (float& v : x) v = static_cast<float>(next_random(s) % 2001) / 1000.0f - 1.0f;
    const size_t row_bytes = one.size() / shape.d_out;

    size_t copy = 0;
    for (auto _ : state) {
        dot_rows(type, weights.data() + copy * one.size(), row_bytes, shape.d_out, x.data(), y.data());
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
        copy = copy + 1 == n_copies ? 0 : copy + 1;
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(one.size()));
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * shape.d_in * shape.d_out / 1e9 * state.iterations(), benchmark::Counter::kIsRate);
    state.counters["weight_MiB"] = static_cast<double>(one.size()) / (1 << 20);
}

void register_all() {
    for (const GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0}) {
        for (const Shape& shape : {kAttnQProj, kFfnDown}) {
            for (const bool cold : {false, true}) {
                const std::string name = std::string("quant_dot_rows/") + ggml_type_info(type).name + "/" + shape.name +
                                         "_" + std::to_string(shape.d_in) + "x" + std::to_string(shape.d_out) +
                                         (cold ? "/cold" : "/hot");
                benchmark::RegisterBenchmark(name.c_str(), bm_dot_rows, type, shape, cold)
                    ->Unit(benchmark::kMicrosecond);
            }
        }
    }
}

[[maybe_unused]] const bool kRegistered = (register_all(), true);

}  // namespace
}  // namespace gemma4
