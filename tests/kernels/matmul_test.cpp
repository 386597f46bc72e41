// cuda/matmul_quant.cu vs cpu/matmul.cpp: cuda::matmul and cuda::gate_up_geglu against cpu::matmul and
// cpu::geglu(cpu::matmul(gate), cpu::matmul(up)), for every weight type, on seeded random blocks (random
// quant bytes, sane f16 scales) and random x: edge sizes (one block, several chunks with a partial last
// one, d_out 1 / 31 / 32 / 33, 1..300 tokens), the Gemma 4 12B shapes, and the error paths.
//
// Tolerances, per output element (t, o), in terms of
//     A = sum_i |w_oi| |x_ti|                     (the magnitude the dot product is built from)
//     S = sum_i (|w_oi| + max_i |w_oi|) |x_ti|    (A plus the group offsets/mins the GPU factors out:
//                                                  sum w x = scale * sum u x - (scale * offset + min) * sum x,
//                                                  and |scale * offset + min| is |w| at u = 0, <= max |w|)
// - Decode path (n_tokens <= 8) and every F32 product: f32 arithmetic in another order than the CPU.
//   Both sides round ~d_in partial sums bounded by S, so the difference is a random walk of ~sqrt(d_in)
//   roundings of 2^-24 S: tol = kDecodeTol * sqrt(d_in) * S, with kDecodeTol = 4 * 2^-24 for margin.
// - Prefill path (n_tokens > 8, non-F32 weights): W and x rounded to f16, relative 2^-11 each, so each
//   product is off by at most 2 * 2^-11 (+ 2^-22) of |w x|: tol = kPrefillTol * A with kPrefillTol =
//   2.5 * 2^-11, plus the f32 term above, plus f16 subnormal spacing 2^-24 * (sum |x| + sum |w| * s_t).
// - NMSE: decode 1e-11 (f32 errors are ~1e-7 relative: NMSE ~1e-14); prefill 1e-6 (random f16 rounding
//   of both factors: relative std ~2^-11 * sqrt(2/3) = 4e-4, NMSE ~1.6e-7). Checked on tensors of at least
//   kNmseMinElements outputs: for a handful, one dot product that cancels to near zero dominates the
//   ratio (its error is bounded per element above, its NMSE is not meaningful).
//
// - One token of Q4_0, Q8_0, Q4_K, Q6_K (cuda/gemv_q8.cu, unless GEMMA4_EXACT_DECODE=1): x is rounded to a
//   16-bit integer on a per-32-block scale first, x_i -> dx_b v_i with |x_i - dx_b v_i| <= dx_b / 2 (dx_b =
//   max |x| / 32639 over the block; plus one f32 rounding of x_i * (1 / dx_b), 2^-22 |x_i| covers it). So the
//   result differs from the f32 product by at most sum_i |w_i| (dx_b(i) / 2 + 2^-22 |x_i|), added to the f32
//   term above; NMSE kQ8Nmse (uniform rounding of x: relative std ~ (dx / sqrt 12) / rms x ~ 1.5e-5 for
//   uniform x, NMSE ~2e-10; the bound leaves room for outlier-heavy blocks).
//   "cuda gemv_q8 equals a host emulation ..." checks the kernel against that rounding done on the host:
//   f32-only differences (kDecodeTol as above, relative to S computed with the rounded x).
// Tags: the exhaustive edge sweep and the 12B shapes are [slow] (ctest runs them; scripts/device.sh keeps
// them out of the compute-sanitizer runs, which take [cuda]~[slow]).
// - GeGLU: out = gelu(g) * u with |gelu'| <= 1.13, so tol_out = 1.13 tol_g (|u| + tol_u) + |gelu(g)| tol_u
//   + 1e-6 |out| (tanhf vs std::tanh); NMSE twice the matmul's.
#ifdef GEMMA4_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/ops.h"
#include "model/activations.h"
#include "kernels/cuda_test_util.h"
#include "quant/formats.h"

using namespace gemma4;
using namespace gemma4::test;

