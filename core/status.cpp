#include "core/status.hpp"

namespace la::core {

std::string_view to_string(status s) noexcept {
    switch (s) {
        case status::valid: return "valid";
        case status::expired: return "expired";
        case status::not_yet_valid: return "not_yet_valid";
        case status::bad_signature: return "bad_signature";
        case status::unknown_key: return "unknown_key";
        case status::unsupported_alg: return "unsupported_alg";
        case status::malformed: return "malformed";
        case status::too_large: return "too_large";
        case status::wrong_issuer: return "wrong_issuer";
        case status::wrong_product: return "wrong_product";
        case status::wrong_instance: return "wrong_instance";
        case status::feature_not_granted: return "feature_not_granted";
        case status::unauthorized: return "unauthorized";
        case status::unsupported_version: return "unsupported_version";
        case status::internal_error: return "internal_error";
        case status::secret_expired: return "secret_expired";
        case status::secret_invalidated: return "secret_invalidated";
    }
    return "unknown";
}

std::string_view to_string(lic_type t) noexcept {
    switch (t) {
        case lic_type::perpetual: return "perpetual";
        case lic_type::subscription: return "subscription";
        case lic_type::demo: return "demo";
        case lic_type::unknown: break;
    }
    return "unknown";
}

std::string_view to_string(token_kind k) noexcept {
    switch (k) {
        case token_kind::signed_jws: return "signed";
        case token_kind::sealed_jwe: return "sealed";
        case token_kind::unknown: break;
    }
    return "unknown";
}

}  // namespace la::core
