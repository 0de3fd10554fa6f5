// Provisioning of the storage primary and sealing of 256-bit secrets under it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "core/result.hpp"
#include "crypto/secure_buffer.hpp"
#include "io/task.hpp"
#include "tpm/tpm_thread.hpp"

namespace la::tpm {

/// Size of a sealed secret.
inline constexpr std::size_t secret_size = 32;
/// Longest auth value accepted (the SHA-256 digest size the sealed object's nameAlg allows).
inline constexpr std::size_t max_auth_size = 32;

/// A PCR selection a sealed secret is bound to, as written in the config ("sha256:0,2,7").
/// Trivially copyable: it travels into TPM jobs by value.
struct pcr_policy {
    TPMI_ALG_HASH hash = TPM2_ALG_NULL;  ///< bank: TPM2_ALG_SHA1, _SHA256 or _SHA384 (NULL when empty)
    std::uint32_t mask = 0;              ///< bit i selects PCR i (0..23)

    /// True when no PCR is selected (the secret needs only its auth value).
    bool empty() const noexcept { return mask == 0; }
    friend bool operator==(const pcr_policy&, const pcr_policy&) = default;
};
static_assert(std::is_trivially_copyable_v<pcr_policy>);

/// Highest PCR a policy may name (a PC-client TPM has 24 PCRs).
inline constexpr unsigned max_pcr = 23;

/// Why a PCR policy text was refused (messages say what the config should contain).
enum class pcr_policy_errc {
    malformed = 1,  ///< not "<bank>:<pcr>,<pcr>,..."
    unknown_bank,   ///< bank other than sha1, sha256, sha384
    not_a_number,   ///< a list item that is not a decimal PCR number
    out_of_range,   ///< a PCR above max_pcr
    duplicate,      ///< a PCR listed twice
    empty_list,     ///< a bank with no PCR after the colon
};
/// The category of pcr_policy_errc.
const std::error_category& pcr_policy_category() noexcept;
/// A pcr_policy_errc as an error code.
inline std::error_code make_error_code(pcr_policy_errc e) noexcept {
    return {static_cast<int>(e), pcr_policy_category()};
}

/// Parses "<bank>:<pcr>,<pcr>,..." with bank sha1, sha256 or sha384 and PCRs 0..23 in decimal,
/// spaces allowed around items; "" (or only spaces) is the empty policy.
/// Errors: a pcr_policy_errc (its message is meant for the user, next to the text).
core::result<pcr_policy> parse_pcr_policy(std::string_view text);

/// The policy in config syntax ("sha256:0,2,7"), or "none" when empty.
std::string to_string(const pcr_policy& p);

/// Errors of sealing itself (beyond TSS2 codes).
enum class seal_errc {
    pcr_mismatch = 1,   ///< the PCRs' current values (or the selection) differ from the sealed ones
    pcr_bank_inactive,  ///< the policy names a PCR bank the TPM does not have active
};
/// The category of seal_errc.
const std::error_category& seal_category() noexcept;
/// A seal_errc as an error code.
inline std::error_code make_error_code(seal_errc e) noexcept {
    return {static_cast<int>(e), seal_category()};
}

/// What provision() found or made at the persistent handle.
struct primary_info {
    std::uint32_t handle = 0;
    bool created = false;           ///< false when an existing key was reused
    std::uint16_t type = 0;         ///< TPM2_ALG_ECC or TPM2_ALG_RSA
    std::vector<std::uint8_t> name; ///< the TPM name of the key (nameAlg || digest of its public area)
};

/// Makes sure a storage primary (ECC P-256, RSA-2048 when the TPM lacks ECC) lives at the
/// persistent `handle` (0x81000000..0x81FFFFFF) under the owner hierarchy; idempotent: an
/// existing key at the handle is reused. Errors: invalid_argument for a non-persistent handle,
/// TSS2 codes, timed_out.
io::task<core::result<primary_info>> provision(tpm_thread& tpm, std::uint32_t handle);

/// Seals `secret` as a keyed-hash object under the primary at `primary_handle`, noDA, usable
/// only through its policy: PolicyAuthValue (with `auth`), then PolicyPCR over the current
/// values of `pcr`'s PCRs when it is not empty. Returns TPM2B_PUBLIC || TPM2B_PRIVATE (TSS
/// marshalling); the blob is safe to store (the private part is encrypted by the primary).
/// Errors: invalid_argument (auth longer than max_auth_size, malformed policy),
/// seal_errc::pcr_bank_inactive, TSS2 codes, timed_out.
io::task<core::result<std::vector<std::uint8_t>>> seal(
    tpm_thread& tpm, std::uint32_t primary_handle, std::span<const std::byte, secret_size> secret,
    std::span<const std::byte> auth, const pcr_policy& pcr);

/// Loads `blob` under the primary and unseals it in a policy session running the same policy
/// as seal() (`pcr` must be the policy it was sealed with); every object and session is
/// flushed afterwards. Errors: invalid_argument (malformed blob, auth too long),
/// seal_errc::pcr_mismatch when the session's policy digest differs from the object's (PCR
/// values changed since sealing, or another `pcr`), a TSS2 code for which is_auth_failure()
/// holds when `auth` is wrong, other TSS2 codes, timed_out.
io::task<core::result<crypto::secure_buffer>> unseal(tpm_thread& tpm, std::uint32_t primary_handle,
                                                     std::span<const std::uint8_t> blob,
                                                     std::span<const std::byte> auth,
                                                     const pcr_policy& pcr);

}  // namespace la::tpm

template <>
struct std::is_error_code_enum<la::tpm::seal_errc> : std::true_type {};
template <>
struct std::is_error_code_enum<la::tpm::pcr_policy_errc> : std::true_type {};
