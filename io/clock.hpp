// Injectable wall clock: application timers and token time checks read it, tests drive it.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace la::io {

/// Source of wall-clock time in Unix seconds. Thread: implementations must be thread-safe.
class clock {
public:
    virtual ~clock() = default;
    /// Current time, seconds since the Unix epoch.
    virtual std::int64_t now_unix() const noexcept = 0;
};

/// The real wall clock (CLOCK_REALTIME).
class system_clock final : public clock {
public:
    std::int64_t now_unix() const noexcept override {
        timespec ts{};
        ::clock_gettime(CLOCK_REALTIME, &ts);
        return static_cast<std::int64_t>(ts.tv_sec);
    }
};

/// A clock that moves only when told to: tests set and advance it.
class manual_clock final : public clock {
public:
    explicit manual_clock(std::int64_t start) noexcept : now_(start) {}
    std::int64_t now_unix() const noexcept override { return now_.load(std::memory_order_relaxed); }
    void set(std::int64_t t) noexcept { now_.store(t, std::memory_order_relaxed); }
    void advance(std::int64_t seconds) noexcept { now_.fetch_add(seconds, std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> now_;
};

}  // namespace la::io
