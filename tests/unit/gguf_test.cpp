// GGUF reader (GgufFile) and writer (GgufWriter) tests.
//
// 1. Round trip: seeded random valid files (every value type, arrays incl. empty and string arrays,
//    tensors of every known ggml type, alignments 1..4096) written by GgufWriter and read back by
//    GgufFile; every key, value, typed accessor, tensor shape, offset and data byte is checked.
// 2. Corrupt files: hundreds of hand-made variants of one valid file (every truncation point plus
//    targeted field corruptions). Each must throw Error(invalid_file) whose message names the file.
// 3. Byte-flip fuzzing: each mutant either parses (and is then fully walked) or throws that Error.
// 4. A real file on disk through GgufFile::open (mmap), and open() failures.
// Run these under ASan/UBSan (GEMMA4_SANITIZE=ON) as well: a parser bug shows up there first.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

namespace {

using namespace gemma4;
using Bytes = std::vector<uint8_t>;
using Rng = std::mt19937_64;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kTwo63 = uint64_t{1} << 63;

// ---------------------------------------------------------------------------------------------------
// Small helpers

template <class T>
T load(const uint8_t* p) {
    if constexpr (std::is_same_v<T, bool>) {
        return p[0] != 0;
    } else {
        T v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
}

void put_u32(Bytes& b, uint64_t at, uint32_t v) { std::memcpy(b.data() + at, &v, sizeof v); }
void put_u64(Bytes& b, uint64_t at, uint64_t v) { std::memcpy(b.data() + at, &v, sizeof v); }

template <class T>
Bytes enc(T v) {
    Bytes b;
    GgufWriter::append_scalar(b, v);
    return b;
}

Bytes enc_str(std::string_view s) {
    Bytes b;
    GgufWriter::append_string(b, s);
    return b;
}

template <class T>
Bytes enc_array(const std::vector<T>& values) {
    Bytes b = enc(static_cast<uint32_t>(detail::gguf_value_type<T>()));
    GgufWriter::append_scalar(b, static_cast<uint64_t>(values.size()));
    for (const T v : values) GgufWriter::append_scalar(b, v);
    return b;
}

Bytes enc_str_array(const std::vector<std::string>& values) {
    Bytes b = enc(static_cast<uint32_t>(GgufType::string));
    GgufWriter::append_scalar(b, static_cast<uint64_t>(values.size()));
    for (const auto& s : values) GgufWriter::append_string(b, s);
    return b;
}

std::string str_of(std::initializer_list<uint8_t> bytes) { return std::string(bytes.begin(), bytes.end()); }

// Calls f with a value of the C++ type that stores GGUF scalar type t.
template <class F>
void dispatch_scalar(GgufType t, F&& f) {
    switch (t) {
        case GgufType::u8: f(uint8_t{}); break;
        case GgufType::i8: f(int8_t{}); break;
        case GgufType::u16: f(uint16_t{}); break;
        case GgufType::i16: f(int16_t{}); break;
        case GgufType::u32: f(uint32_t{}); break;
        case GgufType::i32: f(int32_t{}); break;
        case GgufType::f32: f(float{}); break;
        case GgufType::boolean: f(bool{}); break;
        case GgufType::u64: f(uint64_t{}); break;
        case GgufType::i64: f(int64_t{}); break;
        case GgufType::f64: f(double{}); break;
        case GgufType::string:
        case GgufType::array: FAIL("not a scalar type"); break;
    }
}

// Calls f once per integer type that get<T>/get_array<T> accept.
template <class F>
void for_each_int_target(F&& f) {
    f(uint8_t{});
    f(int8_t{});
    f(uint16_t{});
    f(int16_t{});
    f(uint32_t{});
    f(int32_t{});
    f(uint64_t{});
    f(int64_t{});
}

bool is_int_type(GgufType t) {
    switch (t) {
        case GgufType::u8: case GgufType::i8: case GgufType::u16: case GgufType::i16:
        case GgufType::u32: case GgufType::i32: case GgufType::u64: case GgufType::i64: return true;
        default: return false;
    }
}

// The exact value of an integer scalar, wide enough for both u64 and i64.
__int128 int_value(GgufType t, const uint8_t* p) {
    __int128 v = 0;
    dispatch_scalar(t, [&](auto tag) {
        using T = decltype(tag);
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) v = load<T>(p);
    });
    return v;
}

template <class T>
bool fits(__int128 v) {
    return v >= static_cast<__int128>(std::numeric_limits<T>::min()) &&
           v <= static_cast<__int128>(std::numeric_limits<T>::max());
}

double float_value(GgufType t, const uint8_t* p) {
    return t == GgufType::f32 ? static_cast<double>(load<float>(p)) : load<double>(p);
}

// "" when fn throws Error(invalid_file) whose message names `name` (and contains `expect`), otherwise
// a description of what happened instead.
template <class F>
std::string invalid_file_outcome(F&& fn, const std::string& name, const std::string& expect = "") {
    try {
        fn();
        return "no exception";
    } catch (const Error& e) {
        const std::string msg = e.what();
        if (e.code() != ErrorCode::invalid_file) return std::string("wrong code ") + to_string(e.code()) + ": " + msg;
        if (msg.find(name) == std::string::npos) return "message does not name '" + name + "': " + msg;
        if (!expect.empty() && msg.find(expect) == std::string::npos) return "message lacks '" + expect + "': " + msg;
        return "";
    } catch (const std::exception& e) {
        return std::string("wrong exception type: ") + e.what();
    } catch (...) {
        return "unknown exception";
    }
}

template <class F>
void require_invalid_file(F&& fn, const std::string& name, const std::string& expect = "") {
    const std::string outcome = invalid_file_outcome(fn, name, expect);
    if (!outcome.empty()) FAIL(outcome);
}

// Reads every value through its accessor and touches every tensor byte, so ASan sees any view that
// points outside the file. Returns a checksum so the reads are not optimized away.
uint64_t walk(const GgufFile& f) {
    uint64_t sum = f.alignment() + f.data_offset();
    for (const auto& e : f.metadata()) {
        sum += e.key.size();
        const GgufValue& v = e.value;
        if (v.type == GgufType::string) {
            for (char c : v.str) sum += static_cast<uint8_t>(c);
        } else if (v.type == GgufType::array) {
            if (v.elem_type == GgufType::string) {
                for (auto s : f.get_string_array(e.key)) sum += s.size() + (s.empty() ? 0 : static_cast<uint8_t>(s.back()));
            } else {
                const size_t nb = gguf_scalar_bytes(static_cast<uint32_t>(v.elem_type));
                for (uint64_t i = 0; i < v.count * nb; ++i) sum += v.data[i];
            }
        } else {
            for (size_t i = 0; i < gguf_scalar_bytes(static_cast<uint32_t>(v.type)); ++i) sum += v.data[i];
        }
    }
    for (const auto& t : f.tensors()) {
        sum += static_cast<uint64_t>(t.n_elements()) + t.offset;
        for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
        if (f.find_tensor(t.name) != &t) sum += 1;
    }
    return sum;
}

// ---------------------------------------------------------------------------------------------------
// 1. Round trip

// A random valid metadata value, kept as the bytes the file should hold so it can be checked exactly.
struct ModelKv {
    std::string key;
    GgufType type = GgufType::u8;
    GgufType elem = GgufType::u8;      // arrays
    uint64_t count = 0;                // arrays
    Bytes raw;                         // scalar or numeric-array payload, little-endian
    std::vector<std::string> strings;  // string value (one) or string-array elements
};

struct ModelTensor {
    std::string name;
    GgmlType type = GgmlType::F32;
    std::vector<int64_t> ne;
    Bytes data;
};

const std::vector<std::string> kAlphabet = {"a", "b", "z", "0", "9", "_", ".", "-", " ", "\xC3\xA9" /* é */,
                                            "\xE4\xB8\xAD" /* 中 */, "\xF0\x9F\x98\x80" /* 😀 */, "\x7F"};

std::string random_text(Rng& rng, size_t max_chars) {
    size_t n = rng() % (max_chars + 1);
    if (rng() % 50 == 0) n = 1000 + rng() % 1000;  // occasionally a long one
    std::string s;
    for (size_t i = 0; i < n; ++i) s += kAlphabet[rng() % kAlphabet.size()];
    return s;
}

// Random scalar payload with a bias towards edge values (0, 1, -1/max, min, max).
Bytes random_scalar(Rng& rng, GgufType t) {
    const size_t nb = gguf_scalar_bytes(static_cast<uint32_t>(t));
    Bytes b(nb);
    if (t == GgufType::boolean) {
        b[0] = rng() % 2;
    } else if (t == GgufType::f32) {
        static const float kF[] = {0.0f, -0.0f, 1.5f, -3.25e10f, std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min(),
                                   std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest()};
        const float v = rng() % 2 ? kF[rng() % std::size(kF)]
                                  : std::uniform_real_distribution<float>(-1e6f, 1e6f)(rng);
        std::memcpy(b.data(), &v, 4);
    } else if (t == GgufType::f64) {
        static const double kD[] = {0.0, -0.0, 1e300, -1e-300, 3.0e38, 1e39 /* overflows float */,
                                    std::numeric_limits<double>::infinity(), std::numeric_limits<double>::denorm_min()};
        const double v = rng() % 2 ? kD[rng() % std::size(kD)]
                                   : std::uniform_real_distribution<double>(-1e12, 1e12)(rng);
        std::memcpy(b.data(), &v, 8);
    } else {
        const uint64_t top = uint64_t{1} << (8 * nb - 1);  // sign bit of this width
        uint64_t bits = 0;
        switch (rng() % 8) {
            case 0: bits = 0; break;
            case 1: bits = 1; break;
            case 2: bits = kU64Max; break;       // all ones: max unsigned, -1 signed
            case 3: bits = top - 1; break;       // max signed
            case 4: bits = top; break;           // min signed
            case 5: bits = rng() % 300; break;   // small
            case 6: bits = 0 - (rng() % 300); break;  // small negative
            default: bits = rng(); break;
        }
        std::memcpy(b.data(), &bits, nb);
    }
    return b;
}

constexpr GgufType kScalarTypes[] = {GgufType::u8,  GgufType::i8,      GgufType::u16, GgufType::i16,
                                     GgufType::u32, GgufType::i32,     GgufType::f32, GgufType::boolean,
                                     GgufType::u64, GgufType::i64,     GgufType::f64};

ModelKv random_kv(Rng& rng, std::string key) {
    ModelKv kv;
    kv.key = std::move(key);
    const uint64_t pick = rng() % 16;
    if (pick < 11) {
        kv.type = kScalarTypes[pick];
        kv.raw = random_scalar(rng, kv.type);
    } else if (pick == 11) {
        kv.type = GgufType::string;
        kv.strings = {random_text(rng, 20)};
    } else {
        kv.type = GgufType::array;
        const uint64_t e = rng() % 12;
        kv.elem = e < 11 ? kScalarTypes[e] : GgufType::string;
        kv.count = rng() % 4 == 0 ? 0 : rng() % 9;
        for (uint64_t i = 0; i < kv.count; ++i) {
            if (kv.elem == GgufType::string) {
                kv.strings.push_back(random_text(rng, 12));
            } else {
                Bytes b = random_scalar(rng, kv.elem);
                kv.raw.insert(kv.raw.end(), b.begin(), b.end());
            }
        }
    }
    return kv;
}

void add_to_writer(GgufWriter& w, const ModelKv& kv) {
    if (kv.type == GgufType::string) {
        w.add_string(kv.key, kv.strings[0]);
    } else if (kv.type == GgufType::array && kv.elem == GgufType::string) {
        w.add_array(kv.key, kv.strings);
    } else if (kv.type == GgufType::array) {
        dispatch_scalar(kv.elem, [&](auto tag) {
            using T = decltype(tag);
            std::vector<T> values(kv.count);
            const size_t nb = gguf_scalar_bytes(static_cast<uint32_t>(kv.elem));
            for (uint64_t i = 0; i < kv.count; ++i) values[i] = load<T>(kv.raw.data() + i * nb);
            w.add_array(kv.key, values);
        });
    } else {
        dispatch_scalar(kv.type, [&](auto tag) {
            using T = decltype(tag);
            w.add(kv.key, load<T>(kv.raw.data()));
        });
    }
}

ModelTensor random_tensor(Rng& rng, std::string name) {
    std::vector<GgmlType> known;
    for (uint32_t id = 0; id < 64; ++id) {
        if (const GgmlTypeInfo* info = ggml_type_info(id)) known.push_back(info->type);
    }
    ModelTensor t;
    t.name = std::move(name);
    t.type = known[rng() % known.size()];
    const GgmlTypeInfo& info = ggml_type_info(t.type);
    const size_t n_dims = 1 + rng() % 4;
    t.ne.push_back(static_cast<int64_t>(info.block_elems * (1 + rng() % (info.block_elems == 1 ? 9 : 2))));
    for (size_t d = 1; d < n_dims; ++d) t.ne.push_back(static_cast<int64_t>(1 + rng() % 3));
    int64_t n = 1;
    for (int64_t x : t.ne) n *= x;
    t.data.resize(static_cast<size_t>(n / info.block_elems * info.block_bytes));
    for (auto& byte : t.data) byte = static_cast<uint8_t>(rng());
    return t;
}

void check_kv(const GgufFile& f, const ModelKv& kv) {
    CAPTURE(kv.key);
    const GgufValue* v = f.find(kv.key);
    REQUIRE(v != nullptr);
    REQUIRE(v->type == kv.type);
    const std::string& name = f.path();

    if (kv.type == GgufType::string) {
        REQUIRE(v->str == kv.strings[0]);
        REQUIRE(f.get<std::string_view>(kv.key) == kv.strings[0]);
        REQUIRE(f.get<std::string>(kv.key) == kv.strings[0]);
        require_invalid_file([&] { f.get<int32_t>(kv.key); }, name, kv.key);
        require_invalid_file([&] { f.get_array<int32_t>(kv.key); }, name, kv.key);
        require_invalid_file([&] { f.get_string_array(kv.key); }, name, kv.key);
        return;
    }
    if (kv.type == GgufType::array) {
        REQUIRE(v->elem_type == kv.elem);
        REQUIRE(v->count == kv.count);
        require_invalid_file([&] { f.get<int64_t>(kv.key); }, name, kv.key);
        require_invalid_file([&] { f.get<std::string_view>(kv.key); }, name, kv.key);
        if (kv.elem == GgufType::string) {
            const auto& got = f.get_string_array(kv.key);
            REQUIRE(got.size() == kv.strings.size());
            for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == kv.strings[i]);
            require_invalid_file([&] { f.get_array<int32_t>(kv.key); }, name, kv.key);
            return;
        }
        require_invalid_file([&] { f.get_string_array(kv.key); }, name, kv.key);
        const size_t nb = gguf_scalar_bytes(static_cast<uint32_t>(kv.elem));
        REQUIRE(kv.raw.size() == kv.count * nb);
        if (kv.count > 0) REQUIRE(std::memcmp(v->data, kv.raw.data(), kv.raw.size()) == 0);
        // Integer targets: the array converts iff every element fits.
        for_each_int_target([&](auto tag) {
            using T = decltype(tag);
            bool ok = true;
            for (uint64_t i = 0; i < kv.count; ++i) ok = ok && is_int_type(kv.elem) && fits<T>(int_value(kv.elem, kv.raw.data() + i * nb));
            if (ok) {
                const std::vector<T> got = f.get_array<T>(kv.key);
                REQUIRE(got.size() == kv.count);
                for (uint64_t i = 0; i < kv.count; ++i) REQUIRE(got[i] == static_cast<T>(int_value(kv.elem, kv.raw.data() + i * nb)));
            } else {
                require_invalid_file([&] { f.get_array<T>(kv.key); }, name, kv.key);
            }
        });
        const bool is_float = kv.elem == GgufType::f32 || kv.elem == GgufType::f64;
        if (is_float || kv.count == 0) {
            const auto got = f.get_array<double>(kv.key);
            REQUIRE(got.size() == kv.count);
            for (uint64_t i = 0; i < kv.count; ++i) REQUIRE(got[i] == float_value(kv.elem, kv.raw.data() + i * nb));
        } else {
            require_invalid_file([&] { f.get_array<double>(kv.key); }, name, kv.key);
        }
        if (kv.elem == GgufType::boolean || kv.count == 0) {
            const auto got = f.get_array<bool>(kv.key);
            REQUIRE(got.size() == kv.count);
            for (uint64_t i = 0; i < kv.count; ++i) REQUIRE(got[i] == (kv.raw[i] != 0));
        } else {
            require_invalid_file([&] { f.get_array<bool>(kv.key); }, name, kv.key);
        }
        return;
    }

