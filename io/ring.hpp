// io::ring: one io_uring per thread, the loop that drives every coroutine on that thread.
#pragma once

#include <liburing.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/result.hpp"
#include "io/task.hpp"

namespace la::io {

class ring;

/// The state the kernel refers to through user_data. Owned by an awaitable that lives in a
/// coroutine frame until the operation's own CQE has arrived, so it never dangles.
struct op_state {
    /// Fills the SQE(s) for this operation; called when there is room in the SQ and CQ.
    void (*prepare)(op_state* self, ring& r) = nullptr;
    std::coroutine_handle<> waiter{};
    std::int32_t res = 0;
    std::uint32_t cqe_flags = 0;
    std::uint8_t sqes_needed = 1;  ///< SQEs this op fills (2 with a linked timeout); it yields one CQE
    std::uint8_t kind = 0;         ///< an io::op_kind, for fault injection
    bool submitted = false;
    bool completed = false;
    op_state* next_pending = nullptr;
};

/// Operation kinds, so tests can make the Nth operation of a kind fail.
enum class op_kind : std::uint8_t {
    other = 0, accept, recv, send, read, write, openat, close, fsync, connect, timeout, rename,
    unlink, count_
};

/// Test hook: the Nth (1-based) operation of `kind` completes with -error instead of running.
/// One plan per ring; not for production use.
struct fault_plan {
    op_kind kind = op_kind::other;
    std::uint64_t nth = 0;     ///< 0 = disarmed
    int error = 0;             ///< positive errno, e.g. EIO, ENOSPC
    bool repeat = false;       ///< keep failing every later op of that kind too
    std::uint64_t seen = 0;
};

/// Cross-thread message to a ring: a handle to resume on the ring's own thread.
struct posted_item {
    std::coroutine_handle<> handle{};
    posted_item* next = nullptr;
};

/// One io_uring and its run loop. Operations beyond the CQ's capacity are parked and started
/// FIFO as completions free room: size the CQ above the number of long-lived operations (one
/// recv per connection), or a parked op could wait behind reads that never complete. Thread: every member except post() runs on the thread that
/// created the ring (SINGLE_ISSUER). Lifetime: outlives every coroutine it runs.
class ring {
public:
    struct options {
        unsigned sq_entries = 256;
        unsigned cq_multiplier = 8;
    };

    /// Creates a ring, falling back from DEFER_TASKRUN to COOP_TASKRUN to none on -EINVAL.
    static core::result<std::unique_ptr<ring>> create(options opts);
    static core::result<std::unique_ptr<ring>> create() { return create(options{}); }
    ~ring();
    ring(const ring&) = delete;
    ring& operator=(const ring&) = delete;

    /// The ring running on this thread, or null.
    static ring* current() noexcept;

    /// Runs the loop until `root` completes, then returns its value. Spawned work must be joined
    /// by `root` (see task_scope).
    template <class T>
    T run(task<T> root);

    /// Drives the loop until no task is ready and no operation is in flight (tests).
    void run_until_empty();

    /// Queues a coroutine to resume on this ring's next turn. Thread: ring thread only.
    void schedule(std::coroutine_handle<> h);

    /// Resumes `item->handle` on this ring's thread. Thread: any; `item` must stay alive until
    /// the handle is resumed (it lives in the awaiting frame).
    void post(posted_item* item) noexcept;

    /// Submits (or parks until there is room) an operation whose awaiter has suspended.
    void start(op_state* op) noexcept;
    /// Asks the kernel to cancel `op`; its CQE still arrives (with -ECANCELED or its result).
    void cancel(op_state* op) noexcept;

    /// An SQE with room guaranteed by start(); only valid inside op_state::prepare.
    io_uring_sqe* sqe() noexcept;

    unsigned in_flight() const noexcept { return in_flight_; }
    unsigned cq_capacity() const noexcept { return cq_entries_; }
    /// The setup flags that the kernel accepted (for diagnostics).
    unsigned setup_flags() const noexcept { return setup_flags_; }

    /// Test hook, see fault_plan.
    void set_fault_plan(const fault_plan& plan) noexcept { fault_ = plan; }
    /// Test hook: the plan with its `seen` count (did the Nth operation happen?).
    const fault_plan& fault_state() const noexcept { return fault_; }

private:
    ring() = default;
    void turn(const bool* done);  ///< one loop iteration; returns early once *done
    void run_ready();
    void flush_pending();
    void reap();
    void drain_posted();
    void arm_wakeup();
    bool fault_hits(op_state* op) noexcept;
    void submit_cancel(op_state* op) noexcept;

    io_uring uring_{};
    bool uring_ok_ = false;
    unsigned setup_flags_ = 0;
    unsigned cq_entries_ = 0;
    unsigned in_flight_ = 0;
    std::vector<std::coroutine_handle<>> ready_;
    std::vector<std::coroutine_handle<>> running_;
    std::vector<op_state*> cancels_;  // cancels waiting for room in the SQ/CQ
    op_state* pending_head_ = nullptr;
    op_state* pending_tail_ = nullptr;

    // post(): other threads push here and poke the eventfd; the ring drains it.
    int wake_fd_ = -1;
    std::uint64_t wake_buf_ = 0;
    op_state wake_op_{};
    bool wake_armed_ = false;
    std::mutex posted_mu_;
    posted_item* posted_head_ = nullptr;
    std::atomic<bool> wake_pending_{false};

    fault_plan fault_{};
    friend struct root_runner;
};

namespace detail {
// Runs a task to completion as a detached frame and records that it finished.
struct root_task {
    struct promise_type {
        bool* done = nullptr;
        root_task get_return_object() noexcept {
            return root_task{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        std::suspend_always final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
    };
    std::coroutine_handle<promise_type> handle;
};

template <class T>
root_task run_root(task<T> t, std::optional<T>* out, bool* done) {
    out->emplace(co_await std::move(t));
    *done = true;
}
inline root_task run_root_void(task<void> t, bool* done) {
    co_await std::move(t);
    *done = true;
}
}  // namespace detail

template <class T>
T ring::run(task<T> root) {
    bool done = false;
    if constexpr (std::is_void_v<T>) {
        auto r = detail::run_root_void(std::move(root), &done);
        schedule(r.handle);
        while (!done) turn(&done);
        r.handle.destroy();
    } else {
        std::optional<T> value;
        auto r = detail::run_root(std::move(root), &value, &done);
        schedule(r.handle);
        while (!done) turn(&done);
        r.handle.destroy();
        return std::move(*value);
    }
}

}  // namespace la::io
