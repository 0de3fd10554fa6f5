#include "tpm/error.hpp"

#include <tss2/tss2_common.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tpm2_types.h>

#include <string>

namespace la::tpm {
namespace {

class tss2_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "tss2"; }
    std::string message(int ev) const override {
        // Tss2_RC_Decode returns a pointer to a thread-local buffer: copy it at once.
        return Tss2_RC_Decode(static_cast<TSS2_RC>(ev));
    }
};

constexpr std::uint32_t layer_mask = 0xFF0000u;
constexpr std::uint32_t tcti_layer = 10u << 16;
constexpr std::uint32_t tpm_layer = 0u;
constexpr std::uint32_t resmgr_tpm_layer = 12u << 16;

}  // namespace

const std::error_category& tss2_category() noexcept {
    static const tss2_category_impl category;
    return category;
}

bool is_auth_failure(const std::error_code& ec) noexcept {
    if (ec.category() != tss2_category()) return false;
    const auto rc = static_cast<std::uint32_t>(ec.value());
    const std::uint32_t layer = rc & layer_mask;
    if (layer != tpm_layer && layer != resmgr_tpm_layer) return false;
    if ((rc & 0x80u) == 0) return false;  // format 0 codes carry no handle/session number
    const std::uint32_t number = rc & 0x3Fu;
    return number == (TPM2_RC_AUTH_FAIL & 0x3Fu) || number == (TPM2_RC_BAD_AUTH & 0x3Fu) ||
           number == (TPM2_RC_POLICY_FAIL & 0x3Fu);
}

bool is_connection_failure(std::uint32_t rc) noexcept {
    const std::uint32_t layer = rc & layer_mask;
    if (layer == tcti_layer) return true;
    // ESYS/SYS report an unusable channel as these base codes.
    const std::uint32_t base = rc & 0xFFFFu;
    return layer != tpm_layer && layer != resmgr_tpm_layer &&
           (base == TSS2_BASE_RC_IO_ERROR || base == TSS2_BASE_RC_MALFORMED_RESPONSE ||
            base == TSS2_BASE_RC_INSUFFICIENT_RESPONSE || base == TSS2_BASE_RC_NO_CONNECTION ||
            base == TSS2_BASE_RC_TRY_AGAIN || base == TSS2_BASE_RC_BAD_SEQUENCE ||
            base == TSS2_BASE_RC_GENERAL_FAILURE);
}

}  // namespace la::tpm
