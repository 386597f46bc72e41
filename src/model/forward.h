// Forward: the Gemma 4 decoder (spec §3), written once against the Backend interface.
//
// One call processes a batch of consecutive positions of one sequence: text tokens (embedded from
// token_embd and scaled by sqrt(d_model)) and/or media rows (projector outputs, not scaled), writes
// their K/V into the session's cache, and returns logits for the rows asked for.
//
// Per layer l (x is the f32 residual stream):
//   h = rms(x) * attn_norm
//   q, k = Wq h, Wk h;  v = Wv h, or v = k on layers without attn_v
//   q = rope(rms(q) * q_norm); k = rope(rms(k) * k_norm); v = rms(v)        (per head; k, v -> cache)
//   a = Wo attention(q, K, V)                                                (scale 1, causal, window, GQA)
//   x = x + rms(a) * post_attention_norm
//   f = Wdown (gelu_tanh(Wgate h') * Wup h'),  h' = rms(x) * ffn_norm
//   x = (x + rms(f) * post_ffw_norm) * layer_output_scale
// then logits = softcap(lm_head · (rms(x) * output_norm)).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/weights.h"

namespace gemma4 {

struct ForwardBatch {
    int pos0 = 0;
    std::span<const int32_t> ids;        // [n_tokens]; -1 marks a media row taken from `media`
    const float* media = nullptr;        // host [n_tokens][d_model]; rows used where ids[i] == -1
    std::span<const int32_t> groups;     // empty, or [n_tokens] media group per row (-1 = causal)
    std::span<const int> logit_rows;     // rows (0-based in the batch) whose logits are wanted, ascending
};

class Forward {
public:
    Forward(Backend& backend, const ModelConfig& config, const ModelWeights& weights, int max_batch_tokens);
    ~Forward();
    Forward(const Forward&) = delete;
    Forward& operator=(const Forward&) = delete;

    int max_batch_tokens() const { return max_batch_; }

    /// Runs one batch (n_tokens <= max_batch_tokens()). `logits` receives
    /// logit_rows.size() x vocab_size floats (host).
    void run(const ForwardBatch& batch, KvCache& kv, float* logits);

private:
    static constexpr int kLogitChunkRows = 32;  // rows of logits computed per LM-head matmul

    void run_prepared(const ForwardBatch& batch, KvCache& kv, float* logits, const int32_t* ids, bool has_media);
    void embed_and_layers(const BatchPositions& pos, const ForwardBatch& batch, bool has_media);
    void logits_chunk(std::span<const int> rows);  // logits_ <- rows of x_
    /// One decode step as a recording (CUDA graph): the first step of a shape runs directly and sizes
    /// the scratch, the next one is recorded, and later ones replay it. pos.pos0_device carries pos0.
    void run_recorded_step(const BatchPositions& pos, int logit_row);

    Backend& be_;
    const ModelConfig& cfg_;
    const ModelWeights& w_;
    int max_batch_;
    std::vector<AttentionLayer> attn_;     // per layer constants
    // Backend scratch, each sized for max_batch_ rows.
    void* arena_ = nullptr;
    float* x_ = nullptr;        // [n][d_model] residual stream
    float* h_ = nullptr;        // [n][d_model] normed input / block output
    float* q_ = nullptr;        // [n][max_q_dim]
    float* k_ = nullptr;        // [n][max_kv_dim]
    float* v_ = nullptr;        // [n][max_kv_dim]
    float* attn_out_ = nullptr; // [n][max_q_dim]
    float* ff_ = nullptr;       // [n][max_d_ff]
    float* ff_scratch_ = nullptr;  // [n][max_d_ff]
    int32_t* ids_ = nullptr;    // [n]
    int32_t* groups_ = nullptr; // [n]
    float* logit_x_ = nullptr;  // [kLogitChunkRows][d_model]
    float* logits_ = nullptr;   // [kLogitChunkRows][vocab]
    HostBuffer<int32_t> host_ids_;  // [max_batch_ + 1]: the batch's ids, then pos0 (page-locked upload staging)
    int32_t* pos0_ = nullptr;   // [1] pos0 of a recorded step
    std::vector<KvLayerView> kv_views_;
    bool use_recordings_ = true;
    void* recording_ = nullptr;
    uint64_t recording_generation_ = 0;
    uint64_t warm_generation_ = ~uint64_t{0};  // scratch generation after the last direct decode step
};

}  // namespace gemma4
