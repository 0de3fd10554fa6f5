// RSA over wolfCrypt: OAEP(SHA-256) encryption and PSS(SHA-256) signatures, the two schemes the
// agent key uses (the TPM-resident key in tpm/agent_key.hpp speaks the same formats).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "crypto/secure_buffer.hpp"

namespace la::crypto {

/// Smallest modulus accepted anywhere in this module (generate, from_der, from components).
inline constexpr unsigned rsa_min_bits = 2048;
/// Largest modulus accepted (the wolfSSL build's RSA_MAX_SIZE).
inline constexpr unsigned rsa_max_bits = 4096;
/// PSS salt length used by sign_pss_sha256 and required by verify_pss_sha256 (= SHA-256 size).
inline constexpr std::size_t rsa_pss_salt_size = 32;

/// An RSA public key held as its canonical SubjectPublicKeyInfo DER; a copyable value.
/// Thread: const members may run concurrently (each call decodes into its own wolfSSL key).
class rsa_public_key {
  public:
    /// Imports a SubjectPublicKeyInfo DER (rsaEncryption). Errors: core::errc::key_invalid for
    /// malformed DER, trailing bytes, another key type, or a modulus outside rsa_min/max_bits.
    static core::result<rsa_public_key> from_der(std::span<const std::byte> spki_der);

    /// Builds a key from a big-endian modulus and a public exponent (0 means 65537, as in a
    /// TPM public area). Errors: core::errc::key_invalid as for from_der, an even exponent.
    static core::result<rsa_public_key> from_components(std::span<const std::byte> modulus,
                                                        std::uint32_t exponent);

    /// The SubjectPublicKeyInfo DER (what `openssl pkey -pubin -inform DER` reads).
    const std::vector<std::uint8_t>& der() const noexcept { return der_; }

    /// Modulus size in bytes (the ciphertext and signature size).
    std::size_t size() const noexcept { return size_; }

    /// RSAES-OAEP encryption: SHA-256, MGF1-SHA-256, empty label. Errors: invalid_argument for
    /// an empty plaintext (wolfSSL cannot encrypt one) or one longer than size() - 66 bytes,
    /// wolfssl_category codes.
    core::result<std::vector<std::uint8_t>> encrypt_oaep_sha256(
        std::span<const std::byte> plaintext) const;

    /// Checks an RSASSA-PSS signature of message: SHA-256, MGF1-SHA-256, salt of exactly
    /// rsa_pss_salt_size bytes. Errors: core::errc::auth_failed for any mismatch (wrong key,
    /// message, salt length, padding or signature size).
    core::result<void> verify_pss_sha256(std::span<const std::byte> message,
                                         std::span<const std::byte> signature) const;

  private:
    friend class rsa_private_key;  // builds a key from its own trusted public DER
    rsa_public_key(std::vector<std::uint8_t> der, std::size_t size) noexcept
        : der_(std::move(der)), size_(size) {}

    std::vector<std::uint8_t> der_;
    std::size_t size_ = 0;
};

/// An RSA private key whose wolfSSL state (key and DRBG) lives in locked, non-dumpable memory
/// and is zeroized on destruction. Move-only.
/// Thread: one thread at a time per object (private operations use the key's own DRBG).
class rsa_private_key {
  public:
    /// A fresh key with e = 65537 from wolfCrypt's DRBG. Errors: invalid_argument for bits
    /// outside rsa_min_bits..rsa_max_bits or not a multiple of 8, wolfssl_category codes.
    static core::result<rsa_private_key> generate(unsigned bits = 2048);

    /// Imports a PKCS#1 RSAPrivateKey or an unencrypted PKCS#8 PrivateKeyInfo DER; the key's
    /// consistency is checked. Errors: core::errc::key_invalid for malformed DER, another key
    /// type, an inconsistent key or a modulus outside rsa_min_bits..rsa_max_bits.
    static core::result<rsa_private_key> from_der(std::span<const std::byte> pkcs1_or_pkcs8_der);

    rsa_private_key(rsa_private_key&& other) noexcept = default;
    rsa_private_key& operator=(rsa_private_key&& other) noexcept;
    rsa_private_key(const rsa_private_key&) = delete;
    rsa_private_key& operator=(const rsa_private_key&) = delete;
    /// Frees (and thereby wipes) the wolfSSL key and DRBG; the pages are wiped again on unmap.
    ~rsa_private_key();

    /// The private key as PKCS#1 RSAPrivateKey DER, only ever in secure memory.
    /// Errors: wolfssl_category codes, secure_buffer allocation errors.
    core::result<secure_buffer> to_der() const;

    /// The SubjectPublicKeyInfo DER of the public half. Errors: wolfssl_category codes.
    core::result<std::vector<std::uint8_t>> public_der() const;

    /// The public half as an rsa_public_key. Errors: as public_der.
    core::result<rsa_public_key> public_key() const;

    /// Modulus size in bytes.
    std::size_t size() const noexcept;

    /// RSAES-OAEP decryption (SHA-256, MGF1-SHA-256, empty label); the plaintext only ever sits
    /// in secure memory. Errors: invalid_argument for a ciphertext that is not size() bytes,
    /// core::errc::auth_failed when decryption or the padding check fails (also for an empty
    /// plaintext, which wolfSSL 5.5 cannot decrypt).
    core::result<secure_buffer> decrypt_oaep_sha256(std::span<const std::byte> ciphertext) const;

    /// RSASSA-PSS signature of message (hashed here with SHA-256; MGF1-SHA-256, salt of
    /// rsa_pss_salt_size random bytes). Errors: wolfssl_category codes.
    core::result<std::vector<std::uint8_t>> sign_pss_sha256(
        std::span<const std::byte> message) const;

  private:
    explicit rsa_private_key(secure_buffer state) noexcept : state_(std::move(state)) {}

    // Holds the wolfSSL RsaKey and the WC_RNG it blinds with (both initialised once the object
    // exists); mutable because wolfCrypt's private operations take non-const pointers.
    mutable secure_buffer state_;
};

}  // namespace la::crypto