    // Scalars.
    const size_t nb = gguf_scalar_bytes(static_cast<uint32_t>(kv.type));
    REQUIRE(kv.raw.size() == nb);
    REQUIRE(std::memcmp(v->data, kv.raw.data(), nb) == 0);
    require_invalid_file([&] { f.get<std::string_view>(kv.key); }, name, kv.key);
    require_invalid_file([&] { f.get_array<int32_t>(kv.key); }, name, kv.key);
    for_each_int_target([&](auto tag) {
        using T = decltype(tag);
        if (is_int_type(kv.type) && fits<T>(int_value(kv.type, kv.raw.data()))) {
            const T want = static_cast<T>(int_value(kv.type, kv.raw.data()));
            REQUIRE(f.get<T>(kv.key) == want);
            REQUIRE(f.get_or<T>(kv.key, static_cast<T>(~want)) == want);
        } else {
            require_invalid_file([&] { f.get<T>(kv.key); }, name, kv.key);
            require_invalid_file([&] { f.get_or<T>(kv.key, T{}); }, name, kv.key);
        }
    });
    if (kv.type == GgufType::f32 || kv.type == GgufType::f64) {
        const double want = float_value(kv.type, kv.raw.data());
        REQUIRE(f.get<double>(kv.key) == want);
        // Narrowing a finite double beyond FLT_MAX is undefined in C++, so only in-range values are checked.
        if (!std::isfinite(want) || std::fabs(want) <= std::numeric_limits<float>::max()) {
            REQUIRE(f.get<float>(kv.key) == static_cast<float>(want));
        }
    } else {
        require_invalid_file([&] { f.get<double>(kv.key); }, name, kv.key);
        require_invalid_file([&] { f.get<float>(kv.key); }, name, kv.key);
    }
    if (kv.type == GgufType::boolean) {
        REQUIRE(f.get<bool>(kv.key) == (kv.raw[0] != 0));
        REQUIRE(f.get_or<bool>(kv.key, kv.raw[0] == 0) == (kv.raw[0] != 0));
    } else {
        require_invalid_file([&] { f.get<bool>(kv.key); }, name, kv.key);
    }
}

}  // namespace

