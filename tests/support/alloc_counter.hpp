// Counts heap allocations per thread: replaced operator new/delete and malloc-family
// interposition (via glibc's __libc_* entry points), or sanitizer malloc hooks under
// ASan/TSan where the sanitizer owns malloc. Link alloc_counter.cpp into the test binary.
#pragma once

#include <cstddef>

namespace la::test {

/// Total allocations made so far by the calling thread (new, new[], malloc, calloc, realloc, aligned).
std::size_t thread_allocations() noexcept;

/// Counts the calling thread's allocations from construction on. Thread: use on one thread.
class alloc_scope {
public:
    alloc_scope() noexcept : start_(thread_allocations()) {}
    /// Allocations by this thread since the scope began.
    std::size_t count() const noexcept { return thread_allocations() - start_; }

private:
    std::size_t start_;
};

}  // namespace la::test
