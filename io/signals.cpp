#include "io/signals.hpp"

#include <sys/signalfd.h>

#include <cerrno>
#include <span>

namespace la::io {

core::result<signal_set> signal_set::open(std::initializer_list<int> signals) {
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : signals) sigaddset(&mask, s);
    if (int err = ::pthread_sigmask(SIG_BLOCK, &mask, nullptr); err != 0) return core::fail_errno(err);
    // Blocking: io_uring polls it (a non-blocking fd would complete with -EAGAIN).
    int fd = ::signalfd(-1, &mask, SFD_CLOEXEC);
    if (fd < 0) return core::fail_errno(errno);
    signal_set set;
    set.fd_.reset(fd);
    return set;
}

task<core::result<int>> signal_set::next(const std::stop_token* stop) {
    signalfd_siginfo info{};
    auto bytes = std::as_writable_bytes(std::span(&info, 1));
    for (;;) {
        auto n = co_await read(fd_.get(), bytes, -1, op_options{std::nullopt, stop});
        if (!n) co_return core::fail(n.error());
        if (*n == sizeof info) co_return static_cast<int>(info.ssi_signo);
    }
}

}  // namespace la::io