namespace {

// Mirrors kMaxDecodeTokens in cuda/matmul_quant.cu: up to this many tokens the f32 decode kernels run,
// above it the f16 GEMM path (F32 weights excepted: plain f32 GEMM).
constexpr int kMaxDecodeTokens = 8;

constexpr double kEps = 0x1p-24;                // f32 unit roundoff
constexpr double kDecodeTol = 4.0 * kEps;       // per sqrt(d_in), relative to S
constexpr double kPrefillTol = 2.5 * 0x1p-11;   // relative to A
constexpr double kF16Spacing = 0x1p-24;         // f16 subnormal step
constexpr double kDecodeNmse = 1e-11;
constexpr double kPrefillNmse = 1e-6;
constexpr double kQ8Nmse = 1e-8;
constexpr double kQ8RoundSlack = 0x1p-22;       // the f32 rounding of x * (1 / dx) before rint
constexpr double kGeluSlope = 1.13;             // max |d/dz gelu_tanh(z)|
constexpr double kTanhRel = 1e-6;
constexpr double kF16Unscaled = 0x1p15;         // x rows with max |x| below this go to f16 unscaled
constexpr size_t kNmseMinElements = 256;

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                              GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

/// Mirrors cuda::matmul's dispatch: one token of these types goes through cuda/gemv_q8.cu.
bool q8_path(GgmlType type, int n_tokens) {
    const bool q8_type = type == GgmlType::Q4_0 || type == GgmlType::Q8_0 || type == GgmlType::Q4_K || type == GgmlType::Q6_K;
    return n_tokens == 1 && q8_type && !cuda::exact_decode_requested();
}

/// x as cuda/gemv_q8.cu rounds it (same f32 operations): dx = max |x| / 32639 per 32-block,
/// v = rint(x * (1 / dx)). Returns dx * v per element; half_step[i] = dx / 2 of element i's block.
std::vector<double> q8_round(const float* x, int64_t d_in, std::vector<double>* half_step = nullptr) {
    std::vector<double> out(static_cast<size_t>(d_in));
    if (half_step) half_step->assign(static_cast<size_t>(d_in), 0.0);
    for (int64_t b = 0; b < d_in; b += 32) {
        float amax = 0.0f;
        for (int64_t i = b; i < std::min(d_in, b + 32); ++i) amax = std::max(amax, std::abs(x[i]));
        const float d = amax / 32639.0f;
        const float inv = d > 0.0f ? 1.0f / d : 0.0f;
        for (int64_t i = b; i < std::min(d_in, b + 32); ++i) {
            const float q = std::nearbyint(x[i] * inv);
            out[i] = static_cast<double>(d) * q;  // exact in double (24 + 15 bits)
            if (half_step) (*half_step)[i] = 0.5 * d;
        }
    }
    return out;
}

cpu::ThreadPool& pool() {
    static cpu::ThreadPool p(0);
    return p;
}

struct HostMatrix {
    GgmlType type;
    int64_t d_in;
    int64_t d_out;
    size_t row_bytes;
    std::vector<uint8_t> bytes;

    WeightMatrix view(const void* data) const { return WeightMatrix{type, d_in, d_out, row_bytes, data}; }
};

int block_elems(GgmlType type) { return static_cast<int>(ggml_type_info(type).block_elems); }

template <class Field>
void put(std::vector<uint8_t>& bytes, size_t block_offset, size_t field_offset, Field value) {
    static_assert(std::is_trivially_copyable_v<Field>);
    std::memcpy(bytes.data() + block_offset + field_offset, &value, sizeof(value));
}

/// Random blocks: random quant bytes (every bit pattern is a valid block), then each f16 scale field set
/// to a finite value that keeps |w| <~ 1 (the quant range times the largest sub-scale), so no NaN or Inf
/// hides an error. Plain types get values in [-1, 1].
HostMatrix random_matrix(GgmlType type, int64_t d_in, int64_t d_out, uint64_t seed) {
    HostMatrix m{type, d_in, d_out, static_cast<size_t>(ggml_row_bytes(type, d_in)), {}};
    m.bytes.resize(m.row_bytes * static_cast<size_t>(d_out));
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < m.bytes.size(); i += 8) {
        const uint64_t r = rng();
        std::memcpy(m.bytes.data() + i, &r, std::min<size_t>(8, m.bytes.size() - i));
    }
    std::uniform_real_distribution<float> unit(0.25f, 1.0f), sym(-1.0f, 1.0f);
    const auto scale = [&](float range) { return f32_to_f16(unit(rng) / range); };
    visit_quant_type(type, [&]<class Traits>(Traits) {
        using B = typename Traits::block_type;
        for (size_t b = 0; b < m.bytes.size(); b += Traits::block_bytes) {
            if constexpr (std::is_same_v<B, F32>) {
                put(m.bytes, b, 0, sym(rng));
            } else if constexpr (std::is_same_v<B, F16>) {
                put(m.bytes, b, 0, f32_to_f16(sym(rng)));
            } else if constexpr (std::is_same_v<B, BF16>) {
                put(m.bytes, b, 0, f32_to_bf16(sym(rng)));
            } else if constexpr (std::is_same_v<B, Q4_0>) {
                put(m.bytes, b, offsetof(Q4_0, d), scale(8));
            } else if constexpr (std::is_same_v<B, Q4_1>) {
                put(m.bytes, b, offsetof(Q4_1, d), scale(16));
                put(m.bytes, b, offsetof(Q4_1, m), f32_to_f16(0.5f * sym(rng)));
            } else if constexpr (std::is_same_v<B, Q5_0>) {
                put(m.bytes, b, offsetof(Q5_0, d), scale(16));
            } else if constexpr (std::is_same_v<B, Q5_1>) {
                put(m.bytes, b, offsetof(Q5_1, d), scale(32));
                put(m.bytes, b, offsetof(Q5_1, m), f32_to_f16(0.5f * sym(rng)));
            } else if constexpr (std::is_same_v<B, Q8_0>) {
                put(m.bytes, b, offsetof(Q8_0, d), scale(128));
            } else if constexpr (std::is_same_v<B, Q2K>) {
                put(m.bytes, b, offsetof(Q2K, d), scale(45));
                put(m.bytes, b, offsetof(Q2K, dmin), scale(30));
            } else if constexpr (std::is_same_v<B, Q3K>) {
                put(m.bytes, b, offsetof(Q3K, d), scale(128));
            } else if constexpr (std::is_same_v<B, Q4K>) {
                put(m.bytes, b, offsetof(Q4K, d), scale(945));
                put(m.bytes, b, offsetof(Q4K, dmin), scale(126));
            } else if constexpr (std::is_same_v<B, Q5K>) {
                put(m.bytes, b, offsetof(Q5K, d), scale(1953));
                put(m.bytes, b, offsetof(Q5K, dmin), scale(126));
            } else if constexpr (std::is_same_v<B, Q6K>) {
                put(m.bytes, b, offsetof(Q6K, d), scale(4096));
            }
        }
    });
    return m;
}

