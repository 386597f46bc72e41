// CUDA attention (cuda/attention.cu) against the CPU reference (cpu/attention.cpp), seeded random inputs.
//
// Every case builds one layer's paged cache twice, on the host for the CPU and on the device for CUDA,
// with the same layout: the page table is built the way KvCache builds it (sliding layers: null
// entries below the window; past the batch: null), physical pages come from a pool in shuffled order
// with a few never-used pages, and every byte starts as NaN. Positions the batch may see before pos0
// get random K/V history. Then, per case:
//   1. attention_prepare on both sides: q (in place) and the written K/V slots are compared, and every
//      other byte of the device pool must be unchanged (still the NaN poison or the history);
//   2. attention on both sides from the same inputs (the CPU's prepared q and cache are uploaded), the
//      output poisoned with NaN beforehand, compared with the tolerance of the path the batch takes;
//   3. a uniform probe: q = 0 and V set to multiples of 1/16, so every visible key gets weight exactly 1
//      and every partial sum is exact in f32 on both sides: the output is the mean of the visible V
//      rows to within the final rounding, and one key too many or too few shows. This checks the
//      masks (causal, window, media groups, partitions) independently of f16 rounding.
// Shapes: Gemma 4 12B sliding (16 heads, 8 KV heads, head_dim 256, window 1024) and full (16 heads,
// 1 KV head, head_dim 512, proportional RoPE through rope_freqs), and the tiny/small synthetic presets
// (head_dim 64 / 128), with page sizes 256 and 16 (pages shorter than the kernel's 32-key tiles).
#ifdef GEMMA4_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cuda/ops.h"
#include "gemma4/error.h"
#include "quant/fp16.h"

