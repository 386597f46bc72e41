// Launchers of the multimodal projector's kernels (cuda/projector_ops.cu): LayerNorm, bias add and
// the table-row add of the 2-D position embedding. Same signatures as the CPU references in
// cpu/projector_ops.h, with a cuda::Context in place of the ThreadPool; every pointer is device memory.
// Plain C++ header (no CUDA types).
#pragma once

#include <cstdint>

#include "cuda/ops.h"

namespace gemma4::cuda {

void layer_norm(const float* x, const float* weight, const float* bias, int n_rows, int dim, float eps, float* out,
                Context& ctx);
void add_bias(float* x, const float* bias, int n_rows, int dim, Context& ctx);
void add_rows(float* x, const float* table, const int32_t* ids, int n_rows, int dim, Context& ctx);

}  // namespace gemma4::cuda
