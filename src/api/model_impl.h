// Model::Impl and Session::Impl: what the public pimpl classes hold. Internal.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gemma4/model.h"
#include "gemma4/session.h"
#include "gguf/gguf_file.h"
#include "kv/kv_cache.h"
#include "model/chat_template.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/tokenizer.h"
#include "model/weights.h"
#include "multimodal/placement.h"
#include "multimodal/projector.h"

namespace gemma4 {

struct Model::Impl {
    Impl(const std::string& path, const ModelOptions& options);

    ModelOptions options;
    GgufFile file;                     // the mapping the CPU backend's weights point into
    ModelConfig config;
    Tokenizer tokenizer;
    ChatTemplate chat_template;
    std::unique_ptr<Backend> backend;  // declared before everything holding backend memory
    ModelWeights weights;
    std::unique_ptr<Projector> projector;  // null without ModelOptions::mmproj
    MediaMarkers media_markers;            // looked up when there is a projector
    std::unique_ptr<KvPools> kv_pools;
    ModelInfo info;

    /// The projector, or Error(invalid_argument) saying how to get one.
    const Projector& require_projector() const;

    void log(LogLevel level, std::string_view message) const {
        if (options.log) options.log(level, message);
    }
};

/// Soft tokens in a session's token stream: tokens[pos, pos + n) are -1 and take their rows from `media`.
struct MediaRun {
    int pos = 0;
    int n = 0;
    int group = -1;  // >= 0 for an image: its tokens attend to each other on sliding layers and are
                     // evaluated in one forward pass; -1 for audio (causal)
    std::shared_ptr<const MediaEmbeddings> media;  // row i fills tokens[pos + i]
};

struct Session::Impl {
    std::shared_ptr<const Model::Impl> model;
    SessionOptions options;
    std::unique_ptr<KvCache> kv;
    std::unique_ptr<Forward> forward;
    std::vector<int32_t> tokens;     // evaluated tokens, then pending ones; -1 marks a soft token
    int n_past = 0;                  // tokens[0, n_past) are in the KV cache
    HostBuffer<float> logits;        // [vocab] logits after tokens[n_past - 1] (page-locked: downloaded into directly)
    bool has_logits = false;
    std::vector<MediaRun> media_runs;  // ascending pos
    int next_media_group = 0;
    // chat state
    std::vector<ChatMessage> history;  // the conversation so far (system message first, if any)
    std::vector<std::shared_ptr<const MediaEmbeddings>> history_media;  // media of `history`, in order
    std::vector<ContentPart> open_user;  // the user turn being built
    std::vector<std::shared_ptr<const MediaEmbeddings>> open_media;  // its media, in order

    Impl(std::shared_ptr<const Model::Impl> m, const SessionOptions& o);
    /// Evaluates tokens[n_past, end); the logits after the last one go to `logits`. With `all` it also returns
    /// the logits of every one of them ([n_pending][vocab]), else an empty vector.
    std::vector<float> evaluate_pending(bool all);
    std::span<const float> last_logits() const;
    void append(std::span<const int32_t> ids);
    /// Appends text ids and media blocks; validates everything before changing any state.
    void append(const MediaSequence& seq);
    /// Drops tokens[n, end) and the media runs there.
    void truncate(int n);
    Generation generate_from_here(const Sampler& sampler, const GenerationLimits& limits, const StreamCallback& cb);
};

}  // namespace gemma4
