// KvCache: one session's K/V pages, one page table per layer (STYLE.md §1).
//
// Position p of a layer lives in logical page p / page_tokens at slot p % page_tokens. Full-attention
// layers grow page by page up to the context limit. Sliding layers drop (recycle) every page that no
// future query can see: before a batch starting at pos0, a page whose last position is below
// pos0 - window + 1 goes back to the pool, so a sliding layer holds about window + batch tokens.
// The page tables live in backend memory so kernels can read them.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "kv/page_pool.h"
#include "model/config.h"

namespace gemma4 {

/// Pools shared by the sessions of one model on one backend, one per distinct page size.
class KvPools {
public:
    explicit KvPools(Backend& backend) : backend_(backend) {}
    PagePool& pool_for(size_t page_bytes);
    /// Backend memory the pools hold (pages in use and free ones kept for reuse).
    size_t bytes_reserved();

private:
    Backend& backend_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<PagePool>> pools_;
};

class KvCache {
public:
    static constexpr int kDefaultPageTokens = 256;

    KvCache(Backend& backend, KvPools& pools, const ModelConfig& config, KvType kv_type, int context_tokens,
            int page_tokens = kDefaultPageTokens);
    ~KvCache();
    KvCache(const KvCache&) = delete;
    KvCache& operator=(const KvCache&) = delete;

    /// Makes positions [pos0, pos0 + n_tokens) writable in every layer and recycles sliding-layer
    /// pages below the window of pos0. Throws Error(context_overflow) past the context limit.
    void prepare(int pos0, int n_tokens);
    /// Releases every page (the session starts over).
    void clear();

    KvLayerView view(int layer) const;
    int context_tokens() const { return context_tokens_; }
    int page_tokens() const { return page_tokens_; }
    /// Pages currently held by layer `layer` (for tests and memory reports).
    int pages_held(int layer) const;
    size_t bytes_held() const;

private:
    struct Layer {
        PagePool* pool = nullptr;
        KvLayerView shape;             // without the table pointer
        int window = 0;                // 0 = keeps everything
        std::vector<void*> table;      // host copy, [max_pages]
        void** device_table = nullptr; // backend copy of `table`
        int lowest_kept = 0;           // first logical page not yet recycled
    };

    Backend& backend_;
    int context_tokens_;
    int page_tokens_;
    int max_pages_;
    std::vector<Layer> layers_;
};

}  // namespace gemma4
