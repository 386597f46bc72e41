// gemma4/error.h: the one exception type the library throws.
//
// Why exceptions (see STYLE.md §3): failures are rare and rarely fixable at the call site (a corrupt
// file, no GPU memory), C++20 has no std::expected, and RAII frees device memory on unwind.
// Normal outcomes (end of turn, a full context) are values, never exceptions.
#pragma once

#include <stdexcept>
#include <string>

namespace gemma4 {

/// What kind of failure an Error reports. Stable: a C shim may map these to return codes.
enum class ErrorCode {
    invalid_file,       ///< a file is missing, unreadable, truncated or malformed
    unsupported_model,  ///< a valid file this engine does not run (other architecture, variant or type)
    out_of_memory,      ///< host or device memory ran out
    device_error,       ///< a GPU call failed, or no GPU is present where one was asked for
    invalid_argument,   ///< a caller passed a bad value (shape, option, token id, media)
    context_overflow,   ///< input does not fit in the session's context
};

/// Human-readable name of an ErrorCode ("invalid_file", ...).
const char* to_string(ErrorCode code) noexcept;

/// The library's exception. what() is one line that names the file or object, the field and the
/// problem, e.g. `model.gguf: tensor 'blk.3.attn_q.weight': data offset 123 is not 32-byte aligned`.
class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const noexcept { return code_; }

private:
    ErrorCode code_;
};

}  // namespace gemma4
