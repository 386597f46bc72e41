#include "kv/kv_cache.h"

#include <fmt/format.h>

#include "gemma4/error.h"

namespace gemma4 {

PagePool& KvPools::pool_for(size_t page_bytes) {
    std::lock_guard lock(mutex_);
    for (auto& p : pools_) {
        if (p->page_bytes() == page_bytes) return *p;
    }
    pools_.push_back(std::make_unique<PagePool>(backend_, page_bytes));
    return *pools_.back();
}

size_t KvPools::bytes_reserved() {
    std::lock_guard lock(mutex_);
    size_t total = 0;
    for (auto& p : pools_) total += p->bytes_reserved();
    return total;
}

KvCache::KvCache(Backend& backend, KvPools& pools, const ModelConfig& config, KvType kv_type, int context_tokens,
                 int page_tokens)
    : backend_(backend), context_tokens_(context_tokens), page_tokens_(page_tokens) {
    if (context_tokens <= 0 || page_tokens <= 0) {
        throw Error(ErrorCode::invalid_argument, fmt::format("KV cache: context {} and page size {} must be positive",
                                                             context_tokens, page_tokens));
    }
    max_pages_ = (context_tokens + page_tokens - 1) / page_tokens;
    layers_.resize(config.n_layers);
    try {
        for (int l = 0; l < config.n_layers; ++l) {
            const LayerConfig& lc = config.layers[l];
            Layer& L = layers_[l];
            L.shape.page_tokens = page_tokens;
            L.shape.n_kv_heads = lc.n_kv_heads;
            L.shape.head_dim = lc.head_dim;
            L.shape.kv_type = kv_type;
            L.window = lc.sliding ? config.sliding_window : 0;
            L.pool = &pools.pool_for(L.shape.page_bytes());
            L.table.assign(max_pages_, nullptr);
            L.device_table = static_cast<void**>(backend_.alloc(sizeof(void*) * max_pages_));
            backend_.upload(L.device_table, L.table.data(), sizeof(void*) * max_pages_);
        }
    } catch (...) {
        for (auto& L : layers_) {
            if (L.device_table) backend_.free(L.device_table);
        }
        throw;
    }
}

KvCache::~KvCache() {
    clear();
    for (auto& L : layers_) backend_.free(L.device_table);
}

void KvCache::prepare(int pos0, int n_tokens) {
    if (pos0 < 0 || n_tokens < 0 || pos0 + static_cast<int64_t>(n_tokens) > context_tokens_) {
        throw Error(ErrorCode::context_overflow, fmt::format("positions {}..{} exceed the context of {} tokens", pos0,
                                                             pos0 + n_tokens - 1, context_tokens_));
    }
    const int first_page = pos0 / page_tokens_;
    const int last_page = n_tokens > 0 ? (pos0 + n_tokens - 1) / page_tokens_ : first_page - 1;
    for (Layer& L : layers_) {
        bool changed = false;
        if (L.window > 0) {
            // Queries at >= pos0 see keys at >= pos0 - window + 1; pages entirely below are dead.
            const int first_visible = pos0 - L.window + 1;
            const int keep_from = first_visible > 0 ? first_visible / page_tokens_ : 0;
            for (int j = L.lowest_kept; j < std::min(keep_from, max_pages_); ++j) {
                if (L.table[j]) {
                    L.pool->release(L.table[j]);
                    L.table[j] = nullptr;
                    changed = true;
                }
            }
            L.lowest_kept = std::max(L.lowest_kept, keep_from);
        }
        for (int j = first_page; j <= last_page; ++j) {
            if (!L.table[j]) {
                L.table[j] = L.pool->acquire();
                changed = true;
            }
        }
        if (changed) backend_.upload(L.device_table, L.table.data(), sizeof(void*) * max_pages_);
    }
}

void KvCache::clear() {
    for (Layer& L : layers_) {
        bool changed = false;
        for (void*& p : L.table) {
            if (p) {
                L.pool->release(p);
                p = nullptr;
                changed = true;
            }
        }
        L.lowest_kept = 0;
        if (changed) backend_.upload(L.device_table, L.table.data(), sizeof(void*) * max_pages_);
    }
}

KvLayerView KvCache::view(int layer) const {
    KvLayerView v = layers_.at(layer).shape;
    v.pages = layers_[layer].device_table;
    return v;
}

int KvCache::pages_held(int layer) const {
    int n = 0;
    for (void* p : layers_.at(layer).table) n += p != nullptr;
    return n;
}

size_t KvCache::bytes_held() const {
    size_t b = 0;
    for (int l = 0; l < static_cast<int>(layers_.size()); ++l) b += pages_held(l) * layers_[l].shape.page_bytes();
    return b;
}

}  // namespace gemma4
