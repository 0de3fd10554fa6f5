// Provisioning of the storage primary and sealing of 256-bit secrets under it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
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

/// Seals `secret` as a keyed-hash object under the primary at `primary_handle`, usable only
/// through PolicyAuthValue with `auth`, noDA. Returns TPM2B_PUBLIC || TPM2B_PRIVATE (TSS
/// marshalling); the blob is safe to store (the private part is encrypted by the primary).
/// Errors: invalid_argument (auth longer than max_auth_size), TSS2 codes, timed_out.
io::task<core::result<std::vector<std::uint8_t>>> seal(
    tpm_thread& tpm, std::uint32_t primary_handle, std::span<const std::byte, secret_size> secret,
    std::span<const std::byte> auth);

/// Loads `blob` under the primary and unseals it with a PolicyAuthValue session; the object
/// is flushed afterwards. Errors: invalid_argument (malformed blob, auth too long), a TSS2 code
/// for which is_auth_failure() holds when `auth` is wrong, other TSS2 codes, timed_out.
io::task<core::result<crypto::secure_buffer>> unseal(tpm_thread& tpm, std::uint32_t primary_handle,
                                                     std::span<const std::uint8_t> blob,
                                                     std::span<const std::byte> auth);

}  // namespace la::tpm
