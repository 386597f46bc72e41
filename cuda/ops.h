// Launchers of the CUDA kernels, one family per cuda/<family>.cu. Each has the signature of its CPU
// reference in cpu/ops.h, with a cuda::Context in place of the ThreadPool. Every pointer is device
// memory. Shapes as in src/backend/backend.h. Plain C++ header: no CUDA types, so host code and
// tests can include it without nvcc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace gemma4::cuda {

/// Per-backend state the launchers share: the stream, the cuBLAS handle and growable scratch.
/// Created by cuda::Backend; tests create one with Context::create().
class Context {
public:
    static Context* create(int device);  // caller owns; throws Error(device_error)
    virtual ~Context() = default;
    virtual void* stream() const = 0;          // cudaStream_t
    virtual void* cublas() const = 0;          // cublasHandle_t
    /// Device scratch of at least `bytes`, valid until the next scratch() call with the same slot.
    virtual void* scratch(int slot, size_t bytes) = 0;
    virtual int sm_count() const = 0;
    /// Incremented whenever a scratch slot is reallocated.
    virtual uint64_t scratch_generation() const = 0;
    /// `n` device counters that are zero between kernels (a kernel that counts resets what it used before it
    /// ends), valid until the next counters() call that grows them (which bumps scratch_generation()).
    virtual unsigned* counters(size_t n) = 0;
    virtual void synchronize() = 0;
};

// cuda/norm.cu
void embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out, Context& ctx);
void rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out, Context& ctx);
void add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps, float scale, Context& ctx);
void softcap(float* x, int64_t n, float cap, Context& ctx);
void geglu(const float* gate, const float* up, int64_t n, float* out, Context& ctx);

// cuda/matmul_quant.cu: y[t] = W x[t]. Few tokens: quantized matrix-vector kernels reading the GGUF
// blocks directly; many tokens: dequantized tiles and a tensor-core GEMM.
void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, Context& ctx);
/// out[t] = gelu_tanh(W_gate x[t]) * (W_up x[t]); fused for few tokens. `scratch`: n_tokens * d_ff floats.
void gate_up_geglu(const WeightMatrix& gate, const WeightMatrix& up, const float* x, int n_tokens, float* scratch,
                   float* out, Context& ctx);

// cuda/gemv_q8.cu: one-token products with x rounded to 16 bits per 32 elements and integer dot products
// (Q4_K, Q6_K, Q8_0, Q4_0; see the file). matmul and gate_up_geglu use it for one token unless
// exact_decode_requested() (GEMMA4_EXACT_DECODE=1), falling back to the f32 kernels where unsupported.
bool gemv_q8_supports(const WeightMatrix& w, const float* x);
bool exact_decode_requested();
/// y = W x (up == nullptr) or y = gelu_tanh(W x) * (up x); x: [d_in], y: [d_out].
void gemv_q8(const WeightMatrix& w, const WeightMatrix* up, const float* x, float* y, Context& ctx);
/// One launch: ys[k] = W_k h for k < count (<= 3 matrices of one type and d_in), or, with up (count 1),
/// ys[0] = gelu_tanh(W_0 h) * (up h); h = rms_norm(x) with norm_w and eps (as cuda::rms_norm), or x if
/// norm_w is null. Throws invalid_argument for what gemv_q8_supports rejects or mixed types/shapes.
void gemv_q8_norm(const WeightMatrix* const* ws, float* const* ys, int count, const WeightMatrix* up, const float* x,
                  const float* norm_w, float eps, Context& ctx);

// cuda/attention.cu
void attention_prepare(float* q, const float* k, const float* v, const BatchPositions& batch, const AttentionLayer& layer,
                       const KvLayerView& kv, Context& ctx);
void attention(const float* q, const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv, float* out,
               Context& ctx);

}  // namespace gemma4::cuda
