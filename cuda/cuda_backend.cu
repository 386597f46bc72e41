// cuda::Backend: gemma4::Backend on one GPU. Memory ops wrap the CUDA runtime; each op calls its
// launcher in cuda/<family>.cu on the backend's stream. Weights are copied to the device once,
// through two pinned staging buffers so that reading the mmap and the host-to-device copy overlap.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/ops.h"
#include "cuda/projector_ops.h"

namespace gemma4::cuda {
namespace {

constexpr size_t kStagingBytes = size_t{64} << 20;  // per staging buffer; two alternate

class Backend final : public gemma4::Backend {
public:
    explicit Backend(int device) : device_(device), ctx_(Context::create(device)) {
        cudaDeviceProp prop{};
        GEMMA4_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
        name_ = "cuda:" + std::to_string(device) + " " + prop.name + " (" + std::to_string(prop.multiProcessorCount) + " SMs, " +
                std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
        for (auto& s : staging_) {
            GEMMA4_CUDA_CHECK(cudaMallocHost(&s.host, kStagingBytes));
            GEMMA4_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
        }
    }

    ~Backend() override {
        cudaStreamSynchronize(stream());
        for (void* p : weights_) cudaFree(p);
        for (auto& s : staging_) {
            cudaEventDestroy(s.done);
            cudaFreeHost(s.host);
        }
    }

    std::string name() const override { return name_; }

    void* alloc(size_t bytes) override {
        void* p = nullptr;
        const cudaError_t err = cudaMalloc(&p, std::max<size_t>(bytes, 1));
        if (err != cudaSuccess) {
            cudaGetLastError();
            size_t free_bytes = 0, total = 0;
            cudaMemGetInfo(&free_bytes, &total);
            throw Error(ErrorCode::out_of_memory, "cuda:" + std::to_string(device_) + ": cannot allocate " +
                                                      std::to_string(bytes >> 20) + " MiB (" + std::to_string(free_bytes >> 20) +
                                                      " MiB free of " + std::to_string(total >> 20) + ")");
        }
        return p;
    }

    void free(void* p) noexcept override {
        if (!p) return;
        cudaStreamSynchronize(stream());  // queued work may still read it
        cudaFree(p);
    }

    void upload(void* dst, const void* host_src, size_t bytes) override {
        GEMMA4_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream()));
    }
    void download(void* host_dst, const void* src, size_t bytes) override {
        GEMMA4_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
        GEMMA4_CUDA_CHECK(cudaStreamSynchronize(stream()));
    }
    void* alloc_host(size_t bytes) override {
        void* p = nullptr;
        if (cudaMallocHost(&p, std::max<size_t>(bytes, 1)) != cudaSuccess) {
            cudaGetLastError();
            throw Error(ErrorCode::out_of_memory, "cuda:" + std::to_string(device_) + ": cannot allocate " +
                                                      std::to_string(bytes >> 20) + " MiB of page-locked host memory");
        }
        return p;
    }
    void free_host(void* p) noexcept override {
        if (p) cudaFreeHost(p);  // waits for the device
    }
    void copy(void* dst, const void* src, size_t bytes) override {
        GEMMA4_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
    }

