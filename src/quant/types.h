// ggml tensor types: ids, names and block geometry, as stored in GGUF tensor infos.
//
// This is the one table of ggml type ids in the codebase. The GGUF reader uses it to validate
// tensor sizes; the quant formats (formats.h) attach block structs and kernels to the supported
// subset. Ids and sizes follow ggml (ggml/src/ggml.c type_traits); ids that ggml removed or that
// this engine cannot even size are unknown and rejected by the reader.
#pragma once

#include <cstdint>
#include <string>

namespace gemma4 {

enum class GgmlType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
};

struct GgmlTypeInfo {
    GgmlType type;
    const char* name;      // ggml's name: "q4_K", "f16", ...
    uint32_t block_elems;  // elements per block (1 for plain types)
    uint32_t block_bytes;  // bytes per block
    bool supported;        // this engine can dequantize it and multiply with it
};

/// Geometry of ggml type `id`, or nullptr when the id is unknown (the reader then rejects the file).
const GgmlTypeInfo* ggml_type_info(uint32_t id) noexcept;

/// The info of a known type. Never null for an enumerator of GgmlType.
const GgmlTypeInfo& ggml_type_info(GgmlType type) noexcept;

/// "q4_K (id 12)" style name for messages; works for unknown ids too.
std::string ggml_type_name(uint32_t id);

/// Bytes of a row of `n_elements` elements, or -1 if n_elements is not a multiple of the block size.
int64_t ggml_row_bytes(GgmlType type, int64_t n_elements) noexcept;

}  // namespace gemma4