/// Tolerance of each output [t][o] for the path cuda::matmul takes (see the top of the file).
std::vector<double> matmul_tolerance(const HostMatrix& w, const std::vector<float>& x, int n_tokens) {
    const bool f32_path = n_tokens <= kMaxDecodeTokens || w.type == GgmlType::F32;
    const int64_t d_in = w.d_in, d_out = w.d_out;
    std::vector<double> sum_abs_x(n_tokens), max_abs_x(n_tokens);
    for (int t = 0; t < n_tokens; ++t) {
        for (int64_t i = 0; i < d_in; ++i) {
            const double v = std::abs(double(x[t * d_in + i]));
            sum_abs_x[t] += v;
            max_abs_x[t] = std::max(max_abs_x[t], v);
        }
    }
    const bool q8 = q8_path(w.type, n_tokens);
    std::vector<double> half_step;
    if (q8) q8_round(x.data(), d_in, &half_step);
    std::vector<double> tol(static_cast<size_t>(n_tokens) * d_out);
    pool().parallel_for(d_out, [&](int64_t begin, int64_t end) {
        std::vector<float> row(d_in);
        for (int64_t o = begin; o < end; ++o) {
            dequantize_row(w.type, w.bytes.data() + o * w.row_bytes, row.data(), d_in);
            double w_max = 0, w_sum = 0;
            for (float v : row) {
                w_max = std::max(w_max, std::abs(double(v)));
                w_sum += std::abs(double(v));
            }
            for (int t = 0; t < n_tokens; ++t) {
                double a = 0;
                const float* xt = x.data() + t * d_in;
                for (int64_t i = 0; i < d_in; ++i) a += std::abs(double(row[i])) * std::abs(double(xt[i]));
                const double s = a + w_max * sum_abs_x[t];
                double v = kDecodeTol * std::sqrt(double(d_in)) * s + 1e-30;
                if (q8) {
                    for (int64_t i = 0; i < d_in; ++i) {
                        v += std::abs(double(row[i])) * (half_step[i] + kQ8RoundSlack * std::abs(double(xt[i])));
                    }
                }
                if (!f32_path) {
                    const double x_scale = std::max(1.0, max_abs_x[t] / kF16Unscaled * 2);
                    v += kPrefillTol * a + kF16Spacing * (sum_abs_x[t] + w_sum * x_scale);
                }
                tol[t * d_out + o] = v;
            }
        }
    });
    return tol;
}

/// Every element within its tolerance (NaN fails), and the tensor's NMSE within max_nmse.
void check_elements(const std::vector<float>& got, const std::vector<float>& want, const std::vector<double>& tol,
                    double max_nmse) {
    REQUIRE(got.size() == want.size());
    REQUIRE(tol.size() == want.size());
    double err2 = 0, ref2 = 0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double d = std::abs(double(got[i]) - double(want[i]));
        if (!(d <= tol[i])) {
            if (bad++ == 0) first_bad = i;
        }
        err2 += std::isfinite(d) ? d * d : std::numeric_limits<double>::infinity();
        ref2 += double(want[i]) * want[i];
    }
    INFO("bad elements " << bad << " of " << got.size() << "; first at " << first_bad << ": got " << got[first_bad] << " want "
                         << want[first_bad] << " tol " << tol[first_bad]);
    CHECK(bad == 0);
    const double nmse = ref2 > 0 ? err2 / ref2 : err2;
    INFO("nmse " << nmse);
    if (got.size() >= kNmseMinElements) CHECK(nmse <= max_nmse);
}

/// One matrix on the device, reused across token counts.
struct DeviceMatrix {
    explicit DeviceMatrix(const HostMatrix& m) : host(m), bytes(m.bytes) {}
    WeightMatrix view() const { return host.view(bytes.get()); }
    const HostMatrix& host;
    DeviceBuffer<uint8_t> bytes;
};

/// cuda::matmul (output poisoned with NaN first) vs cpu::matmul.
void check_matmul(const DeviceMatrix& w, const std::vector<float>& x, int n_tokens) {
    const HostMatrix& h = w.host;
    std::vector<float> want(static_cast<size_t>(n_tokens) * h.d_out);
    cpu::matmul(h.view(h.bytes.data()), x.data(), n_tokens, want.data(), pool());
    DeviceBuffer<float> dx(x), dy(want.size());
    dy.poison();
    cuda::matmul(w.view(), dx.get(), n_tokens, dy.get(), cuda_context());
    const bool f32_path = n_tokens <= kMaxDecodeTokens || h.type == GgmlType::F32;
    const double nmse = q8_path(h.type, n_tokens) ? kQ8Nmse : f32_path ? kDecodeNmse : kPrefillNmse;
    check_elements(dy.download(), want, matmul_tolerance(h, x, n_tokens), nmse);
}

