// The agent's RSA-2048 key, created inside the TPM and never leaving it: the rotation protocol
// sends new secrets RSA-OAEP(SHA-256)-encrypted to it, and the agent signs with RSA-PSS(SHA-256).
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

/// Modulus size of the agent key.
inline constexpr unsigned agent_key_bits = 2048;

/// What provision_agent_key() found or made at the persistent handle.
struct agent_key_info {
    std::uint32_t handle = 0;             ///< the persistent handle holding the key
    bool created = false;                 ///< false when an existing key was reused
    std::vector<std::uint8_t> public_der; ///< SubjectPublicKeyInfo DER of the key
};

/// Makes sure the agent key lives at the persistent `key_handle`; idempotent. An existing agent
/// key there is reused as it is; otherwise a key is created under the storage primary at
/// `primary_handle` (see provision()) and made persistent: RSA-2048, fixedTPM | fixedParent |
/// sensitiveDataOrigin | userWithAuth | noDA | decrypt | sign, unrestricted, scheme NULL (each
/// call picks OAEP or PSS), empty auth. Errors: invalid_argument for a non-persistent handle or
/// key_handle == primary_handle, core::errc::key_invalid when key_handle holds another object
/// (not RSA-2048 or other attributes), TSS2 codes (e.g. no primary), timed_out.
io::task<core::result<agent_key_info>> provision_agent_key(tpm_thread& tpm,
                                                           std::uint32_t primary_handle,
                                                           std::uint32_t key_handle);

/// TPM2_RSA_Decrypt with OAEP, SHA-256 (MGF1-SHA-256), empty label; the plaintext lands only in
/// secure memory. `ciphertext` must stay valid until the task completes. Errors:
/// invalid_argument for an empty ciphertext or one longer than 512 bytes,
/// core::errc::auth_failed when the TPM finds it undecryptable (tampered, for another key,
/// wrong length; as crypto::rsa_private_key reports it), other TSS2 codes, timed_out.
io::task<core::result<crypto::secure_buffer>> agent_decrypt_oaep(
    tpm_thread& tpm, std::uint32_t key_handle, std::span<const std::byte> ciphertext);

/// RSASSA-PSS signature of `message` (hashed here with SHA-256, signed by TPM2_Sign with
/// RSAPSS/SHA-256, MGF1-SHA-256). The salt length is the TPM's choice: swtpm (libtpms) uses the
/// digest size, 32 bytes, as crypto::rsa_public_key::verify_pss_sha256 requires
/// (agent_key_test checks this). `message` must stay valid until the task completes.
/// Errors: TSS2 codes, timed_out.
io::task<core::result<std::vector<std::uint8_t>>> agent_sign_pss(
    tpm_thread& tpm, std::uint32_t key_handle, std::span<const std::byte> message);

/// The SubjectPublicKeyInfo DER of the agent key at `key_handle`, built from the TPM's public
/// area. Errors: invalid_argument for a non-persistent handle, core::errc::key_invalid when the
/// handle holds another object, TSS2 codes, timed_out.
io::task<core::result<std::vector<std::uint8_t>>> agent_public_der(tpm_thread& tpm,
                                                                   std::uint32_t key_handle);

}  // namespace la::tpm