namespace gemma4 {
namespace {

// ---------------------------------------------------------------------------------------------------
// Tolerances: |got - want| <= atol + rtol * |want| per element, and sum(err^2) / sum(want^2) <= nmse.

struct Tol {
    double atol;
    double rtol;
    double nmse;
};

// q and f32 K after prepare: the RoPE angles are bit-identical to the CPU's (same recurrence, same host
// powf), the rotation uses the same fmaf pattern, but sincosf may differ by an ulp or two: |x| <= ~6 at
// most here, times 2 ulps of cos/sin (2 * 6e-8), on each of the two terms.
constexpr Tol kPrepareTol{4e-6, 1e-6, 1e-11};
// f16 K: both sides round f32 values that agree to a few ulps, so an element may land one f16 ulp
// apart where they straddle a rounding boundary. V (no RoPE; the same products) must be bit-identical.
constexpr int kF16KeyMaxUlps = 1;
// Decode (n_tokens <= 4: the exact path): Q and P enter the tensor cores as f16 hi + lo pairs (22
// significant bits), sums in f32. Scores agree to ~2e-5 absolute (f32 sums of up to 512 products in
// different orders, tensor-core alignment truncation), so the softmax weights to ~2e-5 relative and
// outputs to <= 2e-5 * max|v - o| (|v| <= 2 here) ~ 1e-4.
constexpr Tol kExactTol{2e-4, 2e-4, 1e-8};
// Prefill (the f16 path) against the CPU fed the same f16-rounded q (and, for an f32 cache, f16-rounded
// K and V), which is what the kernel's operands are: only P is rounded, relative 2^-11 per weight, and
// the row sum uses the rounded weights, so |err| <= 2^-11 * max|v - o| <= 2^-11 * 4 = 2e-3.
constexpr Tol kF16PathTol{3e-3, 0.0, 1e-6};
// Prefill against the unrounded CPU reference ("same answers"): q rounding moves a score by at most
// 2^-11 * sum|q_d k_d| (~0.025 at head_dim 512 here), and the output by that times max|v - o|.
constexpr Tol kF16VsExactTol{1e-1, 0.0, 1e-4};
// Uniform probe: all partial sums are exact in f32; only the final division by the key count rounds.
constexpr Tol kProbeTol{1e-7, 1e-6, 1e-12};

// attention.cu's kDecodeMaxTokens: batches up to this many tokens take the exact (hi + lo) path.
constexpr int kExactPathMaxTokens = 4;

constexpr int kSparePages = 3;        // never-used pool pages (NaN): stray reads would poison outputs
constexpr int kExtraTableEntries = 2; // null table entries past the last page, as in KvCache's table
constexpr float kHistoryRange = 2.0f; // history K/V ~ U(-2, 2): the scale of rms-normed vectors
constexpr float kProbeStep = 1.0f / 16.0f;

// ---------------------------------------------------------------------------------------------------
// Device helpers

void cuda_ok(cudaError_t err, const char* what) {
    INFO(what << ": " << cudaGetErrorString(err));
    REQUIRE(err == cudaSuccess);
}

bool have_cuda_device() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return n > 0;
}

class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t bytes) : bytes_(bytes) { cuda_ok(cudaMalloc(&ptr_, std::max<size_t>(bytes, 16)), "cudaMalloc"); }
    ~DeviceBuffer() { cudaFree(ptr_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    template <class T>
    T* as() const {
        return static_cast<T*>(ptr_);
    }
    size_t bytes() const { return bytes_; }
    // The context's stream is non-blocking: it is not ordered after the legacy stream's copies and
    // memsets, so every upload and poison waits for the device before the kernels run.
    void upload(const void* src, size_t bytes) {
        cuda_ok(cudaMemcpy(ptr_, src, bytes, cudaMemcpyHostToDevice), "upload");
        cuda_ok(cudaDeviceSynchronize(), "upload");
    }
    void download(void* dst, size_t bytes) const {
        cuda_ok(cudaDeviceSynchronize(), "download");
        cuda_ok(cudaMemcpy(dst, ptr_, bytes, cudaMemcpyDeviceToHost), "download");
    }
    void poison() {  // 0xFFFFFFFF: a NaN
        cuda_ok(cudaMemset(ptr_, 0xFF, bytes_), "cudaMemset");
        cuda_ok(cudaDeviceSynchronize(), "cudaMemset");
    }

private:
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
};

template <class T>
std::unique_ptr<DeviceBuffer> to_device(const std::vector<T>& v) {
    auto b = std::make_unique<DeviceBuffer>(v.size() * sizeof(T));
    b->upload(v.data(), v.size() * sizeof(T));
    return b;
}

template <class T>
std::vector<T> from_device(const DeviceBuffer& b, size_t n) {
    std::vector<T> v(n);
    b.download(v.data(), n * sizeof(T));
    return v;
}

cuda::Context& test_context() {
    static std::unique_ptr<cuda::Context> ctx(cuda::Context::create(0));
    return *ctx;
}

cpu::ThreadPool& test_pool() {
    static cpu::ThreadPool pool;
    return pool;
}

float round_f16(float x) { return f16_to_f32(f32_to_f16(x)); }

// ---------------------------------------------------------------------------------------------------
// Layers

struct LayerSpec {
    const char* name;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int window;        // 0 = full causal
    float rope_base;
    bool proportional; // full layers: rope_freqs = 1 for the first quarter of the pairs, 1e30 after
};

const LayerSpec k12bSliding{"12b sliding", 16, 8, 256, 1024, 1e4f, false};
const LayerSpec k12bFull{"12b full", 16, 1, 512, 0, 1e6f, true};
const LayerSpec kTinySliding{"tiny sliding", 4, 2, 64, 16, 1e4f, false};
const LayerSpec kTinyFull{"tiny full", 4, 1, 128, 0, 1e6f, true};
const LayerSpec kSmallSliding{"small sliding", 8, 4, 64, 128, 1e4f, false};
const LayerSpec kSmallFull{"small full", 8, 1, 128, 0, 1e6f, true};

struct LayerWeights {
    std::vector<float> q_norm, k_norm, rope_freqs;
    std::unique_ptr<DeviceBuffer> d_q_norm, d_k_norm, d_rope_freqs;
    AttentionLayer host, device;
};

// q_norm ~ U(0.05, 0.3), k_norm ~ U(0.5, 1.5): scores q.k ~ N(0, ~3^2) at head_dim 256..512, so the
// softmax is neither one-hot nor flat.
LayerWeights make_weights(const LayerSpec& spec, std::mt19937_64& rng) {
    LayerWeights w;
    std::uniform_real_distribution<float> qd(0.05f, 0.3f), kd(0.5f, 1.5f);
    w.q_norm.resize(spec.head_dim);
    w.k_norm.resize(spec.head_dim);
    for (float& x : w.q_norm) x = qd(rng);
    for (float& x : w.k_norm) x = kd(rng);
    w.d_q_norm = to_device(w.q_norm);
    w.d_k_norm = to_device(w.k_norm);
    AttentionLayer a;
    a.n_heads = spec.n_heads;
    a.n_kv_heads = spec.n_kv_heads;
    a.head_dim = spec.head_dim;
    a.rope_dims = spec.head_dim;
    a.rope_base = spec.rope_base;
    a.rms_eps = 1e-6f;
    a.window = spec.window;
    a.scale = 1.0f;
    w.host = a;
    w.device = a;
    if (spec.proportional) {
        const int pairs = spec.head_dim / 2;
        w.rope_freqs.assign(pairs, 1e30f);
        std::fill(w.rope_freqs.begin(), w.rope_freqs.begin() + pairs / 4, 1.0f);
        w.d_rope_freqs = to_device(w.rope_freqs);
        w.host.rope_freqs = w.rope_freqs.data();
        w.device.rope_freqs = w.d_rope_freqs->as<float>();
    }
    w.host.q_norm = w.q_norm.data();
    w.host.k_norm = w.k_norm.data();
    w.device.q_norm = w.d_q_norm->as<float>();
    w.device.k_norm = w.d_k_norm->as<float>();
    return w;
}

// ---------------------------------------------------------------------------------------------------
// One layer's paged cache, mirrored on host and device with identical layouts.

class MirroredCache {
public:
    MirroredCache(const LayerSpec& spec, KvType type, int page_tokens, int pos0, int n_tokens, std::mt19937_64& rng)
        : spec_(spec), pos0_(pos0), n_tokens_(n_tokens) {
        shape_.page_tokens = page_tokens;
        shape_.n_kv_heads = spec.n_kv_heads;
        shape_.head_dim = spec.head_dim;
        shape_.kv_type = type;
        page_bytes_ = shape_.page_bytes();
        const int end = pos0 + n_tokens;
        n_pages_ = (end + page_tokens - 1) / page_tokens;
        // KvCache::prepare: a sliding layer drops every page below the one holding pos0 - window + 1.
        first_visible_ = spec.window > 0 ? std::max(0, pos0 - spec.window + 1) : 0;
        const int keep_from = first_visible_ / page_tokens;
        const int live = n_pages_ - keep_from;
        n_phys_ = live + kSparePages;
        std::vector<int> slots(n_phys_);
        std::iota(slots.begin(), slots.end(), 0);
        std::shuffle(slots.begin(), slots.end(), rng);

        host_pool_.resize(static_cast<size_t>(n_phys_) * page_bytes_);
        if (type == KvType::f16) {
            const uint16_t nan = 0x7E00;
            auto* h = reinterpret_cast<uint16_t*>(host_pool_.data());
            std::fill(h, h + host_pool_.size() / 2, nan);
        } else {
            const float nan = std::numeric_limits<float>::quiet_NaN();
            auto* f = reinterpret_cast<float*>(host_pool_.data());
            std::fill(f, f + host_pool_.size() / 4, nan);
        }
        device_pool_ = std::make_unique<DeviceBuffer>(host_pool_.size());

        phys_of_page_.assign(n_pages_, -1);
        logical_of_phys_.assign(n_phys_, -1);
        for (int j = keep_from; j < n_pages_; ++j) {
            phys_of_page_[j] = slots[j - keep_from];
            logical_of_phys_[slots[j - keep_from]] = j;
        }
        const size_t table_len = n_pages_ + kExtraTableEntries;
        host_table_.assign(table_len, nullptr);
        std::vector<void*> device_table(table_len, nullptr);
        for (int j = 0; j < n_pages_; ++j) {
            if (phys_of_page_[j] < 0) continue;
            const size_t off = static_cast<size_t>(phys_of_page_[j]) * page_bytes_;
            host_table_[j] = host_pool_.data() + off;
            device_table[j] = device_pool_->as<uint8_t>() + off;
        }
        device_table_ = to_device(device_table);
    }

    const KvLayerView& shape() const { return shape_; }
    int first_visible() const { return first_visible_; }
    int n_phys() const { return n_phys_; }
    int logical_of_phys(int phys) const { return logical_of_phys_[phys]; }
    size_t page_bytes() const { return page_bytes_; }
    std::vector<uint8_t>& host_pool() { return host_pool_; }

    KvLayerView host_view() const {
        KvLayerView v = shape_;
        v.pages = host_table_.data();
        return v;
    }
    KvLayerView device_view() const {
        KvLayerView v = shape_;
        v.pages = device_table_->as<void*>();
        return v;
    }
    // A host view of another pool with this layout (the f16-rounded copy of the f32 cache).
    KvLayerView host_view_of(std::vector<uint8_t>& pool, std::vector<void*>& table) const {
        table.assign(host_table_.size(), nullptr);
        for (int j = 0; j < n_pages_; ++j) {
            if (phys_of_page_[j] >= 0) table[j] = pool.data() + static_cast<size_t>(phys_of_page_[j]) * page_bytes_;
        }
        KvLayerView v = shape_;
        v.pages = table.data();
        return v;
    }

    void upload() { device_pool_->upload(host_pool_.data(), host_pool_.size()); }
    std::vector<uint8_t> download() const { return from_device<uint8_t>(*device_pool_, host_pool_.size()); }

    // Byte offset of row (pos, kv head g) of K (half 0) or V (half 1) in the pool.
    size_t row_offset(int pos, int g, int half) const {
        const int phys = phys_of_page_.at(pos / shape_.page_tokens);
        REQUIRE(phys >= 0);
        const size_t slot = static_cast<size_t>(g) * shape_.page_tokens + pos % shape_.page_tokens;
        return static_cast<size_t>(phys) * page_bytes_ + half * shape_.half_page_bytes() +
               slot * shape_.head_dim * shape_.elem_bytes();
    }
    void set(size_t row_off, int d, float v) {
        uint8_t* p = host_pool_.data() + row_off;
        if (shape_.kv_type == KvType::f16) {
            const uint16_t h = f32_to_f16(v);
            std::memcpy(p + 2 * d, &h, 2);
        } else {
            std::memcpy(p + 4 * d, &v, 4);
        }
    }

    // Random K/V for positions [lo, hi) of every KV head (history written by earlier batches).
    void fill_history(int lo, int hi, uint64_t seed) {
        uint64_t s = seed | 1;
        const auto next = [&s] {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            return (static_cast<float>(s >> 40) * 0x1p-24f * 2.0f - 1.0f) * kHistoryRange;
        };
        for (int pos = lo; pos < hi; ++pos) {
            for (int g = 0; g < shape_.n_kv_heads; ++g) {
                for (int half = 0; half < 2; ++half) {
                    const size_t off = row_offset(pos, g, half);
                    for (int d = 0; d < shape_.head_dim; ++d) set(off, d, next());
                }
            }
        }
    }

    // The probe's V: multiples of 1/16 in [1/16, 1], exact in f16, exactly summable in f32.
    void set_probe_values(int lo, int hi) {
        for (int pos = lo; pos < hi; ++pos) {
            for (int g = 0; g < shape_.n_kv_heads; ++g) {
                const size_t off = row_offset(pos, g, 1);
                for (int d = 0; d < shape_.head_dim; ++d) {
                    set(off, d, static_cast<float>((pos * 5 + d * 3 + g * 11) % 16 + 1) * kProbeStep);
                }
            }
        }
    }

private:
    LayerSpec spec_;
    int pos0_;
    int n_tokens_;
    KvLayerView shape_;
    size_t page_bytes_ = 0;
    int n_pages_ = 0;
    int n_phys_ = 0;
    int first_visible_ = 0;
    std::vector<int> phys_of_page_;
    std::vector<int> logical_of_phys_;
    std::vector<uint8_t> host_pool_;
    std::vector<void*> host_table_;
    std::unique_ptr<DeviceBuffer> device_pool_;
    std::unique_ptr<DeviceBuffer> device_table_;
};

// ---------------------------------------------------------------------------------------------------
// Comparisons

void check_values(const std::vector<float>& got, const std::vector<float>& want, const Tol& tol, const std::string& what) {
    REQUIRE(got.size() == want.size());
    size_t n_nonfinite = 0, n_bad = 0, worst = 0;
    double worst_excess = -1.0, err2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (!std::isfinite(got[i]) || !std::isfinite(want[i])) {
            ++n_nonfinite;
            worst = i;
            continue;
        }
        const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
        err2 += d * d;
        ref2 += static_cast<double>(want[i]) * want[i];
        const double limit = tol.atol + tol.rtol * std::fabs(want[i]);
        if (d > limit) {
            ++n_bad;
            if (d - limit > worst_excess) {
                worst_excess = d - limit;
                worst = i;
            }
        }
    }
    const double nmse = ref2 > 0.0 ? err2 / ref2 : err2;
    INFO(what << ": " << n_nonfinite << " non-finite, " << n_bad << " of " << got.size() << " outside " << tol.atol
              << " + " << tol.rtol << " * |want| (worst at " << worst << ": got " << got[worst] << ", want "
              << want[worst] << "); nmse " << nmse << " (limit " << tol.nmse << ")");
    CHECK(n_nonfinite == 0);
    CHECK(n_bad == 0);
    CHECK(nmse <= tol.nmse);
}

