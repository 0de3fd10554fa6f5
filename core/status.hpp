// Validation outcomes and license enums shared by the engine, the wire protocol and the CLI.
#pragma once

#include <cstdint>
#include <string_view>

namespace la::core {

/// Result of validating one token. The numeric values are wire codes: never renumber.
enum class status : std::uint8_t {
    valid = 0,
    expired = 1,
    not_yet_valid = 2,
    bad_signature = 3,
    unknown_key = 4,
    unsupported_alg = 5,
    malformed = 6,
    too_large = 7,
    wrong_issuer = 8,
    wrong_product = 9,
    wrong_instance = 10,
    feature_not_granted = 11,
    unauthorized = 12,
    unsupported_version = 13,
    internal_error = 14,
    secret_expired = 15,      ///< sealed under a secret past its grace_until (swept)
    secret_invalidated = 16,  ///< sealed under a secret an operator or the server invalidated
};

/// Stable lower_snake name of a status ("valid", "expired", ...); "unknown" for out-of-range values.
std::string_view to_string(status s) noexcept;

/// The `lic_type` claim.
enum class lic_type : std::uint8_t { unknown = 0, perpetual = 1, subscription = 2, demo = 3 };

/// Claim spelling of a license type ("perpetual", ...); "unknown" otherwise.
std::string_view to_string(lic_type t) noexcept;

/// Which compact serialization carried the license.
enum class token_kind : std::uint8_t { unknown = 0, signed_jws = 1, sealed_jwe = 2 };

/// "signed", "sealed" or "unknown".
std::string_view to_string(token_kind k) noexcept;

}  // namespace la::core
