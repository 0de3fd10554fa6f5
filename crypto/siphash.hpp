// Keyed SipHash-2-4 (128-bit output): the validation-cache key, ~10x cheaper than SHA-256.
#pragma once

#include <array>
#include <cstddef>
#include <span>

namespace la::crypto {

/// A 128-bit SipHash key; keep it process-secret so cache keys cannot be predicted.
struct siphash_key {
    std::array<std::byte, 16> bytes{};
    /// A fresh key from getrandom(2); aborts only if the kernel CSPRNG is unusable.
    static siphash_key random() noexcept;
};

/// SipHash-2-4 with 16-byte output of data under key. Allocation-free. Thread: safe.
std::array<std::byte, 16> siphash128(const siphash_key& key,
                                     std::span<const std::byte> data) noexcept;

}  // namespace la::crypto
