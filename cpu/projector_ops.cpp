#include "cpu/projector_ops.h"

#include <cmath>

namespace gemma4::cpu {

void layer_norm(const float* x, const float* weight, const float* bias, int n_rows, int dim, float eps, float* out,
                ThreadPool& pool) {
    pool.parallel_for(n_rows, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const float* xr = x + r * dim;
            float* o = out + r * dim;
            double sum = 0.0;
            for (int i = 0; i < dim; ++i) sum += xr[i];
            const float mean = static_cast<float>(sum / dim);
            double sum2 = 0.0;
            for (int i = 0; i < dim; ++i) {
                const float d = xr[i] - mean;
                sum2 += static_cast<double>(d) * d;
            }
            const float var = static_cast<float>(sum2 / dim);
            const float scale = 1.0f / std::sqrt(var + eps);
            for (int i = 0; i < dim; ++i) o[i] = ((xr[i] - mean) * scale) * weight[i] + bias[i];
        }
    });
}

void add_bias(float* x, const float* bias, int n_rows, int dim, ThreadPool& pool) {
    pool.parallel_for(n_rows, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            float* xr = x + r * dim;
            for (int i = 0; i < dim; ++i) xr[i] += bias[i];
        }
    });
}

void add_rows(float* x, const float* table, const int32_t* ids, int n_rows, int dim, ThreadPool& pool) {
    pool.parallel_for(n_rows, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            float* xr = x + r * dim;
            const float* t = table + static_cast<int64_t>(ids[r]) * dim;
            for (int i = 0; i < dim; ++i) xr[i] += t[i];
        }
    });
}

}  // namespace gemma4::cpu
