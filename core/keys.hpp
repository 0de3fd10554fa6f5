// Key material for validation: Ed25519 signing keys (public, JWK Set) and AES-256-GCM
// secrets (by version), with the loaders the agent runs at startup and on rotation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "crypto/aes_gcm.hpp"
#include "crypto/ed25519.hpp"

namespace la::core {

/// Signing keys by `kid`: fixed capacity, copyable, read-only on the hot path.
class signing_key_set {
public:
    static constexpr std::size_t capacity = 32;  ///< keys per set
    static constexpr std::size_t max_kid = 64;   ///< bytes per kid

    /// Adds a key. Errors (text): empty or over-long kid, duplicate kid, set full.
    expected<void, std::string> add(std::string_view kid, const crypto::ed25519_public_key& key);

    /// The key named kid, or nullptr. Allocation-free.
    const crypto::ed25519_public_key* find(std::string_view kid) const noexcept;

    /// Number of keys.
    std::size_t size() const noexcept { return count_; }
    /// kid of the i-th key (i < size()).
    std::string_view kid(std::size_t i) const noexcept { return {slots_[i]->kid.data(), slots_[i]->kid_len}; }

private:
    struct slot {
        std::array<char, max_kid> kid;
        std::size_t kid_len;
        crypto::ed25519_public_key key;
    };
    std::array<std::optional<slot>, capacity> slots_{};
    std::size_t count_ = 0;
};

/// Where a secret is in its life. ACTIVE and GRACE secrets open sealed tokens; INVALIDATED
/// ones never do; EXPIRED ones (past grace_until) have been swept: their key is zeroized.
enum class secret_state : std::uint8_t { active, grace, invalidated, expired };
std::string_view to_string(secret_state s) noexcept;

/// A secret's dates (Unix seconds) and state. Defaults: valid forever.
struct secret_meta {
    std::int64_t valid_from = std::numeric_limits<std::int64_t>::min();
    std::int64_t valid_until = std::numeric_limits<std::int64_t>::max();  ///< then GRACE
    std::int64_t grace_until = std::numeric_limits<std::int64_t>::max();  ///< then EXPIRED
    secret_state state = secret_state::active;

    friend bool operator==(const secret_meta&, const secret_meta&) = default;
};

/// AES-256-GCM secrets by version (the sealed token's decimal `kid`). Move-only because
/// the keys are; one set per engine (a key's context is not shared across threads).
class secret_set {
public:
    static constexpr std::size_t capacity = 16;  ///< versions per set (ACTIVE + GRACE + spares)

    /// Adds a secret. Errors (text): duplicate version, set full, grace_until < valid_until.
    expected<void, std::string> add(std::uint64_t version, crypto::aes256_gcm_key key,
                                    secret_meta meta = {});

    /// The key for version, or nullptr (unknown, or swept). Allocation-free.
    const crypto::aes256_gcm_key* find(std::uint64_t version) const noexcept;
    /// The dates and state of version, or nullptr when unknown. Allocation-free.
    const secret_meta* meta(std::uint64_t version) const noexcept;
    /// The state of a secret at `now` (GRACE past valid_until, EXPIRED past grace_until).
    static secret_state state_at(const secret_meta& m, std::int64_t now) noexcept;

    /// Zeroizes and drops the key of every secret past its grace_until at `now`; the version
    /// stays known as EXPIRED so its tokens get secret_expired. Returns how many were swept.
    std::size_t sweep(std::int64_t now) noexcept;

    /// Number of secrets.
    std::size_t size() const noexcept { return count_; }
    /// Version of the i-th secret (i < size()).
    std::uint64_t version(std::size_t i) const noexcept { return slots_[i]->version; }

private:
    struct slot {
        std::uint64_t version;
        std::optional<crypto::aes256_gcm_key> key;  ///< empty once swept
        secret_meta meta;
    };
    std::array<std::optional<slot>, capacity> slots_{};
    std::size_t count_ = 0;
};

/// Parses a canonical decimal secret version ("1", "42"; no sign, no leading zero, fits uint64).
bool parse_version(std::string_view text, std::uint64_t& out) noexcept;

/// Parses a JWK Set of Ed25519 public keys ({"keys":[{"kty":"OKP","crv":"Ed25519","kid":..,"x":..}]}).
/// `source` names the document in error messages. Refuses other kty/crv, private parts ("d"),
/// duplicate kids, missing or mistyped members, and an empty set.
expected<signing_key_set, std::string> parse_signing_keys(std::string_view json, std::string_view source);

/// Reads and parses a signing-key JWK Set file (public material: any mode is accepted).
expected<signing_key_set, std::string> load_signing_keys(const std::filesystem::path& path);

/// Called once per secret of a JWK Set; `key` (32 bytes, secure memory) is wiped after the call.
using secret_visitor = std::function<expected<void, std::string>(
    std::uint64_t version, std::span<const std::byte> key, const secret_meta& meta)>;

/// Parses a JWK Set of oct secrets in place (see parse_secrets) and calls `visit` for each, in
/// document order; the first error (the document's or visit's, prefixed with the key's place) stops.
expected<void, std::string> for_each_secret(std::span<char> json, std::string_view source,
                                            const secret_visitor& visit);

/// Parses a JWK Set of {"kty":"oct","kid":"<version>","k":"<base64url of 32 bytes>"} in place;
/// decoded key bytes only ever live in secure memory. `source` names the document in errors.
expected<secret_set, std::string> parse_secrets(std::span<char> json, std::string_view source);

/// Secrets from an owner-only JWK Set file (refused when group/other may read or write it).
class file_secret_store {
public:
    /// Remembers the path; nothing is read until load().
    explicit file_secret_store(std::filesystem::path path) : path_(std::move(path)) {}
    /// Reads and parses the file. Errors: human text naming the file and the key.
    expected<secret_set, std::string> load();

private:
    std::filesystem::path path_;
};

}  // namespace la::core
