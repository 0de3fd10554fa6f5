// Errors from tpm2-tss as std::error_code values, with messages from Tss2_RC_Decode.
#pragma once

#include <cstdint>
#include <system_error>

namespace la::tpm {

/// The category of TSS2_RC values (all layers: TPM, ESYS, SYS, MU, TCTI, resource manager).
const std::error_category& tss2_category() noexcept;

/// A TSS2_RC as an error code; rc must be non-zero.
inline std::error_code make_tss2_error(std::uint32_t rc) noexcept {
    return {static_cast<int>(rc), tss2_category()};
}

/// True for codes that mean "the TPM refused the authorization" (wrong auth value or policy):
/// TPM_RC_AUTH_FAIL, TPM_RC_BAD_AUTH or TPM_RC_POLICY_FAIL on any handle or session.
bool is_auth_failure(const std::error_code& ec) noexcept;

/// True for codes that say the connection to the TPM is unusable (TCTI errors, malformed or
/// missing responses): the context is reopened before the next call.
bool is_connection_failure(std::uint32_t rc) noexcept;

}  // namespace la::tpm