TEST_CASE("GGUF round trip: random valid files read back exactly", "[unit][gguf]") {
    constexpr int kIterations = 300;
    constexpr uint32_t kAlignments[] = {1, 2, 4, 8, 16, 32, 32, 64, 128, 256, 4096};

    for (int iter = 0; iter < kIterations; ++iter) {
        const uint64_t seed = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(iter + 1);
        CAPTURE(iter, seed);
        Rng rng(seed);

        const uint32_t align = kAlignments[rng() % std::size(kAlignments)];
        const bool write_alignment_key = align != 32 || rng() % 2 == 0;
        const size_t n_kv = iter % 10 == 0 ? 0 : rng() % 24;
        const size_t n_tensors = iter % 7 == 0 ? 0 : rng() % 8;

        std::vector<ModelKv> kvs;
        for (size_t i = 0; i < n_kv; ++i) {
            kvs.push_back(random_kv(rng, "k" + std::to_string(i) + "." + random_text(rng, 8)));
        }
        if (write_alignment_key) {
            ModelKv a;
            a.key = "general.alignment";
            a.type = GgufType::u32;
            a.raw = enc<uint32_t>(align);
            kvs.insert(kvs.begin() + static_cast<ptrdiff_t>(rng() % (kvs.size() + 1)), a);
        }
        std::vector<ModelTensor> tensors;
        for (size_t i = 0; i < n_tensors; ++i) {
            std::string name = "blk." + std::to_string(i) + "." + random_text(rng, 6);
            if (rng() % 4 == 0) name.resize(GgufFile::kMaxTensorName, 'x');  // longest legal name
            // Names are cut at a byte count, which may split a multi-byte character: repair by dropping it.
            while (name.size() > GgufFile::kMaxTensorName || (static_cast<uint8_t>(name.back()) & 0x80)) name.pop_back();
            tensors.push_back(random_tensor(rng, name));
        }

        GgufWriter w;
        for (const auto& kv : kvs) add_to_writer(w, kv);
        for (const auto& t : tensors) w.add_tensor(t.name, t.type, t.ne, t.data);
        REQUIRE(w.alignment() == align);
        const GgufImage image = w.build();
        const GgufLayout& lay = image.layout;
        REQUIRE(image.bytes.size() == lay.file_bytes);
        REQUIRE(lay.data_start % align == 0);
        REQUIRE(lay.data_start >= lay.header_end);
        REQUIRE(lay.data_start - lay.header_end < align);

        const std::string name = "roundtrip_" + std::to_string(iter) + ".gguf";
        const GgufFile f = GgufFile::from_bytes(image.bytes, name);
        REQUIRE(f.path() == name);
        REQUIRE(f.version() == 3);
        REQUIRE(f.alignment() == align);
        REQUIRE(f.file_bytes() == image.bytes.size());
        REQUIRE(f.data_offset() == lay.data_start);

        REQUIRE(f.metadata().size() == kvs.size());
        for (size_t i = 0; i < kvs.size(); ++i) {
            REQUIRE(f.metadata()[i].key == kvs[i].key);
            check_kv(f, kvs[i]);
        }
        REQUIRE_FALSE(f.has("no.such.key"));
        REQUIRE(f.get_or<uint32_t>("no.such.key", 7u) == 7u);
        REQUIRE(f.get_or<std::string_view>("no.such.key", "x") == "x");
        require_invalid_file([&] { f.get<uint32_t>("no.such.key"); }, name, "no.such.key");
        require_invalid_file([&] { f.get_array<float>("no.such.key"); }, name, "no.such.key");
        require_invalid_file([&] { f.get_string_array("no.such.key"); }, name, "no.such.key");

        REQUIRE(f.tensors().size() == tensors.size());
        const uint8_t* base = f.mapping().data();
        for (size_t i = 0; i < tensors.size(); ++i) {
            const ModelTensor& want = tensors[i];
            const GgufTensorInfo& got = f.tensors()[i];
            CAPTURE(want.name);
            REQUIRE(got.name == want.name);
            REQUIRE(&f.tensor(want.name) == &got);
            REQUIRE(f.find_tensor(want.name) == &got);
            REQUIRE(got.type == want.type);
            REQUIRE(got.n_dims == want.ne.size());
            for (size_t d = 0; d < 4; ++d) REQUIRE(got.ne[d] == (d < want.ne.size() ? want.ne[d] : 1));
            int64_t n = 1;
            for (int64_t x : want.ne) n *= x;
            REQUIRE(got.n_elements() == n);
            REQUIRE(got.n_rows() == n / want.ne[0]);
            REQUIRE(static_cast<int64_t>(got.row_bytes()) == ggml_row_bytes(want.type, want.ne[0]));
            REQUIRE(got.n_bytes == want.data.size());
            REQUIRE(got.offset == lay.blobs[i].begin - lay.data_start);
            REQUIRE(got.offset % align == 0);
            REQUIRE(got.data == base + lay.blobs[i].begin);
            REQUIRE(static_cast<uint64_t>(got.data - base) % align == 0);
            REQUIRE(std::memcmp(got.data, want.data.data(), want.data.size()) == 0);
            std::string shape = "[";
            for (size_t d = 0; d < want.ne.size(); ++d) shape += (d ? ", " : "") + std::to_string(want.ne[d]);
            REQUIRE(got.shape_string() == shape + "]");
        }
        REQUIRE(f.find_tensor("no.such.tensor") == nullptr);
        require_invalid_file([&] { f.tensor("no.such.tensor"); }, name, "no.such.tensor");
    }
}

