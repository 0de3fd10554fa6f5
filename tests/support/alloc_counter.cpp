#include "tests/support/alloc_counter.hpp"

#include <cstdlib>
#include <new>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LA_TEST_SANITIZER_HOOKS 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LA_TEST_SANITIZER_HOOKS 1
#endif

namespace {
// initial-exec: a plain %fs-relative access, so counting never allocates or recurses.
__attribute__((tls_model("initial-exec"))) thread_local std::size_t t_allocations = 0;
}  // namespace

namespace la::test {
std::size_t thread_allocations() noexcept { return t_allocations; }
}  // namespace la::test

#ifdef LA_TEST_SANITIZER_HOOKS

#include <sanitizer/allocator_interface.h>

// The sanitizer runtime owns malloc and operator new; its hooks see every allocation.
namespace {
void on_malloc(const volatile void*, std::size_t) { ++t_allocations; }
void on_free(const volatile void*) {}
const int hooks_installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}  // namespace

#else

extern "C" {
void* __libc_malloc(std::size_t n);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t n);
void* __libc_memalign(std::size_t align, std::size_t n);
void __libc_free(void* p);

void* malloc(std::size_t n) noexcept {
    ++t_allocations;
    return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) noexcept {
    ++t_allocations;
    return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) noexcept {
    ++t_allocations;
    return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) noexcept {
    ++t_allocations;
    return __libc_memalign(align, n);
}
void* memalign(std::size_t align, std::size_t n) noexcept {
    ++t_allocations;
    return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) noexcept {
    ++t_allocations;
    void* p = __libc_memalign(align, n);
    if (p == nullptr) return 12;  // ENOMEM
    *out = p;
    return 0;
}
void free(void* p) noexcept { __libc_free(p); }
}

namespace {
void* counted_new(std::size_t n) {
    ++t_allocations;
    void* p = __libc_malloc(n == 0 ? 1 : n);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}
void* counted_new_aligned(std::size_t n, std::align_val_t a) {
    ++t_allocations;
    void* p = __libc_memalign(static_cast<std::size_t>(a), n == 0 ? 1 : n);
    if (p == nullptr) throw std::bad_alloc();
    return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    ++t_allocations;
    return __libc_malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    ++t_allocations;
    return __libc_malloc(n == 0 ? 1 : n);
}
void* operator new(std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { __libc_free(p); }

#endif