// Device pool after prepare against the CPU's: written slots within tolerance (K) or identical (V),
// every other byte identical (nothing written outside the batch's slots).
void check_cache(const MirroredCache& cache, const std::vector<uint8_t>& want, const std::vector<uint8_t>& got,
                 int pos0, int n_tokens) {
    const KvLayerView& s = cache.shape();
    const int hd = s.head_dim;
    const size_t row_bytes = static_cast<size_t>(hd) * s.elem_bytes();
    size_t stray_rows = 0, key_bad = 0, inexact = 0, value_bad = 0, checked = 0;
    std::string first;
    for (int phys = 0; phys < cache.n_phys(); ++phys) {
        const int page = cache.logical_of_phys(phys);
        for (int half = 0; half < 2; ++half) {
            for (int g = 0; g < s.n_kv_heads; ++g) {
                for (int slot = 0; slot < s.page_tokens; ++slot) {
                    const size_t off = static_cast<size_t>(phys) * cache.page_bytes() + half * s.half_page_bytes() +
                                       (static_cast<size_t>(g) * s.page_tokens + slot) * row_bytes;
                    const int pos = page * s.page_tokens + slot;
                    const bool written = page >= 0 && pos >= pos0 && pos < pos0 + n_tokens;
                    if (!written) {
                        if (std::memcmp(got.data() + off, want.data() + off, row_bytes) != 0) {
                            ++stray_rows;
                            if (first.empty()) first = "stray write at page " + std::to_string(page) + " slot " + std::to_string(slot);
                        }
                        continue;
                    }
                    for (int d = 0; d < hd; ++d) {
                        ++checked;
                        bool ok;
                        bool exact;
                        float gv, wv;
                        if (s.kv_type == KvType::f16) {
                            uint16_t a, b;
                            std::memcpy(&a, got.data() + off + 2 * d, 2);
                            std::memcpy(&b, want.data() + off + 2 * d, 2);
                            gv = f16_to_f32(a);
                            wv = f16_to_f32(b);
                            exact = a == b;
                            const bool same_sign = (a & 0x8000) == (b & 0x8000);
                            // Near zero, RoPE cancels O(1) terms: the f32 values then differ by up to
                            // kPrepareTol.atol in absolute terms, which can span several f16 subnormal ulps.
                            ok = exact || (same_sign && std::abs(int{a} - int{b}) <= kF16KeyMaxUlps) ||
                                 std::fabs(gv - wv) <= kPrepareTol.atol;
                        } else {
                            std::memcpy(&gv, got.data() + off + 4 * d, 4);
                            std::memcpy(&wv, want.data() + off + 4 * d, 4);
                            exact = std::memcmp(&gv, &wv, 4) == 0;
                            ok = std::fabs(gv - wv) <= kPrepareTol.atol + kPrepareTol.rtol * std::fabs(wv);
                        }
                        if (half == 1) ok = exact;  // V: the same f32 products on both sides
                        if (!exact) ++inexact;
                        if (!ok) {
                            ++(half == 0 ? key_bad : value_bad);
                            if (first.empty()) {
                                std::ostringstream os;
                                os << (half ? "V" : "K") << " pos " << pos << " head " << g << " dim " << d << ": got "
                                   << gv << ", want " << wv;
                                first = os.str();
                            }
                        }
                    }
                }
            }
        }
    }
    INFO("cache: " << checked << " written elements, " << inexact << " not bit-identical; first problem: " << first);
    CHECK(stray_rows == 0);
    CHECK(key_bad == 0);
    CHECK(value_bad == 0);
    // f16: a last-bit sincosf difference changes the rounded value only at a rounding boundary
    // (probability ~2^-12 per element), so almost every element is bit-identical.
    if (s.kv_type == KvType::f16) CHECK(inexact <= 2 + checked / 1000);
}

