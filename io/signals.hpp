// Signals as data: blocked process-wide and read from a signalfd on the ring.
#pragma once

#include <signal.h>

#include <initializer_list>

#include "core/result.hpp"
#include "io/fd.hpp"
#include "io/ops.hpp"
#include "io/task.hpp"

namespace la::io {

/// A signalfd for a set of signals. Create it on the main thread before starting any other
/// thread, so every thread inherits the blocked mask and no handler ever runs.
class signal_set {
public:
    /// Blocks `signals` in the calling thread and opens a signalfd for them.
    static core::result<signal_set> open(std::initializer_list<int> signals);

    /// Completes with the next signal number. Cancel safety: cancellable by `*stop`; a
    /// cancelled wait consumes no signal.
    task<core::result<int>> next(const std::stop_token* stop = nullptr);

    int fd() const noexcept { return fd_.get(); }

private:
    unique_fd fd_;
};

}  // namespace la::io
