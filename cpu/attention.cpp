// Attention on the CPU over the paged KV cache: Q/K/V preparation (per-head RMS norms, NEOX RoPE,
// cache writes) and the masked softmax attention itself, one (token, head) pair at a time.
//
// Cache layout (backend.h, KvLayerView): page j holds positions [j*P, (j+1)*P); inside it K is
// [n_kv_heads][P][head_dim], then V in the same shape; elements are f16 or f32.
// Visibility of key position pk from query position pq (spec §3.5):
//   full layers:    pk <= pq
//   sliding layers: pq - pk < window, and pk <= pq unless both are tokens of the same image (group)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "cpu/ops.h"
#include "gemma4/error.h"

namespace gemma4::cpu {
namespace {

// Address of K (half = 0) or V (half = 1) of `pos`, kv head `g`.
char* kv_slot(const KvLayerView& kv, int pos, int g, int half) {
    char* page = static_cast<char*>(kv.pages[pos / kv.page_tokens]);
    if (!page) throw Error(ErrorCode::invalid_argument, fmt::format("attention: position {} has no KV page", pos));
    const size_t slot = static_cast<size_t>(g) * kv.page_tokens + pos % kv.page_tokens;
    return page + half * kv.half_page_bytes() + slot * kv.head_dim * kv.elem_bytes();
}

void store(const KvLayerView& kv, const float* src, char* dst) {
    if (kv.kv_type == KvType::f32) {
        std::copy(src, src + kv.head_dim, reinterpret_cast<float*>(dst));
    } else {
        auto* h = reinterpret_cast<uint16_t*>(dst);
        for (int i = 0; i < kv.head_dim; ++i) h[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
    }
}

void load(const KvLayerView& kv, const char* src, float* dst) {
    if (kv.kv_type == KvType::f32) {
        std::copy_n(reinterpret_cast<const float*>(src), kv.head_dim, dst);
    } else {
        const auto* h = reinterpret_cast<const uint16_t*>(src);
        for (int i = 0; i < kv.head_dim; ++i) dst[i] = _cvtsh_ss(h[i]);
    }
}

}  // namespace

void rope_neox(float* u, int head_dim, int rope_dims, int pos, float base, const float* freq_divisors) {
    (void)head_dim;  // dims past rope_dims are left as they are
    const int half = rope_dims / 2;
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(rope_dims));
    float theta = static_cast<float>(pos);
    for (int i = 0; i < half; ++i) {
        const float angle = freq_divisors ? theta / freq_divisors[i] : theta;
        const float c = std::cos(angle);
        const float s = std::sin(angle);
        const float x0 = u[i];
        const float x1 = u[i + half];
        u[i] = x0 * c - x1 * s;
        u[i + half] = x0 * s + x1 * c;
        theta *= theta_scale;
    }
}

void attention_prepare(float* q, const float* k, const float* v, const BatchPositions& batch,
                       const AttentionLayer& A, const KvLayerView& kv, ThreadPool& pool) {
    const int hd = A.head_dim;
    const int q_dim = A.n_heads * hd;
    const int kv_dim = A.n_kv_heads * hd;
    pool.parallel_for(batch.n_tokens, [&](int64_t b, int64_t e) {
        std::vector<float> tmp(hd);
        for (int64_t t = b; t < e; ++t) {
            const int pos = batch.pos0 + static_cast<int>(t);
            for (int h = 0; h < A.n_heads; ++h) {
                float* qh = q + t * q_dim + h * hd;
                const float s = rms_scale(qh, hd, A.rms_eps);
                for (int i = 0; i < hd; ++i) qh[i] = (qh[i] * s) * A.q_norm[i];
                rope_neox(qh, hd, A.rope_dims, pos, A.rope_base, A.rope_freqs);
            }
            for (int g = 0; g < A.n_kv_heads; ++g) {
                const float* kh = k + t * kv_dim + g * hd;
                const float sk = rms_scale(kh, hd, A.rms_eps);
                for (int i = 0; i < hd; ++i) tmp[i] = (kh[i] * sk) * A.k_norm[i];
                rope_neox(tmp.data(), hd, A.rope_dims, pos, A.rope_base, A.rope_freqs);
                store(kv, tmp.data(), kv_slot(kv, pos, g, 0));

                const float* vh = v + t * kv_dim + g * hd;
                const float sv = rms_scale(vh, hd, A.rms_eps);
                for (int i = 0; i < hd; ++i) tmp[i] = vh[i] * sv;
                store(kv, tmp.data(), kv_slot(kv, pos, g, 1));
            }
        }
    });
}

void attention(const float* q, const BatchPositions& batch, const AttentionLayer& A, const KvLayerView& kv,
               float* out, ThreadPool& pool) {
    const int hd = A.head_dim;
    const int q_dim = A.n_heads * hd;
    const int heads_per_kv = A.n_heads / A.n_kv_heads;
    const int batch_end = batch.pos0 + batch.n_tokens;  // one past the last cached position
    pool.parallel_for(static_cast<int64_t>(batch.n_tokens) * A.n_heads, [&](int64_t b, int64_t e) {
        std::vector<float> scores, krow(hd), acc(hd);
        std::vector<int> keys;
        for (int64_t idx = b; idx < e; ++idx) {
            const int t = static_cast<int>(idx / A.n_heads);
            const int h = static_cast<int>(idx % A.n_heads);
            const int g = h / heads_per_kv;
            const int pq = batch.pos0 + t;
            const float* qh = q + static_cast<int64_t>(t) * q_dim + h * hd;

            keys.clear();
            const int lo = A.window > 0 ? std::max(0, pq - A.window + 1) : 0;
            for (int pk = lo; pk <= pq; ++pk) keys.push_back(pk);
            if (A.window > 0 && batch.groups && batch.groups[t] >= 0) {
                for (int pk = pq + 1; pk < batch_end; ++pk) {
                    if (batch.groups[pk - batch.pos0] == batch.groups[t]) keys.push_back(pk);
                }
            }

            scores.resize(keys.size());
            float max_score = -INFINITY;
            for (size_t j = 0; j < keys.size(); ++j) {
                load(kv, kv_slot(kv, keys[j], g, 0), krow.data());
                float s = 0.0f;
                for (int i = 0; i < hd; ++i) s += qh[i] * krow[i];
                scores[j] = s * A.scale;
                max_score = std::max(max_score, scores[j]);
            }
            double denom = 0.0;
            for (float& s : scores) {
                s = std::exp(s - max_score);
                denom += s;
            }
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (size_t j = 0; j < keys.size(); ++j) {
                load(kv, kv_slot(kv, keys[j], g, 1), krow.data());
                const float p = scores[j];
                for (int i = 0; i < hd; ++i) acc[i] += p * krow[i];
            }
            float* o = out + static_cast<int64_t>(t) * q_dim + h * hd;
            const float inv = static_cast<float>(1.0 / denom);
            for (int i = 0; i < hd; ++i) o[i] = acc[i] * inv;
        }
    });
}

}  // namespace gemma4::cpu
