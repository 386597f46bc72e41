// GgufWriter: builds GGUF v3 files (the format GgufFile reads; see gguf_file.h and
// ../shared/spec/gguf-and-quants.md §2).
//
// Layout it writes, like llama.cpp's writer:
//
//   header | KVs in the order added | tensor infos in the order added
//   zero padding to ALIGN (always, even without tensors)
//   blob 0 | zero padding to ALIGN | blob 1 | zero padding to ALIGN | ...
//
// so tensor i has offset = sum over j < i of pad(blob_j bytes, ALIGN). ALIGN is the value of the
// u32 key general.alignment when one was added, otherwise 32.
//
// Two kinds of adders:
// - Checked ones (add, add_string, add_array, add_tensor) accept only what the reader accepts and
//   throw Error(invalid_argument) otherwise, so a tool cannot write a file that fails to load.
// - Raw ones (add_raw_kv, add_raw_tensor, set_overrides) write whatever they are given, for tests that
//   craft corrupt files. Tests then patch single fields through GgufLayout, which gives the file offset
//   of every field that build() wrote.
//
// Not thread-safe; build() and write() are const and may be called repeatedly.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gemma4/error.h"
#include "gguf/gguf_file.h"
#include "quant/types.h"

namespace gemma4 {

namespace detail {
/// The GGUF value type that stores a C++ scalar: uint8_t -> u8, ..., float -> f32, double -> f64, bool.
template <class T>
constexpr GgufType gguf_value_type() {
    if constexpr (std::is_same_v<T, bool>) return GgufType::boolean;
    else if constexpr (std::is_same_v<T, float>) return GgufType::f32;
    else if constexpr (std::is_same_v<T, double>) return GgufType::f64;
    else {
        static_assert(std::is_integral_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, wchar_t> &&
                          !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> &&
                          !std::is_same_v<T, char32_t> && sizeof(T) <= 8,
                      "GGUF scalars are 8/16/32/64-bit integers, float, double or bool");
        constexpr bool s = std::is_signed_v<T>;
        if constexpr (sizeof(T) == 1) return s ? GgufType::i8 : GgufType::u8;
        else if constexpr (sizeof(T) == 2) return s ? GgufType::i16 : GgufType::u16;
        else if constexpr (sizeof(T) == 4) return s ? GgufType::i32 : GgufType::u32;
        else return s ? GgufType::i64 : GgufType::u64;
    }
}
}  // namespace detail

/// Byte offsets (from the start of the file) of every field build() wrote, so tests can truncate
/// inside a section or patch one field.
struct GgufLayout {
    static constexpr uint64_t kMagic = 0;
    static constexpr uint64_t kVersion = 4;
    static constexpr uint64_t kTensorCount = 8;
    static constexpr uint64_t kKvCount = 16;
    static constexpr uint64_t kHeaderBytes = 24;

    struct Kv {
        uint64_t begin = 0;        // the key's u64 length
        uint64_t key = 0;          // first key byte
        uint64_t type = 0;         // u32 value type
        uint64_t value = 0;        // first value byte (for a string: its u64 length)
        uint64_t end = 0;          // one past the value
        // Checked arrays only (raw KVs leave these empty):
        uint64_t array_elem_type = 0;       // u32 element type
        uint64_t array_count = 0;           // u64 count
        std::vector<uint64_t> elements;     // each element (for strings: each u64 length)
    };
    struct TensorInfo {
        uint64_t begin = 0;   // the name's u64 length
        uint64_t name = 0;    // first name byte
        uint64_t n_dims = 0;  // u32
        uint64_t ne = 0;      // ne[0]; ne[d] is at ne + 8 * d
        uint64_t type = 0;    // u32 ggml type
        uint64_t offset = 0;  // u64 data offset field
        uint64_t end = 0;     // one past the offset field
    };
    struct Blob {
        uint64_t begin = 0;   // absolute file offset of the first data byte
        uint64_t end = 0;     // one past the last data byte (padding follows)
    };

    std::vector<Kv> kvs;
    std::vector<TensorInfo> tensor_infos;
    uint64_t header_end = 0;   // one past the last tensor info; zero padding follows
    uint64_t data_start = 0;   // header_end rounded up to ALIGN
    std::vector<Blob> blobs;
    uint32_t alignment = 0;    // ALIGN used for the padding
    uint64_t file_bytes = 0;
};

/// A file image and where its fields lie.
struct GgufImage {
    std::vector<uint8_t> bytes;
    GgufLayout layout;
};

class GgufWriter {
public:
    /// Deliberate deviations from the format, for corrupt-file tests. The defaults write a valid file.
    struct Overrides {
        std::array<uint8_t, 4> magic{'G', 'G', 'U', 'F'};
        uint32_t version = GgufFile::kVersion;
        std::optional<uint64_t> n_tensors;  // written instead of the real count
        std::optional<uint64_t> n_kv;       // written instead of the real count
        std::optional<uint32_t> alignment;  // pad with this instead of general.alignment (must be > 0)
    };

