// Shared by the model tests: the committed goldens and compare.py's metrics.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gemma4/gemma4.h"
#include "util/npy.h"

#ifdef GEMMA4_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace gemma4::test {

inline const std::string kData = GEMMA4_TEST_DATA_DIR;

/// A CUDA device is present (always false in a build without CUDA): the CUDA cases skip otherwise.
inline bool have_gpu() {
#ifdef GEMMA4_HAVE_CUDA
    return cuda::device_count() > 0;
#else
    return false;
#endif
}

inline std::string model_path(const std::string& quant) { return kData + "/models/gemma4-tiny-" + quant + ".gguf"; }

struct Golden {
    std::vector<int32_t> tokens;
    std::vector<int32_t> rows;
    std::vector<float> logits;  // [rows][vocab]
    std::vector<float> ref;     // numpy float64 reference, when present
};

inline Golden load_golden(const std::string& name) {
    const std::string d = kData + "/golden/tiny/" + name + "/";
    Golden g;
    g.tokens = detail::read_npy(d + "tokens.npy").i32;
    g.rows = detail::read_npy(d + "rows.npy").i32;
    g.logits = detail::read_npy(d + "logits.npy").f32;
    try {
        g.ref = detail::read_npy(d + "ref.npy").f32;
    } catch (const Error&) {
    }
    return g;
}

struct Metrics {
    double rel_l2 = 0, max_abs = 0, top1 = 0, kl = 0;
};

inline Metrics compare(const std::vector<float>& ours, const std::vector<float>& ref, size_t vocab) {
    REQUIRE(ours.size() == ref.size());
    Metrics m;
    double diff2 = 0, ref2 = 0;
    size_t same = 0;
    const size_t rows = ref.size() / vocab;
    for (size_t r = 0; r < rows; ++r) {
        const float* a = ours.data() + r * vocab;
        const float* b = ref.data() + r * vocab;
        size_t ia = 0, ib = 0;
        double ma = a[0], mb = b[0];
        for (size_t i = 0; i < vocab; ++i) {
            REQUIRE(std::isfinite(a[i]));
            diff2 += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
            ref2 += double(b[i]) * b[i];
            m.max_abs = std::max(m.max_abs, std::abs(double(a[i]) - b[i]));
            if (a[i] > ma) { ma = a[i]; ia = i; }
            if (b[i] > mb) { mb = b[i]; ib = i; }
        }
        same += ia == ib;
        double za = 0, zb = 0;
        for (size_t i = 0; i < vocab; ++i) {
            za += std::exp(a[i] - ma);
            zb += std::exp(b[i] - mb);
        }
        double kl = 0;
        for (size_t i = 0; i < vocab; ++i) {
            const double lb = b[i] - mb - std::log(zb);
            const double la = a[i] - ma - std::log(za);
            kl += std::exp(lb) * (lb - la);
        }
        m.kl += kl / rows;
    }
    m.rel_l2 = std::sqrt(diff2 / ref2);
    m.top1 = double(same) / rows;
    return m;
}

/// Rows where our argmax differs from the reference's although the reference's own logits separate the two
/// candidates by more than `margin`: real disagreements, as opposed to near-ties that any rounding may swap.
inline int clear_top1_mismatches(const std::vector<float>& ours, const std::vector<float>& ref, size_t vocab, double margin) {
    int bad = 0;
    for (size_t r = 0; r < ref.size() / vocab; ++r) {
        const float* a = ours.data() + r * vocab;
        const float* b = ref.data() + r * vocab;
        const size_t ia = std::max_element(a, a + vocab) - a;
        const size_t ib = std::max_element(b, b + vocab) - b;
        if (ia != ib && double(b[ib]) - b[ia] > margin) ++bad;
    }
    return bad;
}

inline std::vector<float> select_rows(const std::vector<float>& all, const std::vector<int32_t>& rows, size_t vocab) {
    std::vector<float> out;
    out.reserve(rows.size() * vocab);
    for (int r : rows) out.insert(out.end(), all.begin() + r * vocab, all.begin() + (r + 1) * vocab);
    return out;
}

inline std::vector<float> run_all_logits(const Model& model, const std::vector<int32_t>& tokens, SessionOptions so) {
    so.context_tokens = std::max<int>(so.context_tokens, static_cast<int>(tokens.size()));
    Session s = model.new_session(so);
    s.add_tokens(tokens);
    return s.evaluate(true);
}
}  // namespace gemma4::test