/// cuda::gate_up_geglu vs cpu::geglu(cpu::matmul(gate), cpu::matmul(up)).
void check_geglu(const DeviceMatrix& gate, const DeviceMatrix& up, const std::vector<float>& x, int n_tokens) {
    const HostMatrix& hg = gate.host;
    const HostMatrix& hu = up.host;
    const size_t n_out = static_cast<size_t>(n_tokens) * hg.d_out;
    std::vector<float> g(n_out), u(n_out), want(n_out);
    cpu::matmul(hg.view(hg.bytes.data()), x.data(), n_tokens, g.data(), pool());
    cpu::matmul(hu.view(hu.bytes.data()), x.data(), n_tokens, u.data(), pool());
    cpu::geglu(g.data(), u.data(), static_cast<int64_t>(n_out), want.data(), pool());
    DeviceBuffer<float> dx(x), scratch(n_out), dout(n_out);
    scratch.poison();
    dout.poison();
    cuda::gate_up_geglu(gate.view(), up.view(), dx.get(), n_tokens, scratch.get(), dout.get(), cuda_context());
    const std::vector<double> tg = matmul_tolerance(hg, x, n_tokens);
    const std::vector<double> tu = matmul_tolerance(hu, x, n_tokens);
    std::vector<double> tol(n_out);
    for (size_t i = 0; i < n_out; ++i) {
        tol[i] = kGeluSlope * tg[i] * (std::abs(double(u[i])) + tu[i]) + std::abs(double(gelu_tanh(g[i]))) * tu[i] +
                 kTanhRel * std::abs(double(want[i]));
    }
    const bool f32_path = n_tokens <= kMaxDecodeTokens || (hg.type == GgmlType::F32 && hu.type == GgmlType::F32);
    const bool q8 = q8_path(hg.type, n_tokens) || q8_path(hu.type, n_tokens);
    check_elements(dout.download(), want, tol, 2 * (q8 ? kQ8Nmse : f32_path ? kDecodeNmse : kPrefillNmse));
}

uint64_t seed_of(GgmlType type, int64_t d_in, int64_t d_out) {
    return (static_cast<uint64_t>(type) << 40) ^ (static_cast<uint64_t>(d_in) << 20) ^ static_cast<uint64_t>(d_out);
}

// Gemma 4 12B matrix shapes: d_in -> d_out.
struct Shape {
    const char* name;
    int64_t d_in;
    int64_t d_out;
};
constexpr Shape kShapes12B[] = {
    {"attn_q", 3840, 4096},    {"attn_kv", 3840, 2048}, {"attn_k_full", 3840, 512},
    {"attn_output", 8192, 3840}, {"ffn_gate_up", 3840, 15360}, {"ffn_down", 15360, 3840},
};

}  // namespace

/// d_in of one block, three, and 33 (more than one 32-unit chunk for every type, the last chunk partial);
/// plain types also 1000 (past a 512-element chunk, ending inside a 16-element virtual block).
std::vector<int64_t> edge_d_ins(GgmlType type) {
    const int be = block_elems(type);
    std::vector<int64_t> d_ins = {be, 3 * be, 33 * be};
    if (be == 1) d_ins.push_back(1000);
    return d_ins;
}

void check_edge(GgmlType type, int64_t d_in, int64_t d_out, std::initializer_list<int> token_counts) {
    const uint64_t seed = seed_of(type, d_in, d_out);
    CAPTURE(ggml_type_info(type).name, d_in, d_out, seed);
    const HostMatrix h = random_matrix(type, d_in, d_out, seed);
    const DeviceMatrix w(h);
    for (int n_tokens : token_counts) {
        CAPTURE(n_tokens);
        check_matmul(w, random_floats(static_cast<size_t>(n_tokens) * d_in, seed + n_tokens), n_tokens);
    }
}

TEST_CASE("cuda matmul matches the CPU for every weight type at edge sizes", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    for (GgmlType type : kAllTypes) {
        const std::vector<int64_t> d_ins = edge_d_ins(type);
        check_edge(type, d_ins.front(), 1, {1, 9});
        check_edge(type, d_ins[1], 31, {2, 4});
        check_edge(type, d_ins.back(), 33, {1, 3, 7, 64});
    }
}

TEST_CASE("cuda matmul matches the CPU for every weight type at all edge sizes", "[kernel][cuda][slow]") {
    GEMMA4_REQUIRE_CUDA();
    for (GgmlType type : kAllTypes) {
        for (int64_t d_in : edge_d_ins(type)) {
            for (int64_t d_out : {1, 31, 32, 33}) check_edge(type, d_in, d_out, {1, 2, 3, 7, 8, 9, 64, 300});
        }
    }
}

TEST_CASE("cuda matmul matches the CPU at the Gemma 4 12B shapes", "[kernel][cuda][slow]") {
    GEMMA4_REQUIRE_CUDA();
    for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0}) {
        for (const Shape& s : kShapes12B) {
            const uint64_t seed = seed_of(type, s.d_in, s.d_out);
            CAPTURE(ggml_type_info(type).name, s.name, s.d_in, s.d_out, seed);
            const HostMatrix h = random_matrix(type, s.d_in, s.d_out, seed);
            const DeviceMatrix w(h);
            for (int n_tokens : {1, 3, 8, 64}) {
                CAPTURE(n_tokens);
                check_matmul(w, random_floats(static_cast<size_t>(n_tokens) * s.d_in, seed + n_tokens), n_tokens);
            }
        }
    }
}

