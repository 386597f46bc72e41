// gemma4/session.h: one conversation with a model.
//
//   session.add_text("What is the capital of France?");
//   auto out = session.generate(gemma4::Sampler::greedy(), {.max_new_tokens = 64},
//       [](std::string_view piece) { std::cout << piece; return gemma4::Stream::more; });
//
// Chat use: add_* appends to the open user turn; generate() closes it with the Gemma 4 chat template,
// streams the model's turn and keeps everything in the KV cache, so the next turn processes only its
// new tokens. Raw use: add_tokens()/add_raw_text() bypass the template (for scoring and testing).
// A Session is used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gemma4/media.h"
#include "gemma4/sampler.h"

namespace gemma4 {

class Model;

enum class Stream { more, stop };
/// Receives generated text as it becomes valid UTF-8; return Stream::stop to end generation.
using StreamCallback = std::function<Stream(std::string_view piece)>;

enum class StopReason { end_of_turn, max_tokens, context_full, callback_stopped };
const char* to_string(StopReason reason) noexcept;

struct GenerationLimits {
    int max_new_tokens = 512;
};

struct GenerationStats {
    int prompt_tokens = 0;        ///< tokens processed before the first new token
    int new_tokens = 0;
    double prefill_tok_s = 0.0;
    double decode_tok_s = 0.0;
    double time_to_first_token_ms = 0.0;
};

struct Generation {
    StopReason stop = StopReason::max_tokens;
    std::string text;             ///< everything streamed
    std::vector<int32_t> tokens;  ///< the new tokens (the end-of-turn token included if one ended it)
    GenerationStats stats;
};

class Session {
public:
    Session(Session&&) noexcept;
    Session& operator=(Session&&) noexcept;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session();

    // ---- chat
    /// Appends text to the open user turn (special-token texts in it are NOT parsed).
    void add_text(std::string_view text);
    /// Appends an image to the open user turn, after the text added so far. It is encoded now (needs a
    /// model opened with a projector), so errors are thrown here and leave the session as it was. In the
    /// prompt it becomes `<|image>` + one soft token per 48x48 patch + `<image|>`; the soft tokens of one
    /// image attend to each other (sliding-window layers) and are evaluated in one forward pass.
    /// Throws like Model::encode_image.
    void add_image(const Image& image, const ImageOptions& options = {});
    /// Appends an audio clip to the open user turn: `<|audio>` + one soft token per 40 ms + `<audio|>`.
    /// Throws like Model::encode_audio.
    void add_audio(const Audio& audio);
    /// Closes the user turn, opens the model turn, and generates until end of turn, a limit, a full
    /// context or the callback stops it.
    Generation generate(const Sampler& sampler, const GenerationLimits& limits = {}, const StreamCallback& on_piece = {});

    // ---- raw token stream (no chat template)
    /// Appends token ids to the pending input. Throws Error(invalid_argument) for ids outside the
    /// vocabulary and Error(context_overflow) if the session would exceed its context.
    void add_tokens(std::span<const int32_t> tokens);
    /// Tokenizes `text` (parse_special: special-token texts become their tokens) and appends it.
    void add_raw_text(std::string_view text, bool parse_special = true, bool add_bos = false);
    /// Appends projector output (Model::encode_image / encode_audio) wrapped in its marker tokens:
    /// `<|image>` soft tokens `<image|>` or `<|audio>` soft tokens `<audio|>`. Throws
    /// Error(invalid_argument) for embeddings of another width or with non-finite values, and
    /// Error(context_overflow) like add_tokens.
    void add_raw_media(const MediaEmbeddings& media);
    /// Runs the pending input through the model. Returns logits [n_pending][vocab] when `all_positions`,
    /// else [1][vocab] for the last position. Throws Error(invalid_argument) if nothing is pending.
    std::vector<float> evaluate(bool all_positions = false);
    /// Runs the pending input through the model and returns the logits after its last token, as logits()
    /// does: no copy, valid until the session is next changed. The fast path of a token-by-token loop
    /// (gemma4-bench's decode). Throws like evaluate.
    std::span<const float> decode();
    /// Generates from the current state without any template (the pending input is evaluated first).
    Generation continue_raw(const Sampler& sampler, const GenerationLimits& limits = {}, const StreamCallback& on_piece = {});

    // ---- state
    /// Logits (one per vocabulary entry) after the last evaluated token; empty before any evaluation.
    /// Valid until the session is next changed.
    std::span<const float> logits() const;
    /// Tokens in the KV cache plus pending ones (soft tokens of images and audio included).
    int n_tokens() const;
    int context_tokens() const;
    /// The token stream; -1 marks a soft token (an image or audio position).
    const std::vector<int32_t>& tokens() const;
    /// Forgets the conversation (keeps the allocated memory for reuse).
    void reset();

    struct Impl;

private:
    explicit Session(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    friend class Model;
};

}  // namespace gemma4
