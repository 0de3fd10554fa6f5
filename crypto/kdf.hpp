// Password-based key derivation (PBKDF2-HMAC-SHA256, Argon2id) for keys kept at rest.
// Startup/admin paths only: both functions are deliberately slow and Argon2id allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

#include "core/result.hpp"

namespace la::crypto {

/// Error category for libargon2 return codes (negative ints); messages from argon2_error_message.
const std::error_category& argon2_category() noexcept;

/// PBKDF2-HMAC-SHA256 (RFC 8018) of password and salt, filling out (1..INT_MAX bytes).
/// Iterations are taken as given: callers storing keys use at least 600,000 (OWASP 2023).
/// Errors: std::errc::invalid_argument for 0 iterations, an empty out or a length over
/// INT_MAX; wolfssl_category codes for internal failures (out is then zeroized).
core::result<void> pbkdf2_sha256(std::span<const std::byte> password, std::span<const std::byte> salt,
                                 std::uint32_t iterations, std::span<std::byte> out) noexcept;

/// Argon2id v1.3 (RFC 9106, no secret and no associated data) filling out (>= 4 bytes).
/// m_cost_kib is the memory in KiB; libargon2 wipes its working memory before freeing it.
/// Errors: argon2_category codes (salt under 8 bytes, costs out of range, out of memory);
/// out is zeroized on failure.
core::result<void> argon2id(std::span<const std::byte> password, std::span<const std::byte> salt,
                            std::uint32_t t_cost, std::uint32_t m_cost_kib, std::uint32_t parallelism,
                            std::span<std::byte> out) noexcept;

}  // namespace la::crypto
