#include "quant/types.h"

#include <array>

namespace gemma4 {
namespace {

// Sizes from ggml's type traits. `supported` marks the types with dequantize/dot code in formats.
constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "f32", 1, 4, true},
    {GgmlType::F16, "f16", 1, 2, true},
    {GgmlType::Q4_0, "q4_0", 32, 18, true},
    {GgmlType::Q4_1, "q4_1", 32, 20, true},
    {GgmlType::Q5_0, "q5_0", 32, 22, true},
    {GgmlType::Q5_1, "q5_1", 32, 24, true},
    {GgmlType::Q8_0, "q8_0", 32, 34, true},
    {GgmlType::Q8_1, "q8_1", 32, 36, false},
    {GgmlType::Q2_K, "q2_K", 256, 84, true},
    {GgmlType::Q3_K, "q3_K", 256, 110, true},
    {GgmlType::Q4_K, "q4_K", 256, 144, true},
    {GgmlType::Q5_K, "q5_K", 256, 176, true},
    {GgmlType::Q6_K, "q6_K", 256, 210, true},
    {GgmlType::Q8_K, "q8_K", 256, 292, true},
    {GgmlType::IQ2_XXS, "iq2_xxs", 256, 66, false},
    {GgmlType::IQ2_XS, "iq2_xs", 256, 74, false},
    {GgmlType::IQ3_XXS, "iq3_xxs", 256, 98, false},
    {GgmlType::IQ1_S, "iq1_s", 256, 50, false},
    {GgmlType::IQ4_NL, "iq4_nl", 32, 18, false},
    {GgmlType::IQ3_S, "iq3_s", 256, 110, false},
    {GgmlType::IQ2_S, "iq2_s", 256, 82, false},
    {GgmlType::IQ4_XS, "iq4_xs", 256, 136, false},
    {GgmlType::I8, "i8", 1, 1, false},
    {GgmlType::I16, "i16", 1, 2, false},
    {GgmlType::I32, "i32", 1, 4, false},
    {GgmlType::I64, "i64", 1, 8, false},
    {GgmlType::F64, "f64", 1, 8, false},
    {GgmlType::IQ1_M, "iq1_m", 256, 56, false},
    {GgmlType::BF16, "bf16", 1, 2, true},
    {GgmlType::TQ1_0, "tq1_0", 256, 54, false},
    {GgmlType::TQ2_0, "tq2_0", 256, 66, false},
    {GgmlType::MXFP4, "mxfp4", 32, 17, false},
};

constexpr uint32_t kMaxId = 40;

constexpr std::array<const GgmlTypeInfo*, kMaxId> make_index() {
    std::array<const GgmlTypeInfo*, kMaxId> index{};
    for (const auto& t : kTypes) index[static_cast<uint32_t>(t.type)] = &t;
    return index;
}
constexpr auto kIndex = make_index();

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) noexcept { return id < kMaxId ? kIndex[id] : nullptr; }

const GgmlTypeInfo& ggml_type_info(GgmlType type) noexcept { return *kIndex[static_cast<uint32_t>(type)]; }

std::string ggml_type_name(uint32_t id) {
    const GgmlTypeInfo* t = ggml_type_info(id);
    return std::string(t ? t->name : "unknown") + " (id " + std::to_string(id) + ")";
}

int64_t ggml_row_bytes(GgmlType type, int64_t n_elements) noexcept {
    const GgmlTypeInfo& t = ggml_type_info(type);
    if (n_elements < 0 || n_elements % t.block_elems != 0) return -1;
    return n_elements / t.block_elems * t.block_bytes;
}

}  // namespace gemma4