TEST_CASE("GGUF round trip: integer conversions at the edges", "[unit][gguf]") {
    GgufWriter w;
    w.add<uint64_t>("u64.max", kU64Max)
        .add<int64_t>("i64.min", std::numeric_limits<int64_t>::min())
        .add<uint32_t>("u32.255", 255)
        .add<int8_t>("i8.-1", -1)
        .add<uint16_t>("u16.65535", 65535)
        .add<int32_t>("i32.-129", -129)
        .add<uint64_t>("u64.2^63", kTwo63)
        .add<int64_t>("i64.2^63-1", std::numeric_limits<int64_t>::max())
        .add_array<int16_t>("arr.i16", {-1, 0, 1})
        .add_array<uint8_t>("arr.u8", {0, 128, 255})
        .add_array<bool>("arr.bool", {true, false})
        .add_array<float>("arr.f32", {1.5f, -2.0f})
        .add<float>("f32", 0.25f)
        .add<double>("f64", 1e39);
    const GgufFile f = GgufFile::from_bytes(w.build().bytes, "edges.gguf");
    const std::string n = "edges.gguf";

    REQUIRE(f.get<uint64_t>("u64.max") == kU64Max);
    require_invalid_file([&] { f.get<int64_t>("u64.max"); }, n, "u64.max");
    REQUIRE(f.get<int64_t>("i64.min") == std::numeric_limits<int64_t>::min());
    require_invalid_file([&] { f.get<uint64_t>("i64.min"); }, n, "i64.min");
    require_invalid_file([&] { f.get<int32_t>("i64.min"); }, n, "i64.min");
    REQUIRE(f.get<uint8_t>("u32.255") == 255);
    require_invalid_file([&] { f.get<int8_t>("u32.255"); }, n, "u32.255");
    REQUIRE(f.get<int16_t>("u32.255") == 255);
    REQUIRE(f.get<int64_t>("i8.-1") == -1);
    require_invalid_file([&] { f.get<uint8_t>("i8.-1"); }, n, "i8.-1");
    require_invalid_file([&] { f.get<uint64_t>("i8.-1"); }, n, "i8.-1");
    REQUIRE(f.get<uint16_t>("u16.65535") == 65535);
    require_invalid_file([&] { f.get<int16_t>("u16.65535"); }, n, "u16.65535");
    REQUIRE(f.get<int32_t>("u16.65535") == 65535);
    REQUIRE(f.get<int16_t>("i32.-129") == -129);
    require_invalid_file([&] { f.get<int8_t>("i32.-129"); }, n, "i32.-129");
    REQUIRE(f.get<uint64_t>("u64.2^63") == kTwo63);
    require_invalid_file([&] { f.get<int64_t>("u64.2^63"); }, n, "u64.2^63");
    REQUIRE(f.get<uint64_t>("i64.2^63-1") == static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
    REQUIRE(f.get<int64_t>("i64.2^63-1") == std::numeric_limits<int64_t>::max());
    REQUIRE(f.get_array<int32_t>("arr.i16") == std::vector<int32_t>{-1, 0, 1});
    require_invalid_file([&] { f.get_array<uint32_t>("arr.i16"); }, n, "element 0");
    REQUIRE(f.get_array<uint8_t>("arr.u8") == std::vector<uint8_t>{0, 128, 255});
    require_invalid_file([&] { f.get_array<int8_t>("arr.u8"); }, n, "element 1");
    REQUIRE(f.get_array<bool>("arr.bool") == std::vector<bool>{true, false});
    REQUIRE(f.get_array<float>("arr.f32") == std::vector<float>{1.5f, -2.0f});
    REQUIRE(f.get<double>("f32") == 0.25);
    REQUIRE(f.get<double>("f64") == 1e39);
}

TEST_CASE("GgufWriter refuses what the reader would reject, unless asked for raw output", "[unit][gguf]") {
    auto require_invalid_argument = [](auto&& fn, const std::string& expect) {
        try {
            fn();
            FAIL("no exception; expected: " << expect);
        } catch (const Error& e) {
            REQUIRE(e.code() == ErrorCode::invalid_argument);
            REQUIRE_THAT(std::string(e.what()), Catch::Contains(expect));
        }
    };
    GgufWriter w;
    w.add<uint32_t>("a", 1);
    require_invalid_argument([&] { w.add<uint32_t>("a", 2); }, "duplicate key 'a'");
    require_invalid_argument([&] { w.add<uint8_t>("", 2); }, "empty");
    require_invalid_argument([&] { w.add_string(str_of({0xC0, 0x80}), "x"); }, "UTF-8");
    require_invalid_argument([&] { w.add_string("s", str_of({0xED, 0xA0, 0x80})); }, "UTF-8");
    require_invalid_argument([&] { w.add_array("sa", std::vector<std::string>{"ok", "\xFF"}); }, "element 1");
    require_invalid_argument([&] { w.add<uint64_t>(std::string(GgufFile::kMaxKeyBytes + 1, 'k'), 1); }, "limit");
    require_invalid_argument([&] { w.add<uint64_t>("general.alignment", 64); }, "general.alignment");
    require_invalid_argument([&] { w.add<uint32_t>("general.alignment", 0); }, "general.alignment");
    require_invalid_argument([&] { w.add<uint32_t>("general.alignment", 48); }, "general.alignment");
    const Bytes f32x4(16);
    require_invalid_argument([&] { w.add_tensor("", GgmlType::F32, {4}, f32x4); }, "empty");
    require_invalid_argument([&] { w.add_tensor(std::string(64, 't'), GgmlType::F32, {4}, f32x4); }, "limit");
    require_invalid_argument([&] { w.add_tensor("t", GgmlType::F32, {}, f32x4); }, "dims");
    require_invalid_argument([&] { w.add_tensor("t", GgmlType::F32, {4, 1, 1, 1, 1}, f32x4); }, "dims");
    require_invalid_argument([&] { w.add_tensor("t", GgmlType::F32, {4, 0}, f32x4); }, "dimension 1");
    require_invalid_argument([&] { w.add_tensor("t", GgmlType::F32, {int64_t{1} << 32, int64_t{1} << 32}, f32x4); },
                             "overflows");
    require_invalid_argument([&] { w.add_tensor("t", GgmlType::Q8_0, {16}, Bytes(17)); }, "block size");
    require_invalid_argument([&] { w.add_tensor("t", GgmlType::F32, {5}, f32x4); }, "needs 20");
    w.add_tensor("t", GgmlType::F32, {4}, f32x4);
    require_invalid_argument([&] { w.add_tensor("t", GgmlType::F32, {4}, f32x4); }, "duplicate tensor name");
    GgufWriter::Overrides zero_alignment;
    zero_alignment.alignment = 0;
    require_invalid_argument([&] { w.set_overrides(zero_alignment); }, "alignment");
    // The checked file is valid; the same content plus raw entries is not, and the writer allows it.
    REQUIRE_NOTHROW(GgufFile::from_bytes(w.build().bytes, "checked.gguf"));
    w.add_raw_kv("a", static_cast<uint32_t>(GgufType::u32), enc<uint32_t>(3));
    require_invalid_file([&] { GgufFile::from_bytes(w.build().bytes, "raw.gguf"); }, "raw.gguf", "duplicate key 'a'");
}

// ---------------------------------------------------------------------------------------------------
// 2. Corrupt variants of one valid file

namespace {

// The valid base file, described as raw entries so that variants can change any part of it.
struct Spec {
    struct Kv {
        std::string key;
        uint32_t type;
        Bytes value;
    };
    std::vector<Kv> kvs;
    std::vector<GgufWriter::RawTensor> tensors;
    GgufWriter::Overrides overrides;

    GgufImage build() const {
        GgufWriter w;
        for (const Kv& kv : kvs) w.add_raw_kv(kv.key, kv.type, kv.value);
        for (const auto& t : tensors) w.add_raw_tensor(t);
        w.set_overrides(overrides);
        return w.build();
    }
};

constexpr uint32_t kBaseAlignment = 64;
constexpr uint32_t t_(GgufType t) { return static_cast<uint32_t>(t); }

// Indices into the base file's KVs and tensors, for the variants below.
enum BaseKv : size_t {
    kKvArch, kKvAlignment, kKvU8, kKvI8, kKvU16, kKvI16, kKvU32, kKvI32, kKvF32, kKvBool, kKvU64, kKvI64, kKvF64,
    kKvString, kKvArrI32, kKvArrStr, kKvArrBool, kKvArrEmptyF32, kKvArrU64, kKvArrEmptyStr, kNumBaseKvs
};

Spec base_spec() {
    Spec s;
    s.kvs = {
        {"general.architecture", t_(GgufType::string), enc_str("gemma4")},
        {"general.alignment", t_(GgufType::u32), enc<uint32_t>(kBaseAlignment)},
        {"test.u8", t_(GgufType::u8), enc<uint8_t>(200)},
        {"test.i8", t_(GgufType::i8), enc<int8_t>(-5)},
        {"test.u16", t_(GgufType::u16), enc<uint16_t>(60000)},
        {"test.i16", t_(GgufType::i16), enc<int16_t>(-30000)},
        {"test.u32", t_(GgufType::u32), enc<uint32_t>(4000000000u)},
        {"test.i32", t_(GgufType::i32), enc<int32_t>(-2000000000)},
        {"test.f32", t_(GgufType::f32), enc<float>(3.5f)},
        {"test.bool", t_(GgufType::boolean), enc<bool>(true)},
        {"test.u64", t_(GgufType::u64), enc<uint64_t>(kU64Max)},
        {"test.i64", t_(GgufType::i64), enc<int64_t>(-7)},
        {"test.f64", t_(GgufType::f64), enc<double>(-0.125)},
        {"test.string", t_(GgufType::string), enc_str("h\xC3\xA9llo w\xC3\xB6rld \xE2\x9C\x93")},
        {"test.arr_i32", t_(GgufType::array), enc_array<int32_t>({1, -2, 3, -4, 5})},
        {"test.arr_str", t_(GgufType::array), enc_str_array({"alpha", "\xCE\xB2" "eta", "gamma"})},
        {"test.arr_bool", t_(GgufType::array), enc_array<bool>({true, false, true})},
        {"test.arr_empty_f32", t_(GgufType::array), enc_array<float>({})},
        {"test.arr_u64", t_(GgufType::array), enc_array<uint64_t>({1, 2, 3})},
        {"test.arr_empty_str", t_(GgufType::array), enc_str_array({})},
    };
    Rng rng(20240601);
    auto tensor = [&](std::string name, GgmlType type, std::vector<uint64_t> ne) {
        const GgmlTypeInfo& info = ggml_type_info(type);
        uint64_t n = 1;
        for (uint64_t x : ne) n *= x;
        GgufWriter::RawTensor t;
        t.name = std::move(name);
        t.ne = std::move(ne);
        t.type_id = static_cast<uint32_t>(type);
        t.data.resize(n / info.block_elems * info.block_bytes);
        for (auto& b : t.data) b = static_cast<uint8_t>(rng());
        return t;
    };
    s.tensors = {
        tensor("token_embd.weight", GgmlType::Q8_0, {64, 3}),          // 204 bytes
        tensor("blk.0.attn_norm.weight", GgmlType::F32, {16}),         // 64 bytes
        tensor("blk.0.ffn_down.weight", GgmlType::Q4_K, {256, 2}),     // 288 bytes
        tensor("blk.0.mixed.weight", GgmlType::F16, {4, 3, 2, 2}),     // 96 bytes
        tensor("output_norm.weight", GgmlType::BF16, {8, 1, 1}),       // 16 bytes
    };
    s.overrides.alignment = kBaseAlignment;  // raw KVs do not set ALIGN by themselves
    return s;
}

struct Variant {
    std::string what;
    Bytes bytes;
    std::string expect;  // a fragment the message must contain ("" = any)
};

class Variants {
public:
    explicit Variants(GgufImage base) : base_(std::move(base)) {}
    const Bytes& bytes() const { return base_.bytes; }
    const GgufLayout& layout() const { return base_.layout; }

    void add(std::string what, Bytes bytes, std::string expect) {
        list_.push_back({std::move(what), std::move(bytes), std::move(expect)});
    }
    void patch_u32(std::string what, uint64_t at, uint32_t v, std::string expect) {
        Bytes b = base_.bytes;
        put_u32(b, at, v);
        add(std::move(what) + " = " + std::to_string(v), std::move(b), std::move(expect));
    }
    void patch_u64(std::string what, uint64_t at, uint64_t v, std::string expect) {
        Bytes b = base_.bytes;
        put_u64(b, at, v);
        add(std::move(what) + " = " + std::to_string(v), std::move(b), std::move(expect));
    }
    // Huge u64 values every length/count field gets: 2^63, 2^64-1, and one more than the bytes left.
    void patch_huge(const std::string& what, uint64_t at, uint64_t left_after, const std::string& expect) {
        patch_u64(what, at, kTwo63, expect);
        patch_u64(what, at, kU64Max, expect);
        patch_u64(what, at, kU64Max - 7, expect);
        patch_u64(what + " (just over the bytes left)", at, left_after + 1, expect);
    }
    const std::vector<Variant>& list() const { return list_; }

private:
    GgufImage base_;
    std::vector<Variant> list_;
};

const std::vector<std::pair<std::string, std::string>>& bad_utf8() {
    static const std::vector<std::pair<std::string, std::string>> k = {
        {"lone continuation 80", str_of({0x80})},
        {"lone continuation BF", str_of({0xBF})},
        {"overlong C0 80", str_of({0xC0, 0x80})},
        {"overlong C1 BF", str_of({0xC1, 0xBF})},
        {"overlong E0 80 80", str_of({0xE0, 0x80, 0x80})},
        {"overlong E0 9F BF", str_of({0xE0, 0x9F, 0xBF})},
        {"overlong F0 80 80 80", str_of({0xF0, 0x80, 0x80, 0x80})},
        {"overlong F0 8F BF BF", str_of({0xF0, 0x8F, 0xBF, 0xBF})},
        {"surrogate D800", str_of({0xED, 0xA0, 0x80})},
        {"surrogate DBFF", str_of({0xED, 0xAF, 0xBF})},
        {"surrogate DC00", str_of({0xED, 0xB0, 0x80})},
        {"surrogate DFFF", str_of({0xED, 0xBF, 0xBF})},
        {"above U+10FFFF", str_of({0xF4, 0x90, 0x80, 0x80})},
        {"lead F5", str_of({0xF5, 0x80, 0x80, 0x80})},
        {"5-byte form F8", str_of({0xF8, 0x88, 0x80, 0x80, 0x80})},
        {"6-byte form FC", str_of({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80})},
        {"byte FE", str_of({0xFE})},
        {"byte FF", str_of({0xFF})},
        {"truncated 2-byte", str_of({0xC3})},
        {"truncated 3-byte", str_of({0xE2, 0x82})},
        {"truncated 4-byte", str_of({0xF0, 0x9F, 0x98})},
        {"lead then ASCII", str_of({0xC3, 0x41})},
        {"3-byte with ASCII third byte", str_of({0xE2, 0x82, 0x41})},
    };
    return k;
}

Variants make_variants() {
    const Spec base = base_spec();
    Variants v(base.build());
    const Bytes& b = v.bytes();
    const GgufLayout& lay = v.layout();
    const uint64_t size = b.size();
    const uint64_t data_end = lay.blobs.back().end;  // blobs are in order, so this is the last data byte + 1
    const uint64_t data_bytes = size - lay.data_start;
    auto left_after = [&](uint64_t field) { return size - (field + 8); };
    auto rebuilt = [&](std::string what, const std::function<void(Spec&)>& change, std::string expect) {
        Spec s = base;
        change(s);
        v.add(std::move(what), s.build().bytes, std::move(expect));
    };

    // -- truncation at every byte boundary before the end of the last blob: header, each KV, each
    //    tensor info, the header padding, every blob and the padding between blobs.
    for (uint64_t n = 0; n < data_end; ++n) v.add("truncated to " + std::to_string(n) + " bytes", Bytes(b.begin(), b.begin() + static_cast<ptrdiff_t>(n)), "");

    // -- header
    for (const char* magic : {"GGUf", "gguf", "GGML", "GGJT", "FUGG", "GGU\x01", "\x01GGUF"}) {
        Bytes m = b;
        std::memcpy(m.data(), magic, 4);
        v.add(std::string("magic ") + magic, std::move(m), "bad magic");
    }
    for (int i = 0; i < 4; ++i) {
        Bytes m = b;
        m[static_cast<size_t>(i)] ^= 0x20;
        v.add("magic byte " + std::to_string(i) + " flipped", std::move(m), "bad magic");
    }
    for (uint32_t version : {0u, 1u, 2u, 4u, 5u, 0xFFFFFFFFu, 0x03000000u}) {
        v.patch_u32("version", GgufLayout::kVersion, version, "version");
    }
    const uint64_t left_after_header = size - GgufLayout::kHeaderBytes;
    for (uint64_t n : {kTwo63, kU64Max, uint64_t{1} << 32, left_after_header / 32 + 1}) {
        v.patch_u64("tensor count", GgufLayout::kTensorCount, n, "tensor count");
    }
    v.patch_u64("tensor count (one too many)", GgufLayout::kTensorCount, base.tensors.size() + 1, "");
    for (uint64_t n : {kTwo63, kU64Max, uint64_t{1} << 32, left_after_header / 13 + 1}) {
        v.patch_u64("metadata count", GgufLayout::kKvCount, n, "metadata count");
    }
    v.patch_u64("metadata count (one too many)", GgufLayout::kKvCount, base.kvs.size() + 1, "");
    // Single high bits flipped: any count of 256 or more cannot fit in this small file.
    for (int bit = 8; bit < 64; ++bit) {
        v.patch_u64("tensor count, bit " + std::to_string(bit) + " flipped", GgufLayout::kTensorCount,
                    base.tensors.size() ^ (uint64_t{1} << bit), "tensor count");
        v.patch_u64("metadata count, bit " + std::to_string(bit) + " flipped", GgufLayout::kKvCount,
                    base.kvs.size() ^ (uint64_t{1} << bit), "metadata count");
    }
    // The same corruptions written through the writer's overrides.
    auto with_overrides = [&](std::string what, const std::function<void(GgufWriter::Overrides&)>& change, std::string expect) {
        rebuilt(std::move(what), [&](Spec& s) { change(s.overrides); }, std::move(expect));
    };
    with_overrides("override: magic GGML", [](auto& o) { o.magic = {'G', 'G', 'M', 'L'}; }, "bad magic");
    with_overrides("override: version 2", [](auto& o) { o.version = 2; }, "version");
    with_overrides("override: tensor count 2^63", [](auto& o) { o.n_tensors = kTwo63; }, "tensor count");
    with_overrides("override: metadata count 2^64-1", [](auto& o) { o.n_kv = kU64Max; }, "metadata count");
    with_overrides("override: padding to 32 while general.alignment says 64", [](auto& o) { o.alignment = 32; }, "data offset");

    // -- every KV: key length huge or zero, value type out of range
    constexpr int kHighBits[] = {16, 24, 32, 40, 48, 56, 62, 63};  // each makes a length or count exceed the file
    for (size_t i = 0; i < kNumBaseKvs; ++i) {
        const auto& k = lay.kvs[i];
        const std::string what = "kv '" + base.kvs[i].key + "' ";
        v.patch_huge(what + "key length", k.begin, left_after(k.begin), "string length");
        for (int bit : kHighBits) {
            v.patch_u64(what + "key length, bit " + std::to_string(bit) + " flipped", k.begin,
                        base.kvs[i].key.size() ^ (uint64_t{1} << bit), "string length");
        }
        v.patch_u64(what + "key length", k.begin, 0, "is empty");
        for (uint32_t t : {13u, 0xFFFFFFFFu}) v.patch_u32(what + "value type", k.type, t, "invalid value type");
    }
    for (uint32_t t : {14u, 255u, 256u, 0x80000008u, 0x0100000Cu}) {
        v.patch_u32("kv 'test.u32' value type", lay.kvs[kKvU32].type, t, "invalid value type");
    }
    rebuilt("key longer than the key limit", [](Spec& s) { s.kvs[kKvU8].key = std::string(GgufFile::kMaxKeyBytes + 1, 'k'); },
            "exceeds the limit");

    // -- string values and string-array elements: huge lengths
    {
        const uint64_t at = lay.kvs[kKvString].value;
        v.patch_huge("string value length", at, left_after(at), "string length");
        uint64_t pos = lay.kvs[kKvArrStr].value + 12;  // u32 elem type, u64 count, then the strings
        for (int e = 0; e < 3; ++e) {
            v.patch_huge("string array element " + std::to_string(e) + " length", pos, left_after(pos), "string length");
            pos += 8 + load<uint64_t>(b.data() + pos);
        }
    }

    // -- arrays: element types, counts
    for (size_t i : {kKvArrI32, kKvArrStr, kKvArrEmptyF32, kKvArrEmptyStr}) {
        const uint64_t at = lay.kvs[i].value;
        for (uint32_t t : {13u, 100u, 0xFFFFFFFFu, 0x80000005u}) {
            v.patch_u32("kv '" + base.kvs[i].key + "' element type", at, t, "invalid array element type");
        }
        v.patch_u32("kv '" + base.kvs[i].key + "' element type (nested array)", at, t_(GgufType::array), "nested");
    }
    for (size_t i : {kKvArrI32, kKvArrStr, kKvArrBool, kKvArrEmptyF32, kKvArrU64, kKvArrEmptyStr}) {
        const uint64_t at = lay.kvs[i].value + 4;
        const auto elem = static_cast<GgufType>(load<uint32_t>(b.data() + lay.kvs[i].value));
        const uint64_t elem_bytes = elem == GgufType::string ? 8 : gguf_scalar_bytes(t_(elem));
        const std::string what = "kv '" + base.kvs[i].key + "' array count";
        v.patch_u64(what, at, kTwo63, "cannot fit");
        v.patch_u64(what, at, kU64Max, "cannot fit");
        v.patch_u64(what + " (just over the bytes left)", at, left_after(at) / elem_bytes + 1, "cannot fit");
        if (elem_bytes > 1) v.patch_u64(what + " (count * size wraps to 0)", at, kTwo63 / elem_bytes * 2, "cannot fit");
        const uint64_t count = load<uint64_t>(b.data() + at);
        for (int bit : kHighBits) {
            v.patch_u64(what + ", bit " + std::to_string(bit) + " flipped", at, count ^ (uint64_t{1} << bit), "cannot fit");
        }
    }
    rebuilt("nested array with elements", [](Spec& s) {
        Bytes inner = enc_array<uint32_t>({7});
        Bytes outer = enc(t_(GgufType::array));
        GgufWriter::append_scalar(outer, uint64_t{1});
        outer.insert(outer.end(), inner.begin(), inner.end());
        s.kvs[kKvArrI32].value = outer;
    }, "nested");
    rebuilt("nested array, empty", [](Spec& s) {
        Bytes outer = enc(t_(GgufType::array));
        GgufWriter::append_scalar(outer, uint64_t{0});
        s.kvs[kKvArrI32].value = outer;
    }, "nested");

    // -- bools other than 0 and 1
    for (uint8_t x : {2, 3, 0x80, 0xFF}) {
        Bytes m = b;
        m[lay.kvs[kKvBool].value] = x;
        v.add("bool value " + std::to_string(x), std::move(m), "bool");
    }
    for (int e = 0; e < 3; ++e) {
        Bytes m = b;
        m[lay.kvs[kKvArrBool].value + 12 + static_cast<uint64_t>(e)] = 2;
        v.add("bool array element " + std::to_string(e) + " = 2", std::move(m), "bool");
    }

    // -- duplicate keys
    rebuilt("duplicate key, same type", [](Spec& s) { s.kvs.push_back(s.kvs[kKvArch]); }, "duplicate key");
    rebuilt("duplicate key, other type", [](Spec& s) { s.kvs[kKvI16].key = s.kvs[kKvU8].key; }, "duplicate key");
    rebuilt("duplicate general.alignment", [](Spec& s) { s.kvs.push_back(s.kvs[kKvAlignment]); }, "duplicate key");

    // -- general.alignment: not a power of two, or not a u32
    for (uint32_t a : {0u, 3u, 5u, 6u, 7u, 12u, 48u, 63u, 65u, 96u, 100u, 1000u, 0x80000001u, 0xFFFFFFFFu}) {
        v.patch_u32("general.alignment", lay.kvs[kKvAlignment].value, a, "general.alignment");
    }
    // Powers of two larger than the one the file was written with: offsets become misaligned.
    for (uint32_t a : {128u, 0x80000000u}) v.patch_u32("general.alignment", lay.kvs[kKvAlignment].value, a, "data offset");
    const std::vector<std::pair<std::string, Spec::Kv>> wrong_alignment = {
        {"u8", {"general.alignment", t_(GgufType::u8), enc<uint8_t>(64)}},
        {"u16", {"general.alignment", t_(GgufType::u16), enc<uint16_t>(64)}},
        {"i32", {"general.alignment", t_(GgufType::i32), enc<int32_t>(64)}},
        {"u64", {"general.alignment", t_(GgufType::u64), enc<uint64_t>(64)}},
        {"i64", {"general.alignment", t_(GgufType::i64), enc<int64_t>(64)}},
        {"f32", {"general.alignment", t_(GgufType::f32), enc<float>(64.0f)}},
        {"bool", {"general.alignment", t_(GgufType::boolean), enc<bool>(true)}},
        {"string", {"general.alignment", t_(GgufType::string), enc_str("64")}},
        {"array", {"general.alignment", t_(GgufType::array), enc_array<uint32_t>({64})}},
    };
    for (const auto& [type, kv] : wrong_alignment) {
        rebuilt("general.alignment of type " + type, [&, kv = kv](Spec& s) { s.kvs[kKvAlignment] = kv; }, "general.alignment");
    }

    // -- non-UTF-8 in a key, a string value, a string-array element and a tensor name
    for (const auto& [what, seq] : bad_utf8()) {
        for (const bool at_end : {false, true}) {
            const std::string where = std::string(at_end ? " at the end" : " in the middle") + ": " + what;
            const std::string text = at_end ? "abc" + seq : "ab" + seq + "cd";
            rebuilt("key" + where, [&](Spec& s) { s.kvs[kKvString].key = text; }, "UTF-8");
            rebuilt("string value" + where, [&](Spec& s) { s.kvs[kKvString].value = enc_str(text); }, "UTF-8");
            rebuilt("string array element" + where,
                    [&](Spec& s) { s.kvs[kKvArrStr].value = enc_str_array({"alpha", text, "gamma"}); }, "UTF-8");
            rebuilt("tensor name" + where, [&](Spec& s) { s.tensors[2].name = text; }, "UTF-8");
        }
    }

    // -- every tensor info: name length, n_dims, dims, type, offset
    for (size_t i = 0; i < base.tensors.size(); ++i) {
        const auto& ti = lay.tensor_infos[i];
        const GgufWriter::RawTensor& t = base.tensors[i];
        const std::string what = "tensor '" + t.name + "' ";
        v.patch_huge(what + "name length", ti.begin, left_after(ti.begin), "string length");
        v.patch_u64(what + "name length", ti.begin, 0, "empty name");
        for (uint32_t n : {0u, 5u, 6u, 0xFFFFFFFFu, 0x80000001u}) v.patch_u32(what + "n_dims", ti.n_dims, n, "n_dims");
        for (size_t d = 0; d < t.ne.size(); ++d) v.patch_u64(what + "ne[" + std::to_string(d) + "]", ti.ne + 8 * d, 0, "is zero");
        for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 41u, 200u, 0x80000000u, 0xFFFFFFFFu}) {
            v.patch_u32(what + "ggml type", ti.type, id, "unknown ggml type");
        }
        const uint64_t offset = load<uint64_t>(b.data() + ti.offset);
        for (uint64_t delta : {uint64_t{1}, uint64_t{8}, uint64_t{32}, uint64_t{kBaseAlignment - 1}}) {
            v.patch_u64(what + "offset (misaligned)", ti.offset, offset + delta, "data offset");
        }
        v.patch_u64(what + "offset (misaligned)", ti.offset, kU64Max, "data offset");
        for (uint64_t off : {data_bytes, data_bytes + kBaseAlignment, uint64_t{1} << 40, kTwo63, kU64Max - kBaseAlignment + 1,
                             kU64Max - (uint64_t{1} << 32) + 1}) {
            v.patch_u64(what + "offset (out of range)", ti.offset, off, "outside the data section");
        }
    }
    for (size_t i : {size_t{0}, size_t{4}}) {
        for (size_t len : {64, 65, 100, 255, 1000}) {
            rebuilt("tensor " + std::to_string(i) + " name of " + std::to_string(len) + " bytes",
                    [&](Spec& s) { s.tensors[i].name = std::string(len, 'n'); }, "exceeds the limit of 63");
        }
    }
    rebuilt("duplicate tensor name (adjacent)", [](Spec& s) { s.tensors[1].name = s.tensors[0].name; }, "duplicate tensor name");
    rebuilt("duplicate tensor name (first and last)", [](Spec& s) { s.tensors[4].name = s.tensors[0].name; },
            "duplicate tensor name");
    rebuilt("n_dims 0 with no dims", [](Spec& s) { s.tensors[1].ne.clear(); }, "n_dims");
    rebuilt("n_dims 5", [](Spec& s) { s.tensors[3].ne.push_back(1); }, "n_dims");

    // Huge dims and element-count overflow (tensor 1 is F32 [16], tensor 2 Q4_K [256, 2], tensor 3 F16 [4, 3, 2, 2]).
    auto set_dims = [&](const std::string& what, size_t i, std::vector<uint64_t> ne, const std::string& expect) {
        Bytes m = b;
        for (size_t d = 0; d < ne.size(); ++d) put_u64(m, lay.tensor_infos[i].ne + 8 * d, ne[d]);
        std::string dims;
        for (uint64_t x : ne) dims += (dims.empty() ? "" : ", ") + std::to_string(x);
        v.add("tensor " + std::to_string(i) + " " + what + " [" + dims + "]", std::move(m), expect);
    };
    set_dims("ne0 > INT64_MAX", 1, {kTwo63}, "overflows");
    set_dims("ne0 = 2^64-1", 1, {kU64Max}, "overflows");
    set_dims("byte size wraps", 1, {uint64_t{1} << 62}, "byte size overflows");
    set_dims("huge but representable", 1, {uint64_t{1} << 61}, "outside the data section");
    set_dims("huge", 1, {uint64_t{1} << 40}, "outside the data section");
    set_dims("product 2^63", 2, {256, uint64_t{1} << 55}, "overflows");
    set_dims("product just under 2^63", 2, {256, (uint64_t{1} << 55) - 1}, "outside the data section");
    set_dims("product 2^64", 3, {1 << 16, 1 << 16, 1 << 16, 1 << 16}, "overflows");
    set_dims("product 2^63", 3, {1 << 21, 1 << 21, 1 << 21, 1}, "overflows");
    set_dims("product just over INT64_MAX", 3, {3037000500, 3037000500, 1, 1}, "overflows");
    set_dims("product just under INT64_MAX, byte size near 2^64", 3, {3037000499, 3037000499, 1, 1},
             "outside the data section");
    set_dims("INT64_MAX elements", 3, {uint64_t{std::numeric_limits<int64_t>::max()}, 1, 1, 1}, "outside the data section");
    set_dims("overflow in the last dim", 3, {4, 3, 2, uint64_t{1} << 62}, "overflows");

    // Rows that are not a whole number of blocks.
    for (uint64_t ne0 : {1, 16, 31, 33, 48, 65}) set_dims("Q8_0 row length", 0, {ne0, 3}, "block size");
    for (uint64_t ne0 : {32, 128, 255, 257, 384}) set_dims("Q4_K row length", 2, {ne0, 2}, "block size");
    v.patch_u32("tensor 1 (F32 [16]) as Q8_0: type", lay.tensor_infos[1].type, 8, "block size");
    v.patch_u32("tensor 1 (F32 [16]) as Q4_K: type", lay.tensor_infos[1].type, 12, "block size");
    v.patch_u32("tensor 3 (F16 [4, ...]) as Q4_0: type", lay.tensor_infos[3].type, 2, "block size");

    // Overlapping tensors (tensor 0 is 204 bytes at offset 0; tensor 2 is 288 bytes).
    auto offset_of = [&](size_t i) { return load<uint64_t>(b.data() + lay.tensor_infos[i].offset); };
    v.patch_u64("tensor 1 offset onto tensor 0", lay.tensor_infos[1].offset, offset_of(0), "overlap");
    v.patch_u64("tensor 1 offset inside tensor 0", lay.tensor_infos[1].offset, 64, "overlap");
    v.patch_u64("tensor 1 offset inside tensor 0 (end)", lay.tensor_infos[1].offset, 192, "overlap");
    v.patch_u64("tensor 2 offset onto tensor 1", lay.tensor_infos[2].offset, offset_of(1), "overlap");
    v.patch_u64("tensor 3 offset inside tensor 2", lay.tensor_infos[3].offset, offset_of(2) + 256, "overlap");
    v.patch_u64("tensor 4 offset onto tensor 0", lay.tensor_infos[4].offset, offset_of(0), "overlap");
    {
        Bytes m = b;
        for (const auto& ti : lay.tensor_infos) put_u64(m, ti.offset, 0);
        v.add("every tensor at offset 0", std::move(m), "overlap");
    }
    return v;
}

}  // namespace