// ---------------------------------------------------------------------------------------------------
// One case

struct Case {
    const LayerSpec* spec = nullptr;
    KvType kv_type = KvType::f16;
    int pos0 = 0;
    int n_tokens = 1;
    int page_tokens = 256;
    std::vector<int32_t> groups;  // empty: no media groups
    bool probe = true;
    int max_positions = 0;        // > 0: graph-replay mode, the GPU reads pos0 from device memory
};

// A batch of n_tokens at pos0 on `spec` with default pages, no groups, with the probe.
Case batch(const LayerSpec& spec, KvType kv_type, int pos0, int n_tokens) {
    Case c;
    c.spec = &spec;
    c.kv_type = kv_type;
    c.pos0 = pos0;
    c.n_tokens = n_tokens;
    return c;
}

const char* kv_name(KvType t) { return t == KvType::f16 ? "f16" : "f32"; }

void run_case(const Case& c, uint64_t seed) {
    const LayerSpec& spec = *c.spec;
    const std::string layer = spec.name;
    const std::string kv = kv_name(c.kv_type);
    CAPTURE(layer, kv, c.pos0, c.n_tokens, c.page_tokens, c.groups.size(), seed);
    std::mt19937_64 rng(seed);
    cuda::Context& ctx = test_context();
    cpu::ThreadPool& pool = test_pool();

    LayerWeights w = make_weights(spec, rng);
    MirroredCache cache(spec, c.kv_type, c.page_tokens, c.pos0, c.n_tokens, rng);
    cache.fill_history(cache.first_visible(), c.pos0, rng());
    cache.upload();

    const int hd = spec.head_dim;
    const size_t q_elems = static_cast<size_t>(c.n_tokens) * spec.n_heads * hd;
    const size_t kv_elems = static_cast<size_t>(c.n_tokens) * spec.n_kv_heads * hd;
    std::uniform_real_distribution<float> input(-2.0f, 2.0f);
    std::vector<float> q(q_elems), k(kv_elems), v(kv_elems);
    for (float& x : q) x = input(rng);
    for (float& x : k) x = input(rng);
    for (float& x : v) x = input(rng);
    const bool v_is_k = spec.n_kv_heads == 1;  // Gemma 4 full layers reuse the K projection as V
    auto dq = to_device(q);
    auto dk = to_device(k);
    auto dv = to_device(v);

    BatchPositions bh{c.pos0, c.n_tokens, nullptr};
    BatchPositions bd = bh;
    std::unique_ptr<DeviceBuffer> dpos0;
    if (c.max_positions > 0) {
        // Graph replay: the launch may only depend on max_positions; a wrong host pos0 proves the
        // kernels read the device copy.
        dpos0 = to_device(std::vector<int32_t>{c.pos0});
        bd.pos0_device = dpos0->as<int32_t>();
        bd.max_positions = c.max_positions;
        bd.pos0 = 0;
    }
    std::unique_ptr<DeviceBuffer> dgroups;
    if (!c.groups.empty()) {
        REQUIRE(c.groups.size() == static_cast<size_t>(c.n_tokens));
        dgroups = to_device(c.groups);
        bh.groups = c.groups.data();
        bd.groups = dgroups->as<int32_t>();
    }

    // 1. prepare
    std::vector<float> q_cpu = q;
    cpu::attention_prepare(q_cpu.data(), k.data(), v_is_k ? k.data() : v.data(), bh, w.host, cache.host_view(), pool);
    cuda::attention_prepare(dq->as<float>(), dk->as<float>(), v_is_k ? dk->as<float>() : dv->as<float>(), bd, w.device,
                            cache.device_view(), ctx);
    ctx.synchronize();
    check_values(from_device<float>(*dq, q_elems), q_cpu, kPrepareTol, "prepared q");
    check_cache(cache, cache.host_pool(), cache.download(), c.pos0, c.n_tokens);

    // 2. attention from the same inputs
    cache.upload();
    dq->upload(q_cpu.data(), q_elems * sizeof(float));
    DeviceBuffer dout(q_elems * sizeof(float));
    const auto run_gpu = [&] {
        dout.poison();
        cuda::attention(dq->as<float>(), bd, w.device, cache.device_view(), dout.as<float>(), ctx);
        ctx.synchronize();
        return from_device<float>(dout, q_elems);
    };
    const auto run_cpu = [&](const std::vector<float>& qh, const KvLayerView& view) {
        std::vector<float> out(q_elems, std::numeric_limits<float>::quiet_NaN());
        cpu::attention(qh.data(), bh, w.host, view, out.data(), pool);
        return out;
    };
    const std::vector<float> got = run_gpu();
    const std::vector<float> want = run_cpu(q_cpu, cache.host_view());
    if (c.n_tokens <= kExactPathMaxTokens) {
        check_values(got, want, kExactTol, "decode output");
    } else {
        std::vector<float> q_r = q_cpu;
        for (float& x : q_r) x = round_f16(x);
        std::vector<uint8_t> pool_r;
        std::vector<void*> table_r;
        KvLayerView view_r = cache.host_view();
        if (c.kv_type == KvType::f32) {
            pool_r = cache.host_pool();
            auto* f = reinterpret_cast<float*>(pool_r.data());
            for (size_t i = 0; i < pool_r.size() / 4; ++i) f[i] = round_f16(f[i]);  // NaN stays NaN
            view_r = cache.host_view_of(pool_r, table_r);
        }
        check_values(got, run_cpu(q_r, view_r), kF16PathTol, "prefill output vs f16-rounded operands");
        check_values(got, want, kF16VsExactTol, "prefill output vs exact reference");
    }

    // 3. uniform probe
    if (c.probe) {
        cache.set_probe_values(cache.first_visible(), c.pos0 + c.n_tokens);
        cache.upload();
        const std::vector<float> zeros(q_elems, 0.0f);
        dq->upload(zeros.data(), q_elems * sizeof(float));
        check_values(run_gpu(), run_cpu(zeros, cache.host_view()), kProbeTol, "uniform probe");
    }
}

