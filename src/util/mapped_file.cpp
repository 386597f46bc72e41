#include "util/mapped_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gemma4/error.h"

namespace gemma4::detail {

MappedFile MappedFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        throw Error(ErrorCode::invalid_file, path + ": cannot open: " + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw Error(ErrorCode::invalid_file, path + ": cannot stat: " + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(ErrorCode::invalid_file, path + ": not a regular file");
    }
    MappedFile f;
    f.name_ = path;
    f.size_ = static_cast<size_t>(st.st_size);
    if (f.size_ > 0) {
        void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            ::close(fd);
            throw Error(ErrorCode::invalid_file, path + ": cannot mmap: " + std::strerror(e));
        }
        f.data_ = static_cast<const uint8_t*>(p);
        f.mapped_ = true;
    }
    ::close(fd);  // the mapping keeps the file alive
    return f;
}

MappedFile MappedFile::from_bytes(std::vector<uint8_t> bytes, std::string name) {
    MappedFile f;
    f.owned_ = std::move(bytes);
    f.data_ = f.owned_.data();
    f.size_ = f.owned_.size();
    f.name_ = std::move(name);
    return f;
}

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
    if (this != &other) {
        release();
        mapped_ = std::exchange(other.mapped_, false);
        size_ = std::exchange(other.size_, 0);
        name_ = std::move(other.name_);
        owned_ = std::move(other.owned_);
        data_ = mapped_ ? std::exchange(other.data_, nullptr) : owned_.data();
        other.data_ = nullptr;
    }
    return *this;
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() noexcept {
    if (mapped_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
    mapped_ = false;
    owned_.clear();
}

void MappedFile::prefetch(size_t offset, size_t n) const noexcept {
    if (!mapped_ || offset >= size_) return;
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    size_t begin = offset / page * page;
    size_t end = std::min(size_, offset + n);
    ::madvise(const_cast<uint8_t*>(data_) + begin, end - begin, MADV_WILLNEED);
}

}  // namespace gemma4::detail