TEST_CASE("GGUF corrupt files throw invalid_file naming the file", "[unit][gguf]") {
    const Spec spec = base_spec();
    const GgufImage base = spec.build();

    // The base is valid, and the checked writer produces the same bytes from the same content.
    const GgufFile ok = GgufFile::from_bytes(base.bytes, "base.gguf");
    REQUIRE(ok.metadata().size() == kNumBaseKvs);
    REQUIRE(ok.tensors().size() == spec.tensors.size());
    REQUIRE(ok.alignment() == kBaseAlignment);
    REQUIRE(walk(ok) != 0);
    {
        GgufWriter w;
        w.add_string("general.architecture", "gemma4").add<uint32_t>("general.alignment", kBaseAlignment);
        w.add<uint8_t>("test.u8", 200).add<int8_t>("test.i8", -5).add<uint16_t>("test.u16", 60000);
        w.add<int16_t>("test.i16", -30000).add<uint32_t>("test.u32", 4000000000u).add<int32_t>("test.i32", -2000000000);
        w.add<float>("test.f32", 3.5f).add<bool>("test.bool", true).add<uint64_t>("test.u64", kU64Max);
        w.add<int64_t>("test.i64", -7).add<double>("test.f64", -0.125);
        w.add_string("test.string", "h\xC3\xA9llo w\xC3\xB6rld \xE2\x9C\x93");
        w.add_array<int32_t>("test.arr_i32", {1, -2, 3, -4, 5});
        w.add_array("test.arr_str", std::vector<std::string>{"alpha", "\xCE\xB2" "eta", "gamma"});
        w.add_array<bool>("test.arr_bool", {true, false, true});
        w.add_array<float>("test.arr_empty_f32", {});
        w.add_array<uint64_t>("test.arr_u64", {1, 2, 3});
        w.add_array("test.arr_empty_str", std::vector<std::string>{});
        for (const auto& t : spec.tensors) {
            w.add_tensor(t.name, static_cast<GgmlType>(t.type_id), std::vector<int64_t>(t.ne.begin(), t.ne.end()), t.data);
        }
        const GgufImage checked = w.build();
        REQUIRE(checked.bytes == base.bytes);
        REQUIRE(checked.layout.kvs[kKvArrStr].elements.size() == 3);
        REQUIRE(checked.layout.kvs[kKvArrStr].elements[0] == base.layout.kvs[kKvArrStr].value + 12);
    }
    // A 63-byte name and a zero-length value string are legal: the limits are exact.
    {
        Spec s = spec;
        s.tensors[0].name = std::string(GgufFile::kMaxTensorName, 'n');
        s.kvs[kKvString].value = enc_str("");
        REQUIRE_NOTHROW(GgufFile::from_bytes(s.build().bytes, "limits.gguf"));
    }

    const Variants variants = make_variants();
    size_t n_truncations = 0;
    size_t n_failed = 0;
    for (size_t i = 0; i < variants.list().size(); ++i) {
        const Variant& c = variants.list()[i];
        const std::string name = "corrupt_" + std::to_string(i) + ".gguf";
        const std::string outcome =
            invalid_file_outcome([&] { GgufFile::from_bytes(c.bytes, name); }, name, c.expect);
        if (!outcome.empty()) {
            ++n_failed;
            FAIL_CHECK("variant " << i << " (" << c.what << "): " << outcome);
        }
        if (c.what.rfind("truncated", 0) == 0) ++n_truncations;
    }
    const size_t n_targeted = variants.list().size() - n_truncations;
    INFO(variants.list().size() << " corrupt variants: " << n_truncations << " truncations, " << n_targeted << " targeted");
    REQUIRE(n_failed == 0);
    REQUIRE(n_targeted >= 200);
    REQUIRE(variants.list().size() >= 200);
}

