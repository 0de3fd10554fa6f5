#include "tpm/esys.hpp"

#include <utility>

namespace la::tpm {

esys_tr::esys_tr(esys_tr&& o) noexcept
    : ctx_(o.ctx_), tr_(std::exchange(o.tr_, ESYS_TR_NONE)), flush_(o.flush_) {}

esys_tr& esys_tr::operator=(esys_tr&& o) noexcept {
    if (this != &o) {
        reset();
        ctx_ = o.ctx_;
        tr_ = std::exchange(o.tr_, ESYS_TR_NONE);
        flush_ = o.flush_;
    }
    return *this;
}

void esys_tr::reset() noexcept {
    if (tr_ == ESYS_TR_NONE || ctx_ == nullptr) return;
    if (flush_) (void)Esys_FlushContext(ctx_, tr_);
    else (void)Esys_TR_Close(ctx_, &tr_);
    tr_ = ESYS_TR_NONE;
}

core::result<ESYS_CONTEXT*> esys_session::context() {
    if (broken_.exchange(false, std::memory_order_relaxed)) close();
    if (ctx_ != nullptr) return ctx_;
    TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti_.c_str(), &tcti_ctx_);
    if (rc != TSS2_RC_SUCCESS) {
        tcti_ctx_ = nullptr;
        return fail_rc(rc);
    }
    rc = Esys_Initialize(&ctx_, tcti_ctx_, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
        ctx_ = nullptr;
        close();
        return fail_rc(rc);
    }
    // A TPM that was just powered on needs Startup; an already started one answers INITIALIZE.
    rc = Esys_Startup(ctx_, TPM2_SU_CLEAR);
    if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
        close();
        return fail_rc(rc);
    }
    flush_leftovers();
    opens_.fetch_add(1, std::memory_order_relaxed);
    fresh_ = true;
    return ctx_;
}

// A previous agent killed mid-call (kill -9, power cut of the process only) leaves its transient
// objects and sessions loaded: without a resource manager (swtpm, /dev/tpm0) they would fill the
// TPM's few slots after a handful of crashes. Behind /dev/tpmrm0 the list only shows this
// connection's handles (none yet), so this is a no-op there.
void esys_session::flush_leftovers() noexcept {
    for (const TPM2_HANDLE first : {TPM2_TRANSIENT_FIRST, TPM2_LOADED_SESSION_FIRST}) {
        TPMS_CAPABILITY_DATA* raw = nullptr;
        TPMI_YES_NO more = TPM2_NO;
        if (Esys_GetCapability(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                               first, TPM2_MAX_CAP_HANDLES, &more, &raw) != TSS2_RC_SUCCESS)
            continue;
        esys_ptr<TPMS_CAPABILITY_DATA> data(raw);
        for (std::uint32_t i = 0; i < data->data.handles.count; ++i) {
            ESYS_TR tr = ESYS_TR_NONE;
            if (Esys_TR_FromTPMPublic(ctx_, data->data.handles.handle[i], ESYS_TR_NONE, ESYS_TR_NONE,
                                      ESYS_TR_NONE, &tr) != TSS2_RC_SUCCESS)
                continue;
            if (Esys_FlushContext(ctx_, tr) != TSS2_RC_SUCCESS) (void)Esys_TR_Close(ctx_, &tr);
        }
    }
}

core::result<esys_ptr<TPMS_CAPABILITY_DATA>> get_capability(ESYS_CONTEXT* ctx, TPM2_CAP capability,
                                                            std::uint32_t property, std::uint32_t count) {
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA* raw = nullptr;
    const TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, capability,
                                          property, count, &more, &raw);
    esys_ptr<TPMS_CAPABILITY_DATA> data(raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return data;
}

core::result<bool> handle_exists(ESYS_CONTEXT* ctx, std::uint32_t handle) {
    auto caps = get_capability(ctx, TPM2_CAP_HANDLES, handle, 1);
    if (!caps) return core::fail(caps.error());
    const TPML_HANDLE& found = (*caps)->data.handles;
    return found.count > 0 && found.handle[0] == handle;
}

core::result<esys_tr> encrypt_session(ESYS_CONTEXT* ctx, ESYS_TR salt_key, TPMA_SESSION attrs) {
    TPMT_SYM_DEF sym{};
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
    ESYS_TR raw = ESYS_TR_NONE;
    TSS2_RC rc = Esys_StartAuthSession(ctx, salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       nullptr, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    esys_tr session(ctx, raw, true);
    // continueSession: the session outlives the command, so the esys_tr's flush is the only one.
    rc = Esys_TRSess_SetAttributes(ctx, session.get(), attrs | TPMA_SESSION_CONTINUESESSION, 0xff);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return session;
}

core::result<created_object> create_object(ESYS_CONTEXT* ctx, ESYS_TR parent,
                                           const TPM2B_SENSITIVE_CREATE& sensitive,
                                           const TPM2B_PUBLIC& in_public) {
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION pcrs{};
    TPM2B_PRIVATE* priv = nullptr;
    TPM2B_PUBLIC* pub = nullptr;
    TPM2B_CREATION_DATA* creation_data = nullptr;
    TPM2B_DIGEST* creation_hash = nullptr;
    TPMT_TK_CREATION* ticket = nullptr;
    // The sensitive part (a sealed secret's bytes) travels encrypted to the TPM.
    const esys_tr enc = LA_TRY(encrypt_session(ctx, parent, TPMA_SESSION_DECRYPT));
    const TSS2_RC rc = Esys_Create(ctx, parent, ESYS_TR_PASSWORD, enc.get(), ESYS_TR_NONE,
                                   &sensitive, &in_public, &outside, &pcrs, &priv, &pub,
                                   &creation_data, &creation_hash, &ticket);
    created_object out{esys_ptr<TPM2B_PRIVATE>(priv), esys_ptr<TPM2B_PUBLIC>(pub)};
    const esys_ptr<TPM2B_CREATION_DATA> d(creation_data);
    const esys_ptr<TPM2B_DIGEST> h(creation_hash);
    const esys_ptr<TPMT_TK_CREATION> t(ticket);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return out;
}

void esys_session::close() noexcept {
    if (ctx_ != nullptr) Esys_Finalize(&ctx_);
    ctx_ = nullptr;
    if (tcti_ctx_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_ctx_);
    tcti_ctx_ = nullptr;
}

}  // namespace la::tpm
