// Tokenizer: the Gemma 4 tokenizer (`tokenizer.ggml.model = "gemma4"`), built from GGUF metadata alone and
// token-for-token identical to llama.cpp (commit de3ff81). Spec: shared/spec/gemma4.md §4.
//
// Encoding, in order (each step is what llama.cpp's gemma4 path does):
//   1. Special-token split. Candidates are the tokens with the CONTROL, USER_DEFINED or UNKNOWN attribute;
//      with parse_special off only those without CONTROL/UNKNOWN take part (USER_DEFINED ones always do).
//      Candidates are applied one after another, longest text first (ties: lower id first); each one splits
//      every remaining text fragment at its leftmost non-overlapping occurrences. (This is not a left-to-right
//      longest match: a longer candidate wins even where a shorter one starts earlier.)
//   2. Each text fragment is read as code points the lenient llama.cpp way: a byte that does not start a
//      well-formed sequence (bad lead byte, missing or bad continuation byte, truncated tail) becomes U+FFFD
//      and only that byte is consumed; overlong forms and surrogates decode to their value and are re-encoded
//      canonically (so "\xC0\x80" becomes "\x00"). A ' ' byte becomes '▁' (U+2581); no space is prepended.
//   3. The fragment is cut into maximal runs of '\n' and of everything else. A newline run that is itself a
//      token is emitted as that token.
//   4. BPE on each run: one symbol per code point; repeatedly merge the adjacent pair with the lowest merge
//      rank (ties: leftmost). Merges may cross '▁': there is no word splitting.
//   5. A final symbol that is not a token becomes one `<0xXX>` byte token per byte (looked up by text; bytes
//      without such a token are dropped, as llama.cpp does).
//   6. add_bos puts `<bos>` first exactly once: if the text already starts with a `<bos>` token (a rendered
//      chat template does), no second one is added. llama.cpp would add a second one and warn.
// Two inputs crash llama.cpp, so there is nothing to match: code points above U+10FFFF (lead bytes F4..F7
// with valid continuation bytes; std::invalid_argument) and overlong forms of ' ' (which stay ' ' and hit a
// GGML_ASSERT in find_bpe_rank). Here the former's lead byte becomes U+FFFD like any other invalid byte, and
// the latter is an ordinary symbol ' ' (byte fallback).
//
// Attributes follow llama.cpp's loader for Gemma 4 vocabularies: the end-of-generation (EOG) set is the eos
// id plus the tokens `<eos>`, `<turn|>` and `<|tool_response>` (looked up by text); every EOG token also gets
// the CONTROL attribute, so `<|tool_response>` (USER_DEFINED in the file) is matched only with parse_special
// and hidden when decoding without show_special. `</s>` is deliberately not EOG.
//
// Decoding: a NORMAL token gives its text with '▁' -> ' '; a BYTE token gives its byte; USER_DEFINED gives
// its text; CONTROL/UNKNOWN give nothing unless show_special is set (then their text); other types give
// nothing. No other clean-up is applied, so decode(encode(x)) == x for valid UTF-8 x without a literal '▁'
// (that one is the same symbol as an escaped space and comes back as ' '; llama.cpp's llama_detokenize
// would also remove spaces before punctuation). StreamDecoder turns a token stream into valid UTF-8 text,
// holding back incomplete characters.
//
// Load cost: the GGUF strings are copied once into one arena; token texts, merge operands and merge results
// are interned in an open-addressing hash table, and merges become a (left id, right id) -> (rank, result id)
// table, so BPE never builds strings. The real vocabulary (262144 tokens, 514906 merges) loads in well under
// 0.5 s (see bench/kernels/tokenizer_bench.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gemma4 {

class GgufFile;

/// Token type as stored in `tokenizer.ggml.token_type`.
enum class TokenType : int32_t {
    undefined = 0,
    normal = 1,
    unknown = 2,
    control = 3,
    user_defined = 4,
    unused = 5,
    byte = 6,
};

/// The Gemma 4 tokenizer. Immutable after construction; every const method may be called from any number
/// of threads at once. Owns its data: the GgufFile may be closed after from_gguf().
class Tokenizer {
public:
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata. Throws Error(unsupported_model) when
    /// `tokenizer.ggml.model` is not "gemma4", Error(invalid_file) for missing or malformed keys (token and
    /// type arrays of different lengths, duplicate token texts, out-of-range special ids, byte tokens whose
    /// text is not `<0xXX>`).
    static Tokenizer from_gguf(const GgufFile& file);

    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
    Tokenizer(const Tokenizer&) = delete;
    Tokenizer& operator=(const Tokenizer&) = delete;
    ~Tokenizer();

    /// Token ids of `text`. parse_special: match CONTROL tokens written as text (on for chat-template
    /// output, off for untrusted user text; USER_DEFINED tokens are matched either way). Any bytes are
    /// accepted; throws Error(invalid_argument) only for a text over 256 MiB.
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

    /// The bytes token `id` decodes to (see the header comment). Throws Error(invalid_argument) for an id
    /// outside [0, vocab_size()). The view stays valid for the tokenizer's lifetime.
    std::string_view token_to_piece(int32_t id, bool show_special = false) const;
    /// Concatenated pieces; may hold invalid UTF-8 if the ids split a character. Throws like token_to_piece.
    std::string decode(std::span<const int32_t> ids, bool show_special = false) const;

    /// The token's text as stored in the vocabulary (with '▁', `<0xXX>` etc.). Throws like token_to_piece.
    std::string_view token_text(int32_t id) const;
    TokenType token_type(int32_t id) const;
    /// True for tokens hidden by decoding without show_special (CONTROL or UNKNOWN attribute).
    bool is_control(int32_t id) const;
    /// Id of the token whose text is exactly `text`, if any.
    std::optional<int32_t> find(std::string_view text) const;

    /// End of generation: eos, `<turn|>`, `<|tool_response>`. False for any id outside the vocabulary.
    bool is_eog(int32_t id) const;
    const std::vector<int32_t>& eog_ids() const;
    int32_t bos_id() const;
    /// -1 when the file has no eos id.
    int32_t eos_id() const;
    int32_t vocab_size() const;
    size_t n_merges() const;

private:
    struct Impl;
    explicit Tokenizer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// Incremental decoder for generated tokens: push() returns the text that is complete so far and never
/// emits part of a UTF-8 character; bytes that cannot form a valid character become U+FFFD as soon as that
/// is certain. The output is always valid UTF-8. Holds a reference to the tokenizer, which must outlive it.
/// One StreamDecoder per stream; not thread-safe.
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool show_special = false)
        : tokenizer_(&tokenizer), show_special_(show_special) {}

    /// Text made complete by token `id` (often empty while a multi-byte character is being built).
    /// Throws Error(invalid_argument) for an id outside the vocabulary.
    std::string push(int32_t id);
    /// Ends the stream: an incomplete trailing character becomes U+FFFD. The decoder is then empty again.
    std::string flush();
    /// Bytes held back, waiting for the rest of a character.
    size_t pending_bytes() const { return pending_.size(); }

private:
    const Tokenizer* tokenizer_;
    bool show_special_;
    std::string pending_;
};

namespace detail {
/// Appends `bytes` to `out` as valid UTF-8: every maximal ill-formed subsequence (Unicode §3.9 / WHATWG)
/// becomes U+FFFD. If `final` is false, an incomplete but so far valid sequence at the end is not consumed;
/// returns the number of bytes consumed.
size_t append_valid_utf8(std::string_view bytes, bool final, std::string& out);
}  // namespace detail

}  // namespace gemma4
