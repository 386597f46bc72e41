// Tokenizer implementation. The algorithm and its llama.cpp facts are in tokenizer.h; this file adds the
// data structures that make loading and encoding fast.
#include "model/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include <fmt/format.h>

#include "gemma4/error.h"
#include "gguf/gguf_file.h"

namespace gemma4 {
namespace {

// ---- UTF-8

constexpr uint32_t kReplacementChar = 0xFFFD;
constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr uint32_t kBmpSize = 0x10000;               // code points with a dense char -> symbol table
constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";  // '▁' U+2581, what ' ' becomes before BPE
constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";
// One encode() call: byte offsets into the normalized text (up to 3x the input) are 32-bit. A quarter GiB
// is some 60M tokens, far beyond any context.
constexpr size_t kMaxEncodeBytes = size_t{256} << 20;

bool is_continuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// llama.cpp's lenient decoder (unicode_cpt_from_utf8): the lead byte alone decides the length, only the
// continuation bytes' top bits are checked, so overlong forms and surrogates pass. Anything else consumes
// one byte and yields U+FFFD. Values above U+10FFFF are treated as invalid (llama.cpp throws on them).
uint32_t decode_lenient(const uint8_t* p, size_t n, size_t& len) {
    const uint8_t b0 = p[0];
    len = 1;
    if (b0 < 0x80) return b0;
    uint32_t cp = 0;
    size_t need = 0;
    if ((b0 & 0x40) == 0) {
        return kReplacementChar;  // a continuation byte where a character should start
    } else if ((b0 & 0x20) == 0) {
        cp = b0 & 0x1F;
        need = 1;
    } else if ((b0 & 0x10) == 0) {
        cp = b0 & 0x0F;
        need = 2;
    } else if ((b0 & 0x08) == 0) {
        cp = b0 & 0x07;
        need = 3;
    } else {
        return kReplacementChar;  // F8..FF never start a character
    }
    if (need >= n) return kReplacementChar;
    for (size_t k = 1; k <= need; ++k) {
        if (!is_continuation(p[k])) return kReplacementChar;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (cp > kMaxCodePoint) return kReplacementChar;
    len = need + 1;
    return cp;
}

// Canonical (shortest) encoding; surrogates are encoded like any other value, as llama.cpp does.
size_t encode_utf8(uint32_t cp, char* out) {
    if (cp < 0x80) {
        out[0] = static_cast<char>(cp);
        return 1;
    }
    if (cp < 0x800) {
        out[0] = static_cast<char>(0xC0 | (cp >> 6));
        out[1] = static_cast<char>(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = static_cast<char>(0xE0 | (cp >> 12));
        out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out[2] = static_cast<char>(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = static_cast<char>(0xF0 | (cp >> 18));
    out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[3] = static_cast<char>(0x80 | (cp & 0x3F));
    return 4;
}

// If `s` is exactly one canonically encoded code point, returns it; otherwise -1. Such strings are the
// only ones an initial BPE symbol can equal, since encode() re-encodes every code point canonically.
int64_t single_code_point(std::string_view s) {
    if (s.empty() || s.size() > 4) return -1;
    size_t len = 0;
    const uint32_t cp = decode_lenient(reinterpret_cast<const uint8_t*>(s.data()), s.size(), len);
    if (len != s.size()) return -1;
    if (cp == kReplacementChar && s != kUtf8Replacement) return -1;
    char buf[4];
    if (encode_utf8(cp, buf) != s.size() || std::memcmp(buf, s.data(), s.size()) != 0) return -1;
    return cp;
}

// ---- hashing

// 64-bit multiply-xorshift hash over 8-byte words: a few cycles for the short strings of a vocabulary.
// The multipliers are odd 64-bit constants with well-mixed bits (from splitmix64 / murmur3's fmix64).
constexpr uint64_t kHashMulA = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kHashMulB = 0xFF51AFD7ED558CCDull;
constexpr uint64_t kHashMulC = 0xC4CEB9FE1A85EC53ull;

uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= kHashMulB;
    h ^= h >> 33;
    h *= kHashMulC;
    h ^= h >> 33;
    return h;
}

uint64_t hash_bytes(std::string_view s) {
    const char* p = s.data();
    size_t n = s.size();
    uint64_t h = n * kHashMulA;
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * kHashMulA;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        std::memcpy(&w, p, n);
        h = (h ^ w) * kHashMulB;
    }
    return mix64(h);
}

size_t next_pow2(size_t n) {
    size_t c = 1;
    while (c < n) c <<= 1;
    return c;
}

// A zero-initialised array for the big hash tables below. calloc hands out large blocks as fresh zero
// pages, so an empty table (all-zero slots) costs nothing until touched, and on Linux the 2 MiB-page hint
// turns the thousands of page faults and TLB misses of filling a table in random order into a handful.
template <class T>
class ZeroedArray {
public:
    ZeroedArray() = default;
    explicit ZeroedArray(size_t n) : n_(n) {
        void* p = std::calloc(n, sizeof(T));
        if (!p) throw Error(ErrorCode::out_of_memory, fmt::format("tokenizer: cannot allocate {} bytes", n * sizeof(T)));
        data_.reset(static_cast<T*>(p));
#ifdef __linux__
        constexpr uintptr_t kPage = 4096;
        const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kPage - 1) & ~(kPage - 1);
        const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n * sizeof(T)) & ~(kPage - 1);
        if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // a hint only
#endif
    }
    T& operator[](size_t i) { return data_.get()[i]; }
    const T& operator[](size_t i) const { return data_.get()[i]; }
    size_t size() const { return n_; }

private:
    struct Free {
        void operator()(T* p) const { std::free(p); }
    };
    std::unique_ptr<T, Free> data_;
    size_t n_ = 0;
};

// Interned strings. Ids [0, n_vocab) are the vocabulary tokens (id = token id); merge operands and merge
// results that are not tokens get ids after them. Open addressing with linear probing, load <= 3/4. A slot
// holds the string's first 8 bytes and its length, so most probes (and every comparison of a string of at
// most 8 bytes) touch one cache line: loading 515k merges is a few million random probes, and memory
// latency, not hashing, is what it costs.
class StringTable {
public:
    void reserve(size_t n_strings, size_t n_bytes) {
        arena_.reserve(n_bytes);
        offsets_.reserve(n_strings + 1);
        rehash(next_pow2(n_strings + n_strings / 2 + 16));
    }

