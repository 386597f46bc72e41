// Sampler: greedy, each stage's semantics (llama.cpp's), the seeded stream, empirical distributions
// and a full-vocabulary (262144) speed check.
//
// Statistical checks use fixed seeds, so each is deterministic; the thresholds are chosen so that a
// correct sampler would fail them for at most ~0.1% of seeds, while a bias of a few percent on any
// token fails them.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "gemma4/error.h"
#include "gemma4/sampler.h"

using gemma4::ErrorCode;
using gemma4::Sampler;
using gemma4::SamplerOptions;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int32_t kGemma4VocabSize = 262144;

// Draws `n` tokens, each from a fresh copy of `logits` (sample() may modify them in place).
std::vector<int32_t> draw(Sampler& sampler, const std::vector<float>& logits, int n,
                          const std::vector<int32_t>& history = {}) {
    std::vector<int32_t> out;
    out.reserve(static_cast<size_t>(n));
    std::vector<float> row;
    for (int i = 0; i < n; ++i) {
        row = logits;
        out.push_back(sampler.sample(row, history));
    }
    return out;
}

std::vector<int> histogram(const std::vector<int32_t>& tokens, size_t vocab_size) {
    std::vector<int> counts(vocab_size, 0);
    for (int32_t t : tokens) counts.at(static_cast<size_t>(t))++;
    return counts;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
    double max_logit = -std::numeric_limits<double>::infinity();
    for (float l : logits) max_logit = std::max(max_logit, static_cast<double>(l));
    std::vector<double> p(logits.size());
    double sum = 0.0;
    for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp((logits[i] - max_logit) / temperature);
    for (double& x : p) x /= sum;
    return p;
}

double entropy_nats(const std::vector<double>& p) {
    double h = 0.0;
    for (double x : p) {
        if (x > 0.0) h -= x * std::log(x);
    }
    return h;
}

std::vector<double> frequencies(const std::vector<int>& counts) {
    double n = 0.0;
    for (int c : counts) n += c;
    std::vector<double> f;
    for (int c : counts) f.push_back(c / n);
    return f;
}

// Logits with a spread of probabilities from ~0.4 down to ~0.007.
const std::vector<float> kEightLogits = {0.0f, 0.5f, 1.0f, -1.0f, 2.0f, -0.5f, 1.5f, -2.0f};

// A 262144-entry row like a peaked LLM row: 100 spikes in [5, 10] over a floor uniform in [-20, -12].
// The floor holds ~262144 * e^-12 / 8 ~ 0.2 of weight against the spikes' ~4e5: all but ~5e-7.
std::vector<float> peaked_vocab_row(uint32_t seed) {
    std::mt19937 rng(seed);  // raw mt19937 output is fixed by the standard; distributions are not
    std::vector<float> logits(kGemma4VocabSize);
    for (float& l : logits) l = -12.0f - 8.0f * static_cast<float>(rng()) / 4294967296.0f;
    for (int i = 0; i < 100; ++i) logits[rng() % kGemma4VocabSize] = 5.0f + static_cast<float>(rng() % 500) / 100.0f;
    return logits;
}

}  // namespace

TEST_CASE("greedy picks the argmax, lowest id on ties", "[unit][sampler]") {
    Sampler greedy = Sampler::greedy();
    CHECK(greedy.is_greedy());
    std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f};
    CHECK(greedy.sample(logits, {}) == 1);
    logits = {-5.0f, -1.0f, -3.0f};
    CHECK(greedy.sample(logits, {}) == 1);
    logits = {std::nanf(""), kNegInf, 0.5f, 0.25f};
    CHECK(greedy.sample(logits, {}) == 2);
    logits = {1.0f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
    CHECK(greedy.sample(logits, {}) == 1);

    // Any temperature <= 0 is greedy, whatever the other stages say.
    Sampler cold = Sampler::with({.temperature = -1.0f, .top_k = 3, .top_p = 0.5f, .seed = 7});
    CHECK(cold.is_greedy());
    logits = {0.0f, 4.0f, 4.0f, 1.0f};
    CHECK(cold.sample(logits, {}) == 1);
}

