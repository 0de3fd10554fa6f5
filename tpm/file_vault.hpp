// The "encrypted-file" custody backend: the vault metadata and the secrets' keys kept in
// `secret.enc`, AES-256-GCM under a key derived (Argon2id or PBKDF2-SHA256) from random key
// material in a separate owner-only key file. Used where no TPM is present or allowed.
// Also: sealing other blobs at rest under the same key file (the agent's RSA private key).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "core/result.hpp"
#include "core/vault.hpp"
#include "crypto/rsa.hpp"
#include "crypto/secure_buffer.hpp"
#include "io/offload.hpp"
#include "io/task.hpp"

namespace la::core {

/// How the key-encryption key is derived from the key file; the id is stored in each file.
enum class kdf_kind : std::uint8_t {
    argon2id = 1,       ///< Argon2id t=2, m=19 MiB, p=1 (OWASP minimum; modest for POS boxes)
    pbkdf2_sha256 = 2,  ///< PBKDF2-HMAC-SHA256, 600,000 iterations (OWASP 2023)
};

/// The vault in `secret.enc`, whose authenticated content is the whole vault_metadata plus the
/// key of every secret not expired. Rewritten whole (fresh salt and nonce) by each commit.
/// Files go through the executor; key derivation and AES-GCM run on `worker`.
/// Plaintext (key material, KEKs, keys) only ever lives in crypto::secure_buffer.
/// Thread: the ring thread of the manager, one operation at a time.
class encrypted_file_vault final : public secret_vault {
public:
    /// Remembers the paths and the KDF used when writing; nothing is read until asked.
    /// `worker` must outlive the vault.
    encrypted_file_vault(std::filesystem::path enc_file, std::filesystem::path key_file, kdf_kind kdf,
                         io::worker_thread& worker);

    std::string_view backend() const noexcept override { return "encrypted-file"; }

    /// secret.enc's metadata. A missing secret.enc is generation 0, no secrets (the key file is
    /// then not needed). Errors name the file: a missing or group/other-accessible key file,
    /// a malformed or truncated file, "authentication failed (wrong key file?)".
    io::task<expected<vault_metadata, std::string>> read_metadata() override;

    /// The keys of meta's secrets that are not expired, with meta's dates and states.
    /// Errors: as read_metadata, or the version missing from secret.enc.
    io::task<expected<secret_set, std::string>> load(const vault_metadata& meta) override;

    /// Checks `added` (32-byte keys, distinct non-zero versions); writes nothing.
    io::task<expected<void, std::string>> stage(std::span<const new_secret> added) override;

    /// Rewrites secret.enc as `next`: kept keys from the current file, new ones from `added`.
    /// Refuses a generation not above the current one, an added version not above the highest
    /// ever committed, a kept version whose key the file lacks. Errors (including every I/O
    /// failure, after undoing a rename that could not be made durable): the old file stays.
    /// Crash point "file.encrypted": after encryption, before the write.
    io::task<expected<void, std::string>> commit(const vault_metadata& next,
                                                 std::span<const new_secret> added) override;

    /// Creates the key file (0600, 32 random bytes) when missing; true when it did. Refuses a
    /// key file open to group/others, a malformed one, and creating one while secret.enc exists
    /// (its key file is lost: a new one could never open it).
    io::task<expected<bool, std::string>> provision();

    vault_health health() const override { return health_; }

    /// The secret.enc path.
    const std::filesystem::path& file() const noexcept { return enc_file_; }
    /// The key file path.
    const std::filesystem::path& key_file() const noexcept { return key_file_; }

private:
    struct current;  // secret.enc as read and decrypted (defined in the .cpp)
    io::task<expected<current, std::string>> open_current(bool need_key);
    io::task<std::string> undo_rename(const current& old, std::span<const std::byte> written, std::error_code cause);
    void set_health(bool ok, std::string detail);

    std::filesystem::path enc_file_;
    std::filesystem::path key_file_;
    std::string enc_path_, key_path_, dir_, name_;  // c_str()s handed to io ops
    kdf_kind kdf_;
    io::worker_thread* worker_;
    vault_health health_;
};

/// Reads an owner-only key file through the executor and returns its 32 bytes of key material
/// in secure memory. Errors name the file (missing, mode open to group/others, malformed).
io::task<expected<crypto::secure_buffer, std::string>> read_key_file(std::string_view path);

/// Encrypts `plain` (1..64 KiB) under a key derived from `material` (read_key_file) with a fresh
/// salt and nonce. `purpose` (e.g. "agent-key") is authenticated: the blob opens only for the
/// same purpose, and never as a secret.enc (distinct magic). Blocking: run it on a worker.
/// Errors name `name` (the file the blob is for).
expected<std::vector<std::byte>, std::string> seal_with_key_file(const crypto::secure_buffer& material,
                                                                 std::string_view purpose,
                                                                 std::span<const std::byte> plain,
                                                                 kdf_kind kdf, std::string_view name);

/// Opens a seal_with_key_file blob into secure memory. Errors name `name`: malformed or
/// truncated, "authentication failed (wrong key file?)" (also for another purpose).
/// Blocking: run it on a worker.
expected<crypto::secure_buffer, std::string> open_with_key_file(const crypto::secure_buffer& material,
                                                                std::string_view purpose,
                                                                std::span<const std::byte> blob,
                                                                std::string_view name);

/// The fallback's RSA-2048 agent key (the TPM's counterpart is tpm/agent_key.hpp), kept in
/// `path` as a seal_with_key_file blob (purpose "agent-key") under the fallback key file.
struct file_agent_key_info {
    bool created = false;                 ///< false: an existing key was opened and reused
    std::vector<std::uint8_t> public_der; ///< SubjectPublicKeyInfo
};

/// Makes sure `path` holds the agent key, generating it (on `worker`) when missing; idempotent.
/// Errors name the file: unreadable key file, a blob that does not open, a failed write.
io::task<expected<file_agent_key_info, std::string>> provision_file_agent_key(
    std::string_view key_file, std::string_view path, kdf_kind kdf, io::worker_thread& worker);

/// Opens the agent key (private part in secure memory). Errors name the file.
io::task<expected<crypto::rsa_private_key, std::string>> load_file_agent_key(std::string_view key_file,
                                                                            std::string_view path,
                                                                            io::worker_thread& worker);

namespace detail {
/// Test hook: the thread that ran the latest key derivation.
std::thread::id last_kdf_thread() noexcept;
}  // namespace detail

}  // namespace la::core