    size_t size() const { return offsets_.size() - 1; }

    std::string_view str(int32_t id) const {
        return std::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
    }

    int32_t find(std::string_view s) const { return find(s, hash_bytes(s)); }

    int32_t find(std::string_view s, uint64_t h) const {
        const uint64_t prefix = prefix8(s);
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& slot = slots_[i];
            if (slot.id_plus_1 == 0) return -1;
            const int32_t id = slot.id_plus_1 - 1;
            if (slot.prefix == prefix && slot.len == s.size() &&
                (s.size() <= kPrefixBytes || str(id).substr(kPrefixBytes) == s.substr(kPrefixBytes))) {
                return id;
            }
        }
    }

    void prefetch(uint64_t h) const { __builtin_prefetch(&slots_[h & mask_]); }

    // Returns the id of `s` (hash `h`), adding it if absent.
    int32_t intern(std::string_view s, uint64_t h, bool& added) {
        const int32_t found = find(s, h);
        added = found < 0;
        if (!added) return found;
        if (4 * (size() + 1) > 3 * slots_.size()) rehash(slots_.size() * 2);
        if (arena_.size() + s.size() > std::numeric_limits<uint32_t>::max()) {
            throw Error(ErrorCode::invalid_file, "tokenizer: vocabulary and merges exceed 4 GiB of text");
        }
        const int32_t id = static_cast<int32_t>(size());
        arena_.append(s);
        offsets_.push_back(static_cast<uint32_t>(arena_.size()));
        place(id, s, h);
        return id;
    }
    int32_t intern(std::string_view s, bool& added) { return intern(s, hash_bytes(s), added); }

private:
    static constexpr size_t kPrefixBytes = 8;
    struct Slot {
        uint64_t prefix;  // first 8 bytes, zero-padded
        uint32_t len;
        int32_t id_plus_1;  // 0: empty (a zeroed table is empty)
    };

    static uint64_t prefix8(std::string_view s) {
        uint64_t p = 0;
        std::memcpy(&p, s.data(), std::min(s.size(), kPrefixBytes));
        return p;
    }

    void place(int32_t id, std::string_view s, uint64_t h) {
        size_t i = h & mask_;
        while (slots_[i].id_plus_1 != 0) i = (i + 1) & mask_;
        slots_[i] = {prefix8(s), static_cast<uint32_t>(s.size()), id + 1};
    }

    void rehash(size_t capacity) {
        slots_ = ZeroedArray<Slot>(capacity);
        mask_ = capacity - 1;
        for (size_t id = 0; id < size(); ++id) {
            const std::string_view s = str(static_cast<int32_t>(id));
            place(static_cast<int32_t>(id), s, hash_bytes(s));
        }
    }

