// .npy reader/writer: round trips, numpy-written golden files (tests/golden/npy, see README.txt
// there), byte identity with numpy.save, and malformed files throwing invalid_file.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include "gemma4/error.h"
#include "util/npy.h"

using gemma4::ErrorCode;
using gemma4::detail::NpyArray;
using gemma4::detail::NpyDtype;
using gemma4::detail::read_npy;
using gemma4::detail::write_npy;

namespace {

const std::string kGoldenDir = std::string(GEMMA4_TEST_DATA_DIR) + "/golden/npy/";

// A scratch folder unique to this process and object, removed when it goes out of scope.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               ("gemma4_npy_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out);
}

const auto kInvalidFile = Catch::Matchers::Predicate<gemma4::Error>(
    [](const gemma4::Error& e) { return e.code() == ErrorCode::invalid_file; }, "invalid_file");
const auto kInvalidArgument = Catch::Matchers::Predicate<gemma4::Error>(
    [](const gemma4::Error& e) { return e.code() == ErrorCode::invalid_argument; }, "invalid_argument");

// The arrays of tests/golden/npy/README.txt.
const std::vector<float> kGoldenF32 = {1.5f, -2.25f, 0.0f, 3e-8f, 1e30f, -0.0f};
const std::vector<int32_t> kGoldenI32 = {1, -2, 2147483647, -2147483647 - 1};

// Bit equality, so -0.0 and NaN payloads count.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("npy: reads files written by numpy", "[unit][npy]") {
    const NpyArray f = read_npy(kGoldenDir + "f32_2x3.npy");
    CHECK(f.dtype == NpyDtype::f32);
    CHECK(f.shape == std::vector<int64_t>{2, 3});
    CHECK(f.n_elements() == 6);
    CHECK(same_bits(f.f32, kGoldenF32));
    CHECK(f.i32.empty());

    const NpyArray i = read_npy(kGoldenDir + "i32_4.npy");
    CHECK(i.dtype == NpyDtype::i32);
    CHECK(i.shape == std::vector<int64_t>{4});
    CHECK(i.i32 == kGoldenI32);
    CHECK(i.f32.empty());
}

TEST_CASE("npy: what we write is byte-identical to numpy.save", "[unit][npy]") {
    TempDir dir;
    write_npy(dir.file("f.npy"), kGoldenF32.data(), {2, 3});
    CHECK(read_bytes(dir.file("f.npy")) == read_bytes(kGoldenDir + "f32_2x3.npy"));
    write_npy(dir.file("i.npy"), kGoldenI32.data(), {4});
    CHECK(read_bytes(dir.file("i.npy")) == read_bytes(kGoldenDir + "i32_4.npy"));
}

TEST_CASE("npy: round trips and header alignment", "[unit][npy]") {
    TempDir dir;
    // Shapes with first and second dims of different digit counts, and empty arrays. For 1 or 2
    // int64 dims numpy's header (with its growth spaces) always pads the prelude + header to 128.
    const std::vector<std::vector<int64_t>> shapes = {{1},          {7},          {0},    {3, 5},  {1, 1},
                                                      {12345, 2},  {2, 12345},  {0, 4}, {100000}};
    for (const auto& shape : shapes) {
        CAPTURE(shape);
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::vector<float> f(static_cast<size_t>(n));
        std::vector<int32_t> i(static_cast<size_t>(n));
        for (int64_t k = 0; k < n; ++k) {
            f[static_cast<size_t>(k)] = static_cast<float>(k) * 0.37f - 11.0f;
            i[static_cast<size_t>(k)] = static_cast<int32_t>(k * 7919 - 50000);
        }
        write_npy(dir.file("f.npy"), f.data(), shape);
        write_npy(dir.file("i.npy"), i.data(), shape);
        const NpyArray rf = read_npy(dir.file("f.npy"));
        const NpyArray ri = read_npy(dir.file("i.npy"));
        CHECK(rf.dtype == NpyDtype::f32);
        CHECK(rf.shape == shape);
        CHECK(same_bits(rf.f32, f));
        CHECK(ri.dtype == NpyDtype::i32);
        CHECK(ri.shape == shape);
        CHECK(ri.i32 == i);

        const std::string bytes = read_bytes(dir.file("f.npy"));
        const size_t header_len =  // u16 little-endian after the magic and version
            static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
        CHECK(10 + header_len == 128);
        CHECK(bytes[10 + header_len - 1] == '\n');
        CHECK(bytes.size() == 10 + header_len + 4 * static_cast<size_t>(n));
    }
}

TEST_CASE("npy: bad shapes and null data are invalid_argument when writing", "[unit][npy]") {
    TempDir dir;
    const float x[4] = {};
    CHECK_THROWS_MATCHES(write_npy(dir.file("a.npy"), x, {}), gemma4::Error, kInvalidArgument);
    CHECK_THROWS_MATCHES(write_npy(dir.file("a.npy"), x, {1, 1, 4}), gemma4::Error, kInvalidArgument);
    CHECK_THROWS_MATCHES(write_npy(dir.file("a.npy"), x, {-1}), gemma4::Error, kInvalidArgument);
    CHECK_THROWS_MATCHES(write_npy(dir.file("a.npy"), static_cast<const float*>(nullptr), {4}), gemma4::Error,
                         kInvalidArgument);
    CHECK_THROWS_MATCHES(write_npy(dir.file("no/such/dir/a.npy"), x, {4}), gemma4::Error, kInvalidFile);
}

