// CUDA attention (cuda/attention.cu) at Gemma 4 12B shapes, one GPU, f16 KV cache:
//   decode:  1 token over cache lengths 4096 .. 262144 on the full layer (16 q heads, 1 KV head,
//            head_dim 512) and over the 1024-token window of a sliding layer (16 q heads, 8 KV heads,
//            head_dim 256) deep in a long context;
//   prefill: 512 tokens at depth 0 and 32768 on both layers;
//   prepare: the fused norm + RoPE + cache write for 1 and 512 tokens;
//   ceiling: a device-to-device copy of 512 MiB, the bandwidth the decode numbers compare with.
//
// Timing: CUDA events around each call on the context's stream (UseManualTime), L2 flushed before every
// iteration (a memset over twice the L2), one warm-up call first. Pages sit in shuffled order in one
// allocation, filled with random finite f16 values (never zeros).
// Counters: bytes_per_second = K/V bytes a call must read once (decode), "kv_MiB"; TFLOP/s for prefill
// (4 * head_dim flops per visible (query head, key) pair: q.k and p.v).
#ifdef GEMMA4_HAVE_CUDA

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda/ops.h"
#include "quant/fp16.h"

namespace gemma4 {
namespace {

struct AttnShape {
    const char* name;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int window;  // 0 = full causal
    float rope_base;
};
constexpr AttnShape kFullLayer{"full_hd512_kv1", 16, 1, 512, 0, 1e6f};
constexpr AttnShape kSlidingLayer{"sliding_hd256_kv8", 16, 8, 256, 1024, 1e4f};

constexpr int kPageTokens = 256;             // KvCache::kDefaultPageTokens
constexpr int kSlidingDecodeDepth = 32768;   // sliding decode runs deep in a context: window full
constexpr size_t kCopyCeilingBytes = size_t{512} << 20;
constexpr float kValueRange = 2.0f;          // K/V/q ~ U(-2, 2)

bool cuda_ok(benchmark::State& state, cudaError_t err, const char* what) {
    if (err == cudaSuccess) return true;
    state.SkipWithError((std::string(what) + ": " + cudaGetErrorString(err)).c_str());
    return false;
}

bool have_device() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return n > 0;
}

cuda::Context& bench_context() {
    static std::unique_ptr<cuda::Context> ctx(cuda::Context::create(0));
    return *ctx;
}

// Device memory freed on scope exit.
struct DeviceMemory {
    void* ptr = nullptr;
    DeviceMemory() = default;
    DeviceMemory(const DeviceMemory&) = delete;
    DeviceMemory& operator=(const DeviceMemory&) = delete;
    ~DeviceMemory() { cudaFree(ptr); }
    template <class T>
    T* as() const {
        return static_cast<T*>(ptr);
    }
};

std::vector<float> random_floats(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> d(-kValueRange, kValueRange);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// Everything one layer's attention call reads and writes.
struct Setup {
    DeviceMemory pool, table, q, k, out, q_norm, k_norm, rope_freqs, flush;
    AttentionLayer layer;
    KvLayerView kv;
    BatchPositions batch;
    size_t flush_bytes = 0;
    int64_t visible_pairs = 0;  // sum over queries of visible keys (per query head)
    int64_t keys_read = 0;      // distinct keys a call reads
};

// Builds a layer with `n_tokens` queries at positions [pos0, pos0 + n_tokens), the cache pages that
// KvCache would hold for it (sliding: from the window's first page), all filled.
bool make_setup(benchmark::State& state, const AttnShape& s, int pos0, int n_tokens, Setup& st) {
    const int end = pos0 + n_tokens;
    const int n_pages = (end + kPageTokens - 1) / kPageTokens;
    const int first_visible = s.window > 0 ? std::max(0, pos0 - s.window + 1) : 0;
    const int keep_from = first_visible / kPageTokens;
    const int live = n_pages - keep_from;

    st.kv.page_tokens = kPageTokens;
    st.kv.n_kv_heads = s.n_kv_heads;
    st.kv.head_dim = s.head_dim;
    st.kv.kv_type = KvType::f16;
    const size_t page_bytes = st.kv.page_bytes();

    // One random page, copied to every live page.
    std::vector<uint16_t> page(page_bytes / 2);
    {
        const std::vector<float> f = random_floats(page.size(), 7);
        for (size_t i = 0; i < page.size(); ++i) page[i] = f32_to_f16(f[i]);
    }
    if (!cuda_ok(state, cudaMalloc(&st.pool.ptr, page_bytes * live), "cudaMalloc pool")) return false;
    if (!cuda_ok(state, cudaMemcpy(st.pool.ptr, page.data(), page_bytes, cudaMemcpyHostToDevice), "upload page")) return false;
    for (int j = 1; j < live; ++j) {
        if (!cuda_ok(state, cudaMemcpy(st.pool.as<uint8_t>() + j * page_bytes, st.pool.ptr, page_bytes, cudaMemcpyDeviceToDevice),
                     "copy page")) {
            return false;
        }
    }
    std::vector<int> order(live);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(11));
    std::vector<void*> table(n_pages, nullptr);
    for (int j = keep_from; j < n_pages; ++j) table[j] = st.pool.as<uint8_t>() + order[j - keep_from] * page_bytes;
    if (!cuda_ok(state, cudaMalloc(&st.table.ptr, sizeof(void*) * n_pages), "cudaMalloc table")) return false;
    if (!cuda_ok(state, cudaMemcpy(st.table.ptr, table.data(), sizeof(void*) * n_pages, cudaMemcpyHostToDevice), "table")) {
        return false;
    }
    st.kv.pages = st.table.as<void*>();

    const size_t q_elems = static_cast<size_t>(n_tokens) * s.n_heads * s.head_dim;
    const size_t k_elems = static_cast<size_t>(n_tokens) * s.n_kv_heads * s.head_dim;
    const std::vector<float> q = random_floats(q_elems, 3);
    const std::vector<float> k = random_floats(k_elems, 5);
    std::vector<float> ones(s.head_dim, 1.0f);
    std::vector<float> freqs(s.head_dim / 2, 1e30f);
    std::fill(freqs.begin(), freqs.begin() + s.head_dim / 8, 1.0f);
    struct Upload {
        DeviceMemory& dst;
        const std::vector<float>& src;
    };
    for (const Upload& u : {Upload{st.q, q}, Upload{st.k, k}, Upload{st.q_norm, ones}, Upload{st.k_norm, ones},
                            Upload{st.rope_freqs, freqs}}) {
        if (!cuda_ok(state, cudaMalloc(&u.dst.ptr, u.src.size() * sizeof(float)), "cudaMalloc")) return false;
        if (!cuda_ok(state, cudaMemcpy(u.dst.ptr, u.src.data(), u.src.size() * sizeof(float), cudaMemcpyHostToDevice),
                     "upload")) {
            return false;
        }
    }
    if (!cuda_ok(state, cudaMalloc(&st.out.ptr, q_elems * sizeof(float)), "cudaMalloc out")) return false;

    int device = 0, l2_bytes = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device);
    st.flush_bytes = 2 * static_cast<size_t>(std::max(l2_bytes, 1 << 20));
    if (!cuda_ok(state, cudaMalloc(&st.flush.ptr, st.flush_bytes), "cudaMalloc flush")) return false;

