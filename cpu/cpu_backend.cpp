#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/format.h>

#include "cpu/ops.h"
#include "cpu/projector_ops.h"
#include "gemma4/error.h"

namespace gemma4::cpu {

namespace {
constexpr size_t kAlignment = 64;  // a cache line; AVX loads never straddle it
}

Backend::Backend(int threads) : pool_(threads) {}

std::string Backend::name() const { return fmt::format("cpu ({} threads)", pool_.size()); }

void* Backend::alloc(size_t bytes) {
    void* p = std::aligned_alloc(kAlignment, (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment);
    if (!p) throw Error(ErrorCode::out_of_memory, fmt::format("cpu: cannot allocate {} bytes", bytes));
    return p;
}

void Backend::free(void* p) noexcept { std::free(p); }

void Backend::upload(void* dst, const void* host_src, size_t bytes) { std::memcpy(dst, host_src, bytes); }
void Backend::download(void* host_dst, const void* src, size_t bytes) { std::memcpy(host_dst, src, bytes); }
void Backend::copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }
const void* Backend::upload_weights(const void* host, size_t) { return host; }

void Backend::embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out) {
    cpu::embed(table, ids, n_tokens, scale, out, pool_);
}

void Backend::rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out) {
    cpu::rms_norm(x, weight, n_rows, dim, eps, out, pool_);
}

void Backend::matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y) { cpu::matmul(w, x, n_tokens, y, pool_); }

void Backend::gate_up_geglu(const WeightMatrix& gate, const WeightMatrix& up, const float* x, int n_tokens,
                            float* scratch, float* out) {
    cpu::matmul(gate, x, n_tokens, scratch, pool_);
    cpu::matmul(up, x, n_tokens, out, pool_);
    cpu::geglu(scratch, out, static_cast<int64_t>(n_tokens) * gate.d_out, out, pool_);
}

void Backend::add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps,
                           float scale) {
    cpu::add_rms_norm(x, a, weight, n_tokens, dim, eps, scale, pool_);
}

void Backend::attention_prepare(float* q, const float* k, const float* v, const BatchPositions& batch,
                                const AttentionLayer& layer, const KvLayerView& kv) {
    cpu::attention_prepare(q, k, v, batch, layer, kv, pool_);
}

void Backend::attention(const float* q, const BatchPositions& batch, const AttentionLayer& layer,
                        const KvLayerView& kv, float* out) {
    cpu::attention(q, batch, layer, kv, out, pool_);
}

void Backend::softcap(float* x, int64_t n, float cap) { cpu::softcap(x, n, cap, pool_); }

void Backend::layer_norm(const float* x, const float* weight, const float* bias, int n_rows, int dim, float eps,
                         float* out) {
    cpu::layer_norm(x, weight, bias, n_rows, dim, eps, out, pool_);
}

void Backend::add_bias(float* x, const float* bias, int n_rows, int dim) { cpu::add_bias(x, bias, n_rows, dim, pool_); }

void Backend::add_rows(float* x, const float* table, const int32_t* ids, int n_rows, int dim) {
    cpu::add_rows(x, table, ids, n_rows, dim, pool_);
}

}  // namespace gemma4::cpu