    std::string arena_;
    std::vector<uint32_t> offsets_{0};
    ZeroedArray<Slot> slots_;
    size_t mask_ = 0;
};

// (left string id, right string id) -> (rank, result string id). Keys are unique after insertion; the
// first insertion wins, i.e. the lowest rank, as in llama.cpp's bpe_ranks.emplace. Key and value share a
// 16-byte entry: one cache line per probe. Load <= 3/4.
class MergeTable {
public:
    struct Value {
        int32_t rank;
        int32_t result;
    };

    void reserve(size_t n) {
        const size_t capacity = next_pow2(n + n / 3 + 16);
        entries_ = ZeroedArray<Entry>(capacity);
        mask_ = capacity - 1;
    }

    // Never 0 (the empty slot): string ids are below 2^31, so the +1 cannot overflow.
    static uint64_t key(int32_t left, int32_t right) {
        return ((static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right)) + 1;
    }

    void prefetch(uint64_t k) const { __builtin_prefetch(&entries_[mix64(k) & mask_]); }

    bool insert(uint64_t k, Value v) {
        for (size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
            if (entries_[i].key == k) return false;
            if (entries_[i].key == kEmpty) {
                entries_[i] = {k, v};
                return true;
            }
        }
    }

    const Value* find(uint64_t k) const {
        for (size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
            if (entries_[i].key == k) return &entries_[i].value;
            if (entries_[i].key == kEmpty) return nullptr;
        }
    }

private:
    static constexpr uint64_t kEmpty = 0;
    struct Entry {
        uint64_t key;
        Value value;
    };
    ZeroedArray<Entry> entries_;
    size_t mask_ = 0;
};

// Token attributes, as llama.cpp derives them (llama_token_attr).
enum Attr : uint8_t {
    kAttrNormal = 1 << 0,
    kAttrUnknown = 1 << 1,
    kAttrControl = 1 << 2,
    kAttrUserDefined = 1 << 3,
    kAttrUnused = 1 << 4,
    kAttrByte = 1 << 5,
};
constexpr uint8_t kAttrHidden = kAttrControl | kAttrUnknown;  // not decoded unless show_special
constexpr uint8_t kAttrSpecial = kAttrControl | kAttrUnknown | kAttrUserDefined;  // special-split candidates

uint8_t attr_of_type(int32_t type) {
    switch (static_cast<TokenType>(type)) {
        case TokenType::normal: return kAttrNormal;
        case TokenType::unknown: return kAttrUnknown;
        case TokenType::control: return kAttrControl;
        case TokenType::user_defined: return kAttrUserDefined;
        case TokenType::unused: return kAttrUnused;
        case TokenType::byte: return kAttrByte;
        default: return 0;  // undefined: decodes to nothing, never a special-split candidate
    }
}

// Texts that make a token end-of-generation for Gemma 4 (besides the eos id); see tokenizer.h.
constexpr std::array<std::string_view, 3> kEogTexts = {"<eos>", "<turn|>", "<|tool_response>"};

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// One BPE symbol: a byte range of the normalized run and its string id (-1: text unknown, never merges).
struct Symbol {
    uint32_t begin;
    uint32_t len;  // 0 once merged into its left neighbour
    int32_t id;
    int32_t next;  // index of the next live symbol, -1 at the end
    int32_t prev;
};

// A mergeable adjacent pair. It is stale (skipped when popped) once either symbol has changed: a symbol's
// string id changes whenever it grows, and a symbol merged into its left neighbour has len 0.
struct PairCandidate {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t left_id;
    int32_t right_id;
    int32_t result;
};

struct PairOrder {
    // The std heap algorithms pop the "largest" element; we want the lowest rank, then the leftmost pair.
    bool operator()(const PairCandidate& a, const PairCandidate& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

}  // namespace

struct Tokenizer::Impl {
    struct Special {
        int32_t id;
        std::string_view text;  // into strings (frozen after load)
        bool needs_parse_special;  // CONTROL or UNKNOWN: matched only with parse_special
    };

