// Sampler: picks the next token from a logits row, in llama.cpp's default chain order.
//
// Stages (llama.cpp common/sampling.cpp default chain, restricted to the stages we ship):
//
//   repetition penalty -> top-k -> top-p -> min-p -> temperature -> seeded draw
//
// Temperature comes last, as in llama.cpp: top-p and min-p see the untempered distribution, so the
// nucleus does not depend on the temperature; temperature only reshapes the survivors.
//
//   penalty   each distinct token among the last `repetition_window` history tokens:
//             logit <= 0 ? logit * penalty : logit / penalty (applied once, however often it repeats)
//   top-k     keep the k highest logits (ties broken by the lower id)
//   top-p     softmax over the survivors; keep the shortest highest-first prefix whose cumulative
//             probability reaches p (always at least one token)
//   min-p     keep logit >= max_logit + log(min_p), i.e. p_i >= min_p * p_max
//   draw      w_i = exp((logit_i - max_logit) / temperature); one uniform u in [0, 1) per call;
//             the first candidate whose running sum of w exceeds u * sum(w)
//
// Greedy (temperature <= 0) is the penalty followed by argmax, lowest id on ties.
//
// Cost for vocab_size = 262144 (one core, -O2): top-k is one pass with a k-entry heap (~0.5 ms);
// without top-k, one pass gathers the drawable ids and one computes exp per token (~1.5 ms). Top-p
// without top-k grows a sorted prefix geometrically from kNucleusFirstChunk (heap selection first,
// then nth_element plus a sort of each new chunk; ~2 ms on a peaked row), so a peaked distribution
// never sorts the whole vocabulary; a flat one (nucleus ~ the whole vocabulary) costs a near-full
// sort (~40 ms), as in llama.cpp. Scratch vectors live in the Sampler and are only resized, so
// after the first call on a vocabulary nothing allocates.
//
// Determinism: the random stream is xoroshiro128+ seeded through splitmix64, with our own
// 53-bit-to-double conversion, so it is identical on every platform. Every non-greedy call
// consumes exactly one 64-bit draw, so draw n of a sampler always uses random number n. Candidate
// orders use a total order (logit, then id), so no result depends on how a library's sort treats
// ties. The one platform-dependent input is std::exp (libms may differ by an ulp), which can only
// matter for a draw landing within rounding of a cumulative-weight boundary.
#include "gemma4/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>

#include "gemma4/error.h"

