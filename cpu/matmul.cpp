// Weight matrix (GGUF blocks) times f32 activations on the CPU.
//
// y[t][o] = sum_i W[o][i] * x[t][i].  W: d_out rows of d_in elements in the GGUF layout; x: [n][d_in].
//
// Batch invariance: every output is a fixed function of its weight row and its token: dot_rows for
// quantized rows, and for f32 rows one 8-lane accumulator running over i in order, i += 8, with one FMA
// per step, then a fixed horizontal sum (lanes 0+4, 1+5, 2+6, 3+7, then pairs). Which tile, thread or
// batch size computes it does not change a single bit, so prefill in one batch, in chunks and token by
// token give identical logits (a test checks this), and decode equals prefill.
//
// Work split: threads take tiles of kTileRows output rows. Quantized rows go through dot_rows (the AVX2
// fused dequantize-and-dot of formats.h, one token at a time; the tile stays in cache across tokens): a
// decode step reads each weight byte once and never writes dequantized floats. f32 rows (f32 files) use
// the register-blocked kernel below, kRowsPerKernel rows x kTokensPerKernel tokens (8 accumulators + 4
// weight vectors + 1 activation vector: 13 of the 16 AVX registers).
#include <immintrin.h>

#include <algorithm>

#include "cpu/ops.h"
#include "quant/formats.h"

namespace gemma4::cpu {
namespace {

constexpr int kLanes = 8;            // f32 lanes of an AVX register
constexpr int kTileRows = 16;        // rows a thread takes at a time (Q4_K 16 x 15360: 135 KiB, cache-resident)
constexpr int kRowsPerKernel = 4;
constexpr int kTokensPerKernel = 2;

// The fixed horizontal sum every output uses.
inline float hsum(__m256 v) {
    const __m128 lo = _mm256_castps256_ps128(v);
    const __m128 hi = _mm256_extractf128_ps(v, 1);
    const __m128 s4 = _mm_add_ps(lo, hi);                    // lanes (0+4) (1+5) (2+6) (3+7)
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4)); // (0+4)+(2+6), (1+5)+(3+7)
    const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

// y[t][r] for R rows (w[r], stride ldw) and T tokens (x[t], stride ldx) over n (a multiple of 8)
// elements, plus a scalar tail for n % 8 added in order after the horizontal sum.
template <int R, int T>
inline void kernel(const float* w, int64_t ldw, const float* x, int64_t ldx, int64_t n, float* y, int64_t ldy) {
    __m256 acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    const int64_t n8 = n / kLanes * kLanes;
    for (int64_t i = 0; i < n8; i += kLanes) {
        __m256 wv[R];
        for (int r = 0; r < R; ++r) wv[r] = _mm256_loadu_ps(w + r * ldw + i);
        for (int t = 0; t < T; ++t) {
            const __m256 xv = _mm256_loadu_ps(x + t * ldx + i);
            for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int t = 0; t < T; ++t) {
            float s = hsum(acc[r][t]);
            for (int64_t i = n8; i < n; ++i) s += w[r * ldw + i] * x[t * ldx + i];
            y[t * ldy + r] = s;
        }
    }
}

// All tokens against `rows` rows of one tile.
void tile_times_tokens(const float* w, int rows, int64_t d_in, const float* x, int n_tokens, float* y, int64_t d_out) {
    int r = 0;
    for (; r + kRowsPerKernel <= rows; r += kRowsPerKernel) {
        int t = 0;
        for (; t + kTokensPerKernel <= n_tokens; t += kTokensPerKernel) {
            kernel<kRowsPerKernel, kTokensPerKernel>(w + r * d_in, d_in, x + t * d_in, d_in, d_in, y + t * d_out + r, d_out);
        }
        for (; t < n_tokens; ++t) kernel<kRowsPerKernel, 1>(w + r * d_in, d_in, x + t * d_in, d_in, d_in, y + t * d_out + r, d_out);
    }
    for (; r < rows; ++r) {
        for (int t = 0; t < n_tokens; ++t) kernel<1, 1>(w + r * d_in, d_in, x + t * d_in, d_in, d_in, y + t * d_out + r, d_out);
    }
}

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, ThreadPool& pool) {
    const auto* base = static_cast<const uint8_t*>(w.data);
    const int64_t d_in = w.d_in;
    const int64_t d_out = w.d_out;
    const int64_t n_tiles = (d_out + kTileRows - 1) / kTileRows;
    if (w.type != GgmlType::F32) {
        // Quantized weights: each output is dot_rows' fused dequantize-and-dot of one row with one token
        // (bit-identical whether the row is computed alone or in a group, see formats.h), so the result
        // again depends on nothing but (row, token). The tile's rows stay in cache across the tokens.
        pool.parallel_for(n_tiles, [&](int64_t b, int64_t e) {
            for (int64_t tile_i = b; tile_i < e; ++tile_i) {
                const int64_t o0 = tile_i * kTileRows;
                const int rows = static_cast<int>(std::min<int64_t>(kTileRows, d_out - o0));
                for (int t = 0; t < n_tokens; ++t) {
                    dot_rows(w.type, base + o0 * w.row_bytes, w.row_bytes, rows, x + t * d_in, y + t * d_out + o0);
                }
            }
        });
        return;
    }
    pool.parallel_for(n_tiles, [&](int64_t b, int64_t e) {
        for (int64_t tile_i = b; tile_i < e; ++tile_i) {
            const int64_t o0 = tile_i * kTileRows;
            const int rows = static_cast<int>(std::min<int64_t>(kTileRows, d_out - o0));
            const float* wt = reinterpret_cast<const float*>(base + o0 * w.row_bytes);
            tile_times_tokens(wt, rows, d_in, x, n_tokens, y + o0, d_out);
        }
    });
}

}  // namespace gemma4::cpu