TEST_CASE("cuda matmul matches the CPU for the Q6_K LM head (3840 x 262144)", "[kernel][cuda][slow]") {
    GEMMA4_REQUIRE_CUDA();
    const int64_t d_in = 3840, d_out = 262144;
    const uint64_t seed = seed_of(GgmlType::Q6_K, d_in, d_out);
    CAPTURE(seed);
    const HostMatrix h = random_matrix(GgmlType::Q6_K, d_in, d_out, seed);
    const DeviceMatrix w(h);
    check_matmul(w, random_floats(d_in, seed + 1), 1);
}

TEST_CASE("cuda matmul: misaligned x rows, large and tiny activations, repeatability", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    auto& ctx = cuda_context();
    for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::F16}) {
        const int64_t d_in = 1024, d_out = 96;
        const uint64_t seed = seed_of(type, d_in, d_out) + 7;
        CAPTURE(ggml_type_info(type).name, seed);
        const HostMatrix h = random_matrix(type, d_in, d_out, seed);
        const DeviceMatrix w(h);
        // Activations past the f16 range (Gemma FFN outputs can be) and far below 1: the prefill path
        // scales each token row by a power of two.
        for (float magnitude : {1e6f, 1e-7f}) {
            CAPTURE(magnitude);
            for (int n_tokens : {2, 64}) {
                auto x = random_floats(static_cast<size_t>(n_tokens) * d_in, seed + n_tokens);
                for (auto& v : x) v *= magnitude;
                check_matmul(w, x, n_tokens);
            }
        }
        // x one float past a 16-byte boundary: the 4-byte copy path. Same inputs twice: same bits.
        for (int n_tokens : {1, 4}) {
            CAPTURE(n_tokens);
            const auto x = random_floats(static_cast<size_t>(n_tokens) * d_in, seed + 100 + n_tokens);
            std::vector<float> padded(x.size() + 1);
            std::copy(x.begin(), x.end(), padded.begin() + 1);
            std::vector<float> want(static_cast<size_t>(n_tokens) * d_out);
            cpu::matmul(h.view(h.bytes.data()), x.data(), n_tokens, want.data(), pool());
            DeviceBuffer<float> dx(padded), dy(want.size());
            dy.poison();
            cuda::matmul(w.view(), dx.get() + 1, n_tokens, dy.get(), ctx);
            const auto first = dy.download();
            check_elements(first, want, matmul_tolerance(h, x, n_tokens), kDecodeNmse);
            dy.poison();
            cuda::matmul(w.view(), dx.get() + 1, n_tokens, dy.get(), ctx);
            CHECK(std::memcmp(first.data(), dy.download().data(), first.size() * sizeof(float)) == 0);
        }
    }
}

TEST_CASE("cuda gate_up_geglu matches cpu geglu of two matmuls", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    // Every type at a small shape (fused for one token, two GEMVs + GeGLU for 2..8, GEMMs above).
    for (GgmlType type : kAllTypes) {
        const int64_t d_in = block_elems(type) == 1 ? 40 : 3 * block_elems(type), d_out = 33;
        const uint64_t seed = seed_of(type, d_in, d_out) + 11;
        CAPTURE(ggml_type_info(type).name, d_in, d_out, seed);
        const HostMatrix hg = random_matrix(type, d_in, d_out, seed), hu = random_matrix(type, d_in, d_out, seed + 1);
        const DeviceMatrix gate(hg), up(hu);
        for (int n_tokens : {1, 2, 5, 9, 64}) {
            CAPTURE(n_tokens);
            check_geglu(gate, up, random_floats(static_cast<size_t>(n_tokens) * d_in, seed + n_tokens), n_tokens);
        }
    }
    // Gate and up of different types (a quant mix may do that): the unfused path.
    const uint64_t seed = 4242;
    CAPTURE(seed);
    const HostMatrix hg = random_matrix(GgmlType::Q4_K, 512, 40, seed), hu = random_matrix(GgmlType::Q6_K, 512, 40, seed + 1);
    const DeviceMatrix gate(hg), up(hu);
    for (int n_tokens : {1, 12}) {
        CAPTURE(n_tokens);
        check_geglu(gate, up, random_floats(static_cast<size_t>(n_tokens) * 512, seed + n_tokens), n_tokens);
    }
}

TEST_CASE("cuda gate_up_geglu matches the CPU at the Gemma 4 12B FFN shape", "[kernel][cuda][slow]") {
    GEMMA4_REQUIRE_CUDA();
    for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q8_0}) {
        const int64_t d_in = 3840, d_out = 15360;
        const uint64_t seed = seed_of(type, d_in, d_out) + 13;
        CAPTURE(ggml_type_info(type).name, seed);
        const HostMatrix hg = random_matrix(type, d_in, d_out, seed), hu = random_matrix(type, d_in, d_out, seed + 1);
        const DeviceMatrix gate(hg), up(hu);
        for (int n_tokens : {1, 3, 64}) {
            CAPTURE(n_tokens);
            check_geglu(gate, up, random_floats(static_cast<size_t>(n_tokens) * d_in, seed + n_tokens), n_tokens);
        }
    }
}

