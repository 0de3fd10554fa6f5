// SHA-256 (FIPS 180-4) over wolfCrypt, one-shot and incremental.
#pragma once

#include <array>
#include <cstddef>
#include <span>

namespace la::crypto {

/// A SHA-256 digest.
using sha256_digest = std::array<std::byte, 32>;

/// SHA-256 of data. Allocation-free.
sha256_digest sha256(std::span<const std::byte> data) noexcept;

/// Incremental SHA-256; copying forks the running state (hash a prefix once, finish twice).
/// Thread: one thread at a time per object.
class sha256_hasher {
  public:
    sha256_hasher() noexcept;
    sha256_hasher(const sha256_hasher& other) noexcept;
    sha256_hasher& operator=(const sha256_hasher& other) noexcept;
    ~sha256_hasher();

    /// Absorbs more input.
    void update(std::span<const std::byte> data) noexcept;
    /// Returns the digest of everything absorbed and resets to the empty state.
    sha256_digest finish() noexcept;

  private:
    // Holds a wc_Sha256 (144 bytes in wolfSSL 5.5); size checked by static_assert in the .cpp.
    alignas(16) std::byte state_[192];
};

}  // namespace la::crypto
