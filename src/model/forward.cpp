#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include "gemma4/error.h"

namespace gemma4 {

Forward::Forward(Backend& backend, const ModelConfig& config, const ModelWeights& weights, int max_batch_tokens)
    : be_(backend), cfg_(config), w_(weights), max_batch_(max_batch_tokens) {
    if (max_batch_tokens <= 0) throw Error(ErrorCode::invalid_argument, "batch size must be positive");
    // GEMMA4_CUDA_GRAPHS=0 turns recorded decode steps off (for measuring what they save).
    if (const char* env = std::getenv("GEMMA4_CUDA_GRAPHS"); env && std::string_view(env) == "0") use_recordings_ = false;
    attn_.resize(cfg_.n_layers);
    for (int l = 0; l < cfg_.n_layers; ++l) {
        const LayerConfig& lc = cfg_.layers[l];
        AttentionLayer& a = attn_[l];
        a.n_heads = lc.n_heads;
        a.n_kv_heads = lc.n_kv_heads;
        a.head_dim = lc.head_dim;
        a.rope_dims = lc.rope_dims;
        a.rope_base = lc.rope_base;
        a.rope_freqs = lc.sliding ? nullptr : w_.rope_freqs;
        a.q_norm = w_.layers[l].q_norm;
        a.k_norm = w_.layers[l].k_norm;
        a.rms_eps = cfg_.rms_eps;
        a.window = lc.sliding ? cfg_.sliding_window : 0;
        a.scale = 1.0f;
    }
    const size_t n = static_cast<size_t>(max_batch_);
    const size_t d = cfg_.d_model;
    // One arena, carved into aligned slices.
    const size_t sizes[] = {n * d * 4, n * d * 4, n * cfg_.max_q_dim() * 4, n * cfg_.max_kv_dim() * 4,
                            n * cfg_.max_kv_dim() * 4, n * cfg_.max_q_dim() * 4, n * cfg_.max_d_ff() * 4,
                            n * cfg_.max_d_ff() * 4, n * 4, n * 4 + 4, kLogitChunkRows * d * 4,
                            static_cast<size_t>(kLogitChunkRows) * cfg_.vocab_size * 4};
    constexpr size_t kAlign = 256;
    size_t total = 0;
    for (size_t s : sizes) total += (s + kAlign - 1) / kAlign * kAlign;
    arena_ = be_.alloc(total);
    char* p = static_cast<char*>(arena_);
    void* slices[std::size(sizes)];
    for (size_t i = 0; i < std::size(sizes); ++i) {
        slices[i] = p;
        p += (sizes[i] + kAlign - 1) / kAlign * kAlign;
    }
    x_ = static_cast<float*>(slices[0]);
    h_ = static_cast<float*>(slices[1]);
    q_ = static_cast<float*>(slices[2]);
    k_ = static_cast<float*>(slices[3]);
    v_ = static_cast<float*>(slices[4]);
    attn_out_ = static_cast<float*>(slices[5]);
    ff_ = static_cast<float*>(slices[6]);
    ff_scratch_ = static_cast<float*>(slices[7]);
    ids_ = static_cast<int32_t*>(slices[8]);
    groups_ = static_cast<int32_t*>(slices[9]);
    pos0_ = groups_ + n;
    logit_x_ = static_cast<float*>(slices[10]);
    logits_ = static_cast<float*>(slices[11]);
    host_ids_ = HostBuffer<int32_t>(be_, n + 1);
}

Forward::~Forward() {
    be_.destroy_recording(recording_);
    be_.free(arena_);
}

void Forward::embed_and_layers(const BatchPositions& pos, const ForwardBatch& batch, bool has_media) {
    const int n = pos.n_tokens;
    const int d = cfg_.d_model;
    be_.embed(w_.token_embd, ids_, n, std::sqrt(static_cast<float>(d)), x_);
    if (has_media) {
        for (int i = 0; i < n;) {
            if (batch.ids[i] != -1) {
                ++i;
                continue;
            }
            int j = i;
            while (j < n && batch.ids[j] == -1) ++j;
            be_.upload(x_ + static_cast<size_t>(i) * d, batch.media + static_cast<size_t>(i) * d, sizeof(float) * d * (j - i));
            i = j;
        }
    }
    for (int l = 0; l < cfg_.n_layers; ++l) {
        const LayerWeights& L = w_.layers[l];
        const AttentionLayer& A = attn_[l];
        // h = rms_norm(x) * attn_norm; q, k (and v) = W h. Full layers have no V: V is the raw K projection.
        const WeightMatrix* qkv[] = {&L.wq, &L.wk, &L.wv};
        float* qkv_out[] = {q_, k_, v_};
        const bool has_v = L.wv.data != nullptr;
        be_.norm_matmuls(x_, L.attn_norm, cfg_.rms_eps, n, qkv, qkv_out, has_v ? 3 : 2, h_);
        const float* v = has_v ? v_ : k_;
        const KvLayerView view = kv_views_[l];
        be_.attention_prepare(q_, k_, v, pos, A, view);
        be_.attention(q_, pos, A, view, attn_out_);
        be_.matmul(L.wo, attn_out_, n, h_);
        be_.add_rms_norm(x_, h_, L.post_attn_norm, n, d, cfg_.rms_eps, 1.0f);

        be_.norm_gate_up_geglu(x_, L.ffn_norm, cfg_.rms_eps, L.gate, L.up, n, ff_scratch_, ff_, h_);
        be_.matmul(L.down, ff_, n, h_);
        be_.add_rms_norm(x_, h_, L.post_ffw_norm, n, d, cfg_.rms_eps, L.output_scale);
    }
}

void Forward::logits_chunk(std::span<const int> rows) {
    const int d = cfg_.d_model;
    const int n = static_cast<int>(rows.size());
    if (n == 1) {
        // One row (decode): no gather; the backend may fuse the final norm into the LM head.
        const WeightMatrix* head[] = {&w_.lm_head};
        float* out[] = {logits_};
        be_.norm_matmuls(x_ + static_cast<size_t>(rows[0]) * d, w_.output_norm, cfg_.rms_eps, 1, head, out, 1, logit_x_);
    } else {
        for (int r = 0; r < n; ++r) {
            be_.copy(logit_x_ + static_cast<size_t>(r) * d, x_ + static_cast<size_t>(rows[r]) * d, sizeof(float) * d);
        }
        be_.rms_norm(logit_x_, w_.output_norm, n, d, cfg_.rms_eps, logit_x_);
        be_.matmul(w_.lm_head, logit_x_, n, logits_);
    }
    if (cfg_.final_softcap > 0.0f) be_.softcap(logits_, static_cast<int64_t>(n) * cfg_.vocab_size, cfg_.final_softcap);
}

void Forward::run_recorded_step(const BatchPositions& pos, int logit_row) {
    const int rows[] = {logit_row};
    const ForwardBatch text_only;
    const uint64_t generation = be_.scratch_generation();
    if (recording_ && recording_generation_ != generation) {
        be_.destroy_recording(recording_);
        recording_ = nullptr;
    }
    if (!recording_ && warm_generation_ == generation) {
        // The previous step ran with these shapes and allocated its scratch: record this one.
        if (be_.begin_recording()) {
            try {
                embed_and_layers(pos, text_only, false);
                logits_chunk(rows);
            } catch (...) {
                be_.destroy_recording(be_.end_recording());
                throw;
            }
            recording_ = be_.end_recording();
            recording_generation_ = generation;
        } else {
            use_recordings_ = false;  // the backend cannot record; run ops directly from now on
        }
    }
    if (recording_) {
        be_.replay(recording_);
        return;
    }
    embed_and_layers(pos, text_only, false);
    logits_chunk(rows);
    warm_generation_ = be_.scratch_generation();
}

void Forward::run(const ForwardBatch& batch, KvCache& kv, float* logits) {
    const int n = static_cast<int>(batch.ids.size());
    if (n <= 0 || n > max_batch_) {
        throw Error(ErrorCode::invalid_argument, fmt::format("batch of {} tokens (1..{} allowed)", n, max_batch_));
    }
    if (!batch.groups.empty() && static_cast<int>(batch.groups.size()) != n) {
        throw Error(ErrorCode::invalid_argument, "media groups must have one entry per batch row");
    }
    // Validate ids and find media rows before touching the cache.
    int32_t* ids = host_ids_.data();  // every run ends synchronized: the previous upload from it is done
    std::copy(batch.ids.begin(), batch.ids.end(), ids);
    bool has_media = false;
    for (int i = 0; i < n; ++i) {
        if (ids[i] == -1) {
            if (!batch.media) throw Error(ErrorCode::invalid_argument, "media row without media embeddings");
            has_media = true;
            ids[i] = 0;  // embedded, then overwritten below
        } else if (ids[i] < 0 || ids[i] >= cfg_.vocab_size) {
            throw Error(ErrorCode::invalid_argument, fmt::format("token id {} is outside the vocabulary of {}", ids[i], cfg_.vocab_size));
        }
    }
    int prev = -1;
    for (int r : batch.logit_rows) {
        if (r <= prev || r >= n) throw Error(ErrorCode::invalid_argument, "logit rows must be ascending and inside the batch");
        prev = r;
    }

    try {
        run_prepared(batch, kv, logits, ids, has_media);
    } catch (...) {
        // An upload from host_ids_ may still be queued: let it finish before the next run rewrites the buffer.
        try {
            be_.synchronize();
        } catch (...) {
        }
        throw;
    }
}

void Forward::run_prepared(const ForwardBatch& batch, KvCache& kv, float* logits, const int32_t* ids, bool has_media) {
    const int n = static_cast<int>(batch.ids.size());
    kv.prepare(batch.pos0, n);
    kv_views_.resize(cfg_.n_layers);
    for (int l = 0; l < cfg_.n_layers; ++l) kv_views_[l] = kv.view(l);

    // ---- embeddings
    be_.upload(ids_, ids, sizeof(int32_t) * n);
    BatchPositions pos{batch.pos0, n, nullptr};
    if (!batch.groups.empty()) {
        be_.upload(groups_, batch.groups.data(), sizeof(int32_t) * n);
        pos.groups = groups_;
    }
    const size_t vocab = cfg_.vocab_size;

    // Decode of one text token: replay a recorded step (CUDA graph) where the backend can.
    if (use_recordings_ && n == 1 && !has_media && batch.groups.empty() && batch.logit_rows.size() == 1) {
        host_ids_.data()[max_batch_] = batch.pos0;
        be_.upload(pos0_, host_ids_.data() + max_batch_, sizeof(int32_t));
        pos.pos0_device = pos0_;
        pos.max_positions = kv.context_tokens();
        run_recorded_step(pos, batch.logit_rows[0]);
        be_.download(logits, logits_, sizeof(float) * vocab);
        return;
    }

    embed_and_layers(pos, batch, has_media);
    for (size_t c = 0; c < batch.logit_rows.size(); c += kLogitChunkRows) {
        const int rows = static_cast<int>(std::min<size_t>(kLogitChunkRows, batch.logit_rows.size() - c));
        logits_chunk(batch.logit_rows.subspan(c, rows));
        be_.download(logits + c * vocab, logits_, sizeof(float) * rows * vocab);
    }
    be_.synchronize();
}

}  // namespace gemma4
