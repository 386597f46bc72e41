// Quantized (or plain) weight matrix times f32 activations on the CPU, straight from GGUF blocks.
//
// y[t][o] = sum_i W[o][i] * x[t][i].  W: d_out rows of d_in elements in the GGUF layout; x: [n][d_in].
// Decode (few tokens): each output row is one quantized dot product per token (dot_row; memory
// bound, reads each weight byte once). Prefill: rows are dequantized in tiles of kTileRows into a
// per-thread f32 buffer and multiplied with Eigen's GEMM, so dequantization is paid once per row for
// the whole batch. f32 weights are used in place.
#include <Eigen/Core>
#include <vector>

#include "cpu/ops.h"
#include "quant/formats.h"

namespace gemma4::cpu {
namespace {

constexpr int kTileRows = 16;        // output rows dequantized together (16 x 15360 f32 = 960 KiB)
constexpr int kDotMaxTokens = 2;     // up to this many tokens, per-row quantized dots beat dequant+GEMM

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int n_tokens, float* y, ThreadPool& pool) {
    const auto* base = static_cast<const uint8_t*>(w.data);
    const int64_t d_in = w.d_in;
    const int64_t d_out = w.d_out;

    if (n_tokens <= kDotMaxTokens) {
        pool.parallel_for(d_out, [&](int64_t b, int64_t e) {
            for (int t = 0; t < n_tokens; ++t) {
                dot_rows(w.type, base + b * w.row_bytes, w.row_bytes, static_cast<int>(e - b), x + t * d_in,
                         y + t * d_out + b);
            }
        }, 64);
        return;
    }

    const int64_t n_tiles = (d_out + kTileRows - 1) / kTileRows;
    Eigen::Map<const RowMajor> X(x, n_tokens, d_in);
    pool.parallel_for(n_tiles, [&](int64_t b, int64_t e) {
        thread_local std::vector<float> tile;
        for (int64_t tile_i = b; tile_i < e; ++tile_i) {
            const int64_t o0 = tile_i * kTileRows;
            const int rows = static_cast<int>(std::min<int64_t>(kTileRows, d_out - o0));
            const float* wt;
            if (w.type == GgmlType::F32) {
                wt = reinterpret_cast<const float*>(base + o0 * w.row_bytes);
            } else {
                tile.resize(static_cast<size_t>(kTileRows) * d_in);
                for (int r = 0; r < rows; ++r) {
                    dequantize_row(w.type, base + (o0 + r) * w.row_bytes, tile.data() + r * d_in, d_in);
                }
                wt = tile.data();
            }
            Eigen::Map<const RowMajor> T(wt, rows, d_in);
            Eigen::Map<RowMajor, 0, Eigen::OuterStride<>> Y(y + o0, n_tokens, rows, Eigen::OuterStride<>(d_out));
            Y.noalias() = X * T.transpose();
        }
    });
}

}  // namespace gemma4::cpu
