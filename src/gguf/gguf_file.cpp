#include "gguf/gguf_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "util/utf8.h"

namespace gemma4 {

std::string gguf_type_name(uint32_t type) {
    static constexpr const char* kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                             "bool", "string", "array", "u64", "i64", "f64"};
    if (type < std::size(kNames)) return kNames[type];
    return "type " + std::to_string(type);
}

size_t gguf_scalar_bytes(uint32_t type) noexcept {
    switch (static_cast<GgufType>(type)) {
        case GgufType::u8:
        case GgufType::i8:
        case GgufType::boolean: return 1;
        case GgufType::u16:
        case GgufType::i16: return 2;
        case GgufType::u32:
        case GgufType::i32:
        case GgufType::f32: return 4;
        case GgufType::u64:
        case GgufType::i64:
        case GgufType::f64: return 8;
        case GgufType::string:
        case GgufType::array: return 0;
    }
    return 0;
}

std::string GgufTensorInfo::shape_string() const {
    std::string s = "[";
    for (uint32_t i = 0; i < n_dims; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

namespace detail {

template <class U>
static U load(const uint8_t* p) {
    U v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <class T>
bool gguf_convert(GgufType type, const uint8_t* p, T& out) {
    if constexpr (std::is_same_v<T, bool>) {
        if (type != GgufType::boolean) return false;
        out = p[0] != 0;
        return true;
    } else if constexpr (std::is_floating_point_v<T>) {
        if (type == GgufType::f32) { out = static_cast<T>(load<float>(p)); return true; }
        if (type == GgufType::f64) {
            const double v = load<double>(p);
            // A finite double outside T's range does not fit (the conversion would be undefined).
            if (std::isfinite(v) && (v > std::numeric_limits<T>::max() || v < std::numeric_limits<T>::lowest())) return false;
            out = static_cast<T>(v);
            return true;
        }
        return false;
    } else {
        static_assert(std::is_integral_v<T>);
        auto fits = [&](auto v) {
            using V = decltype(v);
            if constexpr (std::is_signed_v<V>) {
                if (v < 0) {
                    if constexpr (!std::is_signed_v<T>) return false;
                    else if (static_cast<int64_t>(v) < static_cast<int64_t>(std::numeric_limits<T>::min())) return false;
                } else if (static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
                    return false;
                }
            } else if (static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
                return false;
            }
            out = static_cast<T>(v);
            return true;
        };
        switch (type) {
            case GgufType::u8: return fits(load<uint8_t>(p));
            case GgufType::i8: return fits(load<int8_t>(p));
            case GgufType::u16: return fits(load<uint16_t>(p));
            case GgufType::i16: return fits(load<int16_t>(p));
            case GgufType::u32: return fits(load<uint32_t>(p));
            case GgufType::i32: return fits(load<int32_t>(p));
            case GgufType::u64: return fits(load<uint64_t>(p));
            case GgufType::i64: return fits(load<int64_t>(p));
            default: return false;
        }
    }
}

template bool gguf_convert<bool>(GgufType, const uint8_t*, bool&);
template bool gguf_convert<uint8_t>(GgufType, const uint8_t*, uint8_t&);
template bool gguf_convert<int8_t>(GgufType, const uint8_t*, int8_t&);
template bool gguf_convert<uint16_t>(GgufType, const uint8_t*, uint16_t&);
template bool gguf_convert<int16_t>(GgufType, const uint8_t*, int16_t&);
template bool gguf_convert<uint32_t>(GgufType, const uint8_t*, uint32_t&);
template bool gguf_convert<int32_t>(GgufType, const uint8_t*, int32_t&);
template bool gguf_convert<uint64_t>(GgufType, const uint8_t*, uint64_t&);
template bool gguf_convert<int64_t>(GgufType, const uint8_t*, int64_t&);
template bool gguf_convert<float>(GgufType, const uint8_t*, float&);
template bool gguf_convert<double>(GgufType, const uint8_t*, double&);

}  // namespace detail

namespace {

// A bounds-checked cursor over the mapped bytes. Every read checks the bytes left first.
class Reader {
public:
    Reader(const uint8_t* data, uint64_t size, const std::string& file) : data_(data), size_(size), file_(file) {}

    uint64_t pos() const { return pos_; }
    uint64_t left() const { return size_ - pos_; }

    [[noreturn]] void fail(const std::string& what) const {
        throw Error(ErrorCode::invalid_file, fmt::format("{}: {} (at byte {})", file_, what, pos_));
    }

    const uint8_t* take(uint64_t n, const char* what) {
        if (n > left()) fail(fmt::format("truncated: {} needs {} bytes, {} left", what, n, left()));
        const uint8_t* p = data_ + pos_;
        pos_ += n;
        return p;
    }

    template <class T>
    T read(const char* what) {
        T v;
        std::memcpy(&v, take(sizeof v, what), sizeof v);
        return v;
    }

    std::string_view string(const std::string& what, uint64_t max_len) {
        uint64_t len = read<uint64_t>(what.c_str());
        if (len > left()) fail(fmt::format("{}: string length {} exceeds the {} bytes left", what, len, left()));
        if (len > max_len) fail(fmt::format("{}: string length {} exceeds the limit of {}", what, len, max_len));
        const uint8_t* p = take(len, what.c_str());
        if (!detail::is_valid_utf8({reinterpret_cast<const char*>(p), static_cast<size_t>(len)})) fail(what + ": string is not valid UTF-8");
        return {reinterpret_cast<const char*>(p), len};
    }

private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string& file_;
};

constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;  // no metadata string is near 1 GiB

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
    GgufFile f;
    f.map_ = detail::MappedFile::open(path);
    f.parse();
    return f;
}

GgufFile GgufFile::from_bytes(std::vector<uint8_t> bytes, const std::string& name) {
    GgufFile f;
    f.map_ = detail::MappedFile::from_bytes(std::move(bytes), name);
    f.parse();
    return f;
}

void GgufFile::parse() {
    const std::string& file = map_.name();
    Reader r(map_.data(), map_.size_bytes(), file);

    if (map_.size_bytes() < 4) r.fail("file is too small to be GGUF (" + std::to_string(map_.size_bytes()) + " bytes)");
    const uint8_t* magic = r.take(4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) r.fail("bad magic: not a GGUF file");
    version_ = r.read<uint32_t>("version");
    if (version_ != kVersion) {
        r.fail(fmt::format("unsupported GGUF version {} (this reader supports version {})", version_, kVersion));
    }
    const uint64_t n_tensors = r.read<uint64_t>("tensor count");
    const uint64_t n_kv = r.read<uint64_t>("metadata count");
    // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8 + 4 + 8 + 4 + 8.
    if (n_kv > r.left() / 13) r.fail(fmt::format("metadata count {} cannot fit in the {} bytes left", n_kv, r.left()));
    if (n_tensors > r.left() / 32) r.fail(fmt::format("tensor count {} cannot fit in the {} bytes left", n_tensors, r.left()));

    // ---- metadata
    entries_.reserve(n_kv);
    entry_index_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
        std::string_view key = r.string(fmt::format("metadata key #{}", i), kMaxKeyBytes);
        if (key.empty()) r.fail(fmt::format("metadata key #{} is empty", i));
        const std::string where = fmt::format("key '{}'", key);
        GgufValue v;
        const uint32_t type = r.read<uint32_t>("value type");
        if (type > static_cast<uint32_t>(GgufType::f64)) r.fail(fmt::format("{}: invalid value type {}", where, type));
        v.type = static_cast<GgufType>(type);
        if (v.type == GgufType::string) {
            v.str = r.string(where, kMaxStringBytes);
        } else if (v.type == GgufType::array) {
            const uint32_t elem = r.read<uint32_t>("array element type");
            if (elem > static_cast<uint32_t>(GgufType::f64)) r.fail(fmt::format("{}: invalid array element type {}", where, elem));
            v.elem_type = static_cast<GgufType>(elem);
            if (v.elem_type == GgufType::array) r.fail(where + ": nested arrays are not supported");
            v.count = r.read<uint64_t>("array count");
            if (v.elem_type == GgufType::string) {
                if (v.count > r.left() / 8) r.fail(fmt::format("{}: array of {} strings cannot fit in the {} bytes left", where, v.count, r.left()));
                v.strings.reserve(v.count);
                for (uint64_t k = 0; k < v.count; ++k) v.strings.push_back(r.string(where, kMaxStringBytes));
            } else {
                const size_t elem_bytes = gguf_scalar_bytes(elem);
                if (v.count > r.left() / elem_bytes) {
                    r.fail(fmt::format("{}: array of {} x {} cannot fit in the {} bytes left", where, v.count,
                                       gguf_type_name(elem), r.left()));
                }
                v.data = r.take(v.count * elem_bytes, where.c_str());
                if (v.elem_type == GgufType::boolean) {
                    for (uint64_t k = 0; k < v.count; ++k) {
                        if (v.data[k] > 1) r.fail(fmt::format("{}: bool element {} has value {}", where, k, v.data[k]));
                    }
                }
            }
        } else {
            v.data = r.take(gguf_scalar_bytes(type), where.c_str());
            if (v.type == GgufType::boolean && v.data[0] > 1) r.fail(fmt::format("{}: bool has value {}", where, v.data[0]));
        }
        if (!entry_index_.emplace(key, entries_.size()).second) r.fail(fmt::format("duplicate {}", where));
        entries_.push_back({key, std::move(v)});
    }

    if (const GgufValue* a = find("general.alignment")) {
        uint32_t align = 0;
        if (a->type != GgufType::u32 || !detail::gguf_convert<uint32_t>(a->type, a->data, align)) {
            r.fail("key 'general.alignment': must be a u32, found " + gguf_type_name(static_cast<uint32_t>(a->type)));
        }
        if (align == 0 || (align & (align - 1)) != 0) {
            r.fail(fmt::format("key 'general.alignment': {} is not a power of two", align));
        }
        alignment_ = align;
    }

    // ---- tensor infos
    tensors_.reserve(n_tensors);
    tensor_index_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
        GgufTensorInfo t;
        std::string_view name = r.string(fmt::format("tensor #{} name", i), std::numeric_limits<uint64_t>::max());
        if (name.size() > kMaxTensorName) {
            r.fail(fmt::format("tensor #{}: name of {} bytes exceeds the limit of {}", i, name.size(), kMaxTensorName));
        }
        if (name.empty()) r.fail(fmt::format("tensor #{}: empty name", i));
        t.name = std::string(name);
        const std::string where = fmt::format("tensor '{}'", name);
        t.n_dims = r.read<uint32_t>("n_dims");
        if (t.n_dims < 1 || t.n_dims > kMaxDims) r.fail(fmt::format("{}: n_dims {} is not in 1..{}", where, t.n_dims, kMaxDims));
        uint64_t n_elements = 1;
        for (uint32_t d = 0; d < t.n_dims; ++d) {
            const uint64_t ne = r.read<uint64_t>("dimension");
            if (ne == 0) r.fail(fmt::format("{}: dimension {} is zero", where, d));
            if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
                n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne) {
                r.fail(fmt::format("{}: element count overflows at dimension {} (ne = {})", where, d, ne));
            }
            n_elements *= ne;
            t.ne[d] = static_cast<int64_t>(ne);
        }
        const uint32_t type_id = r.read<uint32_t>("tensor type");
        const GgmlTypeInfo* info = ggml_type_info(type_id);
        if (!info) r.fail(fmt::format("{}: unknown ggml type id {}", where, type_id));
        t.type = info->type;
        if (t.ne[0] % info->block_elems != 0) {
            r.fail(fmt::format("{}: row length {} is not a multiple of the {} block size {}", where, t.ne[0], info->name,
                               info->block_elems));
        }
        const uint64_t n_blocks = n_elements / info->block_elems;
        if (n_blocks > std::numeric_limits<uint64_t>::max() / info->block_bytes) {
            r.fail(fmt::format("{}: byte size overflows", where));
        }
        t.n_bytes = n_blocks * info->block_bytes;
        t.offset = r.read<uint64_t>("tensor offset");
        if (t.offset % alignment_ != 0) {
            r.fail(fmt::format("{}: data offset {} is not a multiple of the alignment {}", where, t.offset, alignment_));
        }
        tensors_.push_back(std::move(t));
    }
    // Names are indexed after the vector stops growing, so the views stay valid.
    for (size_t i = 0; i < tensors_.size(); ++i) {
        if (!tensor_index_.emplace(tensors_[i].name, i).second) {
            r.fail(fmt::format("duplicate tensor name '{}'", tensors_[i].name));
        }
    }

    // ---- data section
    const uint64_t header_end = r.pos();
    data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
    if (tensors_.empty()) {
        data_offset_ = std::min<uint64_t>(data_offset_, map_.size_bytes());
        return;
    }
    if (data_offset_ > map_.size_bytes()) {
        r.fail(fmt::format("truncated: data section starts at {} but the file has {} bytes", data_offset_, map_.size_bytes()));
    }
    const uint64_t data_bytes = map_.size_bytes() - data_offset_;
    std::vector<std::pair<uint64_t, size_t>> order;  // (offset, index) sorted, for the overlap check
    order.reserve(tensors_.size());
    for (size_t i = 0; i < tensors_.size(); ++i) {
        GgufTensorInfo& t = tensors_[i];
        if (t.offset > data_bytes || t.n_bytes > data_bytes - t.offset) {
            throw Error(ErrorCode::invalid_file,
                        fmt::format("{}: tensor '{}': data [{}, +{}) lies outside the data section of {} bytes (file truncated?)",
                                    file, t.name, t.offset, t.n_bytes, data_bytes));
        }
        t.data = map_.data() + data_offset_ + t.offset;
        order.emplace_back(t.offset, i);
    }
    std::sort(order.begin(), order.end());
    for (size_t k = 1; k < order.size(); ++k) {
        const GgufTensorInfo& a = tensors_[order[k - 1].second];
        const GgufTensorInfo& b = tensors_[order[k].second];
        if (a.offset + a.n_bytes > b.offset) {
            throw Error(ErrorCode::invalid_file, fmt::format("{}: tensors '{}' and '{}' overlap in the data section", file,
                                                             a.name, b.name));
        }
    }
}

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = entry_index_.find(key);
    return it == entry_index_.end() ? nullptr : &entries_[it->second].value;
}

const GgufValue& GgufFile::require(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) fail_key(key, "missing");
    return *v;
}

void GgufFile::fail_key(std::string_view key, const std::string& problem) const {
    throw Error(ErrorCode::invalid_file, fmt::format("{}: key '{}': {}", path(), key, problem));
}

const std::vector<std::string_view>& GgufFile::get_string_array(std::string_view key) const {
    const GgufValue& v = require(key);
    if (v.type != GgufType::array || v.elem_type != GgufType::string) {
        fail_key(key, "expected an array of strings, found " +
                          (v.type == GgufType::array ? "an array of " + gguf_type_name(static_cast<uint32_t>(v.elem_type))
                                                     : gguf_type_name(static_cast<uint32_t>(v.type))));
    }
    return v.strings;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(std::string_view name) const {
    const GgufTensorInfo* t = find_tensor(name);
    if (!t) throw Error(ErrorCode::invalid_file, fmt::format("{}: tensor '{}' is missing", path(), name));
    return *t;
}

}  // namespace gemma4
