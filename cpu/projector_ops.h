// CPU reference kernels of the multimodal projector's ops (spec §5.3): LayerNorm, bias add and the
// table-row add of the 2-D position embedding. Signatures as in src/backend/backend.h, with the
// ThreadPool last; their CUDA twins are in cuda/projector_ops.h.
#pragma once

#include <cstdint>

#include "cpu/thread_pool.h"

namespace gemma4::cpu {

/// out[r] = (x[r] - mean) / sqrt(var + eps) * weight + bias (biased variance), per row of dim values.
/// ggml's order: mean and sum of squared deviations accumulated in double, the scale 1/sqrtf in f32,
/// then ((x - mean) * scale) * weight + bias. x and out may alias.
void layer_norm(const float* x, const float* weight, const float* bias, int n_rows, int dim, float eps, float* out,
                ThreadPool& pool);
/// x[r][i] += bias[i].
void add_bias(float* x, const float* bias, int n_rows, int dim, ThreadPool& pool);
/// x[r][i] += table[ids[r]][i].
void add_rows(float* x, const float* table, const int32_t* ids, int n_rows, int dim, ThreadPool& pool);

}  // namespace gemma4::cpu