/// Row products of m with x rounded as cuda/gemv_q8.cu rounds it, in double: y[o], and the f32 error scale
/// S[o] = sum_i (|w_oi| + max_i |w_oi|) |xr_i| (as in matmul_tolerance).
void q8_reference(const HostMatrix& m, const std::vector<double>& xr, std::vector<double>& y, std::vector<double>& s) {
    y.assign(static_cast<size_t>(m.d_out), 0.0);
    s.assign(static_cast<size_t>(m.d_out), 0.0);
    pool().parallel_for(m.d_out, [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(m.d_in));
        for (int64_t o = begin; o < end; ++o) {
            dequantize_row(m.type, m.bytes.data() + o * m.row_bytes, row.data(), m.d_in);
            double acc = 0, a = 0, w_max = 0, x_sum = 0;
            for (int64_t i = 0; i < m.d_in; ++i) {
                acc += double(row[i]) * xr[i];
                a += std::abs(double(row[i])) * std::abs(xr[i]);
                w_max = std::max(w_max, std::abs(double(row[i])));
                x_sum += std::abs(xr[i]);
            }
            y[o] = acc;
            s[o] = a + w_max * x_sum;
        }
    });
}

/// cuda::gemv_q8 (y = W x, or gelu(W_gate x) * (W_up x)) vs q8_reference: only f32 rounding may differ.
void check_q8_emulation(const DeviceMatrix& w, const DeviceMatrix* up, const std::vector<float>& x) {
    const HostMatrix& h = w.host;
    const std::vector<double> xr = q8_round(x.data(), h.d_in);
    std::vector<double> g, sg, u, su;
    q8_reference(h, xr, g, sg);
    const double f32_tol = kDecodeTol * std::sqrt(double(h.d_in));
    std::vector<float> want(static_cast<size_t>(h.d_out));
    std::vector<double> tol(want.size());
    if (up) {
        q8_reference(up->host, xr, u, su);
        for (size_t o = 0; o < want.size(); ++o) {
            const double tg = f32_tol * sg[o] + 1e-30, tu = f32_tol * su[o] + 1e-30;
            const float out = gelu_tanh(static_cast<float>(g[o])) * static_cast<float>(u[o]);
            want[o] = out;
            tol[o] = kGeluSlope * tg * (std::abs(u[o]) + tu) + std::abs(double(gelu_tanh(static_cast<float>(g[o])))) * tu +
                     kTanhRel * std::abs(double(out)) + 1e-30;
        }
    } else {
        for (size_t o = 0; o < want.size(); ++o) {
            want[o] = static_cast<float>(g[o]);
            tol[o] = f32_tol * sg[o] + 1e-30;
        }
    }
    DeviceBuffer<float> dx(x), dy(want.size());
    dy.poison();
    const WeightMatrix up_view = up ? up->view() : WeightMatrix{};
    cuda::gemv_q8(w.view(), up ? &up_view : nullptr, dx.get(), dy.get(), cuda_context());
    check_elements(dy.download(), want, tol, 2 * kDecodeNmse);
}

const GgmlType kQ8Types[] = {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K};

TEST_CASE("cuda gemv_q8 equals a host emulation of its 16-bit x at edge sizes", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    // d_in: one block; a chunk (32 pieces: 8 K-quant blocks, 32 Q8_0/Q4_0 blocks) plus a partial one;
    // d_out: 1, 31, 33 and 700 (more rows than warps in flight: each warp streams several rows).
    for (GgmlType type : kQ8Types) {
        const int64_t be = block_elems(type);
        const int64_t chunk = be == 256 ? 8 : 32;
        for (int64_t d_in : {be, (chunk + 3) * be, (2 * chunk) * be}) {
            for (int64_t d_out : {1, 31, 33, 700}) {
                const uint64_t seed = seed_of(type, d_in, d_out) + 17;
                CAPTURE(ggml_type_info(type).name, d_in, d_out, seed);
                const HostMatrix hg = random_matrix(type, d_in, d_out, seed), hu = random_matrix(type, d_in, d_out, seed + 1);
                const DeviceMatrix gate(hg), upm(hu);
                auto x = random_floats(static_cast<size_t>(d_in), seed + 2);
                x[0] = 0.0f;  // a zero, and an all-zero 32-block (dx = 0) when d_in allows
                if (d_in >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
                check_q8_emulation(gate, nullptr, x);
                check_q8_emulation(gate, &upm, x);
            }
        }
    }
}

TEST_CASE("cuda gemv_q8 with split-K rows equals the host emulation at edge sizes", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    // Rows of 2 x 3840 and 3 x 4096 elements are cut into 2 and 3 slices (each CTA rounds only its slice of
    // x; the last CTA of a group adds the slices' partial sums). d_out: one row, fewer rows than warps,
    // and more rows than a wave of warps, so groups and the rows of a group vary; the all-zero x block
    // sits in the first slice. The tolerance is the same: only the f32 summation order changes.
    for (GgmlType type : kQ8Types) {
        for (int64_t d_in : {int64_t{7680}, int64_t{12288}}) {
            for (int64_t d_out : {1, 33, 700, 5000}) {
                const uint64_t seed = seed_of(type, d_in, d_out) + 29;
                CAPTURE(ggml_type_info(type).name, d_in, d_out, seed);
                const HostMatrix h = random_matrix(type, d_in, d_out, seed);
                const DeviceMatrix w(h);
                auto x = random_floats(static_cast<size_t>(d_in), seed + 1);
                std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
                for (size_t i = 0; i < x.size(); i += 97) x[i] *= 40.0f;
                check_q8_emulation(w, nullptr, x);
                check_q8_emulation(w, nullptr, x);  // again: the group counters were reset by the first launch
            }
        }
    }
}

TEST_CASE("cuda gemv_q8 equals a host emulation of its 16-bit x at the Gemma 4 12B shapes", "[kernel][cuda][slow]") {
    GEMMA4_REQUIRE_CUDA();
    for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0}) {
        for (const Shape& s : kShapes12B) {
            const uint64_t seed = seed_of(type, s.d_in, s.d_out) + 19;
            CAPTURE(ggml_type_info(type).name, s.name, seed);
            const HostMatrix h = random_matrix(type, s.d_in, s.d_out, seed);
            const DeviceMatrix w(h);
            // Gemma-like activations: mostly small, a few large outliers per row.
            auto x = random_floats(static_cast<size_t>(s.d_in), seed + 1);
            for (size_t i = 0; i < x.size(); i += 97) x[i] *= 40.0f;
            check_q8_emulation(w, nullptr, x);
            if (std::string(s.name) == "ffn_gate_up") {
                const HostMatrix hu = random_matrix(type, s.d_in, s.d_out, seed + 2);
                const DeviceMatrix up(hu);
                check_q8_emulation(w, &up, x);
            }
        }
    }
    const HostMatrix lm = random_matrix(GgmlType::Q6_K, 3840, 262144, 23);
    const DeviceMatrix w(lm);
    check_q8_emulation(w, nullptr, random_floats(3840, 24));
}



