// Row dequantization for every supported ggml type, written once over QuantTraits (formats.h).
// The dot products (dot_row, dot_rows) live in cpu/quant_dot.cpp beside their AVX2 kernels.
#include "quant/formats.h"

namespace gemma4 {

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
    visit_quant_type(type, [&]<class Traits>(Traits) {
        using Block = typename Traits::block_type;
        detail::check_row<Traits>("dequantize_row", src, n);
        const auto* blocks = static_cast<const Block*>(src);
        const int64_t n_blocks = n / Traits::block_elems;
        for (int64_t i = 0; i < n_blocks; ++i) Traits::dequantize_block(blocks[i], dst + i * Traits::block_elems);
    });
}

}  // namespace gemma4
