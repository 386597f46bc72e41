// The projector's ops (cpu/projector_ops.cpp, cuda/projector_ops.cu): LayerNorm, bias add, table-row add.
//
// CPU vs a float64 reference on seeded random inputs; CUDA vs CPU (skipped without a GPU, compiled only
// with GEMMA4_HAVE_CUDA). Sizes: edges around the 256-thread row block (1, 255, 256, 257) and the real
// widths (128 and 256 of the tiny projector, 640 audio frames, 3840, 6912 = 48*48*3 patch values).
// Inputs ~ U(-1, 1) with an offset of 3 (a LayerNorm must remove the mean without cancellation trouble).
//
// Tolerances: the CPU follows ggml (sums in double, f32 elementwise), so against float64 each output is a few
// f32 roundings of values of size |w| * |x - mean| / std <= ~4: atol 1e-5, rtol 1e-5. CUDA vs CPU: the sums
// are f32 trees instead of double (relative error ~dim * 2^-24 / sqrt(dim) on the mean and variance), so
// atol 2e-5, rtol 1e-5, NMSE 1e-10. Adds are exact (one f32 add, same order).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/projector_ops.h"
#include "cpu/thread_pool.h"

#ifdef GEMMA4_HAVE_CUDA
#include "cuda/projector_ops.h"
#include "kernels/cuda_test_util.h"
#endif

using namespace gemma4;

namespace {

constexpr double kCpuAtol = 1e-5;
constexpr double kCpuRtol = 1e-5;

std::vector<float> uniform(size_t n, uint64_t seed, float lo, float hi) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

constexpr int kDims[] = {1, 128, 255, 256, 257, 640, 3840, 6912};
constexpr int kRows[] = {1, 3, 17};

}  // namespace

TEST_CASE("cpu layer_norm matches a float64 reference", "[kernel]") {
    cpu::ThreadPool pool(2);
    for (int dim : kDims) {
        for (int rows : kRows) {
            const uint64_t seed = dim * 31 + rows;
            CAPTURE(dim, rows, seed);
            const auto x = uniform(size_t(dim) * rows, seed, 2.0f, 4.0f);
            const auto w = uniform(dim, seed + 1, -1.0f, 1.0f);
            const auto b = uniform(dim, seed + 2, -1.0f, 1.0f);
            std::vector<float> out(x.size());
            cpu::layer_norm(x.data(), w.data(), b.data(), rows, dim, 1e-5f, out.data(), pool);
            size_t bad = 0;
            for (int r = 0; r < rows; ++r) {
                double mean = 0, var = 0;
                for (int i = 0; i < dim; ++i) mean += x[r * dim + i];
                mean /= dim;
                for (int i = 0; i < dim; ++i) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
                var /= dim;
                for (int i = 0; i < dim; ++i) {
                    const double want = (x[r * dim + i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i];
                    bad += std::abs(out[r * dim + i] - want) > kCpuAtol + kCpuRtol * std::abs(want);
                }
            }
            CHECK(bad == 0);
            // In place gives the same bits.
            std::vector<float> y = x;
            cpu::layer_norm(y.data(), w.data(), b.data(), rows, dim, 1e-5f, y.data(), pool);
            CHECK(y == out);
        }
    }
}

TEST_CASE("cpu add_bias and add_rows", "[kernel]") {
    cpu::ThreadPool pool(2);
    const int dim = 257, rows = 9, table_rows = 5;
    const auto x = uniform(size_t(dim) * rows, 1, -1.0f, 1.0f);
    const auto bias = uniform(dim, 2, -1.0f, 1.0f);
    const auto table = uniform(size_t(dim) * table_rows, 3, -1.0f, 1.0f);
    const std::vector<int32_t> ids = {4, 0, 0, 3, 1, 2, 4, 4, 0};
    std::vector<float> a = x, c = x;
    cpu::add_bias(a.data(), bias.data(), rows, dim, pool);
    cpu::add_rows(c.data(), table.data(), ids.data(), rows, dim, pool);
    bool ok = true;
    for (int r = 0; r < rows; ++r) {
        for (int i = 0; i < dim; ++i) {
            ok = ok && a[r * dim + i] == x[r * dim + i] + bias[i];
            ok = ok && c[r * dim + i] == x[r * dim + i] + table[ids[r] * dim + i];
        }
    }
    CHECK(ok);
}

#ifdef GEMMA4_HAVE_CUDA

using namespace gemma4::test;

TEST_CASE("cuda layer_norm, add_bias and add_rows match the CPU", "[kernel][cuda]") {
    GEMMA4_REQUIRE_CUDA();
    cpu::ThreadPool pool(2);
    auto& ctx = cuda_context();
    for (int dim : kDims) {
        for (int rows : {1, 7, 64}) {
            const uint64_t seed = dim * 131 + rows;
            CAPTURE(dim, rows, seed);
            const auto x = uniform(size_t(dim) * rows, seed, 2.0f, 4.0f);
            const auto w = uniform(dim, seed + 1, -1.0f, 1.0f);
            const auto b = uniform(dim, seed + 2, -1.0f, 1.0f);
            std::vector<float> want(x.size());
            cpu::layer_norm(x.data(), w.data(), b.data(), rows, dim, 1e-5f, want.data(), pool);
            DeviceBuffer<float> dx(x), dw(w), db(b), dout(x.size());
            dout.poison();
            cuda::layer_norm(dx.get(), dw.get(), db.get(), rows, dim, 1e-5f, dout.get(), ctx);
            check_close(dout.download(), want, 2e-5, 1e-5, 1e-10);
            // in place
            cuda::layer_norm(dx.get(), dw.get(), db.get(), rows, dim, 1e-5f, dx.get(), ctx);
            check_close(dx.download(), want, 2e-5, 1e-5, 1e-10);

            const int table_rows = 11;
            const auto table = uniform(size_t(dim) * table_rows, seed + 3, -1.0f, 1.0f);
            std::vector<int32_t> ids(rows);
            for (int r = 0; r < rows; ++r) ids[r] = (r * 7 + 3) % table_rows;
            std::vector<float> a = x, c = x;
            cpu::add_bias(a.data(), b.data(), rows, dim, pool);
            cpu::add_rows(c.data(), table.data(), ids.data(), rows, dim, pool);
            DeviceBuffer<float> da(x), dc(x), dt(table);
            DeviceBuffer<int32_t> di(ids);
            cuda::add_bias(da.get(), db.get(), rows, dim, ctx);
            cuda::add_rows(dc.get(), dt.get(), di.get(), rows, dim, ctx);
            check_close(da.download(), a, 0.0, 0.0, 0.0);
            check_close(dc.download(), c, 0.0, 0.0, 0.0);
        }
    }
}

#endif  // GEMMA4_HAVE_CUDA
