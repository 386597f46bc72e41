// UTF-8 well-formedness, the rule GGUF strings are held to (reader and writer alike).
#pragma once

#include <string_view>

namespace gemma4::detail {

/// True if `s` is well-formed UTF-8: no stray continuation bytes, no truncated sequences, no overlong
/// forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s) noexcept;

}  // namespace gemma4::detail
