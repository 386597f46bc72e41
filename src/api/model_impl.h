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
    std::unique_ptr<KvPools> kv_pools;
    ModelInfo info;

    void log(LogLevel level, std::string_view message) const {
        if (options.log) options.log(level, message);
    }
};

struct Session::Impl {
    std::shared_ptr<const Model::Impl> model;
    SessionOptions options;
    std::unique_ptr<KvCache> kv;
    std::unique_ptr<Forward> forward;
    std::vector<int32_t> tokens;     // evaluated tokens, then pending ones
    int n_past = 0;                  // tokens[0, n_past) are in the KV cache
    std::vector<float> last_logits;  // logits after tokens[n_past - 1]
    // chat state
    std::vector<ChatMessage> history;  // the conversation so far (system message first, if any)
    std::string open_user_text;        // text of the user turn being built

    Impl(std::shared_ptr<const Model::Impl> m, const SessionOptions& o);
    /// Evaluates tokens[n_past, end). Returns logits for all of them (`all`) or for the last one.
    std::vector<float> evaluate_pending(bool all);
    void append(std::span<const int32_t> ids);
    Generation generate_from_here(const Sampler& sampler, const GenerationLimits& limits, const StreamCallback& cb);
};

}  // namespace gemma4