TEST_CASE("top_k = 1 equals greedy", "[unit][sampler]") {
    std::mt19937 rng(1234);
    Sampler greedy = Sampler::greedy();
    Sampler top1 = Sampler::with({.temperature = 1.5f, .top_k = 1, .seed = 99});
    for (int trial = 0; trial < 200; ++trial) {
        CAPTURE(trial);
        std::vector<float> logits(1000);
        for (float& l : logits) l = static_cast<float>(rng() % 64) / 8.0f;  // coarse values: many ties
        std::vector<float> copy = logits;
        CHECK(top1.sample(copy, {}) == greedy.sample(logits, {}));
    }
}

TEST_CASE("top-k keeps exactly the k best, ties to the lower id", "[unit][sampler]") {
    // Rising logits (every token replaces the heap front), falling logits (none does), and ties
    // among drawable tokens scattered between -inf ones.
    std::vector<float> rising(200), falling(200), tied(64, kNegInf);
    for (size_t i = 0; i < rising.size(); ++i) {
        rising[i] = static_cast<float>(i) / 100.0f;
        falling[i] = -static_cast<float>(i) / 100.0f;
    }
    for (size_t i = 0; i < tied.size(); i += 3) tied[i] = 1.0f;
    struct Case {
        const std::vector<float>* logits;
        int top_k;
        std::set<int32_t> kept;
    };
    for (const Case& c : {Case{&rising, 5, {195, 196, 197, 198, 199}}, Case{&falling, 4, {0, 1, 2, 3}},
                          Case{&tied, 10, {0, 3, 6, 9, 12, 15, 18, 21, 24, 27}}}) {
        CAPTURE(c.top_k);
        Sampler sampler = Sampler::with({.temperature = 100.0f, .top_k = c.top_k, .seed = 12});
        const auto drawn = draw(sampler, *c.logits, 3000);
        CHECK(std::set<int32_t>(drawn.begin(), drawn.end()) == c.kept);
    }
}

TEST_CASE("the random stream is pinned, and seeds give reproducible, distinct sequences", "[unit][sampler]") {
    // Sixteen equal logits weigh exactly 1 each, so draw n is the top 4 bits of xoroshiro128+ output
    // n: no libm involved. The expected values come from an independent Python implementation of
    // splitmix64-seeded xoroshiro128+ (rotations 24, 16, 37).
    const std::vector<float> uniform16(16, 0.0f);
    Sampler s42 = Sampler::with({.seed = 42});
    CHECK(draw(s42, uniform16, 12) == std::vector<int32_t>{14, 1, 8, 5, 7, 15, 13, 9, 10, 6, 4, 1});
    Sampler s0 = Sampler::with({.seed = 0});
    CHECK(draw(s0, uniform16, 12) == std::vector<int32_t>{5, 13, 13, 6, 10, 10, 9, 13, 13, 0, 6, 0});

    const std::vector<float> logits = kEightLogits;
    Sampler a = Sampler::with({.temperature = 0.9f, .top_p = 0.9f, .seed = 2024});
    Sampler b = Sampler::with({.temperature = 0.9f, .top_p = 0.9f, .seed = 2024});
    const auto seq_a = draw(a, logits, 1000);
    CHECK(seq_a == draw(b, logits, 1000));

    // A copy continues the same stream (Session::generate copies its sampler).
    Sampler copy = a;
    CHECK(draw(copy, logits, 100) == draw(a, logits, 100));

    // Distinct seeds: two independent uniform-16 streams agree on ~1/16 of 1000 draws (sd ~8).
    Sampler c = Sampler::with({.seed = 1});
    Sampler d = Sampler::with({.seed = 2});
    const auto seq_c = draw(c, uniform16, 1000);
    const auto seq_d = draw(d, uniform16, 1000);
    int agree = 0;
    for (size_t i = 0; i < seq_c.size(); ++i) agree += seq_c[i] == seq_d[i];
    CHECK(agree < 150);
}

