// Awaitables for io_uring operations. Each suspends the calling coroutine until the
// operation's CQE arrives on the current thread's ring; none allocates.
#pragma once

#include <fcntl.h>
#include <liburing.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <stop_token>
#include <system_error>
#include <type_traits>

#include "core/result.hpp"
#include "io/ring.hpp"

namespace la::io {

/// Per-operation options. Cancel safety: a cancelled or timed-out operation still waits for
/// its own CQE before the awaiting coroutine resumes, so buffers stay valid until then.
/// Trivially destructible on purpose: GCC 12 destroys class-type argument temporaries of a
/// co_await expression twice, which would corrupt a stop_token's shared state.
struct op_options {
    /// Fails the operation with std::errc::timed_out when it has not completed by then.
    std::optional<std::chrono::nanoseconds> timeout{};
    /// Stop requests cancel the operation (std::errc::operation_canceled); must outlive the await.
    /// Thread: request_stop() must run on the ring's thread (post to it from others).
    const std::stop_token* stop = nullptr;
};
static_assert(std::is_trivially_destructible_v<op_options>);

namespace detail {

enum class yields { count, fd, nothing };

// The awaitable behind every operation. `Prep` fills one SQE (user_data is set here).
template <class Prep, yields Yields>
class uring_op {
public:
    using value_type = std::conditional_t<Yields == yields::count, std::size_t,
                                          std::conditional_t<Yields == yields::fd, int, void>>;

    uring_op(op_kind kind, Prep prep, op_options opts) noexcept
        : state_(std::move(prep)), stop_(opts.stop != nullptr ? *opts.stop : std::stop_token{}) {
        state_.kind = static_cast<std::uint8_t>(kind);
        if (opts.timeout) {
            const auto ns = opts.timeout->count() < 0 ? 0 : opts.timeout->count();
            state_.ts.tv_sec = ns / 1'000'000'000;
            state_.ts.tv_nsec = ns % 1'000'000'000;
            state_.has_timeout = true;
            state_.sqes_needed = 2;
        }
    }
    uring_op(const uring_op&) = delete;
    uring_op& operator=(const uring_op&) = delete;

    bool await_ready() noexcept {
        if (stop_.stop_requested()) {
            state_.res = -ECANCELED;
            cancelled_ = true;
            return true;
        }
        return false;
    }

    void await_suspend(std::coroutine_handle<> h) noexcept {
        ring* r = ring::current();
        LA_CHECK(r != nullptr);
        ring_ = r;
        state_.waiter = h;
        state_.prepare = &prepare;
        r->start(&state_);
        if (stop_.stop_possible() && !state_.completed) on_stop_.emplace(stop_, canceller{this});
    }

    core::result<value_type> await_resume() noexcept {
        on_stop_.reset();
        const int res = state_.res;
        if (res < 0) {
            if (res == -ECANCELED && !cancelled_ && state_.has_timeout)
                return core::fail(std::errc::timed_out);
            if (res == -ECANCELED) return core::fail(std::errc::operation_canceled);
            return core::fail_errno(-res);
        }
        if constexpr (Yields == yields::count) return static_cast<std::size_t>(res);
        else if constexpr (Yields == yields::fd) return res;
        else return {};
    }

private:
    struct canceller {
        uring_op* self;
        void operator()() const noexcept {
            self->cancelled_ = true;
            self->ring_->cancel(&self->state_);
        }
    };
    struct state_t : op_state {
        explicit state_t(Prep p) noexcept : prep(std::move(p)) {}
        Prep prep;
        __kernel_timespec ts{};
        bool has_timeout = false;
    };

    static void prepare(op_state* self, ring& r) {
        auto* st = static_cast<state_t*>(self);
        io_uring_sqe* s = r.sqe();
        st->prep(s);
        io_uring_sqe_set_data(s, self);
        if (st->has_timeout) {
            s->flags |= IOSQE_IO_LINK;
            io_uring_sqe* t = r.sqe();
            io_uring_prep_link_timeout(t, &st->ts, 0);
            t->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data(t, nullptr);
        }
    }

