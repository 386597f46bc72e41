// Session: one conversation. Owns its KV pages and activation scratch; shares the model's weights.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "api/model_impl.h"
#include "gemma4/error.h"

namespace gemma4 {

const char* to_string(StopReason reason) noexcept {
    switch (reason) {
        case StopReason::end_of_turn: return "end_of_turn";
        case StopReason::max_tokens: return "max_tokens";
        case StopReason::context_full: return "context_full";
        case StopReason::callback_stopped: return "callback_stopped";
    }
    return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

Session::Impl::Impl(std::shared_ptr<const Model::Impl> m, const SessionOptions& o) : model(std::move(m)), options(o) {
    if (options.context_tokens <= 0) throw Error(ErrorCode::invalid_argument, "context_tokens must be positive");
    if (options.batch_tokens <= 0) throw Error(ErrorCode::invalid_argument, "batch_tokens must be positive");
    options.context_tokens = std::min(options.context_tokens, model->config.context_tokens);
    options.batch_tokens = std::min(options.batch_tokens, options.context_tokens);
    kv = std::make_unique<KvCache>(*model->backend, *model->kv_pools, model->config, options.kv_type, options.context_tokens);
    forward = std::make_unique<Forward>(*model->backend, model->config, model->weights, options.batch_tokens);
}

void Session::Impl::append(std::span<const int32_t> ids) {
    for (int32_t id : ids) {
        if (id < 0 || id >= model->config.vocab_size) {
            throw Error(ErrorCode::invalid_argument, fmt::format("token id {} is outside the vocabulary of {}", id, model->config.vocab_size));
        }
    }
    if (tokens.size() + ids.size() > static_cast<size_t>(options.context_tokens)) {
        throw Error(ErrorCode::context_overflow, fmt::format("{} tokens would exceed the session's context of {} tokens",
                                                             tokens.size() + ids.size(), options.context_tokens));
    }
    tokens.insert(tokens.end(), ids.begin(), ids.end());
}

std::vector<float> Session::Impl::evaluate_pending(bool all) {
    const int n_pending = static_cast<int>(tokens.size()) - n_past;
    if (n_pending <= 0) throw Error(ErrorCode::invalid_argument, "nothing to evaluate: no pending tokens");
    const size_t vocab = model->config.vocab_size;
    std::vector<float> out(all ? n_pending * vocab : vocab);
    std::vector<int> rows;
    while (n_past < static_cast<int>(tokens.size())) {
        const int n = std::min<int>(forward->max_batch_tokens(), static_cast<int>(tokens.size()) - n_past);
        const bool last_batch = n_past + n == static_cast<int>(tokens.size());
        rows.clear();
        if (all) {
            for (int r = 0; r < n; ++r) rows.push_back(r);
        } else if (last_batch) {
            rows.push_back(n - 1);
        }
        ForwardBatch batch;
        batch.pos0 = n_past;
        batch.ids = std::span<const int32_t>(tokens.data() + n_past, n);
        batch.logit_rows = rows;
        const int done = n_past - (static_cast<int>(tokens.size()) - n_pending);
        float* dst = all ? out.data() + static_cast<size_t>(done) * vocab : out.data();
        try {
            forward->run(batch, *kv, dst);
        } catch (...) {
            // The cache may hold part of this batch; drop the pending tokens so the state stays valid.
            tokens.resize(n_past);
            throw;
        }
        n_past += n;
    }
    last_logits.assign(out.end() - vocab, out.end());
    return out;
}

Generation Session::Impl::generate_from_here(const Sampler& sampler_in, const GenerationLimits& limits,
                                             const StreamCallback& cb) {
    if (limits.max_new_tokens < 0) throw Error(ErrorCode::invalid_argument, "max_new_tokens must be >= 0");
    Sampler sampler = sampler_in;
    Generation g;
    const auto t0 = Clock::now();
    g.stats.prompt_tokens = static_cast<int>(tokens.size()) - n_past;
    if (n_past < static_cast<int>(tokens.size())) evaluate_pending(false);
    if (last_logits.empty()) throw Error(ErrorCode::invalid_argument, "generate: the session is empty");
    const double prefill_s = seconds_since(t0);
    g.stats.prefill_tok_s = g.stats.prompt_tokens > 0 && prefill_s > 0 ? g.stats.prompt_tokens / prefill_s : 0.0;

    StreamDecoder decoder(model->tokenizer);
    std::vector<float> logits;
    const auto t_decode = Clock::now();
    int decoded = 0;
    g.stop = StopReason::max_tokens;
    for (int i = 0; i < limits.max_new_tokens; ++i) {
        if (static_cast<int>(tokens.size()) >= options.context_tokens) {
            g.stop = StopReason::context_full;
            break;
        }
        logits = last_logits;
        const int32_t id = sampler.sample(logits, tokens);
        if (i == 0) g.stats.time_to_first_token_ms = seconds_since(t0) * 1e3;
        g.tokens.push_back(id);
        g.stats.new_tokens++;
        tokens.push_back(id);  // pending: evaluated before the next sample or by the next call
        if (model->tokenizer.is_eog(id)) {
            g.stop = StopReason::end_of_turn;
            break;
        }
        const std::string piece = decoder.push(id);
        if (!piece.empty()) {
            g.text += piece;
            if (cb && cb(piece) == Stream::stop) {
                g.stop = StopReason::callback_stopped;
                break;
            }
        }
        if (i + 1 < limits.max_new_tokens && static_cast<int>(tokens.size()) < options.context_tokens) {
            evaluate_pending(false);
            ++decoded;
        }
    }
    const std::string rest = decoder.flush();
    if (!rest.empty()) {
        g.text += rest;
        if (cb) cb(rest);
    }
    const double decode_s = seconds_since(t_decode);
    g.stats.decode_tok_s = decoded > 0 && decode_s > 0 ? decoded / decode_s : 0.0;
    return g;
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

Session Model::new_session(const SessionOptions& options) const {
    return Session(std::make_unique<Session::Impl>(impl_, options));
}

void Session::add_tokens(std::span<const int32_t> ids) { impl_->append(ids); }

void Session::add_raw_text(std::string_view text, bool parse_special, bool add_bos) {
    const auto ids = impl_->model->tokenizer.encode(text, add_bos, parse_special);
    impl_->append(ids);
}

std::vector<float> Session::evaluate(bool all_positions) { return impl_->evaluate_pending(all_positions); }

Generation Session::continue_raw(const Sampler& sampler, const GenerationLimits& limits, const StreamCallback& on_piece) {
    return impl_->generate_from_here(sampler, limits, on_piece);
}

void Session::add_text(std::string_view text) { impl_->open_user_text += text; }

namespace {

// The part of `full` after its first `n_chars` characters, keeping each segment's kind.
RenderedPrompt suffix_after(const RenderedPrompt& full, size_t n_chars) {
    RenderedPrompt out;
    for (const auto& seg : full.segments) {
        if (n_chars >= seg.text.size()) {
            n_chars -= seg.text.size();
            continue;
        }
        out.segments.push_back({seg.text.substr(n_chars), seg.special});
        n_chars = 0;
    }
    return out;
}

}  // namespace

Generation Session::generate(const Sampler& sampler, const GenerationLimits& limits, const StreamCallback& on_piece) {
    Impl& s = *impl_;
    const Model::Impl& m = *s.model;
    if (s.open_user_text.empty()) throw Error(ErrorCode::invalid_argument, "generate: add a user message first (add_text)");
    std::vector<ChatMessage> conversation = s.history;
    if (conversation.empty() && !s.options.system_prompt.empty()) {
        conversation.push_back(ChatMessage::text(ChatRole::system, s.options.system_prompt));
    }
    const size_t n_before = conversation.size();
    conversation.push_back(ChatMessage::text(ChatRole::user, s.open_user_text));
    const ChatRenderOptions opts{.thinking = s.options.thinking, .add_generation_prompt = true};
    const RenderedPrompt full = m.chat_template.render(conversation, opts);

    // Append only what is new: the KV cache holds the conversation as the model saw it (with its
    // thought channels), so earlier turns are never re-rendered into it.
    std::vector<int32_t> ids;
    const bool has_turns = n_before > 0 && conversation[n_before - 1].role == ChatRole::model;
    if (s.tokens.empty() || !has_turns) {
        s.tokens.clear();
        s.n_past = 0;
        s.last_logits.clear();
        s.kv->clear();
        ids = full.tokenize(m.tokenizer);
    } else {
        const RenderedPrompt before = m.chat_template.render(
            std::span<const ChatMessage>(conversation.data(), n_before), {.thinking = s.options.thinking, .add_generation_prompt = false});
        const std::string full_text = full.text();
        const std::string before_text = before.text();
        if (full_text.compare(0, before_text.size(), before_text) != 0) {
            throw Error(ErrorCode::unsupported_model, "chat template: a new turn does not extend the rendered history");
        }
        // Close the model turn that is in the cache: its end-of-turn token (if it ended with one) is
        // pending; the rest of the closing text comes from the template.
        const auto close_turn = m.tokenizer.encode(
            s.tokens.back() == m.tokenizer.find("<turn|>").value_or(-1) ? "\n" : "<turn|>\n", false, true);
        ids.assign(close_turn.begin(), close_turn.end());
        const auto rest = suffix_after(full, before_text.size()).tokenize(m.tokenizer);
        ids.insert(ids.end(), rest.begin(), rest.end());
    }
    s.append(ids);
    s.history = conversation;
    s.open_user_text.clear();
    Generation g = s.generate_from_here(sampler, limits, on_piece);
    s.history.push_back(ChatMessage::text(ChatRole::model, g.text));
    return g;
}

int Session::n_tokens() const { return static_cast<int>(impl_->tokens.size()); }
int Session::context_tokens() const { return impl_->options.context_tokens; }
const std::vector<int32_t>& Session::tokens() const { return impl_->tokens; }

void Session::reset() {
    impl_->kv->clear();
    impl_->tokens.clear();
    impl_->n_past = 0;
    impl_->last_logits.clear();
    impl_->history.clear();
    impl_->open_user_text.clear();
}

}  // namespace gemma4