    /// A tensor written exactly as given: any name bytes, any n_dims and dims, any type id, and a
    /// blob of any size (placed and padded like a checked tensor's).
    struct RawTensor {
        std::string name;
        std::vector<uint64_t> ne;           // n_dims = ne.size() unless n_dims is set
        std::optional<uint32_t> n_dims;
        uint32_t type_id = 0;
        std::vector<uint8_t> data;
    };

    // ---- checked metadata; keys must be non-empty, valid UTF-8, at most GgufFile::kMaxKeyBytes and
    // unique. Each throws Error(invalid_argument) naming the key otherwise.

    /// A scalar; T picks the GGUF type (uint32_t -> u32, int64_t -> i64, float -> f32, bool, ...).
    /// general.alignment must be a u32 power of two; it sets ALIGN.
    template <class T>
    GgufWriter& add(std::string_view key, T value) {
        constexpr GgufType type = detail::gguf_value_type<T>();
        std::vector<uint8_t> bytes;
        append_scalar(bytes, value);
        return add_checked(key, type, std::move(bytes), 0);
    }
    /// A string value (valid UTF-8).
    GgufWriter& add_string(std::string_view key, std::string_view value);
    /// An array of scalars (std::vector<bool> works too); may be empty.
    template <class T>
    GgufWriter& add_array(std::string_view key, const std::vector<T>& values) {
        constexpr GgufType elem = detail::gguf_value_type<T>();
        std::vector<uint8_t> bytes;
        append_scalar(bytes, static_cast<uint32_t>(elem));
        append_scalar(bytes, static_cast<uint64_t>(values.size()));
        for (const T v : values) append_scalar(bytes, v);
        return add_checked(key, GgufType::array, std::move(bytes), values.size());
    }
    /// An array of strings (each valid UTF-8); may be empty.
    GgufWriter& add_array(std::string_view key, const std::vector<std::string>& values);

    /// Appends a KV verbatim and unchecked: u64 length and the bytes of `key`, `type_id` as u32, then
    /// `value_bytes`. A raw general.alignment does not change ALIGN.
    GgufWriter& add_raw_kv(std::string_view key, uint32_t type_id, std::vector<uint8_t> value_bytes);

    // ---- tensors

    /// A tensor of `type` with dims `ne` (ggml order, 1..4 dims, each > 0, ne[0] a multiple of the block
    /// size) and exactly the bytes that shape needs. The name is 1..63 bytes of UTF-8, unique.
    /// Throws Error(invalid_argument) naming the tensor otherwise.
    GgufWriter& add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& ne,
                           std::vector<uint8_t> data);
    /// Appends a tensor unchecked (see RawTensor).
    GgufWriter& add_raw_tensor(RawTensor tensor);

    void set_overrides(const Overrides& overrides);

    // ---- output

    /// ALIGN: general.alignment (if added with add<uint32_t>) or 32, unless overridden.
    uint32_t alignment() const;
    /// The whole file in memory, with the offset of every field.
    GgufImage build() const;
    /// Writes the file to `path` (the header in one piece, then the blobs, without building the image).
    /// Throws Error(invalid_file) naming the path if it cannot be written.
    void write(const std::string& path) const;

    /// Little-endian encoders for building raw KV values.
    template <class T>
    static void append_scalar(std::vector<uint8_t>& out, T value) {
        static_assert(std::is_arithmetic_v<T>);
        if constexpr (std::is_same_v<T, bool>) {
            out.push_back(value ? 1 : 0);
        } else {
            const size_t at = out.size();
            out.resize(at + sizeof value);
            std::memcpy(out.data() + at, &value, sizeof value);  // x86-64 and aarch64 are little-endian
        }
    }
    /// u64 length, then the bytes (no validation).
    static void append_string(std::vector<uint8_t>& out, std::string_view s);

private:
    struct Kv {
        std::string key;
        uint32_t type_id = 0;
        std::vector<uint8_t> value;  // everything after the type field
        bool checked = false;        // added by a checked adder: value is well-formed
        uint64_t array_count = 0;    // checked arrays only
    };

    GgufWriter& add_checked(std::string_view key, GgufType type, std::vector<uint8_t> value, uint64_t array_count);
    std::vector<uint8_t> header_bytes(GgufLayout& layout) const;
    [[noreturn]] static void fail(const std::string& what);

    std::vector<Kv> kvs_;
    std::vector<RawTensor> tensors_;
    Overrides overrides_;
};

}  // namespace gemma4