TEST_CASE("draws at temperature 1 follow the softmax (chi-square)", "[unit][sampler]") {
    // 200000 draws over 8 tokens; every expected count is >= 1400, so the chi-square approximation
    // holds. 24.32 is the 0.999 quantile of chi-square with 7 degrees of freedom: a correct sampler
    // exceeds it for 0.1% of seeds, and a 2% relative bias on a p = 0.3 token alone adds ~24.
    constexpr int kDraws = 200000;
    constexpr double kChi2Crit7Dof999 = 24.32;
    Sampler sampler = Sampler::with({.temperature = 1.0f, .seed = 5});
    const auto counts = histogram(draw(sampler, kEightLogits, kDraws), kEightLogits.size());
    const auto p = softmax(kEightLogits, 1.0);
    double chi2 = 0.0;
    for (size_t i = 0; i < p.size(); ++i) {
        const double expected = p[i] * kDraws;
        chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    CAPTURE(chi2);
    CHECK(chi2 < kChi2Crit7Dof999);
}

TEST_CASE("temperature moves entropy the right way", "[unit][sampler]") {
    // 40000 draws: the plug-in entropy's standard error is ~0.006 nats and its bias (K-1)/2N ~1e-4,
    // so 0.04 nats is > 6 standard errors.
    constexpr int kDraws = 40000;
    constexpr double kEntropyTolNats = 0.04;
    double previous = -1.0;
    for (float temperature : {0.25f, 0.5f, 1.0f, 2.0f, 4.0f}) {
        CAPTURE(temperature);
        Sampler sampler = Sampler::with({.temperature = temperature, .seed = 11});
        const auto freq = frequencies(histogram(draw(sampler, kEightLogits, kDraws), kEightLogits.size()));
        const double h = entropy_nats(freq);
        CHECK(std::abs(h - entropy_nats(softmax(kEightLogits, temperature))) < kEntropyTolNats);
        CHECK(h > previous);
        previous = h;
    }
}

TEST_CASE("top-p keeps exactly the nucleus of the untempered distribution", "[unit][sampler]") {
    // p = {0.4, 0.3, 0.2, 0.1}: cumulative 0.4, 0.7, 0.9, 1.0.
    const std::vector<float> logits = {std::log(0.2f), std::log(0.4f), std::log(0.1f), std::log(0.3f)};
    const std::vector<int32_t> history;
    struct Case {
        float top_p;
        std::set<int32_t> nucleus;
    };
    for (const Case& c : {Case{0.35f, {1}}, Case{0.65f, {1, 3}}, Case{0.75f, {1, 3, 0}}, Case{0.95f, {0, 1, 2, 3}}}) {
        // llama.cpp applies temperature after top-p: a hot temperature must not widen the nucleus.
        for (float temperature : {1.0f, 5.0f}) {
            CAPTURE(c.top_p, temperature);
            Sampler sampler = Sampler::top_p({.temperature = temperature, .top_p = c.top_p, .seed = 3});
            const auto drawn = draw(sampler, logits, 5000);
            CHECK(std::set<int32_t>(drawn.begin(), drawn.end()) == c.nucleus);
        }
    }

    // Within the nucleus, draws follow the renormalized probabilities: 0.4 : 0.3 -> 4/7 for token 1.
    // sd of the frequency over 20000 draws is 0.0035; 0.02 is > 5 sd.
    Sampler sampler = Sampler::top_p({.temperature = 1.0f, .top_p = 0.65f, .seed = 4});
    const auto freq = frequencies(histogram(draw(sampler, logits, 20000), logits.size()));
    CHECK(freq[1] == Approx(4.0 / 7.0).margin(0.02));
}

TEST_CASE("top-p over a wide vocabulary grows the sorted prefix past its first chunk", "[unit][sampler]") {
    // 300 equal "live" tokens at ids 3i, the rest at -30 (mass ~7e-11). top_p = 269.5 / 300 needs
    // exactly 270 live tokens, and ties go to the lower id: the nucleus is {3i : i < 270}, more than
    // the first sorted chunk of 256. 5000 draws give each ~18.5 expected hits.
    constexpr int kVocab = 1024;
    std::vector<float> logits(kVocab, -30.0f);
    for (int i = 0; i < 300; ++i) logits[static_cast<size_t>(3 * i)] = 0.0f;
    Sampler sampler = Sampler::with({.top_p = 269.5f / 300.0f, .seed = 8});
    const auto drawn = draw(sampler, logits, 5000);
    std::set<int32_t> want;
    for (int i = 0; i < 270; ++i) want.insert(3 * i);
    CHECK(std::set<int32_t>(drawn.begin(), drawn.end()) == want);

    // With top-k first, top-p applies to the k survivors.
    Sampler both = Sampler::with({.top_k = 10, .top_p = 0.45f, .seed = 8});
    const auto drawn_both = draw(both, logits, 2000);
    CHECK(std::set<int32_t>(drawn_both.begin(), drawn_both.end()) == std::set<int32_t>{0, 3, 6, 9, 12});
}

TEST_CASE("min-p keeps tokens with p >= min_p * p_max, on the untempered distribution", "[unit][sampler]") {
    // log(0.1) = -2.303: logits 0, -1, -2 pass, -3 and -5 do not.
    const std::vector<float> logits = {-3.0f, 0.0f, -5.0f, -1.0f, -2.0f};
    for (float temperature : {1.0f, 3.0f}) {
        CAPTURE(temperature);
        Sampler sampler = Sampler::with({.temperature = temperature, .min_p = 0.1f, .seed = 6});
        const auto drawn = draw(sampler, logits, 5000);
        CHECK(std::set<int32_t>(drawn.begin(), drawn.end()) == std::set<int32_t>{1, 3, 4});
    }
    // min_p = 1 keeps only the maximum.
    Sampler strict = Sampler::with({.min_p = 1.0f, .seed = 6});
    const auto drawn = draw(strict, logits, 200);
    CHECK(std::set<int32_t>(drawn.begin(), drawn.end()) == std::set<int32_t>{1});
}

TEST_CASE("repetition penalty: llama.cpp semantics over the window", "[unit][sampler]") {
    // Penalty 2 (a power of two, so the expected values are exact): positive logits halve, negative
    // ones double, 0 stays 0, and a token counts once however often it repeats.
    Sampler greedy = Sampler::with({.temperature = 0.0f, .repetition_penalty = 2.0f, .repetition_window = 64});
    std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f, 0.0f};
    CHECK(greedy.sample(logits, std::vector<int32_t>{0, 1, 0, 4, 0}) == 0);  // 1.0 ties 1.0: lowest id
    CHECK(logits == std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f, 0.0f});

    // Only the last `repetition_window` tokens count.
    Sampler windowed = Sampler::with({.temperature = 0.0f, .repetition_penalty = 2.0f, .repetition_window = 2});
    logits = {2.0f, -2.0f, 1.0f, 0.5f, 0.0f};
    windowed.sample(logits, std::vector<int32_t>{0, 1, 3});
    CHECK(logits == std::vector<float>{2.0f, -4.0f, 1.0f, 0.25f, 0.0f});

    // It changes the greedy choice.
    logits = {2.0f, 1.5f};
    CHECK(greedy.sample(logits, std::vector<int32_t>{0}) == 1);

    // A penalty below 1 favours repeats; window 0 or penalty 1 leaves logits alone.
    Sampler favour = Sampler::with({.temperature = 0.0f, .repetition_penalty = 0.5f});
    logits = {2.0f, -2.0f};
    favour.sample(logits, std::vector<int32_t>{0, 1});
    CHECK(logits == std::vector<float>{4.0f, -1.0f});
    for (const SamplerOptions& off : {SamplerOptions{.temperature = 0.0f, .repetition_penalty = 1.0f},
                                      SamplerOptions{.temperature = 0.0f, .repetition_penalty = 2.0f,
                                                     .repetition_window = 0}}) {
        Sampler s = Sampler::with(off);
        logits = {2.0f, -2.0f};
        s.sample(logits, std::vector<int32_t>{0, 1});
        CHECK(logits == std::vector<float>{2.0f, -2.0f});
    }

    // Penalized tokens are never drawn once pushed far enough down, also when sampling.
    Sampler hot = Sampler::with({.temperature = 1.0f, .repetition_penalty = 100.0f, .seed = 1});
    const auto drawn = draw(hot, {-10.0f, -1.0f, -1.0f}, 2000, {1, 2});  // -100 vs -10: e^-90
    CHECK(std::set<int32_t>(drawn.begin(), drawn.end()) == std::set<int32_t>{0});

    // A history token outside the vocabulary is a caller error.
    logits = {1.0f, 2.0f};
    CHECK_THROWS_MATCHES(greedy.sample(logits, std::vector<int32_t>{5}), gemma4::Error,
                         Catch::Matchers::Predicate<gemma4::Error>([](const gemma4::Error& e) {
                             return e.code() == ErrorCode::invalid_argument;
                         }));
}

