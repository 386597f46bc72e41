#include "kv/page_pool.h"

#include <algorithm>

#include "backend/backend.h"

namespace gemma4 {

PagePool::PagePool(Backend& backend, size_t page_bytes, size_t chunk_bytes)
    : backend_(backend), page_bytes_(page_bytes), pages_per_chunk_(std::max<size_t>(1, chunk_bytes / page_bytes)) {}

PagePool::~PagePool() {
    for (void* c : chunks_) backend_.free(c);
}

void* PagePool::acquire() {
    std::lock_guard lock(mutex_);
    if (free_.empty()) {
        auto* chunk = static_cast<char*>(backend_.alloc(page_bytes_ * pages_per_chunk_));
        chunks_.push_back(chunk);
        for (size_t i = pages_per_chunk_; i-- > 0;) free_.push_back(chunk + i * page_bytes_);
    }
    void* p = free_.back();
    free_.pop_back();
    ++in_use_;
    return p;
}

void PagePool::release(void* page) noexcept {
    if (!page) return;
    std::lock_guard lock(mutex_);
    free_.push_back(page);
    --in_use_;
}

size_t PagePool::bytes_reserved() const {
    std::lock_guard lock(mutex_);
    return chunks_.size() * pages_per_chunk_ * page_bytes_;
}

size_t PagePool::pages_in_use() const {
    std::lock_guard lock(mutex_);
    return in_use_;
}

}  // namespace gemma4
