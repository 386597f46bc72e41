#include "model/weights.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "gemma4/error.h"
#include "gguf/gguf_file.h"

namespace gemma4 {
namespace {

class Loader {
public:
    Loader(const GgufFile& file, Backend& backend, const std::function<void(float)>& on_progress)
        : file_(file), backend_(backend), on_progress_(on_progress) {
        for (const auto& t : file.tensors()) total_bytes_ += t.n_bytes;
    }

    const GgufTensorInfo& info(const std::string& name, std::initializer_list<int64_t> shape) {
        const GgufTensorInfo& t = file_.tensor(name);
        bool ok = t.n_dims == shape.size();
        size_t d = 0;
        for (int64_t ne : shape) ok = ok && t.ne[d++] == ne;
        if (!ok) {
            std::string want = "[";
            for (int64_t ne : shape) want += (want.size() > 1 ? ", " : "") + std::to_string(ne);
            throw Error(ErrorCode::invalid_file, fmt::format("{}: tensor '{}' has shape {}, expected {}]", file_.path(), name,
                                                             t.shape_string(), want));
        }
        return t;
    }

    WeightMatrix matrix(const std::string& name, int64_t d_in, int64_t d_out) {
        return load_weight_matrix(file_, name, d_in, d_out, [this](const GgufTensorInfo& t) { return upload(t); });
    }

    const float* vector(const std::string& name, int64_t n) {
        const GgufTensorInfo& t = info(name, {n});
        if (t.type != GgmlType::F32) {
            throw Error(ErrorCode::unsupported_model,
                        fmt::format("{}: tensor '{}' has type {}; 1-D tensors must be f32", file_.path(), name, ggml_type_info(t.type).name));
        }
        return static_cast<const float*>(upload(t));
    }

    float scalar(const std::string& name) {
        const GgufTensorInfo& t = info(name, {1});
        if (t.type != GgmlType::F32) {
            throw Error(ErrorCode::unsupported_model, fmt::format("{}: tensor '{}' must be f32", file_.path(), name));
        }
        float v;
        std::memcpy(&v, t.data, sizeof v);
        if (!std::isfinite(v)) throw Error(ErrorCode::invalid_file, fmt::format("{}: tensor '{}' is not finite", file_.path(), name));
        return v;
    }

    size_t uploaded_bytes() const { return uploaded_; }

private:
    const void* upload(const GgufTensorInfo& t) {
        const void* p = backend_.upload_weights(t.data, t.n_bytes);
        uploaded_ += t.n_bytes;
        if (on_progress_ && total_bytes_ > 0) on_progress_(static_cast<float>(uploaded_) / static_cast<float>(total_bytes_));
        return p;
    }

    const GgufFile& file_;
    Backend& backend_;
    const std::function<void(float)>& on_progress_;
    uint64_t total_bytes_ = 0;
    uint64_t uploaded_ = 0;
};

}  // namespace

WeightMatrix load_weight_matrix(const GgufFile& file, const std::string& name, int64_t d_in, int64_t d_out,
                                const std::function<const void*(const GgufTensorInfo&)>& upload) {
    const GgufTensorInfo& t = file.tensor(name);
    if (t.n_dims != 2 || t.ne[0] != d_in || t.ne[1] != d_out) {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: tensor '{}' has shape {}, expected [{}, {}]", file.path(), name,
                                                         t.shape_string(), d_in, d_out));
    }
    if (!ggml_type_info(t.type).supported || t.type == GgmlType::Q8_K) {
        throw Error(ErrorCode::unsupported_model, fmt::format("{}: tensor '{}' has type {}, which this engine does not run",
                                                              file.path(), name, ggml_type_info(t.type).name));
    }
    WeightMatrix w;
    w.type = t.type;
    w.d_in = d_in;
    w.d_out = d_out;
    w.row_bytes = t.row_bytes();
    w.data = upload(t);
    return w;
}

ModelWeights ModelWeights::load(const GgufFile& file, const ModelConfig& c, Backend& backend,
                                const std::function<void(float)>& on_progress) {
    Loader ld(file, backend, on_progress);
    ModelWeights w;
    w.token_embd = ld.matrix("token_embd.weight", c.d_model, c.vocab_size);
    w.lm_head = file.find_tensor("output.weight") ? ld.matrix("output.weight", c.d_model, c.vocab_size) : w.token_embd;
    w.output_norm = ld.vector("output_norm.weight", c.d_model);

    int full_rope_dims = 0;
    for (const auto& l : c.layers) {
        if (!l.sliding) full_rope_dims = l.rope_dims;
    }
    if (file.find_tensor("rope_freqs.weight")) {
        if (full_rope_dims == 0) {
            throw Error(ErrorCode::invalid_file, file.path() + ": rope_freqs.weight is present but no layer uses full attention");
        }
        w.rope_freqs = ld.vector("rope_freqs.weight", full_rope_dims / 2);
    }

    w.layers.resize(c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) {
        const LayerConfig& lc = c.layers[l];
        LayerWeights& L = w.layers[l];
        const std::string b = fmt::format("blk.{}.", l);
        const int64_t q_dim = static_cast<int64_t>(lc.n_heads) * lc.head_dim;
        const int64_t kv_dim = static_cast<int64_t>(lc.n_kv_heads) * lc.head_dim;
        L.attn_norm = ld.vector(b + "attn_norm.weight", c.d_model);
        L.wq = ld.matrix(b + "attn_q.weight", c.d_model, q_dim);
        L.wk = ld.matrix(b + "attn_k.weight", c.d_model, kv_dim);
        if (lc.has_v_proj) L.wv = ld.matrix(b + "attn_v.weight", c.d_model, kv_dim);
        L.wo = ld.matrix(b + "attn_output.weight", q_dim, c.d_model);
        L.q_norm = ld.vector(b + "attn_q_norm.weight", lc.head_dim);
        L.k_norm = ld.vector(b + "attn_k_norm.weight", lc.head_dim);
        L.post_attn_norm = ld.vector(b + "post_attention_norm.weight", c.d_model);
        L.ffn_norm = ld.vector(b + "ffn_norm.weight", c.d_model);
        L.gate = ld.matrix(b + "ffn_gate.weight", c.d_model, lc.d_ff);
        L.up = ld.matrix(b + "ffn_up.weight", c.d_model, lc.d_ff);
        L.down = ld.matrix(b + "ffn_down.weight", lc.d_ff, c.d_model);
        L.post_ffw_norm = ld.vector(b + "post_ffw_norm.weight", c.d_model);
        if (file.find_tensor(b + "layer_output_scale.weight")) L.output_scale = ld.scalar(b + "layer_output_scale.weight");
    }
    w.bytes = ld.uploaded_bytes();
    if (on_progress) on_progress(1.0f);
    return w;
}

}  // namespace gemma4
