// Memory for secrets: own anonymous pages, locked in RAM when allowed, excluded from core
// dumps, and wiped before they go back to the kernel.
#pragma once

#include <cstddef>
#include <span>

#include "core/result.hpp"

namespace la::crypto {

/// Overwrites n bytes at p with zeros in a way the compiler may not elide.
void secure_zero(void* p, std::size_t n) noexcept;

/// Makes the process non-dumpable (prctl PR_SET_DUMPABLE 0): no core files, no ptrace
/// attach by same-uid processes. Errors: the errno of prctl.
core::result<void> harden_process() noexcept;

/// Move-only owner of page-aligned secret memory (mmap + mlock + MADV_DONTDUMP).
/// Thread: the object is not synchronised; share the bytes only with external locking.
class secure_buffer {
  public:
    /// Maps n zeroed bytes (rounded up to whole pages). mlock failing with EPERM/ENOMEM
    /// (RLIMIT_MEMLOCK) is tolerated and reported by locked(). Errors: invalid_argument for
    /// n == 0, otherwise the errno of mmap/madvise/mlock.
    static core::result<secure_buffer> allocate(std::size_t n) noexcept;

    /// An empty buffer owning nothing (what a moved-from buffer becomes).
    secure_buffer() noexcept = default;
    secure_buffer(secure_buffer&& other) noexcept;
    secure_buffer& operator=(secure_buffer&& other) noexcept;
    secure_buffer(const secure_buffer&) = delete;
    secure_buffer& operator=(const secure_buffer&) = delete;
    /// Zeroizes, unlocks and unmaps the pages.
    ~secure_buffer();

    /// The usable bytes (size() of them; the page tail is zero and also wiped).
    std::span<std::byte> bytes() noexcept { return {data_, size_}; }
    /// Read-only view of the usable bytes.
    std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
    /// Start of the page-aligned storage, or nullptr when empty.
    std::byte* data() noexcept { return data_; }
    /// Read-only start of the storage, or nullptr when empty.
    const std::byte* data() const noexcept { return data_; }
    /// Number of usable bytes requested at allocation.
    std::size_t size() const noexcept { return size_; }
    /// True when mlock succeeded, so the pages cannot be swapped out.
    bool locked() const noexcept { return locked_; }

  private:
    secure_buffer(std::byte* data, std::size_t size, std::size_t mapped, bool locked) noexcept
        : data_(data), size_(size), mapped_(mapped), locked_(locked) {}
    void release() noexcept;

    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t mapped_ = 0;
    bool locked_ = false;
};

}  // namespace la::crypto
