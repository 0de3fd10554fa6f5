// Ed25519 (RFC 8032) signatures: verification on the hot path, signing for tests and tools.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <utility>

#include "core/result.hpp"
#include "crypto/secure_buffer.hpp"

namespace la::crypto {

/// A validated Ed25519 public key; a small copyable value (the 32 raw bytes).
/// Thread: verify may run concurrently on the same object (it only reads it).
class ed25519_public_key {
  public:
    /// Imports a raw 32-byte key, checking that it decodes to a curve point.
    /// Errors: core::errc::key_invalid for a wrong length or an invalid point.
    static core::result<ed25519_public_key> import(std::span<const std::byte> raw32) noexcept;

    /// True when signature64 is a valid Ed25519 signature of message under this key;
    /// false for a bad signature or a signature that is not 64 bytes. Allocation-free.
    bool verify(std::span<const std::byte> message,
                std::span<const std::byte> signature64) const noexcept;

    /// The raw encoded key.
    const std::array<std::byte, 32>& raw() const noexcept { return raw_; }

  private:
    explicit ed25519_public_key(const std::array<std::byte, 32>& raw) noexcept : raw_(raw) {}

    // wolfSSL here has WOLFSSL_ED25519_PERSISTENT_SHA: its ed25519_key carries a SHA-512
    // state that verify mutates. So instead of sharing one imported key (a data race across
    // threads), verify re-imports these validated bytes into a stack key as "trusted",
    // which costs a copy and a SHA-512 init, no allocation and no point decoding.
    std::array<std::byte, 32> raw_;
};

/// An Ed25519 private key in locked, non-dumpable memory. For tests and tools.
/// Thread: not shared between threads concurrently (signing mutates wolfSSL's key state).
class ed25519_private_key {
  public:
    /// A fresh key from wolfCrypt's DRBG. Errors: wolfssl_category codes.
    static core::result<ed25519_private_key> generate() noexcept;

    ed25519_private_key(ed25519_private_key&&) noexcept = default;
    ed25519_private_key& operator=(ed25519_private_key&& other) noexcept;
    ~ed25519_private_key();

    /// Signs msg into sig (deterministic, RFC 8032). Errors: wolfssl_category codes.
    core::result<void> sign(std::span<const std::byte> msg,
                            std::span<std::byte, 64> sig) const noexcept;

    /// The matching raw public key.
    std::array<std::byte, 32> public_bytes() const noexcept;

  private:
    explicit ed25519_private_key(secure_buffer key) noexcept : key_(std::move(key)) {}

    // Holds a wolfSSL ed25519_key; mutable because wolfCrypt's sign takes a non-const key.
    mutable secure_buffer key_;
};

}  // namespace la::crypto