uint64_t case_seed(uint64_t base, int i) { return base * 1000003u + static_cast<uint64_t>(i); }

// ---------------------------------------------------------------------------------------------------
// Cases

TEST_CASE("cuda attention: decode at page edges, 12b sliding layer", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    int i = 0;
    for (const KvType t : {KvType::f16, KvType::f32}) {
        for (const int len : {1, 255, 256, 257, 1023, 1024, 1025, 5000}) {
            Case c = batch(k12bSliding, t, len - 1, 1);
            run_case(c, case_seed(11, i++));
        }
    }
}

TEST_CASE("cuda attention: decode at page edges, 12b full layer", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    int i = 0;
    for (const int len : {1, 255, 256, 257, 1023, 1024, 1025, 5000, 32768}) {
        run_case(batch(k12bFull, KvType::f16, len - 1, 1), case_seed(12, i++));
    }
    for (const int len : {1, 257, 1025, 5000}) {
        run_case(batch(k12bFull, KvType::f32, len - 1, 1), case_seed(12, i++));
    }
}

TEST_CASE("cuda attention: decode on the small presets, pages of 16 tokens", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    int i = 0;
    for (const LayerSpec* spec : {&kTinySliding, &kTinyFull, &kSmallSliding, &kSmallFull}) {
        for (const KvType t : {KvType::f16, KvType::f32}) {
            for (const int len : {1, 15, 16, 17, 33, 300}) {
                Case c = batch(*spec, t, len - 1, 1);
                c.page_tokens = 16;
                run_case(c, case_seed(13, i++));
            }
        }
    }
}

