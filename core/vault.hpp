// The custody seam: where the sealed-token secrets are kept (the TPM, an encrypted file, or a
// plain file for tests). Backends live in tpm/ (and core/plain_vault for the test backend);
// core/secret_manager drives them so that every change is crash-safe:
//   1. stage()  - the new secrets are made durable but are not yet part of the state
//   2. state.json (the readable mirror) is written with generation + 1
//   3. commit() - the backend's authoritative metadata (NV index / secret.enc) takes
//                 generation + 1: this is the commit point
// A crash before 3 leaves the old state authoritative (the mirror is rolled back at start);
// a crash after 3 leaves the new one.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/keys.hpp"
#include "core/result.hpp"
#include "crypto/secure_buffer.hpp"
#include "io/task.hpp"

namespace la::core {

/// One secret as the metadata records it: never its key.
struct secret_entry {
    std::uint64_t version = 0;
    secret_meta meta;

    friend bool operator==(const secret_entry&, const secret_entry&) = default;
};

/// The authoritative metadata of a vault: the TPM's NV index, or secret.enc's authenticated
/// content. Capacity: secret_set::capacity entries.
struct vault_metadata {
    /// +1 per committed change, never decreases: a state.json with a smaller one is stale.
    std::uint64_t generation = 0;
    /// The highest version ever committed: a new secret must use a larger one, so a version
    /// is never bound to two different secrets (swept entries leave the list, not this).
    std::uint64_t highest_version = 0;
    /// Ordered by version.
    std::vector<secret_entry> secrets;

    friend bool operator==(const vault_metadata&, const vault_metadata&) = default;
};

/// A secret being added: its 32 key bytes only ever in secure memory.
struct new_secret {
    std::uint64_t version = 0;
    secret_meta meta;
    crypto::secure_buffer key;  ///< exactly 32 bytes
};

/// Health of a vault, for `tpm-status` and metrics.
struct vault_health {
    bool available = false;  ///< the backend answered its last operation
    std::string detail;      ///< one line: "swtpm:path=... reachable", "TPM call timed out", ...
};

/// A place secrets are kept. Thread: the ring thread that runs the manager; implementations
/// do their blocking work (TPM calls, key derivation) off it.
class secret_vault {
public:
    virtual ~secret_vault();

    /// Backend name as written in the config: "tpm", "encrypted-file" or "file".
    virtual std::string_view backend() const noexcept = 0;

    /// Reads the authoritative metadata. A vault never written yet answers generation 0 and no
    /// secrets. Errors: text naming the source (unreadable, corrupt, TPM unreachable...).
    virtual io::task<expected<vault_metadata, std::string>> read_metadata() = 0;

    /// Opens every secret `meta` lists that is not expired into a set carrying meta's dates and
    /// states. Errors: text naming the secret that could not be opened and why.
    virtual io::task<expected<secret_set, std::string>> load(const vault_metadata& meta) = 0;

    /// Step 1 of a change: makes `added` durable without committing them (tpm: seal each and
    /// write its blob into state_dir; encrypted-file: nothing). Errors leave nothing committed.
    virtual io::task<expected<void, std::string>> stage(std::span<const new_secret> added) = 0;

    /// Step 3, the commit point: makes `next` authoritative (tpm: NV write; encrypted-file:
    /// secret.enc rewritten with the kept secrets of `next` plus `added`). `added` are the
    /// secrets stage() was given. Errors: the old metadata stays authoritative.
    virtual io::task<expected<void, std::string>> commit(const vault_metadata& next,
                                                         std::span<const new_secret> added) = 0;

    /// Health as of the last operation.
    virtual vault_health health() const = 0;
};

}  // namespace la::core
