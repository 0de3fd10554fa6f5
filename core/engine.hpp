// The validation engine: the agent's hot path. Checks a signed (JWS EdDSA) or sealed
// (JWE dir + A256GCM) license token against the key sets and the request, with no heap
// allocation, and caches verified signed tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/claims.hpp"
#include "core/keys.hpp"
#include "core/status.hpp"
#include "io/clock.hpp"

namespace la::core {

/// Longest token accepted; longer is `too_large` (fits a license with every capacity full).
inline constexpr std::size_t max_token_bytes = 8192;

/// One validation question. Empty fields mean "not given".
struct validate_request {
    std::string_view token, product, feature, instance;
};

/// What the caller may show about the license a token carries.
struct license_view {
    std::string_view license_id, subject, product;
    lic_type type;
    token_kind kind;
    bool has_exp;
    std::int64_t expires_at;
    std::int64_t issued_at;
    std::span<const std::string_view> features;
    std::span<const meta_entry> meta;
};

/// The answer. `lic` is meaningful only when has_claims (claims parsed, even if the status
/// is not valid, so callers can say which license expired). Views stay valid until the
/// next validate() or replace_keys() on the same engine.
struct validation {
    status st;
    bool has_claims;
    license_view lic;
};

/// Engine settings (from [licenses] of the config).
struct engine_options {
    std::string issuer;                ///< required `iss`
    std::int64_t leeway_seconds = 60;  ///< clock skew allowed on nbf/exp (negative = 0)
    std::string instance;              ///< this terminal's fingerprint, used when a request gives none
    std::size_t cache_entries = 4096;  ///< validation cache slots, rounded up to a power of two; 0 = off
};

/// Validates tokens. Thread: one engine per thread (it owns scratch buffers, the cache and
/// its secret keys); the clock must outlive it.
class engine {
public:
    /// Builds the engine; allocates its scratch buffers and cache here, never later.
    engine(engine_options opts, signing_key_set signing, secret_set secrets, const io::clock& clk);
    engine(engine&&) noexcept;
    engine& operator=(engine&&) noexcept;
    ~engine();

    /// Validates one token. Zero heap allocations; never throws; bad input yields a status.
    validation validate(const validate_request& req) noexcept;

    /// Installs new key sets (rotation, key sync) and flushes the validation cache.
    void replace_keys(signing_key_set signing, secret_set secrets);

    /// Zeroizes the keys of secrets past their grace_until (see secret_set::sweep); returns how
    /// many. Their tokens get secret_expired from then on (they already did, by date).
    std::size_t sweep_secrets() noexcept;

    /// Running totals since construction.
    struct counters {
        std::uint64_t validations, valid, invalid, cache_hits, cache_misses;
    };
    /// Running totals since construction. Thread: the owning thread only.
    const counters& stats() const noexcept;

private:
    struct state;
    std::unique_ptr<state> s_;
};

}  // namespace la::core
