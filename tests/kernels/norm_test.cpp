// cuda/norm.cu vs cpu/norm.cpp: embedding lookup (every weight type), RMS norms, the fused residual
// norm, soft-capping and GeGLU, on seeded random inputs at edge sizes and Gemma 4 12B sizes: every
// geometry of the norm kernels at its edges, odd dims and misaligned pointers (the scalar path), in-place
// norms, many rows, and both embedding kernels (lane and block) with partial lanes and unaligned outputs.
//
// Tolerances: the kernels compute the same f32 formulas; only the sum of squares differs (f32 tree vs
// the CPU's double sum, ~1e-7 relative on the scale) and tanhf may differ from std::tanh by an ulp
// or two. So: rtol 1e-5, atol 1e-6 (x, w ~ U(-1, 1)), NMSE 1e-10. The embedding is exact (both sides
// dequantize with the same traits code and multiply by the same scale).
#ifdef GEMMA4_HAVE_CUDA

#include "kernels/cuda_test_util.h"

#include "cpu/ops.h"
#include "quant/formats.h"

using namespace gemma4;
using namespace gemma4::test;

namespace {
constexpr double kRtol = 1e-5;
constexpr double kAtol = 1e-6;
constexpr double kNmse = 1e-10;
}  // namespace

namespace {

/// `offset` zeros, then v.
std::vector<float> padded(const std::vector<float>& v, int offset) {
    std::vector<float> p(offset, 0.0f);
    p.insert(p.end(), v.begin(), v.end());
    return p;
}

/// The `n` floats after the first `offset` of a download.
std::vector<float> unpadded(const std::vector<float>& p, int offset, size_t n) {
    return std::vector<float>(p.begin() + offset, p.begin() + offset + static_cast<std::ptrdiff_t>(n));
}

/// rms_norm (weighted, weightless, in place) and add_rms_norm (scale 0.75 and 1) on rows x dim, every
/// device pointer `offset` floats past a cudaMalloc'd (256-byte aligned) base: offset 1 takes the
/// scalar path even when dim % 4 == 0. A poisoned tail after the output must stay untouched.
void check_norms(int dim, int rows, int offset, cpu::ThreadPool& pool) {
    constexpr int kTail = 8;  // poisoned floats after the output
    constexpr float kEps = 1e-6f;
    auto& ctx = cuda_context();
    const size_t n = size_t(dim) * rows;
    const uint64_t seed = uint64_t(dim) * 131 + rows;
    CAPTURE(dim, rows, offset, seed);
    const auto x = random_floats(n, seed);
    const auto a = random_floats(n, seed + 1);
    const auto w = random_floats(dim, seed + 2);
    DeviceBuffer<float> dx(padded(x, offset)), da(padded(a, offset)), dw(padded(w, offset));
    DeviceBuffer<float> dout(offset + n + kTail);
    float* px = dx.get() + offset;
    const float* pa = da.get() + offset;
    const float* pw = dw.get() + offset;
    float* pout = dout.get() + offset;
    std::vector<float> want(n);
    for (const bool weighted : {true, false}) {
        CAPTURE(weighted);
        cpu::rms_norm(x.data(), weighted ? w.data() : nullptr, rows, dim, kEps, want.data(), pool);
        dout.poison();
        cuda::rms_norm(px, weighted ? pw : nullptr, rows, dim, kEps, pout, ctx);
        const auto got = dout.download();
        check_close(unpadded(got, offset, n), want, kAtol, kRtol, kNmse);
        for (int i = 0; i < kTail; ++i) CHECK(std::isnan(got[offset + n + i]));
    }
    {
        INFO("in place");
        cpu::rms_norm(x.data(), w.data(), rows, dim, kEps, want.data(), pool);
        cuda::rms_norm(px, pw, rows, dim, kEps, px, ctx);
        check_close(unpadded(dx.download(), offset, n), want, kAtol, kRtol, kNmse);
    }
    for (const float scale : {0.75f, 1.0f}) {
        CAPTURE(scale);
        std::vector<float> xr = x;
        cpu::add_rms_norm(xr.data(), a.data(), w.data(), rows, dim, kEps, scale, pool);
        dx.upload(padded(x, offset));
        cuda::add_rms_norm(px, pa, pw, rows, dim, kEps, scale, ctx);
        check_close(unpadded(dx.download(), offset, n), xr, kAtol, kRtol, kNmse);
    }
}

}  // namespace

// The dims cover each geometry of the RMS kernels at its edges (see cuda/norm.cu): a warp per row up to
// 1024 floats in float4 (256 without), a CTA per row with 1, 2, 4 or 8 float4 per thread up to 8192, the
// looping CTA beyond; dims that are not multiples of 4 (scalar path); Gemma 4 12B's 3840 and 15360.
TEST_CASE("cuda rms_norm and add_rms_norm match the CPU", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    cpu::ThreadPool pool(2);
    for (int dim : {1, 3, 4, 32, 33, 128, 255, 256, 257, 512, 640, 1024, 1028, 2048, 2052, 3840, 4096, 4099, 4100, 8192,
                    8196, 15360}) {
        for (int rows : {1, 7, 64}) check_norms(dim, rows, 0, pool);
    }
}

