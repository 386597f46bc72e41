// MappedFile: a read-only view of a whole file, memory-mapped (or, for tests, owned bytes).
//
// Model weights are never copied: tensors point straight into this mapping, and the OS pages them
// in on first touch. A moved-from MappedFile is empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gemma4::detail {

class MappedFile {
public:
    MappedFile() = default;
    /// Maps `path` read-only. Throws Error(invalid_file) naming the path if it cannot be opened.
    static MappedFile open(const std::string& path);
    /// Wraps bytes held in memory (used by tests and by callers that already hold a file image).
    static MappedFile from_bytes(std::vector<uint8_t> bytes, std::string name);

    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();

    const uint8_t* data() const { return data_; }
    size_t size_bytes() const { return size_; }
    const std::string& name() const { return name_; }

    /// Hints the OS to read [offset, offset + n) ahead (for sequential uploads). Never throws.
    void prefetch(size_t offset, size_t n) const noexcept;

private:
    void release() noexcept;

    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    bool mapped_ = false;
    std::vector<uint8_t> owned_;
    std::string name_;
};

}  // namespace gemma4::detail
