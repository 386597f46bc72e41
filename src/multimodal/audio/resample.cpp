#include "multimodal/audio/resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <numeric>

#include <fmt/format.h>

#include "gemma4/error.h"

namespace gemma4::detail {
namespace {

// The modified Bessel function of the first kind, order 0: sum_k ((x/2)^k / k!)^2.
double bessel_i0(double x) {
    const double q = x * x / 4.0;
    double term = 1.0, sum = 1.0;
    for (int k = 1; k < 500 && term > sum * 1e-17; ++k) {
        term *= q / (static_cast<double>(k) * k);
        sum += term;
    }
    return sum;
}

// Kaiser's formula for the window shape parameter at A dB of attenuation (A > 50).
double kaiser_beta(double attenuation_db) { return 0.1102 * (attenuation_db - 8.7); }

// The windowed-sinc kernel for one rate pair, evaluated exactly.
struct Kernel {
    double fc = 0.0;       // cutoff, cycles per input sample
    int half = 0;          // K: the kernel is zero for |u| >= K
    double beta = 0.0;
    double inv_i0_beta = 0.0;

    Kernel(int in_rate, int out_rate) {
        const double nyquist_min = 0.5 * std::min(in_rate, out_rate);         // Hz
        const double transition_hz = (1.0 - kPassbandEdge) * nyquist_min;      // passband edge .. lower Nyquist
        fc = 0.5 * (1.0 + kPassbandEdge) * nyquist_min / in_rate;
        // Kaiser: taps - 1 = (A - 7.95) / (2.285 * transition width in rad/sample).
        const double width_rad = 2.0 * std::numbers::pi * transition_hz / in_rate;
        const double taps = (kStopbandDb - 7.95) / (2.285 * width_rad) + 1.0;
        half = static_cast<int>(std::ceil(taps / 2.0));
        beta = kaiser_beta(kStopbandDb);
        inv_i0_beta = 1.0 / bessel_i0(beta);
    }

    double operator()(double u) const {
        const double z = u / half;
        if (z <= -1.0 || z >= 1.0) return 0.0;
        const double x = 2.0 * fc * u;
        const double sinc = x == 0.0 ? 1.0 : std::sin(std::numbers::pi * x) / (std::numbers::pi * x);
        return 2.0 * fc * sinc * bessel_i0(beta * std::sqrt(1.0 - z * z)) * inv_i0_beta;
    }
};

// sum a[i] * b[i] with 8 independent partial sums (vectorizable; f32 is ample for 600 taps).
float dot(const float* a, const float* b, int n) {
    float acc[8] = {};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    }
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

}  // namespace

std::vector<float> downmix(std::span<const float> interleaved, int channels) {
    if (channels <= 0 || interleaved.size() % static_cast<size_t>(channels) != 0) {
        throw Error(ErrorCode::invalid_argument, fmt::format("downmix: {} samples are not whole frames of {} channels",
                                                             interleaved.size(), channels));
    }
    if (channels == 1) return std::vector<float>(interleaved.begin(), interleaved.end());
    const size_t n = interleaved.size() / channels;
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) {
        float s = 0.0f;
        for (int c = 0; c < channels; ++c) s += interleaved[i * channels + c];
        out[i] = s / static_cast<float>(channels);
    }
    return out;
}

int resampler_half_taps(int in_rate_hz, int out_rate_hz) { return Kernel(in_rate_hz, out_rate_hz).half; }

std::vector<float> resample(std::span<const float> in, int in_rate_hz, int out_rate_hz) {
    if (in_rate_hz <= 0 || out_rate_hz <= 0) {
        throw Error(ErrorCode::invalid_argument, fmt::format("resample: bad rates {} -> {} Hz", in_rate_hz, out_rate_hz));
    }
    if (in_rate_hz == out_rate_hz || in.empty()) return std::vector<float>(in.begin(), in.end());
    const int64_t n_in = static_cast<int64_t>(in.size());
    const int64_t fs_in = in_rate_hz, fs_out = out_rate_hz;
    const int64_t n_out = std::max<int64_t>(1, (n_in * fs_out + fs_in / 2) / fs_in);

    const Kernel h(in_rate_hz, out_rate_hz);
    const int K = h.half;
    const int taps = 2 * K;
    const int64_t g = std::gcd(fs_in, fs_out);
    const int64_t n_phases = fs_out / g;  // distinct fractional parts of t_k

    // Row for fractional part `frac`: tap i multiplies x[floor(t) - K + 1 + i], at distance
    // u = frac + K - 1 - i from t.
    std::vector<float> bank;  // [n_phases][taps] when precomputed
    std::vector<double> table;  // h at u = j / kTableSteps, j = 0 .. K * kTableSteps (+1 guard)
    if (n_phases <= kMaxPhases) {
        bank.resize(static_cast<size_t>(n_phases) * taps);
        for (int64_t p = 0; p < n_phases; ++p) {
            const double frac = static_cast<double>(p * g) / static_cast<double>(fs_out);
            for (int i = 0; i < taps; ++i) bank[p * taps + i] = static_cast<float>(h(frac + K - 1 - i));
        }
    } else {
        table.resize(static_cast<size_t>(K) * kTableSteps + 2);
        for (size_t j = 0; j < table.size(); ++j) table[j] = h(static_cast<double>(j) / kTableSteps);
    }
    std::vector<float> row(taps);

    std::vector<float> out(static_cast<size_t>(n_out));
    for (int64_t k = 0; k < n_out; ++k) {
        const int64_t num = k * fs_in;  // t_k * fs_out
        const int64_t center = num / fs_out;
        const int64_t rem = num % fs_out;
        const float* coeffs;
        if (!bank.empty()) {
            coeffs = bank.data() + (rem / g) * taps;
        } else {
            const double frac = static_cast<double>(rem) / static_cast<double>(fs_out);
            for (int i = 0; i < taps; ++i) {
                const double u = std::abs(frac + K - 1 - i) * kTableSteps;  // h is even
                const size_t j = static_cast<size_t>(u);
                const double w = u - static_cast<double>(j);
                row[i] = j + 1 < table.size() ? static_cast<float>(table[j] + (table[j + 1] - table[j]) * w) : 0.0f;
            }
            coeffs = row.data();
        }
        // Taps i cover input n = center - K + 1 + i; clip to the clip.
        const int64_t n0 = center - K + 1;
        const int64_t i_lo = std::max<int64_t>(0, -n0);
        const int64_t i_hi = std::min<int64_t>(taps, n_in - n0);
        out[k] = i_hi > i_lo ? dot(coeffs + i_lo, in.data() + (n0 + i_lo), static_cast<int>(i_hi - i_lo)) : 0.0f;
    }
    return out;
}

}  // namespace gemma4::detail
