#include "gemma4/error.h"
#include "gemma4/gemma4.h"

namespace gemma4 {

const char* to_string(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::invalid_file: return "invalid_file";
        case ErrorCode::unsupported_model: return "unsupported_model";
        case ErrorCode::out_of_memory: return "out_of_memory";
        case ErrorCode::device_error: return "device_error";
        case ErrorCode::invalid_argument: return "invalid_argument";
        case ErrorCode::context_overflow: return "context_overflow";
    }
    return "unknown";
}

}  // namespace gemma4

namespace gemma4 {

const char* version() noexcept { return GEMMA4_VERSION_STRING; }

}  // namespace gemma4
