// Drives a secret_vault and state.json together: reconciles them at start (recovery, rolled-back
// changes, tampering) and applies every secret change in the crash-safe order of core/vault.hpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/keys.hpp"
#include "core/result.hpp"
#include "core/state_file.hpp"
#include "core/vault.hpp"
#include "io/clock.hpp"
#include "io/task.hpp"

namespace la::core {

/// How state.json compared with the vault's authoritative metadata at start.
enum class state_outcome : std::uint8_t {
    consistent,   ///< state.json matched
    created,      ///< first start: nothing to compare, state.json written
    recovered,    ///< state.json missing or corrupt: rebuilt from a copy and the vault
    rolled_back,  ///< state.json held a change that never committed (crash mid-change): reverted
    tampering,    ///< state.json older than the vault's counter, or contradicting it: rewritten
    backend_changed,  ///< state.json was written for another backend (e.g. a TPM fallback)
};
std::string_view to_string(state_outcome o) noexcept;

/// What open() found, for the log, `tpm-status` and the status JSON.
struct open_report {
    state_outcome outcome = state_outcome::consistent;
    std::vector<std::string> notes;  ///< one line each, no secrets
};

/// Parses an import document: a JWK Set of oct keys whose `kid` is the decimal version, with
/// optional valid_from / valid_until / grace_until / state. Key bytes only in secure memory.
/// Errors: text naming the key (never its bytes).
expected<std::vector<new_secret>, std::string> parse_import(std::span<char> jwks, std::string_view source);

/// The single writer of a vault and its state.json. Thread: one ring thread.
class secret_manager {
public:
    secret_manager(secret_vault& vault, state_store& store, const io::clock& clock)
        : vault_(vault), store_(store), clock_(clock) {}

    /// Reads the vault's metadata and state.json, reconciles them (rewriting state.json when it
    /// differs), then opens the secrets. Errors: the vault's (unreachable TPM, corrupt file...) or
    /// a failed state.json write.
    io::task<expected<secret_set, std::string>> open();

    /// Adds secrets: each version must exceed every version ever committed. Entries past their
    /// grace_until leave the metadata. Stage, state.json, commit; then the new set is opened.
    /// Errors before the commit leave the committed state as it was (state.json is put back on a
    /// best-effort basis, and reconciled at the next start anyway); an error opening the new set
    /// after the commit says "is committed" (the new state holds; reload() retries).
    io::task<expected<secret_set, std::string>> add(std::span<const new_secret> added);

    /// Re-opens the current secrets (SIGHUP).
    io::task<expected<secret_set, std::string>> reload();

    /// The committed metadata (valid after open()).
    const vault_metadata& metadata() const noexcept { return current_; }
    /// What open() found.
    const open_report& report() const noexcept { return report_; }
    secret_vault& vault() noexcept { return vault_; }

private:
    state_document document(const vault_metadata& m) const;
    io::task<expected<void, std::string>> reconcile(const vault_metadata& authoritative);

    secret_vault& vault_;
    state_store& store_;
    const io::clock& clock_;
    vault_metadata current_;
    open_report report_;
};

}  // namespace la::core