TEST_CASE("sampler: -inf and NaN logits are never drawn", "[unit][sampler]") {
    std::vector<float> logits(64, kNegInf);
    for (size_t i = 0; i < logits.size(); i += 3) logits[i] = static_cast<float>(i % 5);
    logits[1] = std::nanf("");
    for (const SamplerOptions& options :
         {SamplerOptions{.temperature = 1.0f, .seed = 1}, SamplerOptions{.temperature = 1000.0f, .seed = 2},
          SamplerOptions{.temperature = 1000.0f, .top_k = 60, .seed = 3},
          SamplerOptions{.temperature = 1000.0f, .top_k = 10, .seed = 3},
          SamplerOptions{.temperature = 1000.0f, .top_p = 0.999f, .seed = 4},
          SamplerOptions{.temperature = 1000.0f, .min_p = 1e-30f, .seed = 5}}) {
        Sampler sampler = Sampler::with(options);
        for (int32_t t : draw(sampler, logits, 3000)) {
            REQUIRE(t % 3 == 0);
        }
    }
    // A single finite token is the only choice.
    std::vector<float> one(10, kNegInf);
    one[7] = -1e30f;
    Sampler sampler = Sampler::with({.temperature = 0.7f, .seed = 9});
    CHECK(draw(sampler, one, 10) == std::vector<int32_t>(10, 7));
}