// ---------------------------------------------------------------------------------------------------
// 3. Fuzzing

TEST_CASE("GGUF byte-flip fuzzing: parse or throw invalid_file, nothing else", "[unit][gguf]") {
    constexpr int kIterations = 5000;
    const GgufImage base = base_spec().build();
    const uint64_t header_end = base.layout.header_end;
    const uint64_t interesting[] = {0, 1, 2, 3, 4, 5, 9, 12, 13, 0xFF, 63, 64, kTwo63, kU64Max, kU64Max - 7,
                                    base.bytes.size(), uint64_t{1} << 32};
    size_t n_parsed = 0;
    size_t n_rejected = 0;
    uint64_t checksum = 0;

    for (int iter = 0; iter < kIterations; ++iter) {
        const uint64_t seed = 1000003ull * static_cast<uint64_t>(iter) + 17;
        Rng rng(seed);
        Bytes m = base.bytes;
        // Most mutations land in the header, where the parser's decisions are made.
        auto pos = [&] { return rng() % 5 == 0 ? rng() % m.size() : rng() % (header_end + 8); };
        const int n_mutations = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < n_mutations; ++k) {
            switch (rng() % 4) {
                case 0: m[pos()] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
                case 1: m[pos()] = static_cast<uint8_t>(rng()); break;
                case 2: {  // an interesting u64 over a length, count or offset field
                    const uint64_t at = std::min<uint64_t>(pos(), m.size() - 8);
                    put_u64(m, at, interesting[rng() % std::size(interesting)]);
                    break;
                }
                default: {  // an interesting u32 over a type or n_dims field
                    const uint64_t at = std::min<uint64_t>(pos(), m.size() - 4);
                    put_u32(m, at, static_cast<uint32_t>(interesting[rng() % std::size(interesting)]));
                    break;
                }
            }
        }
        if (rng() % 10 == 0) m.resize(rng() % m.size());
        const std::string name = "fuzz_" + std::to_string(iter) + ".gguf";
        try {
            const GgufFile f = GgufFile::from_bytes(m, name);
            checksum += walk(f);
            ++n_parsed;
        } catch (const Error& e) {
            if (e.code() != ErrorCode::invalid_file || std::string(e.what()).find(name) == std::string::npos) {
                FAIL("seed " << seed << ": " << to_string(e.code()) << ": " << e.what());
            }
            ++n_rejected;
        } catch (const std::exception& e) {
            FAIL("seed " << seed << ": wrong exception type: " << e.what());
        } catch (...) {
            FAIL("seed " << seed << ": unknown exception");
        }
    }
    INFO("parsed " << n_parsed << ", rejected " << n_rejected << ", checksum " << checksum);
    REQUIRE(n_parsed + n_rejected == static_cast<size_t>(kIterations));
    REQUIRE(n_rejected > 0);
    REQUIRE(n_parsed > 0);
}