namespace gemma4 {

namespace {

// top-p without top-k first sorts this many candidates, then doubles while the nucleus is larger.
// 256 covers typical LLM nuclei at p ~ 0.9 (the value llama.cpp uses for the same heuristic).
constexpr size_t kNucleusFirstChunk = 256;

// splitmix64 (Steele, Lea, Flood 2014), used only to expand the 64-bit seed into xoroshiro state.
constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;  // 2^64 / golden ratio, odd
constexpr uint64_t kSplitMixMul1 = 0xbf58476d1ce4e5b9ull;
constexpr uint64_t kSplitMixMul2 = 0x94d049bb133111ebull;

// xoroshiro128+ 1.0 (Blackman, Vigna 2018): rotation and shift constants of the reference code.
constexpr int kXoroRotA = 24;
constexpr int kXoroShiftB = 16;
constexpr int kXoroRotC = 37;

// A double in [0, 1) uses the top 53 bits (xoroshiro128+'s low bits are its weakest) times 2^-53.
constexpr int kDoubleMantissaBits = 53;
constexpr double kTwoToMinus53 = 1.0 / static_cast<double>(uint64_t{1} << kDoubleMantissaBits);

uint64_t splitmix64_next(uint64_t& state) {
    uint64_t z = (state += kSplitMixGamma);
    z = (z ^ (z >> 30)) * kSplitMixMul1;
    z = (z ^ (z >> 27)) * kSplitMixMul2;
    return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t xoroshiro128plus_next(uint64_t (&s)[2]) {
    const uint64_t s0 = s[0];
    uint64_t s1 = s[1];
    const uint64_t result = s0 + s1;
    s1 ^= s0;
    s[0] = rotl(s0, kXoroRotA) ^ s1 ^ (s1 << kXoroShiftB);
    s[1] = rotl(s1, kXoroRotC);
    return result;
}

double uniform_01(uint64_t (&s)[2]) {
    return static_cast<double>(xoroshiro128plus_next(s) >> (64 - kDoubleMantissaBits)) * kTwoToMinus53;
}

// A token can be drawn unless its logit is NaN or -inf.
bool drawable(float logit) { return !std::isnan(logit) && logit != -std::numeric_limits<float>::infinity(); }

// The weight exp((logit - max_logit) * inv_temperature). The maximum weighs exactly 1 even where
// the formula would give NaN (a +inf maximum, or an inv_temperature that overflowed to +inf); with
// a +inf maximum every finite logit weighs 0.
float weight(float logit, float max_logit, float inv_temperature) {
    if (logit == max_logit) return 1.0f;
    if (std::isinf(max_logit)) return 0.0f;
    return std::exp((logit - max_logit) * inv_temperature);
}

[[noreturn]] void throw_invalid(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

}  // namespace

Sampler::Sampler(const SamplerOptions& options) : options_(options) {
    // Consecutive splitmix64 outputs come from distinct states and its output mix is a bijection,
    // so at most one of the two words is zero: the all-zero xoroshiro state cannot occur.
    uint64_t sm = options.seed;
    state_[0] = splitmix64_next(sm);
    state_[1] = splitmix64_next(sm);
}

Sampler Sampler::greedy() {
    SamplerOptions options;
    options.temperature = 0.0f;
    return Sampler(options);
}

Sampler Sampler::top_p(const SamplerOptions& options) { return with(options); }

Sampler Sampler::with(const SamplerOptions& options) {
    const std::string prefix = "sampler options: ";
    if (!std::isfinite(options.temperature)) {
        throw_invalid(prefix + "temperature " + std::to_string(options.temperature) + " is not finite");
    }
    if (!(options.top_p > 0.0f && options.top_p <= 1.0f)) {
        throw_invalid(prefix + "top_p " + std::to_string(options.top_p) + " is outside (0, 1]");
    }
    if (!(options.min_p >= 0.0f && options.min_p <= 1.0f)) {
        throw_invalid(prefix + "min_p " + std::to_string(options.min_p) + " is outside [0, 1]");
    }
    if (options.top_k < 0) {
        throw_invalid(prefix + "top_k " + std::to_string(options.top_k) + " is negative");
    }
    if (!(options.repetition_penalty > 0.0f && std::isfinite(options.repetition_penalty))) {
        throw_invalid(prefix + "repetition_penalty " + std::to_string(options.repetition_penalty) +
                      " is not a finite positive number");
    }
    if (options.repetition_window < 0) {
        throw_invalid(prefix + "repetition_window " + std::to_string(options.repetition_window) + " is negative");
    }
    return Sampler(options);
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
    const size_t vocab_size = logits.size();
    if (vocab_size == 0) throw_invalid("sampler: logits are empty");
    if (vocab_size > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
        throw_invalid("sampler: vocab_size " + std::to_string(vocab_size) + " does not fit token ids");
    }

    // ---- repetition penalty, once per distinct token of the window. candidates_ is free scratch
    // until the candidate gathering below refills it.
    const float penalty = options_.repetition_penalty;
    if (penalty != 1.0f && options_.repetition_window > 0 && !history.empty()) {
        const size_t n_window = std::min(history.size(), static_cast<size_t>(options_.repetition_window));
        const auto window = history.subspan(history.size() - n_window);
        candidates_.assign(window.begin(), window.end());
        std::sort(candidates_.begin(), candidates_.end());
        const auto distinct_end = std::unique(candidates_.begin(), candidates_.end());
        for (auto it = candidates_.begin(); it != distinct_end; ++it) {
            const int32_t token = *it;
            if (token < 0 || static_cast<size_t>(token) >= vocab_size) {
                throw_invalid("sampler: history token " + std::to_string(token) + " is outside the vocabulary [0, " +
                              std::to_string(vocab_size) + ")");
            }
            float& logit = logits[static_cast<size_t>(token)];
            logit = logit <= 0.0f ? logit * penalty : logit / penalty;
        }
    }

    // ---- greedy: argmax over drawable logits, lowest id on ties (strict > keeps the first).
    if (is_greedy()) {
        int32_t best = -1;
        for (size_t i = 0; i < vocab_size; ++i) {
            if (drawable(logits[i]) && (best < 0 || logits[i] > logits[static_cast<size_t>(best)])) {
                best = static_cast<int32_t>(i);
            }
        }
        if (best < 0) throw_invalid("sampler: every logit is -inf or NaN");
        return best;
    }

    // Higher logit first, then lower id: a strict total order over candidates.
    const auto higher = [&logits](int32_t a, int32_t b) {
        const float la = logits[static_cast<size_t>(a)];
        const float lb = logits[static_cast<size_t>(b)];
        return la > lb || (la == lb && a < b);
    };
    const bool use_top_k = options_.top_k > 0 && static_cast<size_t>(options_.top_k) < vocab_size;
    candidates_.resize(use_top_k ? static_cast<size_t>(options_.top_k) : vocab_size);
    const auto begin = candidates_.begin();
    size_t n = 0;         // candidates_[0, n) are the live candidates
    size_t n_sorted = 0;  // candidates_[0, n_sorted) are the highest, in `higher` order

    if (use_top_k) {
        // ---- top-k in one pass: a heap of the k best so far whose front is the worst of them (a
        // std heap under `higher` keeps the element ranked last on top). In any order that is not
        // adversarial almost every token loses one comparison with that front.
        const size_t k = candidates_.size();
        for (size_t i = 0; i < vocab_size; ++i) {
            if (!drawable(logits[i])) continue;
            const auto token = static_cast<int32_t>(i);
            if (n < k) {
                candidates_[n++] = token;
                std::push_heap(begin, begin + static_cast<ptrdiff_t>(n), higher);
            } else if (higher(token, candidates_[0])) {
                std::pop_heap(begin, begin + static_cast<ptrdiff_t>(k), higher);
                candidates_[k - 1] = token;
                std::push_heap(begin, begin + static_cast<ptrdiff_t>(k), higher);
            }
        }
        std::sort(begin, begin + static_cast<ptrdiff_t>(n), higher);
        n_sorted = n;
    } else {
        // ---- every drawable token, in id order.
        for (size_t i = 0; i < vocab_size; ++i) {
            if (drawable(logits[i])) candidates_[n++] = static_cast<int32_t>(i);
        }
    }
    if (n == 0) throw_invalid("sampler: every logit is -inf or NaN");

    auto max_logit = [&] {
        if (n_sorted > 0) return logits[static_cast<size_t>(candidates_[0])];
        float m = -std::numeric_limits<float>::infinity();
        for (size_t i = 0; i < n; ++i) m = std::max(m, logits[static_cast<size_t>(candidates_[i])]);
        return m;
    };

    // ---- top-p on the untempered softmax.
    if (options_.top_p < 1.0f && n > 1) {
        const float top = max_logit();
        double total = 0.0;
        for (size_t i = 0; i < n; ++i) total += weight(logits[static_cast<size_t>(candidates_[i])], top, 1.0f);
        const double target = static_cast<double>(options_.top_p) * total;
        double cumulative = 0.0;
        size_t keep = n;
        for (size_t i = 0; i < n; ++i) {
            if (i == n_sorted) {
                // The first chunk is small: partial_sort's one-pass heap selection is cheapest (most
                // tokens lose one comparison with the heap front). Later chunks are large, where
                // nth_element (linear) plus a sort of just the chunk wins.
                const size_t grow_to = std::min(n, std::max(kNucleusFirstChunk, 2 * n_sorted));
                const auto from = begin + static_cast<ptrdiff_t>(n_sorted);
                const auto to = begin + static_cast<ptrdiff_t>(grow_to);
                const auto end = begin + static_cast<ptrdiff_t>(n);
                if (n_sorted == 0) {
                    std::partial_sort(from, to, end, higher);
                } else {
                    if (grow_to < n) std::nth_element(from, to - 1, end, higher);
                    std::sort(from, to, higher);
                }
                n_sorted = grow_to;
            }
            cumulative += weight(logits[static_cast<size_t>(candidates_[i])], top, 1.0f);
            if (cumulative >= target) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        n_sorted = std::min(n_sorted, n);
    }

    // ---- min-p: p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p). Keeps id/sorted order.
    if (options_.min_p > 0.0f && n > 1) {
        const float threshold = max_logit() + std::log(options_.min_p);
        const auto kept_end = std::remove_if(begin, begin + static_cast<ptrdiff_t>(n), [&](int32_t token) {
            return logits[static_cast<size_t>(token)] < threshold;
        });
        n = static_cast<size_t>(kept_end - begin);
        n_sorted = std::min(n_sorted, n);
    }

    // ---- temperature, then the draw. The maximum itself always has weight 1, so total >= 1.
    const float top = max_logit();
    const float inv_temperature = 1.0f / options_.temperature;
    probs_.resize(n);
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) {
        probs_[i] = weight(logits[static_cast<size_t>(candidates_[i])], top, inv_temperature);
        total += probs_[i];
    }
    const double target = uniform_01(state_) * total;
    double cumulative = 0.0;
    size_t last_positive = 0;
    for (size_t i = 0; i < n; ++i) {
        if (probs_[i] <= 0.0f) continue;
        cumulative += probs_[i];
        last_positive = i;
        if (cumulative > target) return candidates_[i];
    }
    // Rounding left the running sum a hair below target: the last token with weight wins.
    return candidates_[last_positive];
}

}  // namespace gemma4
