// task<T>: a lazy, move-only coroutine whose awaiter resumes the caller by symmetric transfer.
#pragma once

#include <coroutine>
#include <cstdlib>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "core/result.hpp"

namespace la::io {

template <class T = void>
class task;

namespace detail {

// Resumes whoever awaited the task; a tail call, so chains of immediate completions
// do not grow the stack (see TaskTest.MillionImmediateAwaitsDoNotOverflow).
struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
        return h.promise().continuation_;
    }
    void await_resume() const noexcept {}
};

struct promise_base {
    std::coroutine_handle<> continuation_ = std::noop_coroutine();
    std::suspend_always initial_suspend() const noexcept { return {}; }
    final_awaiter final_suspend() const noexcept { return {}; }
    // Errors are values: an exception escaping a task is a bug.
    [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
};

template <class T>
struct promise final : promise_base {
    alignas(T) unsigned char storage_[sizeof(T)];
    bool has_value_ = false;

    task<T> get_return_object() noexcept;
    template <class U>
    void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        ::new (static_cast<void*>(storage_)) T(std::forward<U>(v));
        has_value_ = true;
    }
    T take() noexcept { return std::move(*std::launder(reinterpret_cast<T*>(storage_))); }
    ~promise() {
        if (has_value_) std::launder(reinterpret_cast<T*>(storage_))->~T();
    }
};

template <>
struct promise<void> final : promise_base {
    task<void> get_return_object() noexcept;
    void return_void() const noexcept {}
    void take() const noexcept {}
};

}  // namespace detail

/// A lazily started coroutine producing a T. Owns its frame; move-only.
/// Thread: resumed on the thread that awaits it.
template <class T>
class [[nodiscard]] task {
public:
    using promise_type = detail::promise<T>;
    using handle_type = std::coroutine_handle<promise_type>;

    task() noexcept = default;
    explicit task(handle_type h) noexcept : handle_(h) {}
    task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            destroy();
            handle_ = std::exchange(other.handle_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { destroy(); }

    bool valid() const noexcept { return static_cast<bool>(handle_); }

    struct awaiter {
        handle_type handle_;
        bool await_ready() const noexcept { return !handle_ || handle_.done(); }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
            handle_.promise().continuation_ = caller;
            return handle_;
        }
        T await_resume() noexcept { return handle_.promise().take(); }
    };
    /// Starts the task and suspends the caller until it completes.
    awaiter operator co_await() && noexcept {
        LA_CHECK(handle_);  // awaiting a moved-from or default task is a bug
        return awaiter{handle_};
    }

    /// Releases ownership of the frame (used by the executor to run detached tasks).
    handle_type release() noexcept { return std::exchange(handle_, {}); }

private:
    void destroy() noexcept {
        if (handle_) handle_.destroy();
    }
    handle_type handle_{};
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace la::io