TEST_CASE("cuda attention: decode at 262144 keys, 12b full layer", "[kernel][cuda][slow]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    Case c = batch(k12bFull, KvType::f16, 262144 - 1, 1);
    c.probe = false;  // the exact probe is covered at 32768; here one key is 4e-6 of the mean
    run_case(c, case_seed(14, 0));
}

TEST_CASE("cuda attention: 2-4 token batches (exact path)", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    int i = 0;
    run_case(batch(k12bSliding, KvType::f16, 1022, 3), case_seed(15, i++));
    run_case(batch(k12bSliding, KvType::f32, 2000, 4), case_seed(15, i++));
    run_case(batch(k12bFull, KvType::f16, 300, 4), case_seed(15, i++));
    run_case(batch(k12bFull, KvType::f16, 255, 2), case_seed(15, i++));
    Case tiny = batch(kTinySliding, KvType::f16, 20, 3);
    tiny.page_tokens = 16;
    run_case(tiny, case_seed(15, i++));
}

TEST_CASE("cuda attention: prefill batches", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    int i = 0;
    // pos0 > window: sliding pages below the window were recycled (null table entries).
    const std::pair<int, int> sliding_batches[] = {{7, 0}, {64, 300}, {512, 0}, {512, 1500}, {64, 5000}};
    for (const auto& [n, pos0] : sliding_batches) run_case(batch(k12bSliding, KvType::f16, pos0, n), case_seed(16, i++));
    const std::pair<int, int> full_batches[] = {{7, 0}, {64, 1000}, {512, 0}, {512, 700}};
    for (const auto& [n, pos0] : full_batches) run_case(batch(k12bFull, KvType::f16, pos0, n), case_seed(16, i++));
    run_case(batch(k12bSliding, KvType::f32, 1500, 512), case_seed(16, i++));
    run_case(batch(k12bFull, KvType::f32, 1000, 64), case_seed(16, i++));
    Case paged16 = batch(k12bSliding, KvType::f16, 1100, 64);
    paged16.page_tokens = 16;
    run_case(paged16, case_seed(16, i++));
    const std::pair<int, int> small_batches[] = {{40, 0}, {130, 200}};
    for (const LayerSpec* spec : {&kTinySliding, &kTinyFull, &kSmallSliding, &kSmallFull}) {
        for (const auto& [n, pos0] : small_batches) {
            Case c = batch(*spec, KvType::f16, pos0, n);
            c.page_tokens = 16;
            run_case(c, case_seed(16, i++));
        }
    }
}

