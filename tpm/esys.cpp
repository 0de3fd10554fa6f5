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
    opens_.fetch_add(1, std::memory_order_relaxed);
    fresh_ = true;
    return ctx_;
}

void esys_session::close() noexcept {
    if (ctx_ != nullptr) Esys_Finalize(&ctx_);
    ctx_ = nullptr;
    if (tcti_ctx_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_ctx_);
    tcti_ctx_ = nullptr;
}

}  // namespace la::tpm
