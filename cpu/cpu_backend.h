// cpu::Backend: the reference backend. Memory is host memory, weights are used in place from the
// mmap, and every op calls its reference kernel in cpu/ on a thread pool.
#pragma once

#include "backend/backend.h"
#include "cpu/thread_pool.h"

namespace gemma4::cpu {

class Backend final : public gemma4::Backend {
public:
    explicit Backend(int threads);

    std::string name() const override;
    void* alloc(size_t bytes) override;
    void free(void* p) noexcept override;
    void upload(void* dst, const void* host_src, size_t bytes) override;
    void download(void* host_dst, const void* src, size_t bytes) override;
    void copy(void* dst, const void* src, size_t bytes) override;
    const void* upload_weights(const void* host, size_t bytes) override;
    bool weights_in_host_memory() const override { return true; }

    void embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out) override;
    void rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out) override;
    void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y) override;
    void gate_up_geglu(const WeightMatrix& gate, const WeightMatrix& up, const float* x, int n_tokens, float* scratch,
                       float* out) override;
    void add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps,
                      float scale) override;
    void attention_prepare(float* q, const float* k, const float* v, const BatchPositions& batch,
                           const AttentionLayer& layer, const KvLayerView& kv) override;
    void attention(const float* q, const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv,
                   float* out) override;
    void softcap(float* x, int64_t n, float cap) override;
    void layer_norm(const float* x, const float* weight, const float* bias, int n_rows, int dim, float eps,
                    float* out) override;
    void add_bias(float* x, const float* bias, int n_rows, int dim) override;
    void add_rows(float* x, const float* table, const int32_t* ids, int n_rows, int dim) override;
    void synchronize() override {}

    ThreadPool& pool() { return pool_; }

private:
    ThreadPool pool_;
};

}  // namespace gemma4::cpu
