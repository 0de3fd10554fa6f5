#include "tpm/nv.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace la::tpm {
namespace {

constexpr std::uint32_t nv_first = 0x01000000u;
constexpr std::uint32_t nv_last = 0x01FFFFFFu;
// Bits the TPM changes by itself: not part of the shape we define.
constexpr TPMA_NV state_bits = TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED | TPMA_NV_READLOCKED;

class nv_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "tpm.nv"; }
    std::string message(int ev) const override {
        switch (static_cast<nv_errc>(ev)) {
            case nv_errc::not_defined: return "the NV index is not defined";
            case nv_errc::shape_mismatch:
                return "the NV index exists with another size or other attributes";
        }
        return "unknown NV error";
    }
};

bool in_range(std::uint32_t index) noexcept { return index >= nv_first && index <= nv_last; }


core::result<esys_tr> open_index(ESYS_CONTEXT* ctx, std::uint32_t index) {
    if (!LA_TRY(handle_exists(ctx, index))) return core::fail(make_error_code(nv_errc::not_defined));
    ESYS_TR tr = ESYS_TR_NONE;
    const TSS2_RC rc =
        Esys_TR_FromTPMPublic(ctx, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return esys_tr(ctx, tr, false);
}

core::result<nv_info> read_public(ESYS_CONTEXT* ctx, const esys_tr& tr, std::uint32_t index) {
    TPM2B_NV_PUBLIC* pub_raw = nullptr;
    TPM2B_NAME* name_raw = nullptr;
    const TSS2_RC rc = Esys_NV_ReadPublic(ctx, tr.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                          &pub_raw, &name_raw);
    const esys_ptr<TPM2B_NV_PUBLIC> pub(pub_raw);
    const esys_ptr<TPM2B_NAME> name(name_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    nv_info info;
    info.index = index;
    info.size = pub->nvPublic.dataSize;
    info.attributes = pub->nvPublic.attributes;
    return info;
}

// TPM2_PT_NV_BUFFER_MAX: the most one NV_Read / NV_Write may move.
core::result<std::uint16_t> buffer_max(ESYS_CONTEXT* ctx) {
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA* caps_raw = nullptr;
    const TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                          TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more,
                                          &caps_raw);
    const esys_ptr<TPMS_CAPABILITY_DATA> caps(caps_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const TPML_TAGGED_TPM_PROPERTY& props = caps->data.tpmProperties;
    // 512 is the PC-client minimum, should a TPM not report the property.
    std::uint32_t n = 512;
    if (props.count > 0 && props.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX)
        n = props.tpmProperty[0].value;
    return static_cast<std::uint16_t>(std::clamp<std::uint32_t>(n, 1, TPM2_MAX_NV_BUFFER_SIZE));
}

core::result<nv_info> provision_on(esys_session& s, std::uint32_t index, std::uint16_t size) {
    ESYS_CONTEXT* ctx = LA_TRY(s.context());
    if (LA_TRY(handle_exists(ctx, index))) {
        const esys_tr tr = LA_TRY(open_index(ctx, index));
        const nv_info info = LA_TRY(read_public(ctx, tr, index));
        if (info.size != size || (info.attributes & ~state_bits) != nv_attributes)
            return core::fail(make_error_code(nv_errc::shape_mismatch));
        return info;
    }
    TPM2B_NV_PUBLIC pub{};
    pub.nvPublic.nvIndex = index;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    pub.nvPublic.attributes = nv_attributes;
    pub.nvPublic.dataSize = size;
    const TPM2B_AUTH no_auth{};
    ESYS_TR tr = ESYS_TR_NONE;
    const TSS2_RC rc = Esys_NV_DefineSpace(ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                           ESYS_TR_NONE, &no_auth, &pub, &tr);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const esys_tr defined(ctx, tr, false);
    nv_info info;
    info.index = index;
    info.size = size;
    info.attributes = nv_attributes;
    info.created = true;
    return info;
}

struct read_job {
    std::uint32_t index;

    core::result<std::optional<std::vector<std::uint8_t>>> operator()(esys_session& s) const {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        const esys_tr tr = LA_TRY(open_index(ctx, index));
        const nv_info info = LA_TRY(read_public(ctx, tr, index));
        if ((info.attributes & TPMA_NV_WRITTEN) == 0) return std::nullopt;
        const std::uint16_t chunk = LA_TRY(buffer_max(ctx));
        std::vector<std::uint8_t> out;
        out.reserve(info.size);
        while (out.size() < info.size) {
            const auto offset = static_cast<std::uint16_t>(out.size());
            const auto n = static_cast<std::uint16_t>(std::min<std::size_t>(chunk, info.size - out.size()));
            TPM2B_MAX_NV_BUFFER* data_raw = nullptr;
            // AUTHREAD: the index authorizes its own read, with its (empty) auth value.
            const TSS2_RC rc = Esys_NV_Read(ctx, tr.get(), tr.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                            ESYS_TR_NONE, n, offset, &data_raw);
            const esys_ptr<TPM2B_MAX_NV_BUFFER> data(data_raw);
            if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
            if (data->size == 0 || data->size > n) return fail_rc(TSS2_ESYS_RC_MALFORMED_RESPONSE);
            out.insert(out.end(), data->buffer, data->buffer + data->size);
        }
        return std::optional<std::vector<std::uint8_t>>(std::move(out));
    }
};

struct write_job {
    std::uint32_t index;
    TPM2B_MAX_NV_BUFFER data;

    core::result<void> operator()(esys_session& s) const {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        const esys_tr tr = LA_TRY(open_index(ctx, index));
        const nv_info info = LA_TRY(read_public(ctx, tr, index));
        if (data.size > info.size) return core::fail(std::errc::invalid_argument);
        const std::uint16_t chunk = LA_TRY(buffer_max(ctx));
        for (std::uint16_t offset = 0; offset < data.size;) {
            TPM2B_MAX_NV_BUFFER part{};
            part.size = std::min<std::uint16_t>(chunk, static_cast<std::uint16_t>(data.size - offset));
            std::memcpy(part.buffer, data.buffer + offset, part.size);
            const TSS2_RC rc = Esys_NV_Write(ctx, ESYS_TR_RH_OWNER, tr.get(), ESYS_TR_PASSWORD,
                                             ESYS_TR_NONE, ESYS_TR_NONE, &part, offset);
            if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
            offset = static_cast<std::uint16_t>(offset + part.size);
        }
        return {};
    }
};

core::result<void> undefine_on(esys_session& s, std::uint32_t index) {
    ESYS_CONTEXT* ctx = LA_TRY(s.context());
    if (!LA_TRY(handle_exists(ctx, index))) return {};
    ESYS_TR tr = ESYS_TR_NONE;
    TSS2_RC rc = Esys_TR_FromTPMPublic(ctx, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    // On success ESYS drops the handle itself, so it is not wrapped in an esys_tr.
    rc = Esys_NV_UndefineSpace(ctx, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) {
        (void)Esys_TR_Close(ctx, &tr);
        return fail_rc(rc);
    }
    return {};
}

}  // namespace

const std::error_category& nv_category() noexcept {
    static const nv_category_impl category;
    return category;
}

io::task<core::result<nv_info>> provision_nv(tpm_thread& tpm, std::uint32_t nv_index,
                                             std::uint16_t size) {
    if (!in_range(nv_index) || size == 0 || size > max_nv_size)
        co_return core::fail(std::errc::invalid_argument);
    co_return co_await tpm.call(
        [nv_index, size](esys_session& s) { return provision_on(s, nv_index, size); });
}

io::task<core::result<std::optional<nv_info>>> nv_describe(tpm_thread& tpm, std::uint32_t nv_index) {
    if (!in_range(nv_index)) co_return core::fail(std::errc::invalid_argument);
    co_return co_await tpm.call(
        [nv_index](esys_session& s) -> core::result<std::optional<nv_info>> {
            ESYS_CONTEXT* ctx = LA_TRY(s.context());
            if (!LA_TRY(handle_exists(ctx, nv_index))) return std::nullopt;
            const esys_tr tr = LA_TRY(open_index(ctx, nv_index));
            return LA_TRY(read_public(ctx, tr, nv_index));
        });
}

io::task<core::result<std::optional<std::vector<std::uint8_t>>>> nv_read(tpm_thread& tpm,
                                                                          std::uint32_t nv_index) {
    if (!in_range(nv_index)) co_return core::fail(std::errc::invalid_argument);
    co_return co_await tpm.call(read_job{nv_index});
}

io::task<core::result<void>> nv_write(tpm_thread& tpm, std::uint32_t nv_index,
                                      std::span<const std::uint8_t> data) {
    if (!in_range(nv_index) || data.empty() || data.size() > max_nv_size)
        co_return core::fail(std::errc::invalid_argument);
    write_job job{nv_index, {}};
    job.data.size = static_cast<std::uint16_t>(data.size());
    std::memcpy(job.data.buffer, data.data(), data.size());
    co_return co_await tpm.call(job);
}

io::task<core::result<void>> nv_undefine(tpm_thread& tpm, std::uint32_t nv_index) {
    if (!in_range(nv_index)) co_return core::fail(std::errc::invalid_argument);
    co_return co_await tpm.call([nv_index](esys_session& s) { return undefine_on(s, nv_index); });
}

}  // namespace la::tpm
