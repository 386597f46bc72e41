// ModelConfig: the Gemma 4 text-model hyper-parameters, typed, from GGUF metadata (spec §1).
//
// Every value is read from the file (nothing about the 12B is hard-coded); what this engine does
// not run is rejected with Error(unsupported_model): another architecture, per-layer embeddings
// (E2B/E4B), mixture of experts (26B-A4B), shared-KV layers, or shapes the forward pass cannot do.
// Immutable once built and shared by every session.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gemma4 {

class GgufFile;

struct LayerConfig {
    bool sliding = false;     // sliding-window attention (else full/global)
    int n_heads = 0;          // query heads
    int n_kv_heads = 0;
    int head_dim = 0;         // K and V head size (equal in Gemma 4)
    int d_ff = 0;
    float rope_base = 0.0f;
    int rope_dims = 0;        // rotary dims R (pairs (i, i + R/2))
    bool has_v_proj = true;   // false on full layers: V is taken from the raw K projection
};

struct ModelConfig {
    std::string architecture;  // "gemma4"
    std::string name;          // general.name, may be empty
    uint32_t file_type = 0;    // general.file_type, 0 if absent

    int n_layers = 0;
    int d_model = 0;
    int vocab_size = 0;
    int context_tokens = 0;    // training context length
    int sliding_window = 0;    // tokens a sliding layer sees, the current one included
    float rms_eps = 1e-6f;
    float final_softcap = 0.0f;  // 0 = none
    bool has_layer_output_scale = false;
    std::vector<LayerConfig> layers;

    /// Reads and validates the config; also checks the tensors that define the variant (no PLE, no
    /// MoE, attn_v exactly on the layers that have it). Throws Error(unsupported_model) for a valid
    /// GGUF that is not a Gemma 4 text model this engine runs, Error(invalid_file) for bad values.
    static ModelConfig from_gguf(const GgufFile& file);

    int n_sliding_layers() const;
    int n_full_layers() const;
    /// Largest head_dim * n_heads over the layers (size of the attention output buffer).
    int max_q_dim() const;
    int max_kv_dim() const;
    int max_d_ff() const;
};

/// Human-readable name of a general.file_type value ("Q4_K_M", "F16", ...).
std::string file_type_name(uint32_t file_type);

}  // namespace gemma4