    int32_t n_vocab = 0;
    StringTable strings;
    std::vector<int32_t> types;
    std::vector<uint8_t> attrs;
    MergeTable merges;
    size_t n_merges = 0;
    std::vector<int32_t> bmp_symbol;  // code point < kBmpSize -> string id of its UTF-8 text, or -1
    std::array<int32_t, 256> byte_token{};  // byte -> id of `<0xXX>`, or -1
    std::vector<Special> specials;  // in application order: longest text first, then lower id
    std::array<std::vector<int32_t>, 256> specials_by_first_byte;  // indices into specials
    std::string pieces;  // decoded bytes of every token, back to back (hidden ones included)
    std::vector<uint32_t> piece_offsets;
    std::vector<uint8_t> eog;
    std::vector<int32_t> eog_ids;
    int32_t bos = -1;
    int32_t eos = -1;

    void check_id(int32_t id) const {
        if (id < 0 || id >= n_vocab) {
            throw Error(ErrorCode::invalid_argument,
                        fmt::format("tokenizer: token id {} is outside the vocabulary [0, {})", id, n_vocab));
        }
    }

    int32_t symbol_of(uint32_t cp, const char* utf8, size_t len) const {
        if (cp < kBmpSize) return bmp_symbol[cp];
        return strings.find(std::string_view(utf8, len));
    }

    void encode_text(std::string_view text, std::vector<int32_t>& out) const;
    void encode_run(std::string_view norm, Symbol* symbols, size_t n_symbols, std::vector<int32_t>& out,
                    std::vector<PairCandidate>& heap) const;
};

void Tokenizer::Impl::encode_run(std::string_view norm, Symbol* symbols, size_t n_symbols, std::vector<int32_t>& out,
                                 std::vector<PairCandidate>& heap) const {
    const auto try_pair = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0) return;
        const int32_t lid = symbols[left].id;
        const int32_t rid = symbols[right].id;
        if (lid < 0 || rid < 0) return;
        const MergeTable::Value* m = merges.find(MergeTable::key(lid, rid));
        if (!m) return;
        heap.push_back({m->rank, left, right, lid, rid, m->result});
        std::push_heap(heap.begin(), heap.end(), PairOrder{});
    };

