// Embedding lookup, RMS norms, soft-capping and GeGLU on the CPU.
#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "model/activations.h"
#include "quant/formats.h"

namespace gemma4::cpu {
float rms_scale(const float* x, int dim, float eps) {
    double sum = 0.0;
    for (int i = 0; i < dim; ++i) sum += static_cast<double>(x[i]) * x[i];
    const float mean = static_cast<float>(sum / dim);
    return 1.0f / std::sqrt(mean + eps);
}

void embed(const WeightMatrix& table, const int32_t* ids, int n_tokens, float scale, float* out, ThreadPool& pool) {
    const int64_t d = table.d_in;
    pool.parallel_for(n_tokens, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float* o = out + t * d;
            dequantize_row(table.type, static_cast<const uint8_t*>(table.data) + ids[t] * table.row_bytes, o, d);
            for (int64_t i = 0; i < d; ++i) o[i] *= scale;
        }
    });
}

void rms_norm(const float* x, const float* weight, int n_rows, int dim, float eps, float* out, ThreadPool& pool) {
    pool.parallel_for(n_rows, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const float* xr = x + r * dim;
            float* o = out + r * dim;
            const float s = rms_scale(xr, dim, eps);
            for (int i = 0; i < dim; ++i) o[i] = weight ? (xr[i] * s) * weight[i] : xr[i] * s;
        }
    });
}

void add_rms_norm(float* x, const float* a, const float* weight, int n_tokens, int dim, float eps, float scale,
                  ThreadPool& pool) {
    pool.parallel_for(n_tokens, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            float* xr = x + t * dim;
            const float* ar = a + t * dim;
            const float s = rms_scale(ar, dim, eps);
            for (int i = 0; i < dim; ++i) {
                const float y = xr[i] + (ar[i] * s) * weight[i];
                xr[i] = scale == 1.0f ? y : y * scale;
            }
        }
    });
}

void softcap(float* x, int64_t n, float cap, ThreadPool& pool) {
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
        const float inv = 1.0f / cap;  // ggml scales by 1/cap, then tanh, then by cap
        for (int64_t i = b; i < e; ++i) x[i] = std::tanh(x[i] * inv) * cap;
    }, 4096);
}

void geglu(const float* gate, const float* up, int64_t n, float* out, ThreadPool& pool) {
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] = gelu_tanh(gate[i]) * up[i];
    }, 4096);
}

}  // namespace gemma4::cpu
