// License claims (the JSON payload of both token formats) parsed into fixed-capacity views.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/json.hpp"
#include "core/status.hpp"

namespace la::core {

/// One `meta` claim member (string -> string).
struct meta_entry {
    std::string_view key, value;
};

/// Parsed claims. Views point into the buffer handed to parse_claims() (or a cache entry).
struct claims {
    static constexpr std::size_t max_features = 64;  ///< more features -> too_large
    static constexpr std::size_t max_versions = 32;  ///< more versions -> too_large
    static constexpr std::size_t max_meta = 32;      ///< more meta members -> too_large

    std::string_view jti, iss, sub, product;
    std::string_view instance;  ///< empty when the license is not bound to an instance
    lic_type type = lic_type::unknown;
    std::int64_t iat = 0;
    bool has_nbf = false;
    std::int64_t nbf = 0;
    bool has_exp = false;
    std::int64_t exp = 0;
    std::array<std::string_view, max_features> feature_buf{};
    std::size_t feature_count = 0;
    std::array<std::string_view, max_versions> version_buf{};
    std::size_t version_count = 0;
    std::array<meta_entry, max_meta> meta_buf{};
    std::size_t meta_count = 0;

    /// Granted features, in token order.
    std::span<const std::string_view> features() const noexcept { return {feature_buf.data(), feature_count}; }
    /// Covered product versions, in token order.
    std::span<const std::string_view> versions() const noexcept { return {version_buf.data(), version_count}; }
    /// Metadata members, in token order.
    std::span<const meta_entry> meta() const noexcept { return {meta_buf.data(), meta_count}; }
};

/// Token slots the hot path gives the JSON scanner: a legitimate claims set at full
/// capacity needs about 250; more values than this is `too_large`, which also bounds the
/// duplicate-key scan on hostile input.
inline constexpr std::size_t claims_json_tokens = 512;

/// Parses a claims JSON document in place (the buffer is modified; `out` views point into it).
/// Returns valid on success, malformed (not JSON, duplicate key, wrong type, missing required
/// claim, `exp` absent on a non-perpetual license) or too_large (capacity exceeded).
/// Thread: reentrant, no allocation.
status parse_claims(std::span<char> text, std::span<json::token> scratch, claims& out) noexcept;

}  // namespace la::core
