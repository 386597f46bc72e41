// Helpers for the CUDA kernel tests: device presence, device buffers, seeded random data, and the
// per-element / per-tensor comparison of STYLE.md §6.
#pragma once

#ifdef GEMMA4_HAVE_CUDA

#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "cuda/ops.h"

namespace gemma4::test {

inline bool have_cuda() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return n > 0;
}

/// One shared context for all CUDA tests of a binary.
inline cuda::Context& cuda_context() {
    static std::unique_ptr<cuda::Context> ctx(cuda::Context::create(0));
    return *ctx;
}

template <class T>
class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t n) : n_(n) { REQUIRE(cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T)) == cudaSuccess); }
    explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
    ~DeviceBuffer() { cudaFree(p_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    T* get() const { return p_; }
    void upload(const std::vector<T>& host) {
        REQUIRE(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
        // The kernels run on a non-blocking stream, which is not ordered after legacy-stream copies.
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    }
    std::vector<T> download() const {
        std::vector<T> h(n_);
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        REQUIRE(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
        return h;
    }
    /// Fills every byte with 0xFF (NaN for floats) so unwritten outputs show.
    void poison() {
        REQUIRE(cudaMemset(p_, 0xFF, n_ * sizeof(T)) == cudaSuccess);
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    }

private:
    T* p_ = nullptr;
    size_t n_;
};

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

/// Per element |got - want| <= atol + rtol * |want| (all finite), and NMSE = |got - want|^2 / |want|^2 <= max_nmse.
inline void check_close(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol, double max_nmse) {
    REQUIRE(got.size() == want.size());
    double err2 = 0, ref2 = 0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double d = std::abs(double(got[i]) - want[i]);
        if (!std::isfinite(got[i]) || d > atol + rtol * std::abs(double(want[i]))) {
            if (bad++ == 0) first_bad = i;
        }
        err2 += d * d;
        ref2 += double(want[i]) * want[i];
    }
    INFO("first bad element " << first_bad << ": got " << got[first_bad] << " want " << want[first_bad]);
    CHECK(bad == 0);
    const double nmse = ref2 > 0 ? err2 / ref2 : err2;
    INFO("nmse " << nmse);
    CHECK(nmse <= max_nmse);
}

}  // namespace gemma4::test

#define GEMMA4_REQUIRE_CUDA()                                  \
    do {                                                       \
        if (!::gemma4::test::have_cuda()) {                    \
            WARN("no CUDA device: skipped");                   \
            return;                                            \
        }                                                      \
    } while (0)

#endif  // GEMMA4_HAVE_CUDA
