// Runs blocking work on a dedicated thread and resumes the awaiting coroutine on its own ring.
// The TPM thread is one of these: every TPM call goes through offload(), never a ring thread.
#pragma once

#include <condition_variable>
#include <coroutine>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "core/result.hpp"
#include "io/ring.hpp"

namespace la::io {

/// A thread that runs submitted jobs one at a time, in order.
/// Thread: submit from any thread; jobs run on the worker thread.
class worker_thread {
public:
    /// A unit of work; lives in the awaiting coroutine frame until it has run.
    struct job {
        void (*run)(job* self) = nullptr;
        job* next = nullptr;
    };

    explicit worker_thread(std::string name = "la-worker");
    ~worker_thread();  ///< runs the jobs already queued, then joins
    worker_thread(const worker_thread&) = delete;
    worker_thread& operator=(const worker_thread&) = delete;

    void submit(job* j);
    /// The worker's thread id (tests check that work ran there).
    std::thread::id id() const noexcept { return thread_.get_id(); }

private:
    void loop();
    std::mutex mu_;
    std::condition_variable cv_;
    job* head_ = nullptr;
    job* tail_ = nullptr;
    bool stopping_ = false;
    std::string name_;
    std::thread thread_;
};

namespace detail {
template <class Fn>
class offload_op : worker_thread::job {
public:
    using value_type = std::invoke_result_t<Fn&>;

    offload_op(worker_thread& w, Fn fn) : worker_(w), fn_(std::move(fn)) {
        this->run = &execute;
    }
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        ring_ = ring::current();
        LA_CHECK(ring_ != nullptr);
        item_.handle = h;
        worker_.submit(this);
    }
    value_type await_resume() {
        if constexpr (!std::is_void_v<value_type>) return std::move(*value_);
    }

private:
    static void execute(worker_thread::job* j) {
        auto* self = static_cast<offload_op*>(j);
        if constexpr (std::is_void_v<value_type>) self->fn_();
        else self->value_.emplace(self->fn_());
        self->ring_->post(&self->item_);  // the resume happens on the ring's thread
    }

    worker_thread& worker_;
    Fn fn_;
    ring* ring_ = nullptr;
    posted_item item_{};
    std::optional<std::conditional_t<std::is_void_v<value_type>, int, value_type>> value_;
};
}  // namespace detail

/// Runs `fn()` on `worker` and resumes the caller on its own ring with fn's result.
/// Cancel safety: not cancellable; a hung `fn` keeps the caller suspended (bound it with a
/// timeout inside fn, as the TPM layer does).
/// `fn` must be trivially destructible (capture by reference or pointer): GCC 12 destroys
/// argument temporaries of a co_await expression twice.
template <class Fn>
auto offload(worker_thread& worker, Fn fn) {
    static_assert(std::is_trivially_destructible_v<Fn>, "capture by reference (GCC 12 bug)");
    return detail::offload_op<Fn>(worker, std::move(fn));
}

}  // namespace la::io
