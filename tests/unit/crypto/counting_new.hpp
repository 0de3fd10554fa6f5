// Counts global operator new calls per thread, so tests can assert a path never allocates.
// Stand-in until the shared tests/support allocation counter exists.
#pragma once

#include <cstddef>

namespace la::test {

/// Number of operator new calls made by the current thread since it started.
std::size_t operator_new_calls() noexcept;

/// False in TSan builds: its runtime defines operator new itself, so ours is left out
/// and operator_new_calls() stays 0.
bool operator_new_counted() noexcept;

}  // namespace la::test
