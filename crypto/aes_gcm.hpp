// AES-256-GCM with a key schedule expanded once and kept in locked, non-dumpable memory.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

#include "core/result.hpp"
#include "crypto/secure_buffer.hpp"

namespace la::crypto {

/// An AES-256-GCM key ready for use: the wolfSSL Aes context (round keys and GHASH table,
/// both secret) lives in a secure_buffer. Move-only.
/// Thread: not shared between threads concurrently (wolfCrypt writes into the context).
class aes256_gcm_key {
  public:
    /// Expands a 32-byte key. Errors: core::errc::key_invalid for a wrong length,
    /// secure_buffer::allocate errors, wolfssl_category codes.
    static core::result<aes256_gcm_key> create(std::span<const std::byte> key32) noexcept;

    aes256_gcm_key(aes256_gcm_key&&) noexcept = default;
    aes256_gcm_key& operator=(aes256_gcm_key&& other) noexcept;
    ~aes256_gcm_key();

    /// Authenticates aad + ciphertext against tag and decrypts into plaintext_out
    /// (size >= ciphertext size). Allocation-free.
    /// Errors: core::errc::auth_failed on a tag mismatch (plaintext_out is then zeroized);
    /// std::errc::no_buffer_space when plaintext_out is too small; invalid_argument for
    /// inputs over 4 GiB; wolfssl_category codes for internal failures.
    core::result<void> decrypt(std::span<const std::byte, 12> iv, std::span<const std::byte> aad,
                               std::span<const std::byte> ciphertext,
                               std::span<const std::byte, 16> tag,
                               std::span<std::byte> plaintext_out) const noexcept;

    /// Encrypts plaintext into ciphertext_out (size >= plaintext size) and writes the tag.
    /// The caller guarantees a unique iv per key. Errors: as decrypt, minus auth_failed.
    core::result<void> encrypt(std::span<const std::byte, 12> iv, std::span<const std::byte> aad,
                               std::span<const std::byte> plaintext,
                               std::span<std::byte, 16> tag_out,
                               std::span<std::byte> ciphertext_out) const noexcept;

  private:
    explicit aes256_gcm_key(secure_buffer ctx) noexcept : ctx_(std::move(ctx)) {}

    // Holds a wolfSSL Aes; mutable because wolfCrypt's GCM calls take a non-const context.
    mutable secure_buffer ctx_;
};

}  // namespace la::crypto
