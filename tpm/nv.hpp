// An ordinary NV index in the owner hierarchy: the TPM vault's metadata record lives in one.
//
// Attributes (nv_attributes): OWNERWRITE | OWNERREAD | AUTHREAD | NO_DA, empty index auth, no
// policy. Writes need owner-hierarchy authorization, the same as creating the storage primary,
// so a process that may merely use the TPM cannot rewrite the record unless the owner auth is
// empty (the agent assumes it is, as for the primary). Reads take the index's own, empty auth:
// the record holds no secret (versions, dates, states, the generation), and tpm-status can show
// it without the owner's. NO_DA: a failed authorization on the index never counts towards the
// dictionary-attack lockout that would also block unsealing. Not WRITEDEFINE / WRITE_STCLEAR /
// READ_STCLEAR: nothing may lock the record, or rotation could be frozen until a reboot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <type_traits>
#include <vector>

#include "core/result.hpp"
#include "io/task.hpp"
#include "tpm/tpm_thread.hpp"

namespace la::tpm {

/// The attributes provision_nv() defines (see the file comment for why).
inline constexpr TPMA_NV nv_attributes =
    TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;
/// Largest index this module handles (TPM2B_MAX_NV_BUFFER's capacity; TPMs allow 2048 or less).
inline constexpr std::size_t max_nv_size = TPM2_MAX_NV_BUFFER_SIZE;

/// Errors of this module beyond TSS2 codes.
enum class nv_errc {
    not_defined = 1,  ///< no NV index at that handle
    shape_mismatch,   ///< the index exists with another size or other attributes
};
/// The category of nv_errc.
const std::error_category& nv_category() noexcept;
/// An nv_errc as an error code.
inline std::error_code make_error_code(nv_errc e) noexcept {
    return {static_cast<int>(e), nv_category()};
}

/// An NV index as the TPM describes it.
struct nv_info {
    std::uint32_t index = 0;
    std::uint16_t size = 0;      ///< data size in bytes
    TPMA_NV attributes = 0;      ///< including state bits (TPMA_NV_WRITTEN, ...)
    bool created = false;        ///< provision_nv() defined it just now
};

/// Makes sure an ordinary index of `size` bytes with nv_attributes exists at `nv_index`
/// (0x01000000..0x01FFFFFF); idempotent: an existing index of that shape is reused.
/// Errors: invalid_argument (handle out of range, size 0 or > max_nv_size),
/// nv_errc::shape_mismatch (use nv_describe() to say how), TSS2 codes, timed_out.
io::task<core::result<nv_info>> provision_nv(tpm_thread& tpm, std::uint32_t nv_index,
                                             std::uint16_t size);

/// The public area of `nv_index`, or nullopt when no index is defined there.
/// Errors: invalid_argument (handle out of range), TSS2 codes, timed_out.
io::task<core::result<std::optional<nv_info>>> nv_describe(tpm_thread& tpm, std::uint32_t nv_index);

/// The whole content of `nv_index`, or nullopt when it was never written (TPMA_NV_WRITTEN
/// clear). Reads in chunks of the TPM's TPM2_PT_NV_BUFFER_MAX.
/// Errors: invalid_argument, nv_errc::not_defined, TSS2 codes, timed_out.
io::task<core::result<std::optional<std::vector<std::uint8_t>>>> nv_read(tpm_thread& tpm,
                                                                          std::uint32_t nv_index);

/// Writes `data` at offset 0 of `nv_index` with owner authorization, in chunks of
/// TPM2_PT_NV_BUFFER_MAX: a write larger than one chunk is not atomic (a crash can leave a
/// mix), so records that span chunks must carry their own checksum.
/// Errors: invalid_argument (data empty or larger than the index / max_nv_size),
/// nv_errc::not_defined, TSS2 codes, timed_out.
io::task<core::result<void>> nv_write(tpm_thread& tpm, std::uint32_t nv_index,
                                      std::span<const std::uint8_t> data);

/// Removes `nv_index` (owner authorization); absent is success. Tests and `reset`.
/// Errors: invalid_argument, TSS2 codes, timed_out.
io::task<core::result<void>> nv_undefine(tpm_thread& tpm, std::uint32_t nv_index);

}  // namespace la::tpm

template <>
struct std::is_error_code_enum<la::tpm::nv_errc> : std::true_type {};
