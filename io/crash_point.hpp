// Named crash points: a test arms one (LA_CRASH_POINT=name[:N] in the environment, or
// arm_crash_point()) and the process kills itself with SIGKILL the Nth time it gets there, as a
// power cut or kill -9 would. io_uring is invisible to strace and seccomp, so this is how tests
// crash between two steps.
#pragma once

#include <string_view>

namespace la::io {

/// Dies by SIGKILL if `name` is the armed point and this is its Nth pass. Cheap when none is
/// armed. Thread: any (passes are counted atomically); allocation-free.
void crash_point(std::string_view name) noexcept;

/// Arms "name" (first pass) or "name:N" (Nth pass, N >= 1) and resets the pass count; empty
/// disarms. A suffix that is not a positive decimal stays part of the name. Names longer than
/// 63 bytes are truncated. Thread: call before starting threads (tests, start-up).
void arm_crash_point(std::string_view spec) noexcept;

}  // namespace la::io