// Small prefill batches of the 12B full layer (head_dim 512: 16 warps of 64 dims, the slice softmax) and sliding
// layer, sized for compute-sanitizer racecheck (scripts/device.sh runs it on this case).
TEST_CASE("cuda attention: small prefill batches at the 12b shapes", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    int i = 0;
    const std::pair<int, int> full_batches[] = {{5, 0}, {7, 90}, {33, 31}};
    for (const auto& [n, pos0] : full_batches) run_case(batch(k12bFull, KvType::f16, pos0, n), case_seed(19, i++));
    run_case(batch(k12bFull, KvType::f32, 40, 9), case_seed(19, i++));
    Case paged = batch(k12bFull, KvType::f16, 61, 12);
    paged.page_tokens = 16;
    run_case(paged, case_seed(19, i++));
    run_case(batch(k12bSliding, KvType::f16, 20, 9), case_seed(19, i++));
}

TEST_CASE("cuda attention: image groups are bidirectional on sliding layers, causal on full layers", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    int i = 0;
    // A 300-token image and a 20-token one inside a 512-token batch that starts past the window.
    std::vector<int32_t> groups(512, -1);
    std::fill(groups.begin() + 100, groups.begin() + 400, 0);
    std::fill(groups.begin() + 450, groups.begin() + 470, 1);
    for (const LayerSpec* spec : {&k12bSliding, &k12bFull}) {
        Case c = batch(*spec, KvType::f16, 900, 512);
        c.groups = groups;
        run_case(c, case_seed(17, i++));
    }
    // Window 16 inside a 50-token image: the window still bites for earlier keys of the same image.
    std::vector<int32_t> tiny_groups(80, -1);
    std::fill(tiny_groups.begin() + 10, tiny_groups.begin() + 60, 3);
    for (const LayerSpec* spec : {&kTinySliding, &kTinyFull}) {
        Case c = batch(*spec, KvType::f32, 30, 80);
        c.page_tokens = 16;
        c.groups = tiny_groups;
        run_case(c, case_seed(17, i++));
    }
    // A decode-sized batch that is all one image (exact path with groups).
    Case small = batch(kTinySliding, KvType::f16, 40, 3);
    small.page_tokens = 16;
    small.groups = {5, 5, 5};
    run_case(small, case_seed(17, i++));
}

