#include "model/config.h"

#include <algorithm>

#include <fmt/format.h>

#include "gemma4/error.h"
#include "gguf/gguf_file.h"

namespace gemma4 {
namespace {

[[noreturn]] void unsupported(const GgufFile& f, const std::string& why) {
    throw Error(ErrorCode::unsupported_model, fmt::format("{}: {}", f.path(), why));
}

// A key that may hold one value for every layer or an array with one value per layer.
std::vector<int> per_layer_ints(const GgufFile& f, const std::string& key, int n_layers) {
    const GgufValue* v = f.find(key);
    if (!v) f.fail_key(key, "missing");
    std::vector<int> out;
    if (v->type == GgufType::array) {
        out = f.get_array<int>(key);
        if (static_cast<int>(out.size()) != n_layers) {
            f.fail_key(key, fmt::format("has {} entries for {} layers", out.size(), n_layers));
        }
    } else {
        out.assign(n_layers, f.get<int>(key));
    }
    return out;
}

int positive(const GgufFile& f, const std::string& key, int value, int max = 1 << 24) {
    if (value <= 0 || value > max) f.fail_key(key, fmt::format("value {} is out of range 1..{}", value, max));
    return value;
}

}  // namespace

std::string file_type_name(uint32_t file_type) {
    switch (file_type) {
        case 0: return "F32";
        case 1: return "F16";
        case 2: return "Q4_0";
        case 3: return "Q4_1";
        case 7: return "Q8_0";
        case 8: return "Q5_0";
        case 9: return "Q5_1";
        case 10: return "Q2_K";
        case 11: return "Q3_K_S";
        case 12: return "Q3_K_M";
        case 13: return "Q3_K_L";
        case 14: return "Q4_K_S";
        case 15: return "Q4_K_M";
        case 16: return "Q5_K_S";
        case 17: return "Q5_K_M";
        case 18: return "Q6_K";
        case 32: return "BF16";
        default: return "file type " + std::to_string(file_type);
    }
}

ModelConfig ModelConfig::from_gguf(const GgufFile& f) {
    ModelConfig c;
    if (!f.has("general.architecture")) unsupported(f, "no general.architecture key: not a model file");
    c.architecture = f.get<std::string>("general.architecture");
    if (c.architecture == "clip") {
        unsupported(f, "this is a multimodal projector (architecture 'clip'), not a text model; pass it as the mmproj");
    }
    if (c.architecture != "gemma4") {
        unsupported(f, fmt::format("architecture '{}' is not supported (this engine runs 'gemma4')", c.architecture));
    }
    c.name = f.get_or<std::string>("general.name", "");
    c.file_type = f.get_or<uint32_t>("general.file_type", 0);
    const std::string p = "gemma4.";

    // Variants of the gemma4 architecture this engine does not run.
    if (f.get_or<uint32_t>(p + "embedding_length_per_layer_input", 0) > 0 || f.find_tensor("per_layer_token_embd.weight")) {
        unsupported(f, "per-layer embeddings (Gemma 4 E2B/E4B) are not supported; this engine runs Gemma 4 12B-style models");
    }
    if (f.get_or<uint32_t>(p + "expert_count", 0) > 0 || f.find_tensor("blk.0.ffn_gate_inp.weight")) {
        unsupported(f, "mixture-of-experts Gemma 4 (26B-A4B) is not supported; this engine runs Gemma 4 12B-style models");
    }
    if (f.get_or<uint32_t>(p + "attention.shared_kv_layers", 0) > 0) {
        unsupported(f, "shared-KV layers are not supported; this engine runs Gemma 4 12B-style models");
    }

    c.n_layers = positive(f, p + "block_count", f.get<int>(p + "block_count"), 4096);
    c.d_model = positive(f, p + "embedding_length", f.get<int>(p + "embedding_length"));
    c.context_tokens = positive(f, p + "context_length", f.get<int>(p + "context_length"), 1 << 30);
    c.sliding_window = positive(f, p + "attention.sliding_window", f.get<int>(p + "attention.sliding_window"), 1 << 30);
    c.rms_eps = f.get<float>(p + "attention.layer_norm_rms_epsilon");
    if (!(c.rms_eps > 0.0f && c.rms_eps < 1.0f)) f.fail_key(p + "attention.layer_norm_rms_epsilon", "must be in (0, 1)");
    c.final_softcap = f.get_or<float>(p + "final_logit_softcapping", 0.0f);
    if (!(c.final_softcap >= 0.0f)) f.fail_key(p + "final_logit_softcapping", "must be >= 0");

    const auto n_heads = per_layer_ints(f, p + "attention.head_count", c.n_layers);
    const auto n_kv_heads = per_layer_ints(f, p + "attention.head_count_kv", c.n_layers);
    const auto d_ff = per_layer_ints(f, p + "feed_forward_length", c.n_layers);
    const auto swa = f.get_array<bool>(p + "attention.sliding_window_pattern");
    if (static_cast<int>(swa.size()) != c.n_layers) {
        f.fail_key(p + "attention.sliding_window_pattern", fmt::format("has {} entries for {} layers", swa.size(), c.n_layers));
    }
    const int hd_full = positive(f, p + "attention.key_length", f.get<int>(p + "attention.key_length"), 4096);
    const int hd_swa = positive(f, p + "attention.key_length_swa", f.get<int>(p + "attention.key_length_swa"), 4096);
    if (f.get_or<int>(p + "attention.value_length", hd_full) != hd_full ||
        f.get_or<int>(p + "attention.value_length_swa", hd_swa) != hd_swa) {
        unsupported(f, "value head size differs from key head size (Gemma 4 requires them equal)");
    }
    const float base_full = f.get<float>(p + "rope.freq_base");
    const float base_swa = f.get_or<float>(p + "rope.freq_base_swa", 10000.0f);
    const int rope_full = f.get_or<int>(p + "rope.dimension_count", hd_full);
    const int rope_swa = f.get_or<int>(p + "rope.dimension_count_swa", hd_swa);
    if (!(base_full > 0.0f) || !(base_swa > 0.0f)) f.fail_key(p + "rope.freq_base", "RoPE bases must be positive");

    const GgufTensorInfo& embd = f.tensor("token_embd.weight");
    if (embd.n_dims != 2 || embd.ne[0] != c.d_model) {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: tensor 'token_embd.weight' has shape {}, expected [{}, vocab]",
                                                         f.path(), embd.shape_string(), c.d_model));
    }
    c.vocab_size = static_cast<int>(embd.ne[1]);

    c.layers.resize(c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) {
        LayerConfig& L = c.layers[l];
        L.sliding = swa[l];
        L.n_heads = positive(f, p + "attention.head_count", n_heads[l], 1024);
        L.n_kv_heads = positive(f, p + "attention.head_count_kv", n_kv_heads[l], 1024);
        L.head_dim = L.sliding ? hd_swa : hd_full;
        L.d_ff = positive(f, p + "feed_forward_length", d_ff[l]);
        L.rope_base = L.sliding ? base_swa : base_full;
        L.rope_dims = L.sliding ? rope_swa : rope_full;
        if (L.n_heads % L.n_kv_heads != 0) {
            unsupported(f, fmt::format("layer {}: {} query heads are not a multiple of {} KV heads", l, L.n_heads, L.n_kv_heads));
        }
        if (L.rope_dims <= 0 || L.rope_dims > L.head_dim || L.rope_dims % 2 != 0) {
            unsupported(f, fmt::format("layer {}: rotary dims {} do not fit head size {}", l, L.rope_dims, L.head_dim));
        }
        const std::string blk = fmt::format("blk.{}.", l);
        if (f.find_tensor(blk + "attn_qkv.weight")) {
            unsupported(f, fmt::format("layer {}: fused attn_qkv tensors are not supported (convert with the standard converter)", l));
        }
        L.has_v_proj = f.find_tensor(blk + "attn_v.weight") != nullptr;
        if (!L.has_v_proj && L.sliding) {
            unsupported(f, fmt::format("layer {}: sliding layer without attn_v (K = V is only supported on full layers)", l));
        }
        if (f.find_tensor(blk + "layer_output_scale.weight")) c.has_layer_output_scale = true;
    }
    return c;
}

int ModelConfig::n_sliding_layers() const {
    return static_cast<int>(std::count_if(layers.begin(), layers.end(), [](const LayerConfig& l) { return l.sliding; }));
}

int ModelConfig::n_full_layers() const { return n_layers - n_sliding_layers(); }

int ModelConfig::max_q_dim() const {
    int m = 0;
    for (const auto& l : layers) m = std::max(m, l.n_heads * l.head_dim);
    return m;
}

int ModelConfig::max_kv_dim() const {
    int m = 0;
    for (const auto& l : layers) m = std::max(m, l.n_kv_heads * l.head_dim);
    return m;
}

int ModelConfig::max_d_ff() const {
    int m = 0;
    for (const auto& l : layers) m = std::max(m, l.d_ff);
    return m;
}

}  // namespace gemma4