    AttentionLayer& a = st.layer;
    a.n_heads = s.n_heads;
    a.n_kv_heads = s.n_kv_heads;
    a.head_dim = s.head_dim;
    a.rope_dims = s.head_dim;
    a.rope_base = s.rope_base;
    a.rope_freqs = s.window > 0 ? nullptr : st.rope_freqs.as<float>();
    a.q_norm = st.q_norm.as<float>();
    a.k_norm = st.k_norm.as<float>();
    a.window = s.window;
    a.scale = 1.0f;
    st.batch = BatchPositions{pos0, n_tokens, nullptr};

    for (int t = 0; t < n_tokens; ++t) {
        const int pq = pos0 + t;
        const int lo = s.window > 0 ? std::max(0, pq - s.window + 1) : 0;
        st.visible_pairs += pq - lo + 1;
    }
    st.keys_read = end - first_visible;
    // The context's stream is non-blocking: make the legacy-stream uploads land before it runs.
    return cuda_ok(state, cudaDeviceSynchronize(), "setup");
}

// Times `call` with CUDA events, L2 flushed before each iteration.
template <class Call>
void time_loop(benchmark::State& state, Setup& st, Call&& call) {
    cuda::Context& ctx = bench_context();
    const auto stream = static_cast<cudaStream_t>(ctx.stream());
    cudaEvent_t start, stop;
    if (!cuda_ok(state, cudaEventCreate(&start), "cudaEventCreate") || !cuda_ok(state, cudaEventCreate(&stop), "cudaEventCreate")) {
        return;
    }
    call(ctx);  // warm-up: module load, kernel attributes, scratch allocation
    if (cuda_ok(state, cudaStreamSynchronize(stream), "warm-up")) {
        for (auto _ : state) {
            cudaMemsetAsync(st.flush.ptr, 0, st.flush_bytes, stream);
            cudaEventRecord(start, stream);
            call(ctx);
            cudaEventRecord(stop, stream);
            if (!cuda_ok(state, cudaEventSynchronize(stop), "run")) break;
            float ms = 0.0f;
            cudaEventElapsedTime(&ms, start, stop);
            state.SetIterationTime(ms / 1e3);
        }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
}

void bm_attention(benchmark::State& state, AttnShape shape, int pos0, int n_tokens) {
    if (!have_device()) {
        state.SkipWithError("no CUDA device");
        return;
    }
    Setup st;
    if (!make_setup(state, shape, pos0, n_tokens, st)) return;
    time_loop(state, st, [&](cuda::Context& ctx) {
        cuda::attention(st.q.as<float>(), st.batch, st.layer, st.kv, st.out.as<float>(), ctx);
    });
    const double kv_bytes = static_cast<double>(st.keys_read) * shape.n_kv_heads * shape.head_dim * 2 /*K, V*/ * 2 /*f16*/;
    state.SetBytesProcessed(static_cast<int64_t>(kv_bytes * state.iterations()));
    state.counters["kv_MiB"] = kv_bytes / (1 << 20);
    state.counters["keys"] = static_cast<double>(st.keys_read);
    const double flops = 4.0 * shape.head_dim * shape.n_heads * static_cast<double>(st.visible_pairs);
    state.counters["TFLOP/s"] = benchmark::Counter(flops * state.iterations() / 1e12, benchmark::Counter::kIsRate);
}

void bm_prepare(benchmark::State& state, AttnShape shape, int pos0, int n_tokens) {
    if (!have_device()) {
        state.SkipWithError("no CUDA device");
        return;
    }
    Setup st;
    if (!make_setup(state, shape, pos0, n_tokens, st)) return;
    // q is rewritten in place every call; its values stay finite (unit RMS after the first call).
    time_loop(state, st, [&](cuda::Context& ctx) {
        cuda::attention_prepare(st.q.as<float>(), st.k.as<float>(), st.k.as<float>(), st.batch, st.layer, st.kv, ctx);
    });
    const double bytes = static_cast<double>(n_tokens) * shape.head_dim *
                         (2.0 * shape.n_heads * 4 + 2.0 * shape.n_kv_heads * 4 + 2.0 * shape.n_kv_heads * 2);
    state.SetBytesProcessed(static_cast<int64_t>(bytes * state.iterations()));
}

// The bandwidth ceiling: read + write of a 512 MiB device-to-device copy, counted as read + written bytes.
void bm_copy_ceiling(benchmark::State& state) {
    if (!have_device()) {
        state.SkipWithError("no CUDA device");
        return;
    }
    Setup st;
    DeviceMemory src, dst;
    if (!cuda_ok(state, cudaMalloc(&src.ptr, kCopyCeilingBytes), "cudaMalloc") ||
        !cuda_ok(state, cudaMalloc(&dst.ptr, kCopyCeilingBytes), "cudaMalloc") ||
        !cuda_ok(state, cudaMemset(src.ptr, 0x3C, kCopyCeilingBytes), "cudaMemset") ||
        !cuda_ok(state, cudaDeviceSynchronize(), "cudaMemset")) {
        return;
    }
    st.flush_bytes = 1 << 20;
    if (!cuda_ok(state, cudaMalloc(&st.flush.ptr, st.flush_bytes), "cudaMalloc")) return;
    time_loop(state, st, [&](cuda::Context& ctx) {
        cudaMemcpyAsync(dst.ptr, src.ptr, kCopyCeilingBytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(ctx.stream()));
    });
    state.SetBytesProcessed(static_cast<int64_t>(2.0 * kCopyCeilingBytes * state.iterations()));
}

void register_all() {
    const auto reg = [](const std::string& name, auto fn, auto... args) {
        benchmark::RegisterBenchmark(name.c_str(), fn, args...)->UseManualTime()->Unit(benchmark::kMicrosecond);
    };
    reg("attention/ceiling/d2d_copy_512MiB", bm_copy_ceiling);
    for (const int len : {4096, 32768, 131072, 262144}) {
        reg(std::string("attention/decode/") + kFullLayer.name + "/keys_" + std::to_string(len), bm_attention, kFullLayer,
            len - 1, 1);
    }
    reg(std::string("attention/decode/") + kSlidingLayer.name + "/window_1024_at_" + std::to_string(kSlidingDecodeDepth),
        bm_attention, kSlidingLayer, kSlidingDecodeDepth - 1, 1);
    for (const AttnShape& s : {kFullLayer, kSlidingLayer}) {
        for (const int depth : {0, 32768}) {
            reg(std::string("attention/prefill_512/") + s.name + "/depth_" + std::to_string(depth), bm_attention, s, depth,
                512);
        }
        for (const int n : {1, 512}) {
            reg(std::string("attention/prepare/") + s.name + "/tokens_" + std::to_string(n), bm_prepare, s, 4096, n);
        }
    }
}

[[maybe_unused]] const bool kRegistered = (register_all(), true);

}  // namespace
}  // namespace gemma4

#endif  // GEMMA4_HAVE_CUDA
