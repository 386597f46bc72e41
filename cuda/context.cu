// cuda::Context: the stream, the cuBLAS handle and the growable scratch buffers of one backend.
#include <cublas_v2.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace gemma4::cuda {

void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
    const ErrorCode code = err == cudaErrorMemoryAllocation ? ErrorCode::out_of_memory : ErrorCode::device_error;
    throw Error(code, std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") in " + what +
                          " at " + file + ":" + std::to_string(line));
}

bool env_is(const char* name, const char* value) {
    const char* env = std::getenv(name);
    return env != nullptr && std::strcmp(env, value) == 0;
}

bool dependent_launch_enabled() {
    static const bool enabled = !env_is("GEMMA4_PDL", "0");
    return enabled;
}

namespace {

class ContextImpl final : public Context {
public:
    explicit ContextImpl(int device) {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess || device < 0 || device >= n) {
            cudaGetLastError();
            throw Error(ErrorCode::device_error,
                        "cuda:" + std::to_string(device) + " does not exist (" + std::to_string(n) + " CUDA devices)");
        }
        GEMMA4_CUDA_CHECK(cudaSetDevice(device));
        GEMMA4_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) {
            cudaStreamDestroy(stream_);
            throw Error(ErrorCode::device_error, "cuBLAS initialisation failed");
        }
        cublasSetStream(cublas_, stream_);
        cudaDeviceProp prop{};
        GEMMA4_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
        sm_count_ = prop.multiProcessorCount;
    }

    ~ContextImpl() override {
        cudaStreamSynchronize(stream_);
        for (auto& s : slots_) cudaFree(s.ptr);
        cudaFree(counters_.ptr);
        cublasDestroy(cublas_);
        cudaStreamDestroy(stream_);
    }

    void* stream() const override { return stream_; }
    void* cublas() const override { return cublas_; }
    int sm_count() const override { return sm_count_; }
    uint64_t scratch_generation() const override { return generation_; }
    void synchronize() override { GEMMA4_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

    void* scratch(int slot, size_t bytes) override {
        if (slot < 0 || slot >= kSlots) throw Error(ErrorCode::invalid_argument, "scratch slot " + std::to_string(slot));
        grow(slots_[slot], bytes);
        return slots_[slot].ptr;
    }

    unsigned* counters(size_t n) override {
        if (grow(counters_, n * sizeof(unsigned))) {
            GEMMA4_CUDA_CHECK(cudaMemsetAsync(counters_.ptr, 0, counters_.bytes, stream_));
            GEMMA4_CUDA_CHECK(cudaStreamSynchronize(stream_));
        }
        return static_cast<unsigned*>(counters_.ptr);
    }

private:
    static constexpr int kSlots = 16;
    struct Slot {
        void* ptr = nullptr;
        size_t bytes = 0;
    };

    /// Reallocates `s` to `bytes` if it is smaller (its contents are then undefined); true if it did.
    bool grow(Slot& s, size_t bytes) {
        if (s.bytes >= bytes) return false;
        // Work queued on the stream may still use the old buffer.
        GEMMA4_CUDA_CHECK(cudaStreamSynchronize(stream_));
        if (s.ptr) GEMMA4_CUDA_CHECK(cudaFree(s.ptr));
        s.ptr = nullptr;
        s.bytes = 0;
        GEMMA4_CUDA_CHECK(cudaMalloc(&s.ptr, bytes));
        s.bytes = bytes;
        ++generation_;
        return true;
    }
    cudaStream_t stream_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    int sm_count_ = 0;
    uint64_t generation_ = 0;
    std::array<Slot, kSlots> slots_{};
    Slot counters_;
};

}  // namespace

Context* Context::create(int device) { return new ContextImpl(device); }

}  // namespace gemma4::cuda
