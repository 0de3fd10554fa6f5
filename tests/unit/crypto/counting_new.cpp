// Replaces the global allocation functions for the whole test binary to count calls.
#include "tests/unit/crypto/counting_new.hpp"

#include <cstdlib>
#include <new>

#if defined(__SANITIZE_THREAD__)
#define LA_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LA_TEST_TSAN 1
#endif
#endif

#ifndef LA_TEST_TSAN

namespace {
thread_local std::size_t new_calls = 0;

void* counted_alloc(std::size_t n) {
    ++new_calls;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}

void* counted_aligned_alloc(std::size_t n, std::align_val_t al) {
    ++new_calls;
    const auto a = static_cast<std::size_t>(al);
    const std::size_t rounded = (n + a - 1) / a * a;
    if (void* p = std::aligned_alloc(a, rounded == 0 ? a : rounded)) return p;
    throw std::bad_alloc();
}
}  // namespace

namespace la::test {
std::size_t operator_new_calls() noexcept { return new_calls; }
bool operator_new_counted() noexcept { return true; }
}  // namespace la::test

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    ++new_calls;
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    ++new_calls;
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new(std::size_t n, std::align_val_t al) { return counted_aligned_alloc(n, al); }
void* operator new[](std::size_t n, std::align_val_t al) { return counted_aligned_alloc(n, al); }

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

#else  // LA_TEST_TSAN

namespace la::test {
std::size_t operator_new_calls() noexcept { return 0; }
bool operator_new_counted() noexcept { return false; }
}  // namespace la::test

#endif  // LA_TEST_TSAN
