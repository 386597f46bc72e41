#include "cpu/thread_pool.h"

#include <algorithm>

namespace gemma4::cpu {

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    start_cv_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run_share(int index) {
    const int64_t begin = static_cast<int64_t>(index) * job_chunk_;
    const int64_t end = std::min(job_n_, begin + job_chunk_);
    if (begin >= end) return;
    try {
        (*job_)(begin, end);
    } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
    }
}

void ThreadPool::worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
        }
        run_share(index);
        {
            std::lock_guard lock(mutex_);
            if (--pending_ == 0) done_cv_.notify_one();
        }
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
    if (n <= 0) return;
    const int64_t max_parts = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
    const int parts = static_cast<int>(std::min<int64_t>(size(), max_parts));
    if (parts == 1) {
        fn(0, n);
        return;
    }
    {
        std::lock_guard lock(mutex_);
        job_ = &fn;
        job_n_ = n;
        job_chunk_ = std::max<int64_t>(grain, (n + size() - 1) / size());
        pending_ = static_cast<int>(workers_.size());
        error_ = nullptr;
        ++generation_;
    }
    start_cv_.notify_all();
    run_share(0);
    std::exception_ptr error;
    {
        std::unique_lock lock(mutex_);
        done_cv_.wait(lock, [&] { return pending_ == 0; });
        job_ = nullptr;
        error = error_;
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace gemma4::cpu
