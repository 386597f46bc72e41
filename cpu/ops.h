// The CPU reference kernels, one family per file (cpu/<family>.cpp). Each has the signature of its
// CUDA twin (cuda/<family>.cu) with a ThreadPool in place of a stream, and is written for clarity
// first: f32 arithmetic in ggml's operation order, sums of squares in double.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "cpu/thread_pool.h"

namespace gemma4::cpu {

// cpu/norm.cpp
void embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out, ThreadPool& pool);
void rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out, ThreadPool& pool);
void add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps, float scale,
                  ThreadPool& pool);
void softcap(float* x, int64_t n, float cap, ThreadPool& pool);
/// 1 / sqrt(mean(x^2) + eps) over dim values, the sum in double as ggml's CPU does.
float rms_scale(const float* x, int dim, float eps);
/// out = gelu_tanh(gate) * up, elementwise (gelu_tanh: src/model/activations.h).
void geglu(const float* gate, const float* up, int64_t n, float* out, ThreadPool& pool);

// cpu/matmul.cpp
void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, ThreadPool& pool);

// cpu/attention.cpp
void attention_prepare(float* q, const float* k, const float* v, const BatchPositions& batch,
                       const AttentionLayer& layer, const KvLayerView& kv, ThreadPool& pool);
void attention(const float* q, const BatchPositions& batch, const AttentionLayer& layer, const KvLayerView& kv,
               float* out, ThreadPool& pool);
/// NEOX RoPE of one head vector in place, ggml's angle recurrence (theta_i = pos * base^(-2i/R) / f_i).
void rope_neox(float* u, int head_dim, int rope_dims, int pos, float base, const float* freq_divisors);

}  // namespace gemma4::cpu