TEST_CASE("cuda attention: graph replay reads pos0 from device memory", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    int i = 0;
    struct Step {
        const LayerSpec* spec;
        int pos0, capacity;
    };
    for (const Step& s : {Step{&k12bSliding, 0, 8192}, Step{&k12bSliding, 1500, 8192}, Step{&k12bSliding, 5000, 8192},
                          Step{&k12bFull, 0, 40000}, Step{&k12bFull, 300, 40000}, Step{&k12bFull, 32767, 40000}}) {
        Case c = batch(*s.spec, KvType::f16, s.pos0, 1);
        c.max_positions = s.capacity;
        run_case(c, case_seed(77, i++));
    }
}

TEST_CASE("cuda attention: unsupported shapes throw invalid_argument", "[kernel][cuda]") {
    if (!have_cuda_device()) {
        WARN("no CUDA device: skipped");
        return;
    }
    cuda::Context& ctx = test_context();
    DeviceBuffer buf(1 << 20);
    std::vector<void*> table(4, buf.as<void>());
    auto dtable = to_device(table);
    const auto expect_invalid = [](auto&& call) {
        try {
            call();
            FAIL("no exception");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::invalid_argument);
        }
    };
    for (const int hd : {96, 32, 1024}) {
        CAPTURE(hd);
        AttentionLayer a;
        a.n_heads = 4;
        a.n_kv_heads = 2;
        a.head_dim = hd;
        a.rope_dims = hd;
        a.q_norm = buf.as<float>();
        a.k_norm = buf.as<float>();
        KvLayerView kv;
        kv.pages = dtable->as<void*>();
        kv.page_tokens = 16;
        kv.n_kv_heads = 2;
        kv.head_dim = hd;
        const BatchPositions b{0, 1, nullptr};
        expect_invalid([&] { cuda::attention(buf.as<float>(), b, a, kv, buf.as<float>(), ctx); });
        expect_invalid([&] { cuda::attention_prepare(buf.as<float>(), buf.as<float>(), buf.as<float>(), b, a, kv, ctx); });
    }
    AttentionLayer a;  // 6 heads over 4 KV heads
    a.n_heads = 6;
    a.n_kv_heads = 4;
    a.head_dim = 64;
    KvLayerView kv;
    kv.pages = dtable->as<void*>();
    kv.page_tokens = 16;
    kv.n_kv_heads = 4;
    kv.head_dim = 64;
    expect_invalid([&] { cuda::attention(buf.as<float>(), BatchPositions{0, 1, nullptr}, a, kv, buf.as<float>(), ctx); });
}

}  // namespace
}  // namespace gemma4

#endif  // GEMMA4_HAVE_CUDA
