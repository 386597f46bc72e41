// NumPy .npy files (format version 1.0), for dumping and loading activations, logits and token ids
// when comparing against reference implementations. Only what those dumps need: little-endian
// float32 ('<f4') and int32 ('<i4'), C order, 1 or 2 dimensions.
//
// Layout (numpy/lib/format.py, version 1.0):
//
//   "\x93NUMPY" | u8 major = 1 | u8 minor = 0 | u16 LE header_len | header | raw data
//
//   header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", then spaces, then '\n';
//   numpy makes 10 + header_len a multiple of 64, so the data starts 64-byte aligned.
//
// The writer reproduces numpy.save byte for byte (checked against numpy 1.24): keys sorted,
// 21 - len(str(shape[0])) spare spaces after '}' so the first axis can grow in place, then padding
// to the next multiple of 64 that leaves room for the '\n' (a full 64 spaces when already aligned).
// The reader accepts any valid v1.0 header for the supported dtypes (key order, spacing and padding
// free, ending in '\n') and throws Error(invalid_file) naming the path and the problem for anything
// else: bad magic, another version, another dtype, fortran_order True, a malformed header, or data
// that is short or has trailing bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gemma4::detail {

enum class NpyDtype { f32, i32 };

/// A whole .npy array in host memory.
struct NpyArray {
    NpyDtype dtype = NpyDtype::f32;
    std::vector<int64_t> shape;  ///< 1 or 2 dims, C order
    std::vector<float> f32;      ///< the data when dtype == f32, else empty
    std::vector<int32_t> i32;    ///< the data when dtype == i32, else empty

    /// The product of the dims.
    size_t n_elements() const;
};

/// Writes `data` (C order, `shape` = 1 or 2 non-negative dims) as a .npy v1.0 file, replacing any
/// file at `path`. Throws Error(invalid_argument) for a bad shape, Error(invalid_file) if the file
/// cannot be written.
void write_npy(const std::string& path, const float* data, std::vector<int64_t> shape);
void write_npy(const std::string& path, const int32_t* data, std::vector<int64_t> shape);

/// Reads a .npy v1.0 file of '<f4' or '<i4' data, C order, 1 or 2 dims. Throws Error(invalid_file).
NpyArray read_npy(const std::string& path);

}  // namespace gemma4::detail