    // Initial pairs: the merge-table probes are cache misses, so keys are computed and prefetched a few
    // pairs ahead; the heap is built once at the end (make_heap is linear).
    constexpr size_t kPrefetchAhead = 8;
    const auto pair_key = [&](size_t i) { return MergeTable::key(symbols[i].id, symbols[i + 1].id); };
    const auto mergeable = [&](size_t i) { return symbols[i].id >= 0 && symbols[i + 1].id >= 0; };
    heap.clear();
    for (size_t i = 0; i + 1 < n_symbols && i < kPrefetchAhead; ++i) {
        if (mergeable(i)) merges.prefetch(pair_key(i));
    }
    for (size_t i = 0; i + 1 < n_symbols; ++i) {
        if (i + kPrefetchAhead + 1 < n_symbols && mergeable(i + kPrefetchAhead)) merges.prefetch(pair_key(i + kPrefetchAhead));
        if (!mergeable(i)) continue;
        const MergeTable::Value* m = merges.find(pair_key(i));
        if (m) heap.push_back({m->rank, static_cast<int32_t>(i), static_cast<int32_t>(i + 1), symbols[i].id, symbols[i + 1].id, m->result});
    }
    std::make_heap(heap.begin(), heap.end(), PairOrder{});
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), PairOrder{});
        const PairCandidate c = heap.back();
        heap.pop_back();
        Symbol& l = symbols[c.left];
        Symbol& r = symbols[c.right];
        if (l.len == 0 || r.len == 0 || l.id != c.left_id || r.id != c.right_id) continue;
        l.len += r.len;
        l.id = c.result;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) symbols[r.next].prev = c.left;
        try_pair(l.prev, c.left);
        try_pair(c.left, l.next);
    }

    for (size_t i = 0; i < n_symbols; ++i) {
        const Symbol& s = symbols[i];
        if (s.len == 0) continue;
        if (s.id >= 0 && s.id < n_vocab) {
            out.push_back(s.id);
            continue;
        }
        for (uint32_t k = 0; k < s.len; ++k) {
            const int32_t t = byte_token[static_cast<uint8_t>(norm[s.begin + k])];
            if (t >= 0) out.push_back(t);
        }
    }
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out) const {
    // Normalize the whole fragment first (code points re-encoded canonically, raw ' ' -> '▁'), with one
    // symbol per code point; then cut it into newline / non-newline runs and BPE each run. A byte grows to at
    // most 3 (' ' -> '▁', an invalid byte -> U+FFFD), so the buffers are sized once.
    const size_t n = text.size();
    std::string norm(3 * n, '\0');
    std::vector<Symbol> symbols(n);
    char* w = norm.data();
    size_t n_symbols = 0;
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    const int32_t space_id = bmp_symbol[0x2581];
    for (size_t i = 0; i < n;) {
        const uint32_t begin = static_cast<uint32_t>(w - norm.data());
        const uint8_t b = p[i];
        int32_t id;
        if (b < 0x80) {  // ASCII: the common case
            if (b == ' ') {
                std::memcpy(w, kSpaceEscape.data(), kSpaceEscape.size());
                w += kSpaceEscape.size();
                id = space_id;
            } else {
                *w++ = static_cast<char>(b);
                id = bmp_symbol[b];
            }
            ++i;
        } else {
            size_t len = 0;
            const uint32_t cp = decode_lenient(p + i, n - i, len);
            const size_t k = encode_utf8(cp, w);
            id = symbol_of(cp, w, k);
            w += k;
            i += len;
        }
        symbols[n_symbols++] = {begin, static_cast<uint32_t>(w - norm.data()) - begin, id, -1, -1};
    }
    const std::string_view nv(norm.data(), static_cast<size_t>(w - norm.data()));
    const auto is_newline = [&](size_t k) { return symbols[k].len == 1 && nv[symbols[k].begin] == '\n'; };

    std::vector<PairCandidate> heap;
    for (size_t a = 0; a < n_symbols;) {
        const bool newline = is_newline(a);
        size_t b = a + 1;
        while (b < n_symbols && is_newline(b) == newline) ++b;
        if (newline) {
            const uint32_t run_begin = symbols[a].begin;
            const uint32_t run_end = symbols[b - 1].begin + symbols[b - 1].len;
            const int32_t id = strings.find(nv.substr(run_begin, run_end - run_begin));
            if (id >= 0 && id < n_vocab) {
                out.push_back(id);
                a = b;
                continue;
            }
        }
        Symbol* run = symbols.data() + a;
        const int32_t count = static_cast<int32_t>(b - a);
        for (int32_t k = 0; k < count; ++k) {
            run[k].prev = k - 1;
            run[k].next = k + 1 < count ? k + 1 : -1;
        }
        encode_run(nv, run, static_cast<size_t>(count), out, heap);
        a = b;
    }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_gguf(const GgufFile& file) {
    const auto fail = [&](const std::string& what) {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: tokenizer: {}", file.path(), what));
    };
    const std::string model = file.get<std::string>("tokenizer.ggml.model");
    if (model != "gemma4") {
        throw Error(ErrorCode::unsupported_model,
                    fmt::format("{}: tokenizer.ggml.model is '{}'; only the Gemma 4 tokenizer ('gemma4') is supported",
                                file.path(), model));
    }
    const std::vector<std::string_view>& tokens = file.get_string_array("tokenizer.ggml.tokens");
    const std::vector<std::string_view>& merges = file.get_string_array("tokenizer.ggml.merges");
    if (tokens.empty()) fail("tokenizer.ggml.tokens is empty");
    // String ids (tokens, then merge operands and results that are not tokens) must fit in 31 bits.
    if (tokens.size() + 3 * merges.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
        fail(fmt::format("{} tokens and {} merges are too many", tokens.size(), merges.size()));
    }

    auto impl = std::make_unique<Impl>();
    Impl& t = *impl;
    t.n_vocab = static_cast<int32_t>(tokens.size());
    if (file.has("tokenizer.ggml.token_type")) {
        t.types = file.get_array<int32_t>("tokenizer.ggml.token_type");
        if (t.types.size() != tokens.size()) {
            fail(fmt::format("tokenizer.ggml.token_type has {} entries for {} tokens", t.types.size(), tokens.size()));
        }
    } else {
        t.types.assign(tokens.size(), static_cast<int32_t>(TokenType::normal));  // llama.cpp's default
    }

    // Token texts. llama.cpp renames an empty token to "[EMPTY_<id>]" and refuses duplicates.
    size_t text_bytes = 0;
    for (std::string_view s : tokens) text_bytes += s.size();
    t.strings.reserve(tokens.size() + 1024, text_bytes + 4096);
    constexpr size_t kBlock = 32;  // strings hashed and prefetched ahead of their insertion (see below)
    std::array<uint64_t, kBlock> hashes{};
    for (size_t base = 0; base < tokens.size(); base += kBlock) {
        const size_t count = std::min(kBlock, tokens.size() - base);
        for (size_t k = 0; k < count; ++k) {
            hashes[k] = hash_bytes(tokens[base + k]);
            t.strings.prefetch(hashes[k]);
        }
        for (size_t k = 0; k < count; ++k) {
            const int32_t id = static_cast<int32_t>(base + k);
            std::string_view s = tokens[id];
            std::string renamed;
            uint64_t h = hashes[k];
            if (s.empty()) {
                renamed = fmt::format("[EMPTY_{}]", id);
                s = renamed;
                h = hash_bytes(s);
            }
            bool added = false;
            const int32_t got = t.strings.intern(s, h, added);
            if (!added) fail(fmt::format("tokens {} and {} have the same text '{}'", got, id, s));
        }
    }

    // Merges "left right" (split at the first ' ' at index >= 1; the rank is the index). Entries without
    // such a space cannot match any pair, as in llama.cpp.
    // Done in blocks: hash a block of merges and prefetch their table slots, then intern them, then insert
    // them, so the cache misses of a block overlap instead of queueing one after another.
    t.merges.reserve(merges.size());
    struct Pending {
        std::string_view left, right;
        uint64_t h_left, h_right, h_joined;
        uint32_t joined_begin, joined_len;
        uint64_t key;
        int32_t result;
        int32_t rank;
    };
    std::array<Pending, kBlock> block;
    std::string joined;
    for (size_t base = 0; base < merges.size(); base += kBlock) {
        const size_t count = std::min(kBlock, merges.size() - base);
        size_t n = 0;
        joined.clear();
        for (size_t k = 0; k < count; ++k) {
            const std::string_view m = merges[base + k];
            const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
            if (space == std::string_view::npos || space + 1 == m.size()) continue;
            Pending& p = block[n++];
            p.rank = static_cast<int32_t>(base + k);
            p.left = m.substr(0, space);
            p.right = m.substr(space + 1);
            p.joined_begin = static_cast<uint32_t>(joined.size());
            joined.append(p.left);
            joined.append(p.right);
            p.joined_len = static_cast<uint32_t>(joined.size()) - p.joined_begin;
            p.h_left = hash_bytes(p.left);
            p.h_right = hash_bytes(p.right);
            p.h_joined = hash_bytes(std::string_view(joined).substr(p.joined_begin, p.joined_len));
            t.strings.prefetch(p.h_left);
            t.strings.prefetch(p.h_right);
            t.strings.prefetch(p.h_joined);
        }
        for (size_t k = 0; k < n; ++k) {
            Pending& p = block[k];
            bool added = false;
            const int32_t lid = t.strings.intern(p.left, p.h_left, added);
            const int32_t rid = t.strings.intern(p.right, p.h_right, added);
            p.result = t.strings.intern(std::string_view(joined).substr(p.joined_begin, p.joined_len), p.h_joined, added);
            p.key = MergeTable::key(lid, rid);
            t.merges.prefetch(p.key);
        }
        for (size_t k = 0; k < n; ++k) {
            if (t.merges.insert(block[k].key, {block[k].rank, block[k].result})) ++t.n_merges;
        }
    }

    // Initial BPE symbols: code point -> string id, dense for the BMP; other planes go through the table.
    t.bmp_symbol.assign(kBmpSize, -1);
    for (size_t id = 0; id < t.strings.size(); ++id) {
        const int64_t cp = single_code_point(t.strings.str(static_cast<int32_t>(id)));
        if (cp >= 0 && cp < kBmpSize) t.bmp_symbol[static_cast<size_t>(cp)] = static_cast<int32_t>(id);
    }
    for (int b = 0; b < 256; ++b) {
        const int32_t id = t.strings.find(fmt::format("<0x{:02X}>", b));
        t.byte_token[b] = id < t.n_vocab ? id : -1;
    }

    // Attributes, EOG set and the special-token order.
    t.attrs.resize(tokens.size());
    for (int32_t id = 0; id < t.n_vocab; ++id) t.attrs[id] = attr_of_type(t.types[id]);
    t.bos = file.get<int32_t>("tokenizer.ggml.bos_token_id");
    t.eos = file.get_or<int32_t>("tokenizer.ggml.eos_token_id", -1);
    if (t.bos < 0 || t.bos >= t.n_vocab) fail(fmt::format("bos id {} is outside the vocabulary", t.bos));
    if (t.eos < -1 || t.eos >= t.n_vocab) fail(fmt::format("eos id {} is outside the vocabulary", t.eos));
    t.eog.assign(tokens.size(), 0);
    const auto add_eog = [&](int32_t id) {
        if (t.eog[id]) return;
        t.eog[id] = 1;
        t.eog_ids.push_back(id);
        t.attrs[id] |= kAttrControl;
    };
    for (std::string_view text : kEogTexts) {
        const int32_t id = t.strings.find(text);
        if (id >= 0 && id < t.n_vocab) add_eog(id);
    }
    if (t.eos >= 0) add_eog(t.eos);
    std::sort(t.eog_ids.begin(), t.eog_ids.end());

    for (int32_t id = 0; id < t.n_vocab; ++id) {
        if (t.attrs[id] & kAttrSpecial) {
            t.specials.push_back({id, t.strings.str(id), (t.attrs[id] & kAttrHidden) != 0});
        }
    }
    std::stable_sort(t.specials.begin(), t.specials.end(),
                     [](const Impl::Special& a, const Impl::Special& b) { return a.text.size() > b.text.size(); });
    for (size_t k = 0; k < t.specials.size(); ++k) {
        t.specials_by_first_byte[static_cast<uint8_t>(t.specials[k].text[0])].push_back(static_cast<int32_t>(k));
    }

    // Decoded pieces.
    t.piece_offsets.reserve(tokens.size() + 1);
    t.piece_offsets.push_back(0);
    t.pieces.reserve(text_bytes);
    for (int32_t id = 0; id < t.n_vocab; ++id) {
        const uint8_t a = t.attrs[id];
        const std::string_view text = t.strings.str(id);
        if (a & kAttrSpecial) {
            t.pieces.append(text);
        } else if (a & kAttrNormal) {
            for (size_t i = 0; i < text.size();) {
                if (text.compare(i, kSpaceEscape.size(), kSpaceEscape) == 0) {
                    t.pieces.push_back(' ');
                    i += kSpaceEscape.size();
                } else {
                    t.pieces.push_back(text[i++]);
                }
            }
        } else if (a & kAttrByte) {
            const int hi = text.size() == 6 ? hex_digit(text[3]) : -1;
            const int lo = text.size() == 6 ? hex_digit(text[4]) : -1;
            if (text.substr(0, 3) != "<0x" || text.back() != '>' || hi < 0 || lo < 0) {
                fail(fmt::format("byte token {} has text '{}', expected <0xXX>", id, text));
            }
            t.pieces.push_back(static_cast<char>(hi * 16 + lo));
        }
        if (t.pieces.size() > std::numeric_limits<uint32_t>::max()) fail("decoded pieces exceed 4 GiB");
        t.piece_offsets.push_back(static_cast<uint32_t>(t.pieces.size()));
    }
    return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    const Impl& t = *impl_;
    if (text.size() > kMaxEncodeBytes) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("tokenizer: text of {} bytes is over the {} byte limit of one encode()", text.size(), kMaxEncodeBytes));
    }
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos) out.push_back(t.bos);

    // Special-token split (see tokenizer.h). Find every occurrence of every candidate, then accept them
    // candidate by candidate in application order, each leftmost-first and non-overlapping, skipping any
    // occurrence that touches text already taken by an earlier candidate. This is exactly the fragment
    // splitting llama.cpp does, in one pass over the text.
    struct Occurrence {
        int32_t special;  // index into specials = application order
        uint32_t begin;
    };
    std::vector<Occurrence> found;
    if (!t.specials.empty()) {
        for (size_t i = 0; i < text.size(); ++i) {
            for (int32_t k : t.specials_by_first_byte[static_cast<uint8_t>(text[i])]) {
                const Impl::Special& s = t.specials[k];
                if (s.needs_parse_special && !parse_special) continue;
                if (text.compare(i, s.text.size(), s.text) == 0) found.push_back({k, static_cast<uint32_t>(i)});
            }
        }
    }
    if (found.empty()) {
        t.encode_text(text, out);
    } else {
        std::sort(found.begin(), found.end(), [](const Occurrence& a, const Occurrence& b) {
            return a.special != b.special ? a.special < b.special : a.begin < b.begin;
        });
        std::vector<uint8_t> taken(text.size(), 0);
        struct Accepted {
            uint32_t begin;
            uint32_t end;
            int32_t id;
        };
        std::vector<Accepted> accepted;
        int32_t current = -1;
        uint32_t current_end = 0;
        for (const Occurrence& o : found) {
            const Impl::Special& s = t.specials[o.special];
            if (o.special != current) {
                current = o.special;
                current_end = 0;
            }
            const uint32_t end = o.begin + static_cast<uint32_t>(s.text.size());
            if (o.begin < current_end) continue;
            if (std::find(taken.begin() + o.begin, taken.begin() + end, 1) != taken.begin() + end) continue;
            std::fill(taken.begin() + o.begin, taken.begin() + end, 1);
            accepted.push_back({o.begin, end, s.id});
            current_end = end;
        }
        std::sort(accepted.begin(), accepted.end(), [](const Accepted& a, const Accepted& b) { return a.begin < b.begin; });
        uint32_t pos = 0;
        for (const Accepted& a : accepted) {
            if (a.begin > pos) t.encode_text(text.substr(pos, a.begin - pos), out);
            out.push_back(a.id);
            pos = a.end;
        }
        if (pos < text.size()) t.encode_text(text.substr(pos), out);
    }

    // Exactly one BOS: the text may itself start with `<bos>` (a rendered chat template does).
    if (add_bos && out.size() >= 2 && out[1] == t.bos) out.erase(out.begin());
    return out;
}

