// cuda/norm.cu vs cpu/norm.cpp: embedding lookup (every weight type), RMS norms, the fused residual
// norm, soft-capping and GeGLU, on seeded random inputs at edge sizes and Gemma 4 12B sizes.
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

TEST_CASE("cuda rms_norm and add_rms_norm match the CPU", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    cpu::ThreadPool pool(2);
    auto& ctx = cuda_context();
    for (int dim : {1, 255, 256, 257, 3840, 15360}) {
        for (int rows : {1, 7, 64}) {
            const uint64_t seed = dim * 131 + rows;
            CAPTURE(dim, rows, seed);
            const auto x = random_floats(size_t(dim) * rows, seed);
            const auto a = random_floats(size_t(dim) * rows, seed + 1);
            const auto w = random_floats(dim, seed + 2);
            std::vector<float> want(x.size());
            cpu::rms_norm(x.data(), w.data(), rows, dim, 1e-6f, want.data(), pool);
            DeviceBuffer<float> dx(x), dw(w), dout(x.size());
            dout.poison();
            cuda::rms_norm(dx.get(), dw.get(), rows, dim, 1e-6f, dout.get(), ctx);
            check_close(dout.download(), want, kAtol, kRtol, kNmse);
            // weightless
            cpu::rms_norm(x.data(), nullptr, rows, dim, 1e-6f, want.data(), pool);
            cuda::rms_norm(dx.get(), nullptr, rows, dim, 1e-6f, dout.get(), ctx);
            check_close(dout.download(), want, kAtol, kRtol, kNmse);
            // residual add with the layer scale
            std::vector<float> xr = x;
            cpu::add_rms_norm(xr.data(), a.data(), w.data(), rows, dim, 1e-6f, 0.75f, pool);
            DeviceBuffer<float> da(a);
            cuda::add_rms_norm(dx.get(), da.get(), dw.get(), rows, dim, 1e-6f, 0.75f, ctx);
            check_close(dx.download(), xr, kAtol, kRtol, kNmse);
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

TEST_CASE("cuda embedding lookup matches the CPU for every weight type", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    cpu::ThreadPool pool(2);
    auto& ctx = cuda_context();
    const int d_model = 512, vocab = 40;
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                          GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                          GgmlType::Q6_K}) {
        CAPTURE(ggml_type_info(type).name);
        const size_t row_bytes = ggml_row_bytes(type, d_model);
        // Random bytes are valid blocks for every type; keep f16 scales finite by clearing exponent bits
        // is not needed for the comparison (both sides see the same bits), but NaN rows would hide
        // errors, so draw bytes in 0..0x3B to keep every half-float small and finite.
        std::mt19937 rng(static_cast<uint32_t>(type));
        std::vector<uint8_t> table(row_bytes * vocab);
        for (auto& b : table) b = static_cast<uint8_t>(rng() % 0x3C);
        const std::vector<int32_t> ids = {0, 39, 7, 7, 21};
        WeightMatrix host{type, d_model, vocab, row_bytes, table.data()};
        std::vector<float> want(ids.size() * d_model);
        cpu::embed(host, ids.data(), static_cast<int>(ids.size()), 61.9677f, want.data(), pool);
        DeviceBuffer<uint8_t> dt(table);
        DeviceBuffer<int32_t> di(ids);
        DeviceBuffer<float> dout(want.size());
        dout.poison();
        WeightMatrix dev = host;
        dev.data = dt.get();
        cuda::embed(dev, di.get(), static_cast<int>(ids.size()), 61.9677f, dout.get(), ctx);
        check_close(dout.download(), want, 0.0, 0.0, 0.0);
    }
}

#endif  // GEMMA4_HAVE_CUDA