/// cuda::gemv_q8_norm: x RMS-normalized in the kernel, then up to three matrices (one launch) or a gate/up
/// pair, against cpu::rms_norm then cpu::matmul (and cpu::geglu). Tolerance: matmul_tolerance on the CPU's
/// normalized x (f32 products, the 16-bit rounding of x: see the top), plus what the kernel's normalization
/// may differ by: its f32 sum of squares has another order (each term passes through at most ~32 f32 additions:
/// per thread, the shuffle tree, the warp sums) and x_n takes 3 roundings, so |x_n - x_n,cpu| <= 64 * 2^-24
/// |x_n| bounds it with margin; it enters as sum_i |w_i| * that.
void check_q8_norm(const std::vector<const HostMatrix*>& ms, const HostMatrix* up, const std::vector<float>& x,
                   const std::vector<float>& norm_w, float eps) {
    const int64_t d_in = ms[0]->d_in;
    std::vector<float> xn(static_cast<size_t>(d_in));
    cpu::rms_norm(x.data(), norm_w.data(), 1, static_cast<int>(d_in), eps, xn.data(), pool());
    const auto norm_slack = [&](const HostMatrix& m) {
        std::vector<double> extra(static_cast<size_t>(m.d_out));
        std::vector<float> row(static_cast<size_t>(d_in));
        for (int64_t o = 0; o < m.d_out; ++o) {
            dequantize_row(m.type, m.bytes.data() + o * m.row_bytes, row.data(), d_in);
            double a = 0;
            for (int64_t i = 0; i < d_in; ++i) a += std::abs(double(row[i])) * std::abs(double(xn[i]));
            extra[o] = 64 * kEps * a;
        }
        return extra;
    };
    std::vector<std::unique_ptr<DeviceMatrix>> dev;
    std::vector<WeightMatrix> views;
    for (const HostMatrix* m : ms) {
        dev.push_back(std::make_unique<DeviceMatrix>(*m));
        views.push_back(dev.back()->view());
    }
    std::unique_ptr<DeviceMatrix> dup;
    WeightMatrix up_view{};
    if (up) {
        dup = std::make_unique<DeviceMatrix>(*up);
        up_view = dup->view();
    }
    std::vector<const WeightMatrix*> wp;
    for (const WeightMatrix& v : views) wp.push_back(&v);
    std::vector<std::unique_ptr<DeviceBuffer<float>>> ys;
    std::vector<float*> yp;
    for (const HostMatrix* m : ms) {
        ys.push_back(std::make_unique<DeviceBuffer<float>>(static_cast<size_t>(m->d_out)));
        ys.back()->poison();
        yp.push_back(ys.back()->get());
    }
    DeviceBuffer<float> dx(x), dw(norm_w);
    cuda::gemv_q8_norm(wp.data(), yp.data(), static_cast<int>(ms.size()), up ? &up_view : nullptr, dx.get(), dw.get(), eps,
                       cuda_context());
    for (size_t k = 0; k < ms.size(); ++k) {
        const HostMatrix& h = *ms[k];
        CAPTURE(k, ggml_type_info(h.type).name, h.d_out);
        std::vector<float> g(static_cast<size_t>(h.d_out));
        cpu::matmul(h.view(h.bytes.data()), xn.data(), 1, g.data(), pool());
        std::vector<double> tg = matmul_tolerance(h, xn, 1);
        const std::vector<double> eg = norm_slack(h);
        for (size_t o = 0; o < tg.size(); ++o) tg[o] += eg[o];
        if (!up) {
            check_elements(ys[k]->download(), g, tg, 2 * kQ8Nmse);
            continue;
        }
        std::vector<float> u(g.size()), want(g.size());
        cpu::matmul(up->view(up->bytes.data()), xn.data(), 1, u.data(), pool());
        cpu::geglu(g.data(), u.data(), static_cast<int64_t>(g.size()), want.data(), pool());
        std::vector<double> tu = matmul_tolerance(*up, xn, 1);
        const std::vector<double> eu = norm_slack(*up);
        std::vector<double> tol(g.size());
        for (size_t o = 0; o < tol.size(); ++o) {
            tu[o] += eu[o];
            tol[o] = kGeluSlope * tg[o] * (std::abs(double(u[o])) + tu[o]) + std::abs(double(gelu_tanh(g[o]))) * tu[o] +
                     kTanhRel * std::abs(double(want[o])) + 1e-30;
        }
        check_elements(ys[k]->download(), want, tol, 4 * kQ8Nmse);
    }
}

