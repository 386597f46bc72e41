#include "gguf/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "util/utf8.h"

namespace gemma4 {
namespace {

uint64_t pad_to(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }

template <class T>
void put(std::vector<uint8_t>& out, T v) {
    GgufWriter::append_scalar(out, v);
}

}  // namespace

void GgufWriter::fail(const std::string& what) { throw Error(ErrorCode::invalid_argument, "GgufWriter: " + what); }

void GgufWriter::append_string(std::vector<uint8_t>& out, std::string_view s) {
    put(out, static_cast<uint64_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
}

GgufWriter& GgufWriter::add_checked(std::string_view key, GgufType type, std::vector<uint8_t> value,
                                    uint64_t array_count) {
    if (key.empty()) fail("empty metadata key");
    if (key.size() > GgufFile::kMaxKeyBytes) {
        fail(fmt::format("metadata key of {} bytes exceeds the limit of {}", key.size(), GgufFile::kMaxKeyBytes));
    }
    if (!detail::is_valid_utf8(key)) fail("metadata key is not valid UTF-8");
    for (const Kv& kv : kvs_) {
        if (kv.key == key) fail(fmt::format("duplicate key '{}'", key));
    }
    if (key == "general.alignment") {
        uint32_t align = 0;
        if (type == GgufType::u32) std::memcpy(&align, value.data(), sizeof align);
        if (type != GgufType::u32 || align == 0 || (align & (align - 1)) != 0) {
            fail("key 'general.alignment' must be a u32 power of two");
        }
    }
    kvs_.push_back({std::string(key), static_cast<uint32_t>(type), std::move(value), true, array_count});
    return *this;
}

GgufWriter& GgufWriter::add_string(std::string_view key, std::string_view value) {
    if (!detail::is_valid_utf8(value)) fail(fmt::format("key '{}': string value is not valid UTF-8", key));
    std::vector<uint8_t> bytes;
    append_string(bytes, value);
    return add_checked(key, GgufType::string, std::move(bytes), 0);
}

GgufWriter& GgufWriter::add_array(std::string_view key, const std::vector<std::string>& values) {
    std::vector<uint8_t> bytes;
    put(bytes, static_cast<uint32_t>(GgufType::string));
    put(bytes, static_cast<uint64_t>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
        if (!detail::is_valid_utf8(values[i])) fail(fmt::format("key '{}': string element {} is not valid UTF-8", key, i));
        append_string(bytes, values[i]);
    }
    return add_checked(key, GgufType::array, std::move(bytes), values.size());
}

GgufWriter& GgufWriter::add_raw_kv(std::string_view key, uint32_t type_id, std::vector<uint8_t> value_bytes) {
    kvs_.push_back({std::string(key), type_id, std::move(value_bytes), false, 0});
    return *this;
}

GgufWriter& GgufWriter::add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& ne,
                                   std::vector<uint8_t> data) {
    if (name.empty()) fail("empty tensor name");
    if (name.size() > GgufFile::kMaxTensorName) {
        fail(fmt::format("tensor name of {} bytes exceeds the limit of {}", name.size(), GgufFile::kMaxTensorName));
    }
    if (!detail::is_valid_utf8(name)) fail("tensor name is not valid UTF-8");
    for (const RawTensor& t : tensors_) {
        if (t.name == name) fail(fmt::format("duplicate tensor name '{}'", name));
    }
    if (ne.empty() || ne.size() > GgufFile::kMaxDims) {
        fail(fmt::format("tensor '{}': {} dims, expected 1..{}", name, ne.size(), GgufFile::kMaxDims));
    }
    uint64_t n_elements = 1;
    for (size_t d = 0; d < ne.size(); ++d) {
        if (ne[d] <= 0) fail(fmt::format("tensor '{}': dimension {} is {}", name, d, ne[d]));
        const auto dim = static_cast<uint64_t>(ne[d]);
        if (n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim) {
            fail(fmt::format("tensor '{}': element count overflows", name));
        }
        n_elements *= dim;
    }
    const GgmlTypeInfo& info = ggml_type_info(type);
    if (ne[0] % info.block_elems != 0) {
        fail(fmt::format("tensor '{}': row length {} is not a multiple of the {} block size {}", name, ne[0], info.name,
                         info.block_elems));
    }
    const uint64_t n_blocks = n_elements / info.block_elems;
    if (n_blocks > std::numeric_limits<uint64_t>::max() / info.block_bytes) {
        fail(fmt::format("tensor '{}': byte size overflows", name));
    }
    if (data.size() != n_blocks * info.block_bytes) {
        fail(fmt::format("tensor '{}': {} data bytes, the shape needs {}", name, data.size(), n_blocks * info.block_bytes));
    }
    RawTensor t;
    t.name = std::string(name);
    t.ne.assign(ne.begin(), ne.end());
    t.type_id = static_cast<uint32_t>(type);
    t.data = std::move(data);
    tensors_.push_back(std::move(t));
    return *this;
}

GgufWriter& GgufWriter::add_raw_tensor(RawTensor tensor) {
    tensors_.push_back(std::move(tensor));
    return *this;
}

void GgufWriter::set_overrides(const Overrides& overrides) {
    if (overrides.alignment && *overrides.alignment == 0) fail("alignment override must be > 0");
    overrides_ = overrides;
}

uint32_t GgufWriter::alignment() const {
    if (overrides_.alignment) return *overrides_.alignment;
    for (const Kv& kv : kvs_) {
        if (kv.checked && kv.key == "general.alignment") {
            uint32_t align = 0;
            std::memcpy(&align, kv.value.data(), sizeof align);
            return align;
        }
    }
    return GgufFile::kDefaultAlignment;
}

std::vector<uint8_t> GgufWriter::header_bytes(GgufLayout& layout) const {
    const uint32_t align = alignment();
    layout = GgufLayout{};
    layout.alignment = align;

    std::vector<uint8_t> out;
    out.insert(out.end(), overrides_.magic.begin(), overrides_.magic.end());
    put(out, overrides_.version);
    put(out, overrides_.n_tensors.value_or(tensors_.size()));
    put(out, overrides_.n_kv.value_or(kvs_.size()));

    for (const Kv& kv : kvs_) {
        GgufLayout::Kv k;
        k.begin = out.size();
        k.key = k.begin + 8;
        append_string(out, kv.key);
        k.type = out.size();
        put(out, kv.type_id);
        k.value = out.size();
        out.insert(out.end(), kv.value.begin(), kv.value.end());
        k.end = out.size();
        if (kv.checked && kv.type_id == static_cast<uint32_t>(GgufType::array)) {
            // A checked array is well-formed: u32 elem type, u64 count, then the elements.
            k.array_elem_type = k.value;
            k.array_count = k.value + 4;
            uint32_t elem = 0;
            std::memcpy(&elem, kv.value.data(), sizeof elem);
            uint64_t pos = 12;
            for (uint64_t i = 0; i < kv.array_count; ++i) {
                k.elements.push_back(k.value + pos);
                if (elem == static_cast<uint32_t>(GgufType::string)) {
                    uint64_t len = 0;
                    std::memcpy(&len, kv.value.data() + pos, sizeof len);
                    pos += 8 + len;
                } else {
                    pos += gguf_scalar_bytes(elem);
                }
            }
        }
        layout.kvs.push_back(std::move(k));
    }

    uint64_t offset = 0;
    for (const RawTensor& t : tensors_) {
        GgufLayout::TensorInfo ti;
        ti.begin = out.size();
        ti.name = ti.begin + 8;
        append_string(out, t.name);
        ti.n_dims = out.size();
        put(out, t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
        ti.ne = out.size();
        for (const uint64_t d : t.ne) put(out, d);
        ti.type = out.size();
        put(out, t.type_id);
        ti.offset = out.size();
        put(out, offset);
        ti.end = out.size();
        layout.tensor_infos.push_back(ti);
        offset += pad_to(t.data.size(), align);
    }

    layout.header_end = out.size();
    layout.data_start = pad_to(out.size(), align);
    out.resize(layout.data_start, 0);
    uint64_t pos = layout.data_start;
    for (const RawTensor& t : tensors_) {
        layout.blobs.push_back({pos, pos + t.data.size()});
        pos += pad_to(t.data.size(), align);
    }
    layout.file_bytes = pos;
    return out;
}

GgufImage GgufWriter::build() const {
    GgufImage image;
    image.bytes = header_bytes(image.layout);
    image.bytes.reserve(image.layout.file_bytes);
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const std::vector<uint8_t>& data = tensors_[i].data;
        image.bytes.insert(image.bytes.end(), data.begin(), data.end());
        image.bytes.resize(pad_to(image.bytes.size(), image.layout.alignment), 0);
    }
    return image;
}

void GgufWriter::write(const std::string& path) const {
    GgufLayout layout;
    const std::vector<uint8_t> header = header_bytes(layout);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(ErrorCode::invalid_file, fmt::format("{}: cannot open for writing: {}", path, std::strerror(errno)));
    out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
    static constexpr char kZeros[4096] = {};
    for (const RawTensor& t : tensors_) {
        out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size()));
        uint64_t padding = pad_to(t.data.size(), layout.alignment) - t.data.size();
        while (padding > 0) {
            const uint64_t n = std::min<uint64_t>(padding, sizeof kZeros);
            out.write(kZeros, static_cast<std::streamsize>(n));
            padding -= n;
        }
    }
    out.close();
    if (!out) throw Error(ErrorCode::invalid_file, fmt::format("{}: write failed", path));
}

}  // namespace gemma4