TEST_CASE("cuda rms_norm and add_rms_norm: many rows, misaligned pointers", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    cpu::ThreadPool pool(2);
    SECTION("many rows (prefill, per-head sizes)") {
        for (int dim : {256, 512, 640, 3840}) check_norms(dim, 512, 0, pool);
        check_norms(255, 300, 0, pool);
        check_norms(15360, 33, 0, pool);
    }
    SECTION("pointers not 16-byte aligned take the scalar path") {
        for (int dim : {4, 256, 1024, 3840, 4100, 8192}) {
            for (int rows : {1, 9}) check_norms(dim, rows, 1, pool);
        }
    }
}

TEST_CASE("cuda softcap and geglu match the CPU", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    cpu::ThreadPool pool(2);
    auto& ctx = cuda_context();
    for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{15360 * 9}, int64_t{262144}}) {
        CAPTURE(n);
        auto x = random_floats(n, n, -60.0f, 60.0f);
        const auto up = random_floats(n, n + 1, -4.0f, 4.0f);
        std::vector<float> want = x;
        cpu::softcap(want.data(), n, 30.0f, pool);
        DeviceBuffer<float> dx(x);
        cuda::softcap(dx.get(), n, 30.0f, ctx);
        check_close(dx.download(), want, kAtol * 30, kRtol, kNmse);

        for (auto& v : x) v /= 10.0f;  // GeGLU inputs of the size the FFN produces
        std::vector<float> g(n);
        cpu::geglu(x.data(), up.data(), n, g.data(), pool);
        DeviceBuffer<float> dg(x), du(up), dout(n);
        dout.poison();
        cuda::geglu(dg.get(), du.get(), n, dout.get(), ctx);
        check_close(dout.download(), g, kAtol, kRtol, kNmse);
    }
}

namespace {

/// cuda::embed vs cpu::embed (exact) for a random table of `type` with rows of d_model, writing
/// `offset` floats past an aligned base (offset 1: scalar stores). A poisoned tail must stay untouched.
void check_embed(GgmlType type, int d_model, const std::vector<int32_t>& ids, int offset, cpu::ThreadPool& pool) {
    constexpr int kVocab = 40;
    constexpr int kTail = 8;
    constexpr float kScale = 61.9677f;  // sqrt(3840)
    auto& ctx = cuda_context();
    CAPTURE(ggml_type_info(type).name, d_model, ids.size(), offset);
    const size_t row_bytes = ggml_row_bytes(type, d_model);
    // Random bytes are valid blocks for every type. NaN rows would hide errors, so draw bytes in
    // 0..0x3B to keep every half-float (and float) small and finite; both sides see the same bits.
    std::mt19937 rng(static_cast<uint32_t>(type) * 7919u + static_cast<uint32_t>(d_model));
    std::vector<uint8_t> table(row_bytes * kVocab);
    for (auto& b : table) b = static_cast<uint8_t>(rng() % 0x3C);
    const WeightMatrix host{type, d_model, kVocab, row_bytes, table.data()};
    const size_t n = ids.size() * size_t(d_model);
    std::vector<float> want(n);
    cpu::embed(host, ids.data(), static_cast<int>(ids.size()), kScale, want.data(), pool);
    DeviceBuffer<uint8_t> dt(table);
    DeviceBuffer<int32_t> di(ids);
    DeviceBuffer<float> dout(offset + n + kTail);
    dout.poison();
    WeightMatrix dev = host;
    dev.data = dt.get();
    cuda::embed(dev, di.get(), static_cast<int>(ids.size()), kScale, dout.get() + offset, ctx);
    const auto got = dout.download();
    check_close(unpadded(got, offset, n), want, 0.0, 0.0, 0.0);
    for (int i = 0; i < kTail; ++i) CHECK(std::isnan(got[offset + n + i]));
}

}  // namespace

TEST_CASE("cuda embedding lookup matches the CPU for every weight type", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    cpu::ThreadPool pool(2);
    const std::vector<int32_t> ids = {0, 39, 7, 7, 21};
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                          GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                          GgmlType::Q6_K, GgmlType::Q8_K}) {
        // 512: a single CTA; 3840: Gemma 4 12B's d_model, two CTAs of the lane kernel, the second partly idle.
        for (int d_model : {256, 512, 3840}) {
            check_embed(type, d_model, ids, 0, pool);
            check_embed(type, d_model, {3}, 0, pool);  // decode: one token
        }
        check_embed(type, 3840, ids, 1, pool);  // output not 16-byte aligned
    }
    // Plain types: rows that end inside a lane's 8 elements, or in a second CTA.
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
        for (int d_model : {1, 7, 37, 2050}) check_embed(type, d_model, ids, 0, pool);
    }
    // Prefill-sized batch.
    std::vector<int32_t> many(300);
    for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int32_t>((i * 17) % 40);
    check_embed(GgmlType::Q6_K, 3840, many, 0, pool);
    check_embed(GgmlType::Q4_K, 3840, many, 0, pool);
    check_embed(GgmlType::Q5_K, 512, many, 0, pool);
}

TEST_CASE("cuda embedding rejects rows that are not whole blocks", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    auto& ctx = cuda_context();
    DeviceBuffer<uint8_t> dt(1024);
    DeviceBuffer<int32_t> di(std::vector<int32_t>{0});
    DeviceBuffer<float> dout(1024);
    const WeightMatrix bad{GgmlType::Q6_K, 100, 1, 210, dt.get()};
    CHECK_THROWS_AS(cuda::embed(bad, di.get(), 1, 1.0f, dout.get(), ctx), Error);
}

#endif  // GEMMA4_HAVE_CUDA