std::string_view Tokenizer::token_to_piece(int32_t id, bool show_special) const {
    const Impl& t = *impl_;
    t.check_id(id);
    if (!show_special && (t.attrs[id] & kAttrHidden)) return {};
    return std::string_view(t.pieces).substr(t.piece_offsets[id], t.piece_offsets[id + 1] - t.piece_offsets[id]);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool show_special) const {
    std::string out;
    for (int32_t id : ids) out.append(token_to_piece(id, show_special));
    return out;
}

std::string_view Tokenizer::token_text(int32_t id) const {
    impl_->check_id(id);
    return impl_->strings.str(id);
}

TokenType Tokenizer::token_type(int32_t id) const {
    impl_->check_id(id);
    return static_cast<TokenType>(impl_->types[id]);
}

bool Tokenizer::is_control(int32_t id) const {
    impl_->check_id(id);
    return (impl_->attrs[id] & kAttrHidden) != 0;
}

std::optional<int32_t> Tokenizer::find(std::string_view text) const {
    const int32_t id = impl_->strings.find(text);
    if (id < 0 || id >= impl_->n_vocab) return std::nullopt;
    return id;
}

bool Tokenizer::is_eog(int32_t id) const { return id >= 0 && id < impl_->n_vocab && impl_->eog[id]; }
const std::vector<int32_t>& Tokenizer::eog_ids() const { return impl_->eog_ids; }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::vocab_size() const { return impl_->n_vocab; }
size_t Tokenizer::n_merges() const { return impl_->n_merges; }

