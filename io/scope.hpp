// task_scope: where detached work is spawned, and joined before the loop ends.
#pragma once

#include <coroutine>
#include <cstddef>

#include "core/result.hpp"
#include "io/ring.hpp"
#include "io/task.hpp"

namespace la::io {

/// Owns spawned tasks until they finish; join() waits for all of them, so no frame outlives
/// the loop. Thread: ring thread only.
class task_scope {
public:
    task_scope() = default;
    task_scope(const task_scope&) = delete;
    task_scope& operator=(const task_scope&) = delete;
    ~task_scope() { LA_CHECK(active_ == 0); }

    /// Starts `t` on the current ring's next turn.
    void spawn(task<void> t) {
        ++active_;
        ++spawned_;
        auto d = run_detached(std::move(t), this);
        ring* r = ring::current();
        LA_CHECK(r != nullptr);
        r->schedule(d.handle);
    }

    /// Completes once every spawned task has finished.
    auto join() noexcept {
        struct awaiter {
            task_scope* scope;
            bool await_ready() const noexcept { return scope->active_ == 0; }
            void await_suspend(std::coroutine_handle<> h) noexcept { scope->joiner_ = h; }
            void await_resume() const noexcept {}
        };
        return awaiter{this};
    }

    std::size_t active() const noexcept { return active_; }
    std::size_t spawned() const noexcept { return spawned_; }

private:
    struct detached {
        struct promise_type {
            detached get_return_object() noexcept {
                return {std::coroutine_handle<promise_type>::from_promise(*this)};
            }
            std::suspend_always initial_suspend() const noexcept { return {}; }
            std::suspend_never final_suspend() const noexcept { return {}; }
            void return_void() const noexcept {}
            [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
        };
        std::coroutine_handle<promise_type> handle;
    };

    static detached run_detached(task<void> t, task_scope* scope) {
        co_await std::move(t);
        scope->finished();
    }

    void finished() noexcept {
        if (--active_ == 0 && joiner_) {
            ring::current()->schedule(std::exchange(joiner_, {}));
        }
    }

    std::size_t active_ = 0;
    std::size_t spawned_ = 0;
    std::coroutine_handle<> joiner_{};
};

}  // namespace la::io