TEST_CASE("cuda gemv_q8_norm fuses the RMSNorm and runs up to three matrices in one launch", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    // d_in 3840 (d_model: a full chunk and a partial one for every type) and a single partial chunk (2 K-quant
    // blocks, 17 Q8_0/Q4_0 blocks); row counts that split unevenly over the warps, so that a warp's rows
    // cross from one matrix into the next.
    for (GgmlType type : kQ8Types) {
        const int64_t be = block_elems(type);
        for (int64_t d_in : {int64_t{3840}, be == 256 ? int64_t{512} : int64_t{544}}) {
            const uint64_t seed = seed_of(type, d_in, 3) + 29;
            CAPTURE(ggml_type_info(type).name, d_in, seed);
            const HostMatrix q = random_matrix(type, d_in, 700, seed), k = random_matrix(type, d_in, 33, seed + 1),
                             v = random_matrix(type, d_in, 257, seed + 2), u = random_matrix(type, d_in, 700, seed + 5);
            auto x = random_floats(static_cast<size_t>(d_in), seed + 3);
            for (size_t i = 0; i < x.size(); i += 97) x[i] *= 40.0f;  // outliers, as in Gemma's residual stream
            auto norm_w = random_floats(static_cast<size_t>(d_in), seed + 4);
            const float eps = 1e-6f;
            check_q8_norm({&q, &k, &v}, nullptr, x, norm_w, eps);
            check_q8_norm({&k, &v}, nullptr, x, norm_w, eps);
            check_q8_norm({&q}, &u, x, norm_w, eps);  // the fused gate/up pair
        }
    }
}

TEST_CASE("cuda gemv_q8_norm at the Gemma 4 12B layer-input shapes (x held in registers)", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    // Enough rows for 8-warp CTAs: d_in 3840 then fits 16 floats per thread, the path that reads x and the norm
    // weight once into registers (the shapes above launch 2-warp CTAs and take the looping path at 3840).
    for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K}) {
        const uint64_t seed = seed_of(type, 3840, 4096) + 31;
        CAPTURE(ggml_type_info(type).name, seed);
        const HostMatrix q = random_matrix(type, 3840, 4096, seed), k = random_matrix(type, 3840, 2048, seed + 1),
                         g = random_matrix(type, 3840, 15360, seed + 2), u = random_matrix(type, 3840, 15360, seed + 3);
        auto x = random_floats(3840, seed + 4);
        for (size_t i = 0; i < x.size(); i += 97) x[i] *= 40.0f;
        const auto norm_w = random_floats(3840, seed + 5);
        check_q8_norm({&q, &k, &k}, nullptr, x, norm_w, 1e-6f);
        check_q8_norm({&g}, &u, x, norm_w, 1e-6f);
    }
}

TEST_CASE("cuda matmul rejects bad shapes and unsupported types", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    auto& ctx = cuda_context();
    const HostMatrix h = random_matrix(GgmlType::Q4_K, 512, 8, 1);
    const DeviceMatrix w(h);
    DeviceBuffer<float> x(4 * 512), y(4 * 512), scratch(4 * 512);
    const auto kInvalid = Catch::Matchers::Predicate<Error>(
        [](const Error& e) { return e.code() == ErrorCode::invalid_argument; }, "invalid_argument");
    const auto expect_invalid = [&](const WeightMatrix& m) {
        CHECK_THROWS_MATCHES(cuda::matmul(m, x.get(), 1, y.get(), ctx), Error, kInvalid);
    };
    WeightMatrix m = w.view();
    m.row_bytes += 1;
    expect_invalid(m);  // row_bytes does not match d_in
    m = w.view();
    m.d_in = 500;
    expect_invalid(m);  // not a whole number of blocks
    m = w.view();
    m.d_in = 0;
    expect_invalid(m);
    m = w.view();
    m.data = static_cast<const uint8_t*>(m.data) + 2;
    expect_invalid(m);  // not 16-byte aligned
    m = w.view();
    m.type = GgmlType::IQ4_XS;
    m.row_bytes = static_cast<size_t>(ggml_row_bytes(GgmlType::IQ4_XS, 512));
    expect_invalid(m);  // no format
    m.type = GgmlType::Q8_K;
    m.row_bytes = static_cast<size_t>(ggml_row_bytes(GgmlType::Q8_K, 512));
    expect_invalid(m);  // a format but no kernel
    CHECK_THROWS_MATCHES(cuda::matmul(w.view(), x.get(), -1, y.get(), ctx), Error, kInvalid);
    WeightMatrix up = w.view();
    up.d_out = 4;
    CHECK_THROWS_MATCHES(cuda::gate_up_geglu(w.view(), up, x.get(), 1, scratch.get(), y.get(), ctx), Error, kInvalid);
    // n_tokens = 0 is a no-op.
    CHECK_NOTHROW(cuda::matmul(w.view(), x.get(), 0, y.get(), ctx));
    CHECK_NOTHROW(cuda::gate_up_geglu(w.view(), w.view(), x.get(), 0, scratch.get(), y.get(), ctx));
}

#endif  // GEMMA4_HAVE_CUDA
