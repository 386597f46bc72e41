// PagePool: fixed-size KV pages carved from large backend allocations, recycled through a free list.
//
// One pool per page size and backend, shared by every session of a model (thread-safe). Memory is
// taken from the backend chunk by chunk as sessions grow, never up front for the whole context, and
// is returned to the backend only when the pool is destroyed.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

namespace gemma4 {

class Backend;

class PagePool {
public:
    PagePool(Backend& backend, size_t page_bytes, size_t chunk_bytes = size_t{32} << 20);
    ~PagePool();
    PagePool(const PagePool&) = delete;
    PagePool& operator=(const PagePool&) = delete;

    /// A page of page_bytes() bytes (contents undefined). Throws Error(out_of_memory).
    void* acquire();
    void release(void* page) noexcept;

    size_t page_bytes() const { return page_bytes_; }
    size_t bytes_reserved() const;  // backend memory held
    size_t pages_in_use() const;

private:
    Backend& backend_;
    size_t page_bytes_;
    size_t pages_per_chunk_;
    mutable std::mutex mutex_;
    std::vector<void*> chunks_;
    std::vector<void*> free_;
    size_t in_use_ = 0;
};

}  // namespace gemma4