    const void* upload_weights(const void* host, size_t bytes) override {
        void* dev = alloc(bytes);
        weights_.push_back(dev);
        const auto* src = static_cast<const char*>(host);
        for (size_t off = 0; off < bytes; off += kStagingBytes) {
            Staging& s = staging_[next_staging_];
            next_staging_ = (next_staging_ + 1) % staging_.size();
            const size_t n = std::min(kStagingBytes, bytes - off);
            GEMMA4_CUDA_CHECK(cudaEventSynchronize(s.done));  // its previous copy has finished
            std::memcpy(s.host, src + off, n);
            GEMMA4_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dev) + off, s.host, n, cudaMemcpyHostToDevice, stream()));
            GEMMA4_CUDA_CHECK(cudaEventRecord(s.done, stream()));
        }
        return dev;
    }
    bool weights_in_host_memory() const override { return false; }

    void embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out) override {
        cuda::embed(table, ids, n_tokens, scale, out, *ctx_);
    }
    void rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out) override {
        cuda::rms_norm(x, weight, n_rows, dim, eps, out, *ctx_);
    }
    void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y) override {
        cuda::matmul(w, x, n_tokens, y, *ctx_);
    }
    void gate_up_geglu(const WeightMatrix& gate, const WeightMatrix& up, const float* x, int n_tokens, float* scratch,
                       float* out) override {
        cuda::gate_up_geglu(gate, up, x, n_tokens, scratch, out, *ctx_);
    }
    // One token: the norm is computed inside the 16-bit-x matrix-vector kernels (cuda/gemv_q8.cu), Q/K/V of
    // one type in one launch. Otherwise (prefill, exact decode, other types) the unfused default.
    void norm_matmuls(const float* x, const float* norm_weight, float eps, int n_tokens, const WeightMatrix* const* ws,
                      float* const* ys, int count, float* h) override {
        if (!fused_decode(x, norm_weight, n_tokens, ws, count)) {
            gemma4::Backend::norm_matmuls(x, norm_weight, eps, n_tokens, ws, ys, count, h);
            return;
        }
        // Runs of consecutive matrices of the same type share a launch.
        for (int k = 0; k < count;) {
            int j = k + 1;
            while (j < count && ws[j]->type == ws[k]->type && ws[j]->d_in == ws[k]->d_in) ++j;
            cuda::gemv_q8_norm(ws + k, ys + k, j - k, nullptr, x, norm_weight, eps, *ctx_);
            k = j;
        }
    }
    void norm_gate_up_geglu(const float* x, const float* norm_weight, float eps, const WeightMatrix& gate, const WeightMatrix& up,
                            int n_tokens, float* scratch, float* out, float* h) override {
        const WeightMatrix* ws[] = {&gate, &up};
        if (!fused_decode(x, norm_weight, n_tokens, ws, 2) || gate.type != up.type || gate.d_out != up.d_out) {
            gemma4::Backend::norm_gate_up_geglu(x, norm_weight, eps, gate, up, n_tokens, scratch, out, h);
            return;
        }
        float* ys[] = {out};
        cuda::gemv_q8_norm(ws, ys, 1, &up, x, norm_weight, eps, *ctx_);
    }
    void add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps, float scale) override {
        cuda::add_rms_norm(x, a, weight, n_tokens, dim, eps, scale, *ctx_);
    }
    bool fused_decode(const float* x, const float* norm_weight, int n_tokens, const WeightMatrix* const* ws, int count) const {
        if (n_tokens != 1 || cuda::exact_decode_requested() || !norm_weight ||
            reinterpret_cast<uintptr_t>(norm_weight) % 16 != 0) {
            return false;
        }
        for (int k = 0; k < count; ++k)
            if (!cuda::gemv_q8_supports(*ws[k], x)) return false;
        return true;
    }
    void attention_prepare(float* q, const float* k, const float* v, const BatchPositions& batch,
                           const AttentionLayer& layer, const KvLayerView& kv) override {
        cuda::attention_prepare(q, k, v, batch, layer, kv, *ctx_);
    }
    void attention(const float* q, const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv,
                   float* out) override {
        cuda::attention(q, batch, layer, kv, out, *ctx_);
    }
    void softcap(float* x, int64_t n, float cap) override { cuda::softcap(x, n, cap, *ctx_); }
    void layer_norm(const float* x, const float* weight, const float* bias, int n_rows, int dim, float eps,
                    float* out) override {
        cuda::layer_norm(x, weight, bias, n_rows, dim, eps, out, *ctx_);
    }
    void add_bias(float* x, const float* bias, int n_rows, int dim) override { cuda::add_bias(x, bias, n_rows, dim, *ctx_); }
    void add_rows(float* x, const float* table, const int32_t* ids, int n_rows, int dim) override {
        cuda::add_rows(x, table, ids, n_rows, dim, *ctx_);
    }
    void synchronize() override { ctx_->synchronize(); }

    bool begin_recording() override {
        GEMMA4_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
        return true;
    }
    void* end_recording() override {
        cudaGraph_t graph = nullptr;
        GEMMA4_CUDA_CHECK(cudaStreamEndCapture(stream(), &graph));
        cudaGraphExec_t exec = nullptr;
        const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        GEMMA4_CUDA_CHECK(err);
        return exec;
    }
    void replay(void* recording) override {
        GEMMA4_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(recording), stream()));
    }
    void destroy_recording(void* recording) noexcept override {
        if (recording) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(recording));
    }
    uint64_t scratch_generation() const override { return ctx_->scratch_generation(); }
    bool device_memory(uint64_t& used, uint64_t& total) const override {
        size_t free_bytes = 0, total_bytes = 0;
        GEMMA4_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
        used = total_bytes - free_bytes;
        total = total_bytes;
        return true;
    }

private:
    cudaStream_t stream() const { return static_cast<cudaStream_t>(ctx_->stream()); }

    struct Staging {
        void* host = nullptr;
        cudaEvent_t done = nullptr;
    };

    int device_;
    std::unique_ptr<Context> ctx_;
    std::string name_;
    std::vector<void*> weights_;
    std::vector<Staging> staging_ = std::vector<Staging>(2);
    size_t next_staging_ = 0;
};

}  // namespace

int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

std::unique_ptr<gemma4::Backend> make_backend(int index) { return std::make_unique<Backend>(index); }

}  // namespace gemma4::cuda