TEST_CASE("npy: malformed files are invalid_file", "[unit][npy]") {
    TempDir dir;
    const std::string good = read_bytes(kGoldenDir + "f32_2x3.npy");
    const std::string header = good.substr(10, 118);  // the golden header, ending in '\n'
    const std::string data = good.substr(128);

    // A v1.0 file around a header text, with the u16 length filled in.
    auto file_with_header = [](const std::string& text, const std::string& payload) {
        std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
        bytes += static_cast<char>(text.size() & 0xff);
        bytes += static_cast<char>(text.size() >> 8);
        return bytes + text + payload;
    };
    // The same around a dict, padded as numpy pads it.
    auto file_with_dict = [&](const std::string& dict, const std::string& payload) {
        std::string text = dict;
        text.append(64 - (10 + text.size() + 1) % 64, ' ');
        return file_with_header(text + '\n', payload);
    };

    // Sanity: the helpers rebuild a readable file, and other key orders and quotes are accepted.
    write_bytes(dir.file("ok.npy"), file_with_dict("{\"shape\": (2,3), 'fortran_order': False, 'descr': '<f4'}", data));
    CHECK(read_npy(dir.file("ok.npy")).shape == std::vector<int64_t>{2, 3});

    const std::string f4 = "{'descr': '<f4', 'fortran_order': False, ";
    struct Bad {
        const char* what;
        std::string bytes;
        const char* message;  // a part of the expected what(), so each case fails for its own reason
    };
    const std::vector<Bad> bad = {
        {"missing file", "", "cannot open"},
        {"empty", std::string(), "not a .npy file"},
        {"bad magic", "\x93NUMPZ" + good.substr(6), "not a .npy file"},
        {"short prelude", good.substr(0, 9), "not a .npy file"},
        {"version 2.0", std::string("\x93NUMPY\x02\x00", 8) + good.substr(8), "version 2.0"},
        {"version 1.1", std::string("\x93NUMPY\x01\x01", 8) + good.substr(8), "version 1.1"},
        {"header past end", good.substr(0, 60), "past the end"},
        {"truncated data", good.substr(0, good.size() - 1), "23 data bytes, shape needs 24"},
        {"trailing bytes", good + "x", "25 data bytes, shape needs 24"},
        {"big-endian", file_with_dict("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", data), "'>f4'"},
        {"float64", file_with_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", data), "'<f8'"},
        {"fortran", file_with_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data),
         "fortran_order True"},
        {"3 dims", file_with_dict(f4 + "'shape': (1, 2, 3), }", data), "3 dims"},
        {"0 dims", file_with_dict(f4 + "'shape': (), }", data.substr(0, 4)), "0 dims"},
        {"shape not a tuple", file_with_dict(f4 + "'shape': (6), }", data), "not a tuple"},
        {"negative dim", file_with_dict(f4 + "'shape': (-6,), }", data), "non-negative integer"},
        {"huge dims", file_with_dict(f4 + "'shape': (4294967296, 4294967296), }", data), "overflows"},
        {"dim overflow", file_with_dict(f4 + "'shape': (99999999999999999999,), }", data), "overflows int64"},
        {"missing key", file_with_dict("{'descr': '<f4', 'shape': (2, 3), }", data), "lacks"},
        {"extra key", file_with_dict(f4 + "'shape': (2, 3), 'x': 1}", data), "unexpected key 'x'"},
        {"duplicate key", file_with_dict("{'descr': '<f4', " + f4.substr(1) + "'shape': (2, 3)}", data),
         "duplicate key 'descr'"},
        {"unterminated string", file_with_dict("{'descr': '<f4", data), "unterminated"},
        {"no closing brace", file_with_dict(f4 + "'shape': (2, 3), ", data), "expected a quoted string"},
        {"junk after dict", file_with_dict(f4 + "'shape': (2, 3)} x", data), "after the header dict"},
        {"no newline", file_with_header(header.substr(0, header.size() - 1) + " ", data), "newline"},
        {"fortran_order not bool", file_with_dict("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}", data),
         "not True or False"},
    };
    for (const Bad& b : bad) {
        CAPTURE(b.what);
        const bool missing = std::string(b.what) == "missing file";
        const std::string path = dir.file(missing ? "does_not_exist.npy" : "bad.npy");
        if (!missing) write_bytes(path, b.bytes);
        CHECK_THROWS_MATCHES(read_npy(path), gemma4::Error, kInvalidFile);
        CHECK_THROWS_WITH(read_npy(path), Catch::Matchers::Contains(b.message) && Catch::Matchers::Contains(path));
    }
}
