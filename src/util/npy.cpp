#include "util/npy.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string_view>
#include <type_traits>

#include "gemma4/error.h"

namespace gemma4::detail {

// Data are copied with memcpy, so host order must be the file's little-endian order.
static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host");

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr uint8_t kMajorVersion = 1;
constexpr uint8_t kMinorVersion = 0;
constexpr size_t kPreludeBytes = 10;  // magic (6) + major (1) + minor (1) + u16 header_len (2)
constexpr size_t kAlignBytes = 64;    // numpy's ARRAY_ALIGN: prelude + header is padded to this
// numpy's GROWTH_AXIS_MAX_DIGITS: spare room so the first dim can grow to any 64-bit size in place.
constexpr size_t kGrowthAxisMaxDigits = 21;
constexpr size_t kMaxHeaderBytes = std::numeric_limits<uint16_t>::max();  // v1.0 stores a u16
constexpr size_t kMaxDims = 2;
constexpr size_t kElementBytes = 4;  // both supported dtypes

template <class T>
constexpr const char* descr_of() {
    if constexpr (std::is_same_v<T, float>) return "<f4";
    else return "<i4";
}

// ---- writer

template <class T>
void write_npy_impl(const std::string& path, const T* data, const std::vector<int64_t>& shape) {
    if (shape.empty() || shape.size() > kMaxDims) {
        throw Error(ErrorCode::invalid_argument,
                    path + ": npy: " + std::to_string(shape.size()) + " dims; only 1 or 2 are supported");
    }
    size_t n_elements = 1;
    for (int64_t dim : shape) {
        if (dim < 0) throw Error(ErrorCode::invalid_argument, path + ": npy: negative dim " + std::to_string(dim));
        if (dim != 0 && n_elements > std::numeric_limits<size_t>::max() / kElementBytes / static_cast<size_t>(dim)) {
            throw Error(ErrorCode::invalid_argument, path + ": npy: element count overflows");
        }
        n_elements *= static_cast<size_t>(dim);
    }
    if (data == nullptr && n_elements > 0) throw Error(ErrorCode::invalid_argument, path + ": npy: data is null");

    // The dict exactly as numpy's repr-based writer spells it: keys sorted, Python tuple syntax.
    std::string header = std::string("{'descr': '") + descr_of<T>() + "', 'fortran_order': False, 'shape': (";
    header += std::to_string(shape[0]);
    header += shape.size() == 1 ? "," : ", " + std::to_string(shape[1]);
    header += "), }";
    header.append(kGrowthAxisMaxDigits - std::to_string(shape[0]).size(), ' ');
    const size_t with_newline = header.size() + 1;
    header.append(kAlignBytes - (kPreludeBytes + with_newline) % kAlignBytes, ' ');
    header += '\n';
    if (header.size() > kMaxHeaderBytes) throw Error(ErrorCode::invalid_argument, path + ": npy: header too long");

    std::string prelude(kMagic);
    prelude += static_cast<char>(kMajorVersion);
    prelude += static_cast<char>(kMinorVersion);
    prelude += static_cast<char>(header.size() & 0xff);  // u16 little-endian: low byte first
    prelude += static_cast<char>(header.size() >> 8);

    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(ErrorCode::invalid_file, path + ": npy: cannot open for writing");
    out.write(prelude.data(), static_cast<std::streamsize>(prelude.size()));
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    if (n_elements > 0) {
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n_elements * kElementBytes));
    }
    out.close();
    if (!out) throw Error(ErrorCode::invalid_file, path + ": npy: write failed");
}

// ---- reader: a parser for the one Python dict literal a v1.0 header holds.

class HeaderParser {
public:
    HeaderParser(std::string_view text, const std::string& path) : text_(text), path_(path) {}

