// gemma4/sampler.h: choosing the next token from logits.
//
// A Sampler is a small value: options plus its random state. Session::generate copies it, so the
// same sampler (same seed) gives the same output on the same session state. Stages run in
// llama.cpp's default order: repetition penalty -> top-k -> top-p -> min-p -> temperature -> seeded
// draw. As in llama.cpp, top-p and min-p see the untempered distribution; temperature only reshapes
// the tokens they keep. Greedy ignores all of them except the repetition penalty.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace gemma4 {

struct SamplerOptions {
    float temperature = 1.0f;         ///< <= 0 means greedy
    int top_k = 0;                    ///< 0 = off
    float top_p = 1.0f;               ///< 1 = off
    float min_p = 0.0f;               ///< 0 = off; keep tokens with p >= min_p * p_max
    float repetition_penalty = 1.0f;  ///< 1 = off; llama.cpp semantics (divide positive, multiply negative logits)
    int repetition_window = 64;       ///< how many recent tokens the penalty looks at
    uint64_t seed = 0;                ///< the random stream; same seed, same draws
};

class Sampler {
public:
    /// Always the highest logit (ties: lowest id).
    static Sampler greedy();
    /// Temperature + top-p (nucleus), with the other stages as given in `options`. Validates as with().
    static Sampler top_p(const SamplerOptions& options);
    /// Every stage as given in `options`. Throws Error(invalid_argument) for out-of-range values.
    static Sampler with(const SamplerOptions& options);

    /// Picks a token. `logits` (one per vocabulary entry) may be modified in place (the repetition
    /// penalty is applied there); `history` is the token sequence so far (for the repetition
    /// penalty). Tokens whose logit is -inf or NaN are never drawn. Throws Error(invalid_argument)
    /// if `logits` is empty, every logit is -inf or NaN, or a penalized history token is outside
    /// [0, logits.size()). Not thread-safe: it advances the random state and reuses scratch.
    int32_t sample(std::span<float> logits, std::span<const int32_t> history);

    const SamplerOptions& options() const { return options_; }
    bool is_greedy() const { return options_.temperature <= 0.0f; }

private:
    explicit Sampler(const SamplerOptions& options);
    SamplerOptions options_;
    uint64_t state_[2];                 // xoroshiro128+ state, derived from the seed
    std::vector<int32_t> candidates_;   // scratch, reused between calls (token ids)
    std::vector<float> probs_;          // scratch: unnormalized weights of candidates_
};

}  // namespace gemma4
