// Named crash points: a test arms one (LA_CRASH_POINT=name in the environment, or arm()) and the
// process kills itself with SIGKILL when it gets there, as a power cut or kill -9 would.
// io_uring is invisible to strace and seccomp, so this is how tests crash between two steps.
#pragma once

#include <string_view>

namespace la::io {

/// Dies by SIGKILL if `name` is the armed crash point. Cheap when none is armed.
void crash_point(std::string_view name) noexcept;

/// Arms `name` (empty disarms). Thread: call before starting threads (tests, start-up).
void arm_crash_point(std::string_view name) noexcept;

}  // namespace la::io
