// GgufFile: a validated, memory-mapped GGUF v3 file. It knows nothing about Gemma.
//
// Format (little-endian throughout; see ../shared/spec/gguf-and-quants.md §2):
//
//   magic "GGUF" | u32 version (= 3) | u64 n_tensors | u64 n_kv
//   n_kv      x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   zero padding to ALIGN (general.alignment, default 32), measured from file offset 0
//   data section: tensor i at data_start + offset_i, each offset a multiple of ALIGN
//
//   string     = u64 length | bytes (UTF-8, no NUL)
//   value_type = 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array,
//                10 u64, 11 i64, 12 f64
//   array      = u32 elem_type | u64 count | count packed elements (no nested arrays here)
//
// Everything is validated at open(): magic, version, counts against the bytes left, string and name
// lengths, UTF-8, value and element types, duplicate keys and tensor names, n_dims in 1..4, dims > 0,
// element-count overflow, ggml type ids, rows divisible by the block size, offsets aligned and inside
// the data section, and no two tensors overlapping. Any violation throws Error(invalid_file) whose
// message names the file, the field and the problem. The parser never reads past the mapping.
//
// Values are zero-copy views into the mapping; the GgufFile must outlive them (and tensor data).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "gemma4/error.h"
#include "quant/types.h"
#include "util/mapped_file.h"

namespace gemma4 {

enum class GgufType : uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12,
};

/// "u32", "string", "array", ... ("type 42" for unknown ids).
std::string gguf_type_name(uint32_t type);

/// Byte size of a scalar GGUF type; 0 for string, array and unknown ids.
size_t gguf_scalar_bytes(uint32_t type) noexcept;

/// One metadata value. Scalars and array elements are read through the typed accessors of GgufFile.
struct GgufValue {
    GgufType type = GgufType::u8;
    GgufType elem_type = GgufType::u8;      // arrays only
    uint64_t count = 0;                     // arrays only: number of elements
    const uint8_t* data = nullptr;          // scalar bytes, or the first array element (unaligned)
    std::string_view str;                   // type == string
    std::vector<std::string_view> strings;  // array of string
};

struct GgufTensorInfo {
    std::string name;
    uint32_t n_dims = 0;
    std::array<int64_t, 4> ne{1, 1, 1, 1};  // ggml order: ne[0] is contiguous
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;                    // relative to the data section
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;          // inside the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
    uint64_t row_bytes() const { return n_bytes / static_cast<uint64_t>(n_rows()); }
    std::string shape_string() const;  // "[3840, 262144]"
};

class GgufFile {
public:
    static constexpr uint32_t kVersion = 3;
    static constexpr uint32_t kDefaultAlignment = 32;
    static constexpr size_t kMaxTensorName = 63;      // ggml's GGML_MAX_NAME - 1
    static constexpr size_t kMaxKeyBytes = 65535;     // keys are short identifiers
    static constexpr uint32_t kMaxDims = 4;

    /// Maps and validates the file. Throws Error(invalid_file) on any problem.
    static GgufFile open(const std::string& path);
    /// Validates a file image held in memory; `name` is used in messages.
    static GgufFile from_bytes(std::vector<uint8_t> bytes, const std::string& name);

    GgufFile(GgufFile&&) noexcept = default;
    GgufFile& operator=(GgufFile&&) noexcept = default;
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    const std::string& path() const { return map_.name(); }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t file_bytes() const { return map_.size_bytes(); }
    uint64_t data_offset() const { return data_offset_; }
    const detail::MappedFile& mapping() const { return map_; }

    // ---- metadata
    struct Entry {
        std::string_view key;
        GgufValue value;
    };
    const std::vector<Entry>& metadata() const { return entries_; }
    bool has(std::string_view key) const { return find(key) != nullptr; }
    const GgufValue* find(std::string_view key) const;

    /// Scalar of type T. Integers convert from any integer GGUF type if the value fits; float and
    /// double from f32/f64; bool from bool; std::string_view from string. Throws Error(invalid_file)
    /// naming file and key if the key is missing, has another type, or the value does not fit.
    template <class T>
    T get(std::string_view key) const;
    /// Like get(), but returns `fallback` when the key is absent (a present key of the wrong type
    /// still throws).
    template <class T>
    T get_or(std::string_view key, T fallback) const {
        return has(key) ? get<T>(key) : fallback;
    }
    /// Array of numbers or bools, converted element-wise with get()'s rules.
    template <class T>
    std::vector<T> get_array(std::string_view key) const;
    /// Array of strings (zero-copy views).
    const std::vector<std::string_view>& get_string_array(std::string_view key) const;