    state_t state_;
    std::stop_token stop_;
    std::optional<std::stop_callback<canceller>> on_stop_;
    ring* ring_ = nullptr;
    bool cancelled_ = false;
};

template <yields Y, class Prep>
uring_op<Prep, Y> make_op(op_kind kind, Prep prep, op_options opts) noexcept {
    static_assert(std::is_trivially_destructible_v<Prep>, "see op_options: GCC 12 double-destroys");
    return uring_op<Prep, Y>(kind, std::move(prep), opts);
}

}  // namespace detail

/// Accepts one connection (SOCK_CLOEXEC). Yields the new fd.
inline auto accept(int fd, op_options opts = {}) noexcept {
    return detail::make_op<detail::yields::fd>(
        op_kind::accept,
        [fd](io_uring_sqe* s) { io_uring_prep_accept(s, fd, nullptr, nullptr, SOCK_CLOEXEC); },
        opts);
}

/// Receives up to buf.size() bytes; 0 means the peer closed.
inline auto recv(int fd, std::span<std::byte> buf, op_options opts = {}) noexcept {
    return detail::make_op<detail::yields::count>(
        op_kind::recv,
        [fd, buf](io_uring_sqe* s) { io_uring_prep_recv(s, fd, buf.data(), buf.size(), 0); },
        opts);
}

/// Sends up to buf.size() bytes (MSG_NOSIGNAL); may send fewer.
inline auto send(int fd, std::span<const std::byte> buf, op_options opts = {}) noexcept {
    return detail::make_op<detail::yields::count>(
        op_kind::send,
        [fd, buf](io_uring_sqe* s) {
            io_uring_prep_send(s, fd, buf.data(), buf.size(), MSG_NOSIGNAL);
        },
        opts);
}

/// Reads at `offset` (-1: the file position).
inline auto read(int fd, std::span<std::byte> buf, std::int64_t offset = -1,
                 op_options opts = {}) noexcept {
    return detail::make_op<detail::yields::count>(
        op_kind::read,
        [fd, buf, offset](io_uring_sqe* s) {
            io_uring_prep_read(s, fd, buf.data(), static_cast<unsigned>(buf.size()),
                               static_cast<__u64>(offset));
        },
        opts);
}

/// Writes at `offset` (-1: the file position); may write fewer bytes.
inline auto write(int fd, std::span<const std::byte> buf, std::int64_t offset = -1,
                  op_options opts = {}) noexcept {
    return detail::make_op<detail::yields::count>(
        op_kind::write,
        [fd, buf, offset](io_uring_sqe* s) {
            io_uring_prep_write(s, fd, buf.data(), static_cast<unsigned>(buf.size()),
                                static_cast<__u64>(offset));
        },
        opts);
}

/// Opens `path` relative to `dirfd` (O_CLOEXEC is added). `path` must outlive the await.
inline auto openat(int dirfd, const char* path, int flags, mode_t mode = 0,
                   op_options opts = {}) noexcept {
    return detail::make_op<detail::yields::fd>(
        op_kind::openat,
        [dirfd, path, flags, mode](io_uring_sqe* s) {
            io_uring_prep_openat(s, dirfd, path, flags | O_CLOEXEC, mode);
        },
        opts);
}

/// Closes `fd`.
inline auto close(int fd) noexcept {
    return detail::make_op<detail::yields::nothing>(
        op_kind::close, [fd](io_uring_sqe* s) { io_uring_prep_close(s, fd); }, op_options{});
}

/// Flushes `fd` to stable storage (data and metadata; `data_only` skips metadata).
inline auto fsync(int fd, bool data_only = false, op_options opts = {}) noexcept {
    return detail::make_op<detail::yields::nothing>(
        op_kind::fsync,
        [fd, data_only](io_uring_sqe* s) {
            io_uring_prep_fsync(s, fd, data_only ? IORING_FSYNC_DATASYNC : 0);
        },
        opts);
}

/// Connects a socket. `addr` must outlive the await.
inline auto connect(int fd, const sockaddr* addr, socklen_t len, op_options opts = {}) noexcept {
    return detail::make_op<detail::yields::nothing>(
        op_kind::connect,
        [fd, addr, len](io_uring_sqe* s) { io_uring_prep_connect(s, fd, addr, len); },
        opts);
}

/// Renames `from` to `to` (both relative to their dir fds). Strings must outlive the await.
inline auto renameat(int from_dir, const char* from, int to_dir, const char* to) noexcept {
    return detail::make_op<detail::yields::nothing>(
        op_kind::rename,
        [=](io_uring_sqe* s) { io_uring_prep_renameat(s, from_dir, from, to_dir, to, 0); },
        op_options{});
}

/// Removes `path` (relative to `dirfd`). `path` must outlive the await.
inline auto unlinkat(int dirfd, const char* path) noexcept {
    return detail::make_op<detail::yields::nothing>(
        op_kind::unlink, [dirfd, path](io_uring_sqe* s) { io_uring_prep_unlinkat(s, dirfd, path, 0); },
        op_options{});
}

namespace detail {
// A timer: -ETIME (std::errc::stream_timeout) is its normal completion.
class sleep_op {
public:
    sleep_op(std::chrono::nanoseconds d, const std::stop_token* stop) noexcept
        : inner_(op_kind::timeout, prep{&ts_}, op_options{std::nullopt, stop}) {
        const auto ns = d.count() < 0 ? 0 : d.count();
        ts_.tv_sec = ns / 1'000'000'000;
        ts_.tv_nsec = ns % 1'000'000'000;
    }
    bool await_ready() noexcept { return inner_.await_ready(); }
    void await_suspend(std::coroutine_handle<> h) noexcept { inner_.await_suspend(h); }
    core::result<void> await_resume() noexcept {
        auto r = inner_.await_resume();
        if (!r && r.error() == std::errc::stream_timeout) return {};
        if (!r) return core::fail(r.error());
        return {};
    }

private:
    struct prep {
        __kernel_timespec* ts;
        void operator()(io_uring_sqe* s) const noexcept { io_uring_prep_timeout(s, ts, 0, 0); }
    };
    __kernel_timespec ts_{};
    uring_op<prep, yields::nothing> inner_;
};
}  // namespace detail

/// Suspends for `d` (a kernel timer on the ring). Cancelled by `*stop` (must outlive the await).
inline detail::sleep_op sleep_for(std::chrono::nanoseconds d,
                                  const std::stop_token* stop = nullptr) noexcept {
    return detail::sleep_op(d, stop);
}

}  // namespace la::io
