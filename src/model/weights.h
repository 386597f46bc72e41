// ModelWeights: the text model's tensors by role, validated against the config, made usable by one
// backend (zero copy from the mmap on the CPU, uploaded once as stored on a GPU). Immutable; shared
// by every session of a model.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace gemma4 {

class GgufFile;
struct GgufTensorInfo;

struct LayerWeights {
    const float* attn_norm = nullptr;       // [d_model]
    WeightMatrix wq, wk, wv, wo;            // wv.data == nullptr on layers without attn_v (V = K projection)
    const float* q_norm = nullptr;          // [head_dim]
    const float* k_norm = nullptr;          // [head_dim]
    const float* post_attn_norm = nullptr;  // [d_model]
    const float* ffn_norm = nullptr;        // [d_model]
    WeightMatrix gate, up, down;
    const float* post_ffw_norm = nullptr;   // [d_model]
    float output_scale = 1.0f;              // layer_output_scale (1 when absent)
};

/// The 2-D tensor `name` of `file` as a WeightMatrix whose data is `upload(tensor)`: throws
/// Error(invalid_file) unless its shape is [d_in, d_out], Error(unsupported_model) for a quant type this
/// engine cannot run. Shared by the text model and the projector.
WeightMatrix load_weight_matrix(const GgufFile& file, const std::string& name, int64_t d_in, int64_t d_out,
                                const std::function<const void*(const GgufTensorInfo&)>& upload);

struct ModelWeights {
    WeightMatrix token_embd;      // [vocab_size rows][d_model]
    WeightMatrix lm_head;         // output.weight, or token_embd when tied
    const float* output_norm = nullptr;
    const float* rope_freqs = nullptr;  // [rope_dims/2] of the full layers, or null
    std::vector<LayerWeights> layers;
    size_t bytes = 0;             // weight bytes the backend holds

    /// Checks every tensor's presence, type and shape against `config` (Error(invalid_file) naming
    /// the tensor; Error(unsupported_model) for quant types this engine cannot run), then hands the
    /// data to `backend`. `on_progress` gets the fraction done.
    static ModelWeights load(const GgufFile& file, const ModelConfig& config, Backend& backend,
                             const std::function<void(float)>& on_progress = {});
};

}  // namespace gemma4