TEST_CASE("no drawable logit, or no logits, is an invalid_argument", "[unit][sampler]") {
    auto is_invalid_argument = Catch::Matchers::Predicate<gemma4::Error>(
        [](const gemma4::Error& e) { return e.code() == ErrorCode::invalid_argument; }, "invalid_argument");
    for (Sampler sampler :
         {Sampler::greedy(), Sampler::with({.seed = 1}), Sampler::with({.top_k = 2, .top_p = 0.5f})}) {
        std::vector<float> all_inf(100, kNegInf);
        CHECK_THROWS_MATCHES(sampler.sample(all_inf, {}), gemma4::Error, is_invalid_argument);
        std::vector<float> inf_and_nan = {kNegInf, std::nanf(""), kNegInf};
        CHECK_THROWS_MATCHES(sampler.sample(inf_and_nan, {}), gemma4::Error, is_invalid_argument);
        std::vector<float> empty;
        CHECK_THROWS_MATCHES(sampler.sample(empty, {}), gemma4::Error, is_invalid_argument);
    }
}

TEST_CASE("out-of-range options are an invalid_argument", "[unit][sampler]") {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::nanf("");
    auto is_invalid_argument = Catch::Matchers::Predicate<gemma4::Error>(
        [](const gemma4::Error& e) { return e.code() == ErrorCode::invalid_argument; }, "invalid_argument");
    const std::vector<SamplerOptions> bad = {
        {.temperature = inf},          {.temperature = nan},        {.top_k = -1},
        {.top_p = 0.0f},               {.top_p = 1.01f},            {.top_p = nan},
        {.min_p = -0.01f},             {.min_p = 1.01f},            {.min_p = nan},
        {.repetition_penalty = 0.0f},  {.repetition_penalty = -1.0f}, {.repetition_penalty = nan},
        {.repetition_penalty = inf},   {.repetition_window = -1},
    };
    for (size_t i = 0; i < bad.size(); ++i) {
        CAPTURE(i);
        CHECK_THROWS_MATCHES(Sampler::with(bad[i]), gemma4::Error, is_invalid_argument);
        CHECK_THROWS_MATCHES(Sampler::top_p(bad[i]), gemma4::Error, is_invalid_argument);
    }
    // The edges of each range are valid.
    CHECK_NOTHROW(Sampler::with({.temperature = -2.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                                 .repetition_penalty = 1e-3f, .repetition_window = 0}));
    CHECK_NOTHROW(Sampler::with({.top_p = 1e-6f, .min_p = 1.0f}));
    CHECK(Sampler::with({.top_k = 40, .seed = 77}).options().seed == 77);
}