// ---- streaming decode

namespace detail {

size_t append_valid_utf8(std::string_view bytes, bool final, std::string& out) {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const size_t n = bytes.size();
    size_t i = 0;
    while (i < n) {
        const uint8_t b0 = p[i];
        if (b0 < 0x80) {
            out.push_back(static_cast<char>(b0));
            ++i;
            continue;
        }
        // Well-formed sequences (Unicode Table 3-7): length by lead byte, and the allowed range of the
        // second byte (the others are always 80..BF).
        size_t len = 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            len = 2;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            len = 3;
            if (b0 == 0xE0) lo = 0xA0;   // no overlong forms
            if (b0 == 0xED) hi = 0x9F;   // no surrogates
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            len = 4;
            if (b0 == 0xF0) lo = 0x90;   // no overlong forms
            if (b0 == 0xF4) hi = 0x8F;   // nothing above U+10FFFF
        } else {
            out.append(kUtf8Replacement);  // C0, C1, F5..FF or a stray continuation byte
            ++i;
            continue;
        }
        size_t k = 1;
        for (; k < len && i + k < n; ++k) {
            const uint8_t b = p[i + k];
            const bool ok = k == 1 ? (b >= lo && b <= hi) : is_continuation(b);
            if (!ok) break;
        }
        if (k == len) {
            out.append(bytes.substr(i, len));
            i += len;
        } else if (i + k == n && !final) {
            return i;  // incomplete so far: wait for more bytes
        } else {
            out.append(kUtf8Replacement);  // one U+FFFD for the maximal ill-formed prefix
            i += k;
        }
    }
    return i;
}

}  // namespace detail

std::string StreamDecoder::push(int32_t id) {
    pending_.append(tokenizer_->token_to_piece(id, show_special_));
    std::string out;
    const size_t used = detail::append_valid_utf8(pending_, false, out);
    pending_.erase(0, used);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out;
    detail::append_valid_utf8(pending_, true, out);
    pending_.clear();
    return out;
}

}  // namespace gemma4
