// cuda::matmul and cuda::gate_up_geglu (cuda/matmul_quant.cu) on the GPU at the Gemma 4 12B shapes.
//
//   cuda_matmul_decode/<type>/<shape>    one token: the matrix-vector kernels. Counters: GB/s of weight
//                                        bytes read, and % of kPeakCopyGBs (the H100's measured copy bandwidth).
//   cuda_geglu_decode/<type>/ffn_gate_up one token, gate and up fused (both matrices counted).
//   cuda_matmul_prefill/<type>/<shape>   512 tokens: dequantize to f16 + cuBLAS GEMM. Counter: TFLOP/s.
//
// Method (STYLE.md §7): CUDA events around the launches (UseManualTime); before every timed iteration
// a kFlushBytes memset evicts L2, and the decode launches rotate through copies of the weights totalling
// at least kColdPoolBytes, so every launch reads its weights from DRAM, as decode does (the model is far
// larger than L2). An iteration times all copies back to back and reports the time per launch, which
// includes the small gap between consecutive kernels. Warm-up: every copy once, untimed.
// The file compiles to nothing without GEMMA4_HAVE_CUDA; without a device each benchmark is skipped.
#ifdef GEMMA4_HAVE_CUDA

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/ops.h"
#include "quant/formats.h"

namespace gemma4 {
namespace {

constexpr double kPeakCopyGBs = 3000.0;          // H100 device-to-device copy, read + write, measured
constexpr size_t kFlushBytes = size_t{256} << 20;  // > 5x the 50 MB L2
constexpr size_t kColdPoolBytes = size_t{256} << 20;
constexpr int kPrefillTokens = 512;

struct Shape {
    const char* name;
    int64_t d_in;
    int64_t d_out;
};
constexpr Shape kAttnQ{"attn_q", 3840, 4096};          // d_model -> 16 heads x 256
constexpr Shape kAttnKv{"attn_kv", 3840, 2048};        // d_model -> 8 kv heads x 256
constexpr Shape kAttnKFull{"attn_k_full", 3840, 512};  // full-attention layer K
constexpr Shape kAttnOut{"attn_output", 8192, 3840};   // full-attention heads x 512 -> d_model
constexpr Shape kFfnGateUp{"ffn_gate_up", 3840, 15360};
constexpr Shape kFfnDown{"ffn_down", 15360, 3840};
constexpr Shape kLmHead{"lm_head", 3840, 262144};      // tied embedding, Q6_K in Q4_K_M files

bool check(cudaError_t err, benchmark::State& state, const char* what) {
    if (err == cudaSuccess) return true;
    state.SkipWithError((std::string(what) + ": " + cudaGetErrorString(err)).c_str());
    return false;
}

/// The shared context, or null without a device.
cuda::Context* gpu() {
    static std::unique_ptr<cuda::Context> ctx = []() -> std::unique_ptr<cuda::Context> {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
            cudaGetLastError();
            return nullptr;
        }
        return std::unique_ptr<cuda::Context>(cuda::Context::create(0));
    }();
    return ctx.get();
}

/// Device memory freed on scope exit.
struct DeviceBytes {
    explicit DeviceBytes(size_t bytes) { ok = cudaMalloc(&p, std::max<size_t>(bytes, 1)) == cudaSuccess; }
    ~DeviceBytes() { cudaFree(p); }
    DeviceBytes(const DeviceBytes&) = delete;
    DeviceBytes& operator=(const DeviceBytes&) = delete;
    void* p = nullptr;
    bool ok = false;
};

/// Random quant bytes with finite f16 scales of realistic size (timing must not see NaN or zeros).
std::vector<uint8_t> random_blocks(GgmlType type, const Shape& s, uint64_t seed) {
    std::vector<uint8_t> w(static_cast<size_t>(ggml_row_bytes(type, s.d_in)) * s.d_out);
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < w.size(); i += 8) {
        const uint64_t r = rng();
        std::memcpy(w.data() + i, &r, std::min<size_t>(8, w.size() - i));
    }
    const auto set_scale = [&](size_t offset) {
        const uint16_t h = f32_to_f16(static_cast<float>(rng() % 1000 + 1) * 0x1p-18f);
        std::memcpy(w.data() + offset, &h, sizeof(h));
    };
    visit_quant_type(type, [&]<class Traits>(Traits) {
        using B = typename Traits::block_type;
        for (size_t b = 0; b < w.size(); b += Traits::block_bytes) {
            if constexpr (std::is_same_v<B, Q4K>) {
                set_scale(b + offsetof(Q4K, d));
                set_scale(b + offsetof(Q4K, dmin));
            } else if constexpr (std::is_same_v<B, Q6K>) {
                set_scale(b + offsetof(Q6K, d));
            } else if constexpr (std::is_same_v<B, Q8_0>) {
                set_scale(b + offsetof(Q8_0, d));
            }
        }
    });
    return w;
}

