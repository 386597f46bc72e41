// Audio conversion to what the projector takes (spec §5.4): mono, 16 kHz.
//
// Down-mix: the mean of the channels, as llama.cpp (miniaudio) does.
//
// Resampling: a band-limited interpolator (Kaiser-windowed sinc), linear phase, delay compensated:
//
//   y[k] = sum_n x[n] h(t_k - n),   t_k = k * in_rate / out_rate   (time in input samples)
//   h(u) = 2 fc sinc(2 fc u) * I0(beta sqrt(1 - (u/K)^2)) / I0(beta)   for |u| < K, else 0
//
// with the cutoff fc (cycles per input sample) in the middle of the transition band, which runs from
// kPassbandEdge to 1.0 times the lower Nyquist frequency: nothing above the lower Nyquist frequency
// passes (no aliasing, no imaging) and everything up to 92 % of it is flat to ~1e-6. beta and the
// half-length K (input samples) come from Kaiser's formulas for kStopbandDb of attenuation and that
// transition width: 48 kHz -> 16 kHz uses K = 294 (588 taps per output sample), 44.1 kHz K = 270,
// 8 kHz -> 16 kHz K = 99. Samples outside the clip count as zero. llama.cpp instead uses miniaudio's
// linear interpolator (with a 4th-order low-pass), which aliases and dulls the top octave; the model
// was trained on properly resampled audio, so we do not follow it here (tests/golden/make_media_golden.py
// reports the difference; sox `rate -v` agrees with us to > 60 dB SNR).
//
// Coefficients: t_k takes L = out_rate / gcd(in_rate, out_rate) distinct fractional parts. When
// L <= kMaxPhases they are precomputed exactly, one row of 2K taps per phase (a polyphase filter bank);
// for unusual rate pairs (L larger) each row is interpolated linearly from the kernel tabulated at
// 1/kTableSteps input samples (error ~1e-6 per tap, below the stop band's 1e-6).
// Output length: round(n_in * out_rate / in_rate), as sox gives.
#pragma once

#include <span>
#include <vector>

namespace gemma4::detail {

constexpr double kPassbandEdge = 0.92;  // fraction of the lower Nyquist frequency passed flat
constexpr double kStopbandDb = 120.0;   // attenuation from the lower Nyquist frequency up
constexpr int kMaxPhases = 1024;        // polyphase rows precomputed at most (44.1 kHz needs 160, 11.025 kHz 640)
constexpr int kTableSteps = 1024;       // kernel samples per input sample for other rate pairs

/// The mean of the channels: interleaved [n_frames][channels] -> [n_frames].
std::vector<float> downmix(std::span<const float> interleaved, int channels);

/// Band-limited resampling of mono samples (see above). Rates in Hz, both > 0. Equal rates copy.
std::vector<float> resample(std::span<const float> in, int in_rate_hz, int out_rate_hz);

/// The filter's half-length K in input samples for a rate pair (for tests and docs).
int resampler_half_taps(int in_rate_hz, int out_rate_hz);

}  // namespace gemma4::detail