    // ---- tensors
    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(std::string_view name) const;
    /// Throws Error(invalid_file) naming the file and the tensor when it is missing.
    const GgufTensorInfo& tensor(std::string_view name) const;

    /// Error(invalid_file) "FILE: key 'KEY': PROBLEM" (for callers that validate values further).
    [[noreturn]] void fail_key(std::string_view key, const std::string& problem) const;

private:
    GgufFile() = default;
    void parse();
    const GgufValue& require(std::string_view key) const;

    detail::MappedFile map_;
    uint32_t version_ = 0;
    uint32_t alignment_ = kDefaultAlignment;
    uint64_t data_offset_ = 0;
    std::vector<Entry> entries_;
    std::unordered_map<std::string_view, size_t> entry_index_;
    std::vector<GgufTensorInfo> tensors_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

// ---- template definitions

namespace detail {
// Reads element `i` of a scalar or array value as T with GgufFile::get's conversion rules; returns
// false when the type is incompatible or the value does not fit in T.
template <class T>
bool gguf_convert(GgufType type, const uint8_t* p, T& out);
}  // namespace detail

template <class T>
T GgufFile::get(std::string_view key) const {
    const GgufValue& v = require(key);
    if constexpr (std::is_same_v<T, std::string_view> || std::is_same_v<T, std::string>) {
        if (v.type != GgufType::string) fail_key(key, "expected a string, found " + gguf_type_name(static_cast<uint32_t>(v.type)));
        return T(v.str);
    } else {
        T out{};
        if (v.type == GgufType::array || v.type == GgufType::string) {
            fail_key(key, "expected a scalar, found " + gguf_type_name(static_cast<uint32_t>(v.type)));
        }
        if (!detail::gguf_convert<T>(v.type, v.data, out)) {
            fail_key(key, "value of type " + gguf_type_name(static_cast<uint32_t>(v.type)) +
                              " does not convert to the expected type");
        }
        return out;
    }
}

template <class T>
std::vector<T> GgufFile::get_array(std::string_view key) const {
    const GgufValue& v = require(key);
    if (v.type != GgufType::array) fail_key(key, "expected an array, found " + gguf_type_name(static_cast<uint32_t>(v.type)));
    if (v.elem_type == GgufType::string) fail_key(key, "expected a numeric array, found an array of strings");
    const size_t elem = gguf_scalar_bytes(static_cast<uint32_t>(v.elem_type));
    std::vector<T> out(v.count);
    for (uint64_t i = 0; i < v.count; ++i) {
        T x{};  // a temporary: std::vector<bool> has no addressable elements
        const bool ok = detail::gguf_convert<T>(v.elem_type, v.data + i * elem, x);
        out[i] = x;
        if (!ok) {
            fail_key(key, "element " + std::to_string(i) + " of type " +
                              gguf_type_name(static_cast<uint32_t>(v.elem_type)) + " does not convert to the expected type");
        }
    }
    return out;
}

extern template bool detail::gguf_convert<bool>(GgufType, const uint8_t*, bool&);
extern template bool detail::gguf_convert<uint8_t>(GgufType, const uint8_t*, uint8_t&);
extern template bool detail::gguf_convert<int8_t>(GgufType, const uint8_t*, int8_t&);
extern template bool detail::gguf_convert<uint16_t>(GgufType, const uint8_t*, uint16_t&);
extern template bool detail::gguf_convert<int16_t>(GgufType, const uint8_t*, int16_t&);
extern template bool detail::gguf_convert<uint32_t>(GgufType, const uint8_t*, uint32_t&);
extern template bool detail::gguf_convert<int32_t>(GgufType, const uint8_t*, int32_t&);
extern template bool detail::gguf_convert<uint64_t>(GgufType, const uint8_t*, uint64_t&);
extern template bool detail::gguf_convert<int64_t>(GgufType, const uint8_t*, int64_t&);
extern template bool detail::gguf_convert<float>(GgufType, const uint8_t*, float&);
extern template bool detail::gguf_convert<double>(GgufType, const uint8_t*, double&);

}  // namespace gemma4
