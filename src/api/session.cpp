// Session: one conversation. Owns its KV pages and activation scratch; shares the model's weights.
#include <algorithm>
#include <chrono>
#include <cmath>

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
    logits = HostBuffer<float>(*model->backend, model->config.vocab_size);
}

std::span<const float> Session::Impl::last_logits() const {
    return has_logits ? std::span<const float>(logits.data(), logits.size()) : std::span<const float>();
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

void Session::Impl::append(const MediaSequence& seq) {
    for (int32_t id : seq.ids) {
        if (id != -1 && (id < 0 || id >= model->config.vocab_size)) {
            throw Error(ErrorCode::invalid_argument, fmt::format("token id {} is outside the vocabulary of {}", id, model->config.vocab_size));
        }
    }
    size_t n_soft = 0;
    for (const auto& b : seq.blocks) {
        const MediaEmbeddings& m = *b.media;
        if (m.d_model != model->config.d_model || m.n_tokens <= 0 ||
            m.values.size() != static_cast<size_t>(m.n_tokens) * static_cast<size_t>(m.d_model)) {
            throw Error(ErrorCode::invalid_argument, fmt::format("media embeddings of {} tokens x {} values ({} floats) do not fit a "
                                                                 "model of d_model {}", m.n_tokens, m.d_model, m.values.size(),
                                                                 model->config.d_model));
        }
        if (b.offset + m.n_tokens > seq.ids.size()) throw Error(ErrorCode::invalid_argument, "media block past the end of the ids");
        for (int i = 0; i < m.n_tokens; ++i) {
            if (seq.ids[b.offset + i] != -1) throw Error(ErrorCode::invalid_argument, "media block over text tokens");
        }
        n_soft += m.n_tokens;
    }
    if (n_soft != static_cast<size_t>(std::count(seq.ids.begin(), seq.ids.end(), -1))) {
        throw Error(ErrorCode::invalid_argument, "soft tokens without media embeddings");
    }
    if (tokens.size() + seq.ids.size() > static_cast<size_t>(options.context_tokens)) {
        throw Error(ErrorCode::context_overflow, fmt::format("{} tokens would exceed the session's context of {} tokens",
                                                             tokens.size() + seq.ids.size(), options.context_tokens));
    }
    const int base = static_cast<int>(tokens.size());
    tokens.insert(tokens.end(), seq.ids.begin(), seq.ids.end());
    for (const auto& b : seq.blocks) {
        const bool image = b.media->kind == MediaEmbeddings::Kind::image;
        media_runs.push_back({base + static_cast<int>(b.offset), b.media->n_tokens, image ? next_media_group++ : -1, b.media});
    }
}

void Session::Impl::truncate(int n) {
    tokens.resize(n);
    while (!media_runs.empty() && media_runs.back().pos >= n) media_runs.pop_back();
    if (!media_runs.empty() && media_runs.back().pos + media_runs.back().n > n) media_runs.back().n = n - media_runs.back().pos;
}

std::vector<float> Session::Impl::evaluate_pending(bool all) {
    const int n_pending = static_cast<int>(tokens.size()) - n_past;
    if (n_pending <= 0) throw Error(ErrorCode::invalid_argument, "nothing to evaluate: no pending tokens");
    const size_t vocab = model->config.vocab_size;
    const size_t d = model->config.d_model;
    const int end = static_cast<int>(tokens.size());
    std::vector<float> out(all ? n_pending * vocab : 0);
    const int n_past_before = n_past;
    std::vector<int> rows;
    std::vector<float> media_rows;
    std::vector<int32_t> groups;
    while (n_past < end) {
        int n = std::min(forward->max_batch_tokens(), end - n_past);
        // An image must be whole in one batch: end the batch before it, or grow the batch to hold it.
        for (const MediaRun& r : media_runs) {
            if (r.group < 0 || r.pos + r.n <= n_past || r.pos >= n_past + n || r.pos + r.n <= n_past + n) continue;
            if (r.pos > n_past) {
                n = r.pos - n_past;
                break;
            }
            if (r.n > forward->max_batch_tokens()) {
                forward = std::make_unique<Forward>(*model->backend, model->config, model->weights, r.n);
            }
            n = std::min(forward->max_batch_tokens(), end - n_past);
        }
        const bool last_batch = n_past + n == end;
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
        // Media rows of this batch, and the image groups for bidirectional attention.
        media_rows.clear();
        groups.clear();
        for (const MediaRun& r : media_runs) {
            const int lo = std::max(r.pos, n_past);
            const int hi = std::min(r.pos + r.n, n_past + n);
            if (lo >= hi) continue;
            if (media_rows.empty()) media_rows.assign(static_cast<size_t>(n) * d, 0.0f);
            std::copy_n(r.media->values.data() + static_cast<size_t>(lo - r.pos) * d, static_cast<size_t>(hi - lo) * d,
                        media_rows.data() + static_cast<size_t>(lo - n_past) * d);
            if (r.group >= 0) {
                if (groups.empty()) groups.assign(n, -1);
                std::fill(groups.begin() + (lo - n_past), groups.begin() + (hi - n_past), r.group);
            }
        }
        batch.media = media_rows.empty() ? nullptr : media_rows.data();
        batch.groups = groups;
        const int done = n_past - (end - n_pending);
        float* dst = all ? out.data() + static_cast<size_t>(done) * vocab : logits.data();
        try {
            forward->run(batch, *kv, dst);
        } catch (...) {
            // The cache may hold part of this batch; drop the pending tokens so the state stays valid. The
            // logits still match tokens[n_past - 1] only if nothing was evaluated and the last batch never ran.
            truncate(n_past);
            has_logits = has_logits && n_past == n_past_before && !last_batch;
            throw;
        }
        n_past += n;
    }
    if (all) std::copy(out.end() - vocab, out.end(), logits.data());
    has_logits = true;
    return out;
}

Generation Session::Impl::generate_from_here(const Sampler& sampler_in, const GenerationLimits& limits,
                                             const StreamCallback& cb) {
    if (limits.max_new_tokens < 0) throw Error(ErrorCode::invalid_argument, "max_new_tokens must be >= 0");
    Sampler sampler = sampler_in;
    // The repetition penalty's history: the last repetition_window text tokens (soft tokens are -1).
    std::vector<int32_t> recent;
    const auto recent_text_tokens = [&]() -> std::span<const int32_t> {
        const size_t window = static_cast<size_t>(std::max(0, sampler.options().repetition_window));
        recent.clear();
        for (size_t i = tokens.size(); i-- > 0 && recent.size() < window;) {
            if (tokens[i] >= 0) recent.push_back(tokens[i]);
        }
        std::reverse(recent.begin(), recent.end());
        return recent;
    };
    Generation g;
    const auto t0 = Clock::now();
    g.stats.prompt_tokens = static_cast<int>(tokens.size()) - n_past;
    if (n_past < static_cast<int>(tokens.size())) evaluate_pending(false);
    if (!has_logits) throw Error(ErrorCode::invalid_argument, "generate: the session is empty");
    const double prefill_s = seconds_since(t0);
    g.stats.prefill_tok_s = g.stats.prompt_tokens > 0 && prefill_s > 0 ? g.stats.prompt_tokens / prefill_s : 0.0;

    StreamDecoder decoder(model->tokenizer);
    std::vector<float> sample_logits;
    const auto t_decode = Clock::now();
    int decoded = 0;
    g.stop = StopReason::max_tokens;
    for (int i = 0; i < limits.max_new_tokens; ++i) {
        if (static_cast<int>(tokens.size()) >= options.context_tokens) {
            g.stop = StopReason::context_full;
            break;
        }
        sample_logits.assign(logits.data(), logits.data() + logits.size());  // the sampler works in place
        const int32_t id = media_runs.empty() ? sampler.sample(sample_logits, tokens) : sampler.sample(sample_logits, recent_text_tokens());
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

std::vector<float> Session::evaluate(bool all_positions) {
    std::vector<float> out = impl_->evaluate_pending(all_positions);
    if (!all_positions) out.assign(impl_->logits.data(), impl_->logits.data() + impl_->logits.size());
    return out;
}

std::span<const float> Session::decode() {
    impl_->evaluate_pending(false);
    return impl_->last_logits();
}

Generation Session::continue_raw(const Sampler& sampler, const GenerationLimits& limits, const StreamCallback& on_piece) {
    return impl_->generate_from_here(sampler, limits, on_piece);
}

void Session::add_raw_media(const MediaEmbeddings& media) {
    Impl& s = *impl_;
    if (media.n_tokens <= 0 || media.values.size() != static_cast<size_t>(media.n_tokens) * static_cast<size_t>(std::max(0, media.d_model))) {
        throw Error(ErrorCode::invalid_argument, fmt::format("media embeddings: {} values do not make {} tokens of {}", media.values.size(),
                                                             media.n_tokens, media.d_model));
    }
    for (float v : media.values) {
        if (!std::isfinite(v)) throw Error(ErrorCode::invalid_argument, "media embeddings hold a non-finite value");
    }
    // Without a projector the markers were not looked up at open; this throws if the vocabulary lacks them.
    const MediaMarkers markers = s.model->projector ? s.model->media_markers : MediaMarkers::find(s.model->tokenizer);
    MediaSequence seq;
    seq.append_media(std::make_shared<const MediaEmbeddings>(media), markers);
    s.append(seq);
}

void Session::add_text(std::string_view text) {
    if (text.empty()) return;
    auto& parts = impl_->open_user;
    if (!parts.empty() && parts.back().kind == ContentPart::Kind::text) {
        parts.back().text += text;
    } else {
        parts.push_back(ContentPart::from_text(std::string(text)));
    }
}

void Session::add_image(const Image& image, const ImageOptions& options) {
    auto media = std::make_shared<const MediaEmbeddings>(impl_->model->require_projector().encode_image(image, options));
    impl_->open_user.push_back(ContentPart::image());
    impl_->open_media.push_back(std::move(media));
}

void Session::add_audio(const Audio& audio) {
    auto media = std::make_shared<const MediaEmbeddings>(impl_->model->require_projector().encode_audio(audio));
    impl_->open_user.push_back(ContentPart::audio());
    impl_->open_media.push_back(std::move(media));
}

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
    if (s.open_user.empty()) {
        throw Error(ErrorCode::invalid_argument, "generate: add a user message first (add_text, add_image or add_audio)");
    }
    std::vector<ChatMessage> conversation = s.history;
    if (conversation.empty() && !s.options.system_prompt.empty()) {
        conversation.push_back(ChatMessage::text(ChatRole::system, s.options.system_prompt));
    }
    const size_t n_before = conversation.size();
    conversation.push_back(ChatMessage{ChatRole::user, s.open_user});
    const ChatRenderOptions opts{.thinking = s.options.thinking, .add_generation_prompt = true};
    const RenderedPrompt full = m.chat_template.render(conversation, opts);

    // Append only what is new: the KV cache holds the conversation as the model saw it (with its
    // thought channels), so earlier turns are never re-rendered into it. Placeholders in the template
    // text become the marker-wrapped soft tokens of the turn's media (multimodal/placement.h).
    MediaSequence seq;
    const bool has_turns = n_before > 0 && conversation[n_before - 1].role == ChatRole::model;
    if (s.tokens.empty() || !has_turns) {
        std::vector<std::shared_ptr<const MediaEmbeddings>> media = s.history_media;
        media.insert(media.end(), s.open_media.begin(), s.open_media.end());
        seq = tokenize_with_media(full, m.tokenizer, m.media_markers, media, /*add_bos=*/true);
        s.kv->clear();
        s.truncate(0);
        s.n_past = 0;
        s.has_logits = false;
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
        seq.append_text(close_turn);
        const MediaSequence rest = tokenize_with_media(suffix_after(full, before_text.size()), m.tokenizer, m.media_markers,
                                                       s.open_media, /*add_bos=*/false);
        for (MediaSequence::Block b : rest.blocks) {
            b.offset += seq.ids.size();
            seq.blocks.push_back(std::move(b));
        }
        seq.append_text(rest.ids);
    }
    s.append(seq);
    s.history = conversation;
    s.history_media.insert(s.history_media.end(), s.open_media.begin(), s.open_media.end());
    s.open_user.clear();
    s.open_media.clear();
    Generation g = s.generate_from_here(sampler, limits, on_piece);
    s.history.push_back(ChatMessage::text(ChatRole::model, g.text));
    return g;
}

std::span<const float> Session::logits() const { return impl_->last_logits(); }

int Session::n_tokens() const { return static_cast<int>(impl_->tokens.size()); }
int Session::context_tokens() const { return impl_->options.context_tokens; }
const std::vector<int32_t>& Session::tokens() const { return impl_->tokens; }

void Session::reset() {
    impl_->kv->clear();
    impl_->truncate(0);
    impl_->n_past = 0;
    impl_->has_logits = false;
    impl_->history.clear();
    impl_->history_media.clear();
    impl_->open_user.clear();
    impl_->open_media.clear();
}

}  // namespace gemma4
