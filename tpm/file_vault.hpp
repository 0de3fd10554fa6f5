// The "encrypted-file" secret backend: the JWK Set of secrets kept in `secret.enc`,
// AES-256-GCM under a key derived (Argon2id or PBKDF2-SHA256) from random key material
// in a separate owner-only key file. Used where no TPM is present or allowed.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "core/keys.hpp"
#include "core/result.hpp"
#include "crypto/secure_buffer.hpp"

namespace la::core {

/// How the key-encryption key is derived from the key file; the id is stored in secret.enc.
enum class kdf_kind : std::uint8_t {
    argon2id = 1,       ///< Argon2id t=2, m=19 MiB, p=1 (OWASP minimum; modest for POS boxes)
    pbkdf2_sha256 = 2,  ///< PBKDF2-HMAC-SHA256, 600,000 iterations (OWASP 2023)
};

/// Whether write_file_atomic may replace an existing file.
enum class write_mode : bool { replace, create_new };

/// Writes data to path crash-safely: a 0600 temp file in the same directory, write, fsync,
/// rename (create_new: link, which refuses an existing path), directory fsync. The temp file
/// is removed on every failure. Errors name the path and the failed step.
/// A separate function so the lead can move it onto the io executor (and fault injection).
expected<void, std::string> write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> data,
                                              write_mode mode = write_mode::replace);

/// Secrets from `secret.enc`, decrypted with a key derived from an owner-only key file.
/// Plaintext (key material, the KEK, the JWK Set) only ever lives in crypto::secure_buffer.
/// Thread: one caller at a time (startup and admin paths).
class encrypted_file_store final : public secret_store {
public:
    /// Remembers the paths and the KDF used by save(); nothing is read until load().
    encrypted_file_store(std::filesystem::path enc_file, std::filesystem::path key_file,
                         kdf_kind kdf = kdf_kind::argon2id)
        : enc_file_(std::move(enc_file)), key_file_(std::move(key_file)), kdf_(kdf) {}

    /// Decrypts and parses secret.enc. Errors name the file: a key file open to group or
    /// others, a malformed or truncated file, "authentication failed (wrong key file?)".
    expected<secret_set, std::string> load() override;
    std::string_view backend() const noexcept override { return "encrypted-file"; }

    /// Decrypts secret.enc and returns the JWK Set text (with its dates and states) in
    /// secure memory, for the lifecycle code and re-encryption. Errors: as load().
    expected<crypto::secure_buffer, std::string> load_jwks();

    /// Checks that jwks is a loadable JWK Set of oct secrets, then encrypts it under a fresh
    /// salt and nonce and replaces secret.enc atomically. Errors name the file or the JWK.
    expected<void, std::string> save(std::span<const std::byte> jwks);

    /// Creates a new key file (mode 0600, 32 random bytes as base64url after a header line).
    /// Refuses an existing file: replacing key material would make secret.enc unreadable.
    static expected<void, std::string> create_key_file(const std::filesystem::path& path);

    /// The secret.enc path.
    const std::filesystem::path& file() const noexcept { return enc_file_; }
    /// The key file path.
    const std::filesystem::path& key_file() const noexcept { return key_file_; }

private:
    std::filesystem::path enc_file_;
    std::filesystem::path key_file_;
    kdf_kind kdf_;
};

}  // namespace la::core
