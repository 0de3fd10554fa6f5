// The "tpm" secret backend: each secret sealed under the storage primary (blob files in the
// state directory), the authoritative metadata in one NV index.
//
// Files: <state_dir>/secret-<version>.sealed, mode 0600:
//   0 magic "LASB"  4 format (1)  5 u8 reserved (0)  6 u16 PCR bank (TPM2_ALG_*, 0 = none)
//   8 u32 PCR mask  12 u64 version  20 u32 blob length  24 TPM2B_PUBLIC || TPM2B_PRIVATE
// (big-endian). The PCR policy recorded there is the one the object was sealed to; load() runs
// that one, so a config change of pcr_policy applies to secrets sealed after it (rotation).
//
// NV record (record_size bytes, big-endian, written whole by commit()):
//   0 magic "LANV"  4 format (1)  5 u8 count  6 u16 reserved (0)  8 u64 generation
//  16 u64 highest_version  24 16 x {u64 version, i64 valid_from, i64 valid_until,
//  i64 grace_until, u8 state} (unused entries zero)  552 the first 16 bytes of SHA-256 of
//  bytes 0..551, so a write torn between NV chunks reads as corrupt, not as a mix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/keys.hpp"
#include "core/result.hpp"
#include "core/vault.hpp"
#include "crypto/secure_buffer.hpp"
#include "io/task.hpp"
#include "tpm/sealing.hpp"
#include "tpm/tpm_thread.hpp"

namespace la::tpm {

/// Where the TPM vault keeps things and how it authorizes them.
struct tpm_vault_options {
    tpm_thread* tpm = nullptr;                ///< outlives the vault
    std::uint32_t primary_handle = 0x81010001;
    std::uint32_t nv_index = 0x01500020;
    pcr_policy pcr;                           ///< bound into secrets sealed from now on
    std::string state_dir;                    ///< where the secret-<version>.sealed files live
    crypto::secure_buffer auth;               ///< the sealed objects' auth value, <= 32 bytes (empty: none)
};

/// What provision() found or made.
struct provision_report {
    std::uint32_t primary_handle = 0;
    bool primary_created = false;  ///< false: an existing primary was reused
    std::uint16_t primary_type = 0;  ///< TPM2_ALG_ECC or TPM2_ALG_RSA
    std::uint32_t nv_index = 0;
    bool nv_created = false;       ///< false: an existing index of the right shape was reused
    std::uint16_t nv_size = 0;

    /// One line: "primary 0x81010001 (ECC) created; NV index 0x01500020 (568 bytes) reused".
    std::string describe() const;
};

/// core::secret_vault on a TPM 2.0. Thread: the ring thread that runs the manager; TPM work
/// goes to options.tpm's thread, file I/O to the ring. One operation at a time.
class tpm_vault final : public core::secret_vault {
public:
    /// Size of the NV record (the index provision() defines).
    static constexpr std::uint16_t record_size = 568;

    /// Takes the options; nothing touches the TPM until an operation runs.
    explicit tpm_vault(tpm_vault_options opts);
    ~tpm_vault() override;
    tpm_vault(const tpm_vault&) = delete;
    tpm_vault& operator=(const tpm_vault&) = delete;

    std::string_view backend() const noexcept override { return "tpm"; }

    /// Makes sure the storage primary and the NV index exist; idempotent. Errors (text): the
    /// handle or index and why (an index of another shape is described, never redefined).
    io::task<core::expected<provision_report, std::string>> provision();

    /// Decodes the NV record. Never written: generation 0, no secrets. Errors name the NV
    /// index: not defined (not provisioned), corrupt (bad magic, checksum...), TPM failures.
    io::task<core::expected<core::vault_metadata, std::string>> read_metadata() override;

    /// Unseals every listed secret whose state is not EXPIRED, with the PCR policy recorded in
    /// its blob file. Errors name the version and the file: missing, corrupt, refused by the
    /// TPM (wrong auth, PCR policy not satisfied), TPM failures.
    io::task<core::expected<core::secret_set, std::string>> load(
        const core::vault_metadata& meta) override;

    /// Seals each secret and writes its blob file atomically (crash point "tpm.sealed" after
    /// each seal). Refuses versions <= the committed highest_version (their blob may be live).
    /// Errors: the version, the file and the failing step; a failed file write leaves no
    /// partial file (the previous one, if any, stays).
    io::task<core::expected<void, std::string>> stage(std::span<const core::new_secret> added) override;

    /// Writes `next` as the NV record (the commit point; crash point "tpm.nv_written" after it),
    /// then removes the blob files of versions `next` does not list (best effort). Refuses a
    /// generation not above the committed one, a smaller highest_version, an `added` secret
    /// missing from `next` or without its blob file, and malformed metadata.
    io::task<core::expected<void, std::string>> commit(const core::vault_metadata& next,
                                                       std::span<const core::new_secret> added) override;

    /// As of the last operation: available = the TPM answered; detail = "ok" or the last error.
    core::vault_health health() const override { return health_; }

    /// The blob file name of a version ("secret-<version>.sealed").
    static std::string blob_name(std::uint64_t version);

private:
    io::task<core::expected<core::vault_metadata, std::string>> read_record();
    std::string tpm_text(const std::error_code& ec) const;
    void note(const std::error_code& ec);
    void ok();
    /// Records `text` as the health detail and returns it as the error.
    core::unexpected<std::string> failed(std::string text);

    tpm_vault_options opts_;
    core::vault_health health_{false, "no operation yet"};
};

}  // namespace la::tpm