std::vector<float> random_x(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> x(n);
    for (float& v : x) v = dist(rng);
    return x;
}

/// Times `launch(copy)` over all weight copies per iteration, after an L2 flush; returns false if skipped.
template <class Launch>
bool time_launches(benchmark::State& state, cuda::Context& ctx, int copies, Launch&& launch, double& seconds_per_launch) {
    auto stream = static_cast<cudaStream_t>(ctx.stream());
    DeviceBytes flush(kFlushBytes);
    if (!flush.ok) return check(cudaErrorMemoryAllocation, state, "flush buffer");
    cudaEvent_t start = nullptr, stop = nullptr;
    if (!check(cudaEventCreate(&start), state, "event") || !check(cudaEventCreate(&stop), state, "event")) return false;
    for (int c = 0; c < copies; ++c) launch(c);  // warm-up
    if (!check(cudaStreamSynchronize(stream), state, "warm-up")) return false;
    double total = 0;
    int64_t launches = 0;
    int fill = 0;
    for (auto _ : state) {
        cudaMemsetAsync(flush.p, ++fill & 0xFF, kFlushBytes, stream);
        cudaEventRecord(start, stream);
        for (int c = 0; c < copies; ++c) launch(c);
        cudaEventRecord(stop, stream);
        if (!check(cudaEventSynchronize(stop), state, "timed launches")) break;
        float ms = 0;
        cudaEventElapsedTime(&ms, start, stop);
        state.SetIterationTime(ms * 1e-3 / copies);
        total += ms * 1e-3;
        launches += copies;
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    seconds_per_launch = launches > 0 ? total / static_cast<double>(launches) : 0.0;
    return launches > 0;
}

void set_bandwidth(benchmark::State& state, double bytes, double seconds) {
    state.counters["GB/s"] = bytes / seconds / 1e9;
    state.counters["%peak"] = 100.0 * bytes / seconds / 1e9 / kPeakCopyGBs;
    state.counters["weight_MiB"] = bytes / (1 << 20);
}

/// One-token matrix-vector product (geglu: gate and up fused, the output is d_out wide).
void bm_decode(benchmark::State& state, GgmlType type, Shape s, bool geglu) {
    cuda::Context* ctx = gpu();
    if (ctx == nullptr) return state.SkipWithError("no CUDA device");
    const std::vector<uint8_t> host = random_blocks(type, s, 42);
    const size_t matrix_bytes = host.size();
    const int n_matrices = geglu ? 2 : 1;
    const int copies = static_cast<int>(std::max<size_t>(1, kColdPoolBytes / (matrix_bytes * n_matrices) + 1));
    DeviceBytes pool(matrix_bytes * n_matrices * copies);
    DeviceBytes x(s.d_in * sizeof(float)), y(s.d_out * sizeof(float)), scratch(s.d_out * sizeof(float));
    if (!pool.ok || !x.ok || !y.ok || !scratch.ok) return state.SkipWithError("out of device memory");
    for (int c = 0; c < copies * n_matrices; ++c) {
        if (!check(cudaMemcpy(static_cast<uint8_t*>(pool.p) + c * matrix_bytes, host.data(), matrix_bytes, cudaMemcpyHostToDevice),
                   state, "upload")) {
            return;
        }
    }
    const std::vector<float> hx = random_x(s.d_in, 7);
    if (!check(cudaMemcpy(x.p, hx.data(), hx.size() * sizeof(float), cudaMemcpyHostToDevice), state, "upload")) return;
    const auto matrix = [&](int i) {
        return WeightMatrix{type, s.d_in, s.d_out, matrix_bytes / s.d_out, static_cast<uint8_t*>(pool.p) + i * matrix_bytes};
    };
    const auto launch = [&](int c) {
        if (geglu) {
            cuda::gate_up_geglu(matrix(2 * c), matrix(2 * c + 1), static_cast<float*>(x.p), 1, static_cast<float*>(scratch.p),
                                static_cast<float*>(y.p), *ctx);
        } else {
            cuda::matmul(matrix(c), static_cast<float*>(x.p), 1, static_cast<float*>(y.p), *ctx);
        }
    };
    double seconds = 0;
    if (!time_launches(state, *ctx, copies, launch, seconds)) return;
    set_bandwidth(state, static_cast<double>(matrix_bytes) * n_matrices, seconds);
}

/// kPrefillTokens tokens: dequantize + GEMM (+ x conversion).
void bm_prefill(benchmark::State& state, GgmlType type, Shape s) {
    cuda::Context* ctx = gpu();
    if (ctx == nullptr) return state.SkipWithError("no CUDA device");
    const std::vector<uint8_t> host = random_blocks(type, s, 43);
    DeviceBytes w(host.size()), x(static_cast<size_t>(kPrefillTokens) * s.d_in * sizeof(float)),
        y(static_cast<size_t>(kPrefillTokens) * s.d_out * sizeof(float));
    if (!w.ok || !x.ok || !y.ok) return state.SkipWithError("out of device memory");
    const std::vector<float> hx = random_x(static_cast<size_t>(kPrefillTokens) * s.d_in, 8);
    if (!check(cudaMemcpy(w.p, host.data(), host.size(), cudaMemcpyHostToDevice), state, "upload") ||
        !check(cudaMemcpy(x.p, hx.data(), hx.size() * sizeof(float), cudaMemcpyHostToDevice), state, "upload")) {
        return;
    }
    const WeightMatrix m{type, s.d_in, s.d_out, host.size() / s.d_out, w.p};
    const auto launch = [&](int) { cuda::matmul(m, static_cast<float*>(x.p), kPrefillTokens, static_cast<float*>(y.p), *ctx); };
    double seconds = 0;
    if (!time_launches(state, *ctx, 1, launch, seconds)) return;
    state.counters["TFLOP/s"] = 2.0 * s.d_in * s.d_out * kPrefillTokens / seconds / 1e12;
}

std::string shape_name(const Shape& s) {
    return std::string(s.name) + "_" + std::to_string(s.d_in) + "x" + std::to_string(s.d_out);
}

void register_all() {
    const Shape kDecodeShapes[] = {kAttnQ, kAttnKv, kAttnKFull, kAttnOut, kFfnGateUp, kFfnDown};
    for (const GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0}) {
        const std::string t = ggml_type_info(type).name;
        for (const Shape& s : kDecodeShapes) {
            benchmark::RegisterBenchmark(("cuda_matmul_decode/" + t + "/" + shape_name(s)).c_str(), bm_decode, type, s, false)
                ->UseManualTime()
                ->Unit(benchmark::kMicrosecond);
        }
        benchmark::RegisterBenchmark(("cuda_geglu_decode/" + t + "/" + shape_name(kFfnGateUp)).c_str(), bm_decode, type, kFfnGateUp, true)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
        for (const Shape& s : {kAttnQ, kFfnGateUp, kFfnDown}) {
            benchmark::RegisterBenchmark(("cuda_matmul_prefill/" + t + "/" + shape_name(s)).c_str(), bm_prefill, type, s)
                ->UseManualTime()
                ->Unit(benchmark::kMicrosecond);
        }
    }
    benchmark::RegisterBenchmark(("cuda_matmul_decode/q6_K/" + shape_name(kLmHead)).c_str(), bm_decode, GgmlType::Q6_K, kLmHead, false)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
}

[[maybe_unused]] const bool kRegistered = (register_all(), true);

}  // namespace
}  // namespace gemma4

#endif  // GEMMA4_HAVE_CUDA
