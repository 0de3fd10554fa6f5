#include "crypto/secure_buffer.hpp"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

namespace la::crypto {
namespace {
// Raw syscalls: sanitizer runtimes intercept mlock/munlock as no-ops that report success,
// which would make locked() lie in ASan builds.
int lock_pages(void* p, std::size_t n) noexcept {
    return static_cast<int>(::syscall(SYS_mlock, p, n));
}
void unlock_pages(void* p, std::size_t n) noexcept { ::syscall(SYS_munlock, p, n); }
}  // namespace

void secure_zero(void* p, std::size_t n) noexcept {
    if (p != nullptr && n != 0) ::explicit_bzero(p, n);
}

core::result<void> harden_process() noexcept {
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return core::fail_errno(errno);
    return {};
}

core::result<secure_buffer> secure_buffer::allocate(std::size_t n) noexcept {
    if (n == 0) return core::fail(std::errc::invalid_argument);
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    if (n > SIZE_MAX - page) return core::fail(std::errc::not_enough_memory);
    const std::size_t mapped = (n + page - 1) / page * page;

    void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return core::fail_errno(errno);
    // From here the object owns the mapping, so every early return unmaps it.
    secure_buffer buf(static_cast<std::byte*>(p), n, mapped, false);

    if (::madvise(p, mapped, MADV_DONTDUMP) != 0) return core::fail_errno(errno);
    if (lock_pages(p, mapped) == 0) {
        buf.locked_ = true;
    } else if (errno != EPERM && errno != ENOMEM) {
        return core::fail_errno(errno);
    }
    // A locked-out process (RLIMIT_MEMLOCK) still gets DONTDUMP and wipe-on-free.
    return buf;
}

secure_buffer::secure_buffer(secure_buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

secure_buffer& secure_buffer::operator=(secure_buffer&& other) noexcept {
    if (this != &other) {
        release();
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        mapped_ = std::exchange(other.mapped_, 0);
        locked_ = std::exchange(other.locked_, false);
    }
    return *this;
}

secure_buffer::~secure_buffer() { release(); }

void secure_buffer::release() noexcept {
    if (data_ == nullptr) return;
    secure_zero(data_, mapped_);
    if (locked_) unlock_pages(data_, mapped_);
    ::munmap(data_, mapped_);
    data_ = nullptr;
    size_ = 0;
    mapped_ = 0;
    locked_ = false;
}

}  // namespace la::crypto