TEST_CASE("a 262144-entry vocabulary samples fast", "[unit][sampler]") {
    // The yardstick is what the sampler must avoid: a full sort of the 262144 ids by logit, timed
    // here on the same row (~30 ms at -O2), so the bound holds on slow machines and under
    // sanitizers alike. Each configuration takes ~0.3-2.5 ms per call at -O2 (under 0.1 of a full
    // sort); a bound of 0.4 catches a full sort or a per-call reallocation while leaving room for a
    // busy machine.
    constexpr double kMaxFractionOfFullSort = 0.4;
    constexpr int kCallsPerConfig = 12;
    const std::vector<float> row = peaked_vocab_row(17);
    std::vector<int32_t> history(64);
    for (size_t i = 0; i < history.size(); ++i) history[i] = static_cast<int32_t>(i * 4093 % kGemma4VocabSize);

    using Clock = std::chrono::steady_clock;
    auto ms_since = [](Clock::time_point start) {
        return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    };
    double full_sort_ms = std::numeric_limits<double>::infinity();
    std::vector<int32_t> ids(row.size());
    for (int rep = 0; rep < 3; ++rep) {
        for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
        const auto start = Clock::now();
        std::sort(ids.begin(), ids.end(), [&row](int32_t a, int32_t b) {
            return row[static_cast<size_t>(a)] > row[static_cast<size_t>(b)] ||
                   (row[static_cast<size_t>(a)] == row[static_cast<size_t>(b)] && a < b);
        });
        full_sort_ms = std::min(full_sort_ms, ms_since(start));
    }
    CAPTURE(full_sort_ms);

    const std::vector<SamplerOptions> configs = {
        {.temperature = 1.0f, .top_k = 64, .top_p = 0.95f, .min_p = 0.05f, .repetition_penalty = 1.1f, .seed = 1},
        {.temperature = 0.8f, .top_p = 0.95f, .seed = 2},
        {.temperature = 1.0f, .seed = 3},
        {.temperature = 0.0f, .repetition_penalty = 1.1f},
    };
    std::vector<float> logits;
    for (size_t c = 0; c < configs.size(); ++c) {
        CAPTURE(c);
        Sampler sampler = Sampler::with(configs[c]);
        logits = row;
        sampler.sample(logits, history);  // the first call sizes the scratch
        double total_ms = 0.0;
        for (int i = 0; i < kCallsPerConfig; ++i) {
            logits = row;
            const auto start = Clock::now();
            const int32_t token = sampler.sample(logits, history);
            total_ms += ms_since(start);
            REQUIRE(token >= 0);
            REQUIRE(row[static_cast<size_t>(token)] >= 5.0f);  // a spike
        }
        const double ms_per_call = total_ms / kCallsPerConfig;
        CAPTURE(ms_per_call);
        CHECK(ms_per_call < kMaxFractionOfFullSort * full_sort_ms);
    }
}
