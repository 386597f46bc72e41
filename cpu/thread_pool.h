// ThreadPool: a fixed set of workers for fork-join loops (the CPU backend's only parallelism).
//
// parallel_for(n, fn) splits [0, n) into contiguous ranges, runs fn(begin, end) on the workers and
// the calling thread, and returns when all are done. Exceptions from fn are rethrown in the caller.
// One loop at a time per pool (the backend is used by one session thread at a time).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gemma4::cpu {

class ThreadPool {
public:
    /// `threads` workers in total, the caller included (0 = hardware concurrency).
    explicit ThreadPool(int threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    /// Runs fn over [0, n) in chunks of at least `grain` items.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

private:
    void worker_loop(int index);
    void run_share(int index);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable start_cv_;
    std::condition_variable done_cv_;
    const std::function<void(int64_t, int64_t)>* job_ = nullptr;
    int64_t job_n_ = 0;
    int64_t job_chunk_ = 0;
    uint64_t generation_ = 0;
    int pending_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
};

}  // namespace gemma4::cpu