    void parse(NpyArray& out) {
        bool have_descr = false, have_order = false, have_shape = false;
        skip_space();
        expect('{');
        skip_space();
        while (peek() != '}') {
            const std::string key = parse_string();
            skip_space();
            expect(':');
            skip_space();
            if (key == "descr") {
                if (have_descr) fail("duplicate key 'descr'");
                have_descr = true;
                const std::string descr = parse_string();
                if (descr == "<f4") out.dtype = NpyDtype::f32;
                else if (descr == "<i4") out.dtype = NpyDtype::i32;
                else fail("unsupported dtype '" + descr + "' (only '<f4' and '<i4')");
            } else if (key == "fortran_order") {
                if (have_order) fail("duplicate key 'fortran_order'");
                have_order = true;
                if (consume("True")) fail("fortran_order True is not supported");
                if (!consume("False")) fail("fortran_order is not True or False");
            } else if (key == "shape") {
                if (have_shape) fail("duplicate key 'shape'");
                have_shape = true;
                out.shape = parse_shape();
            } else {
                fail("unexpected key '" + key + "'");
            }
            skip_space();
            if (peek() == ',') {
                ++pos_;
                skip_space();
            } else if (peek() != '}') {
                fail("expected ',' or '}'");
            }
        }
        ++pos_;
        if (!have_descr || !have_order || !have_shape) fail("header lacks 'descr', 'fortran_order' or 'shape'");
        if (text_.empty() || text_.back() != '\n') fail("header does not end in a newline");
        skip_space();
        if (pos_ != text_.size()) fail("unexpected text after the header dict");
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw Error(ErrorCode::invalid_file, path_ + ": npy header: " + what);
    }
    char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
    void skip_space() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
                                       text_[pos_] == '\r')) {
            ++pos_;
        }
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    bool consume(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }
    // A Python string literal without escapes: '...' or "...".
    std::string parse_string() {
        const char quote = peek();
        if (quote != '\'' && quote != '"') fail("expected a quoted string");
        const size_t end = text_.find(quote, pos_ + 1);
        if (end == std::string_view::npos) fail("unterminated string");
        std::string s(text_.substr(pos_ + 1, end - pos_ - 1));
        if (s.find('\\') != std::string::npos) fail("escapes in strings are not supported");
        pos_ = end + 1;
        return s;
    }
    int64_t parse_int() {
        if (peek() < '0' || peek() > '9') fail("expected a non-negative integer in 'shape'");
        int64_t value = 0;
        while (peek() >= '0' && peek() <= '9') {
            const int digit = peek() - '0';
            if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) fail("dim overflows int64");
            value = value * 10 + digit;
            ++pos_;
        }
        return value;
    }
    // A Python tuple of ints: "(4,)" or "(2, 3)". "(4)" is an int in Python, so it is rejected.
    std::vector<int64_t> parse_shape() {
        expect('(');
        std::vector<int64_t> dims;
        bool trailing_comma = false;
        skip_space();
        while (peek() != ')') {
            dims.push_back(parse_int());
            skip_space();
            trailing_comma = peek() == ',';
            if (trailing_comma) {
                ++pos_;
                skip_space();
            } else if (peek() != ')') {
                fail("expected ',' or ')' in 'shape'");
            }
        }
        ++pos_;
        if (dims.size() == 1 && !trailing_comma) fail("'shape' is not a tuple");
        if (dims.empty() || dims.size() > kMaxDims) {
            fail(std::to_string(dims.size()) + " dims; only 1 or 2 are supported");
        }
        return dims;
    }

    std::string_view text_;
    const std::string& path_;
    size_t pos_ = 0;
};

}  // namespace

size_t NpyArray::n_elements() const {
    size_t n = 1;
    for (int64_t dim : shape) n *= static_cast<size_t>(dim);
    return n;
}

void write_npy(const std::string& path, const float* data, std::vector<int64_t> shape) {
    write_npy_impl(path, data, shape);
}

void write_npy(const std::string& path, const int32_t* data, std::vector<int64_t> shape) {
    write_npy_impl(path, data, shape);
}

NpyArray read_npy(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::invalid_file, path + ": npy: cannot open");
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error(ErrorCode::invalid_file, path + ": npy: read failed");

    if (bytes.size() < kPreludeBytes || std::string_view(bytes).substr(0, kMagic.size()) != kMagic) {
        throw Error(ErrorCode::invalid_file, path + ": npy: not a .npy file (bad magic or under 10 bytes)");
    }
    const auto major = static_cast<uint8_t>(bytes[kMagic.size()]);
    const auto minor = static_cast<uint8_t>(bytes[kMagic.size() + 1]);
    if (major != kMajorVersion || minor != kMinorVersion) {
        throw Error(ErrorCode::invalid_file, path + ": npy: format version " + std::to_string(major) + "." +
                                                 std::to_string(minor) + " is not supported (only 1.0)");
    }
    const size_t header_bytes = static_cast<uint8_t>(bytes[kMagic.size() + 2]) |  // u16 little-endian
                                (size_t{static_cast<uint8_t>(bytes[kMagic.size() + 3])} << 8);
    if (bytes.size() - kPreludeBytes < header_bytes) {
        throw Error(ErrorCode::invalid_file, path + ": npy: header length " + std::to_string(header_bytes) +
                                                 " runs past the end of the file");
    }

    NpyArray array;
    HeaderParser(std::string_view(bytes).substr(kPreludeBytes, header_bytes), path).parse(array);

    size_t n_elements = 1;
    for (int64_t dim : array.shape) {
        if (dim != 0 && n_elements > std::numeric_limits<size_t>::max() / kElementBytes / static_cast<size_t>(dim)) {
            throw Error(ErrorCode::invalid_file, path + ": npy: element count overflows");
        }
        n_elements *= static_cast<size_t>(dim);
    }
    const size_t data_offset = kPreludeBytes + header_bytes;
    const size_t data_bytes = n_elements * kElementBytes;
    if (bytes.size() - data_offset != data_bytes) {
        throw Error(ErrorCode::invalid_file, path + ": npy: " + std::to_string(bytes.size() - data_offset) +
                                                 " data bytes, shape needs " + std::to_string(data_bytes));
    }
    const char* src = bytes.data() + data_offset;
    if (array.dtype == NpyDtype::f32) {
        array.f32.resize(n_elements);
        if (data_bytes > 0) std::memcpy(array.f32.data(), src, data_bytes);
    } else {
        array.i32.resize(n_elements);
        if (data_bytes > 0) std::memcpy(array.i32.data(), src, data_bytes);
    }
    return array;
}

}  // namespace gemma4::detail