// ---------------------------------------------------------------------------------------------------
// 4. Real files

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        path = std::filesystem::temp_directory_path() /
               ("gemma4_gguf_test_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

Bytes read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("GgufFile::open maps a real file, tensor data lies in the mapping, aligned", "[unit][gguf]") {
    TempDir dir;
    for (const uint32_t align : {32u, 64u, 4096u}) {
        CAPTURE(align);
        Rng rng(align);
        GgufWriter w;
        w.add_string("general.architecture", "gemma4");
        if (align != 32) w.add<uint32_t>("general.alignment", align);
        w.add_array("tokenizer.ggml.tokens", std::vector<std::string>{"<pad>", "<eos>", "\xE2\x96\x81hi"});
        std::vector<ModelTensor> tensors;
        for (int i = 0; i < 6; ++i) tensors.push_back(random_tensor(rng, "t" + std::to_string(i)));
        for (const auto& t : tensors) w.add_tensor(t.name, t.type, t.ne, t.data);

        const std::string path = (dir.path / ("model_" + std::to_string(align) + ".gguf")).string();
        w.write(path);
        const GgufImage image = w.build();
        REQUIRE(read_all(path) == image.bytes);  // write() and build() agree byte for byte

        GgufFile opened = GgufFile::open(path);
        REQUIRE(opened.path() == path);
        // Views survive a move of the GgufFile (keys, names and data point into the mapping).
        const GgufFile f = std::move(opened);
        REQUIRE(f.alignment() == align);
        REQUIRE(f.get<std::string_view>("general.architecture") == "gemma4");
        REQUIRE(f.get_string_array("tokenizer.ggml.tokens")[2] == "\xE2\x96\x81hi");
        const uint8_t* begin = f.mapping().data();
        const uint8_t* end = begin + f.mapping().size_bytes();
        REQUIRE(f.mapping().size_bytes() == image.bytes.size());
        REQUIRE(f.data_offset() % align == 0);
        REQUIRE(f.tensors().size() == tensors.size());
        for (size_t i = 0; i < tensors.size(); ++i) {
            const GgufTensorInfo& t = f.tensor(tensors[i].name);
            CAPTURE(t.name);
            REQUIRE(t.data >= begin);
            REQUIRE(t.data + t.n_bytes <= end);
            REQUIRE(t.data == begin + f.data_offset() + t.offset);
            REQUIRE(t.offset % align == 0);
            // The mapping starts on a page boundary, so file alignment is address alignment (align <= page).
            REQUIRE(reinterpret_cast<uintptr_t>(t.data) % align == 0);
            REQUIRE(std::memcmp(t.data, tensors[i].data.data(), t.n_bytes) == 0);
        }
    }

    const std::string missing = (dir.path / "missing.gguf").string();
    require_invalid_file([&] { GgufFile::open(missing); }, missing);
    const std::string directory = dir.path.string();
    require_invalid_file([&] { GgufFile::open(directory); }, directory);
    const std::string empty = (dir.path / "empty.gguf").string();
    std::ofstream(empty).close();
    require_invalid_file([&] { GgufFile::open(empty); }, empty, "too small");
    const std::string tiny = (dir.path / "tiny.gguf").string();
    std::ofstream(tiny, std::ios::binary) << "GGUF\x03";
    require_invalid_file([&] { GgufFile::open(tiny); }, tiny, "truncated");
    const std::string not_gguf = (dir.path / "not_gguf.bin").string();
    std::ofstream(not_gguf, std::ios::binary) << "this is not a gguf file at all";
    require_invalid_file([&] { GgufFile::open(not_gguf); }, not_gguf, "bad magic");
    // Writing into a directory that does not exist fails cleanly too.
    const std::string unwritable = (dir.path / "no_such_dir" / "x.gguf").string();
    require_invalid_file([&] { GgufWriter().write(unwritable); }, unwritable);
}
