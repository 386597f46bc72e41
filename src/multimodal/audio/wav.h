// WAV (RIFF WAVE) decoding to interleaved f32 samples.
//
// Layout (little-endian):  "RIFF" u32 size "WAVE", then chunks { char id[4] | u32 size | data, padded to
// an even size }. "fmt " (before "data") holds: u16 format tag, u16 channels, u32 sample rate, u32 byte
// rate, u16 block align (bytes per frame), u16 bits per sample, and for WAVE_FORMAT_EXTENSIBLE (0xFFFE)
// u16 extension size (22), u16 valid bits, u32 channel mask, 16-byte sub-format GUID whose first two
// bytes are the real format tag. "data" holds frames of `block align` bytes, channels interleaved.
//
// Accepted: PCM (tag 1) with 8 (unsigned, 128 = silence), 16, 24 or 32-bit containers, IEEE float (tag 3)
// of 32 or 64 bits, both also as WAVE_FORMAT_EXTENSIBLE; 1..64 channels; 1 kHz..768 kHz. Integer samples
// become x / 2^(bits-1) (8-bit: (x - 128) / 128), read from the container (a 24-bit sample in a 32-bit
// container is already left-justified there). The RIFF size field is not trusted (writers that stream
// leave it wrong); every chunk size is checked against the bytes that are there.
//
// Errors: Error(invalid_file) for anything malformed or truncated (no RIFF/WAVE header, a chunk running
// past the end, no fmt or data chunk, a block align that does not match the channels and sample size, a
// data size that is not whole frames); Error(invalid_argument) for a well-formed file we do not take (an
// unsupported format tag such as ADPCM, A-law or mu-law, an unsupported bit depth, a rate or channel count
// out of range, no samples).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace gemma4::detail {

struct PcmClip {
    std::vector<float> samples;  // [n_frames][channels]
    int sample_rate_hz = 0;
    int channels = 0;
};

/// True if the bytes start like a RIFF WAVE file.
bool looks_like_wav(std::span<const uint8_t> bytes);

/// Decodes a whole WAV file image; `name` is used in error messages.
PcmClip decode_wav(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace gemma4::detail
