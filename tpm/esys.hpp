// The ESYS context and RAII owners for ESAPI handles and outputs. Thread: everything here runs on
// the TPM thread only (tpm_thread hands an esys_session& to each job), except
// esys_session::mark_broken().
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "core/result.hpp"
#include "tpm/error.hpp"

namespace la::tpm {

/// Frees ESAPI outputs (Esys_Free).
struct esys_deleter {
    void operator()(void* p) const noexcept { Esys_Free(p); }
};
/// An ESAPI output buffer, released with Esys_Free.
template <class T>
using esys_ptr = std::unique_ptr<T, esys_deleter>;

/// Owns an ESYS_TR: transient objects and sessions are flushed from the TPM, other handles
/// (persistent, NV) only have their ESYS metadata closed.
class esys_tr {
public:
    esys_tr() noexcept = default;
    esys_tr(ESYS_CONTEXT* ctx, ESYS_TR tr, bool flush) noexcept : ctx_(ctx), tr_(tr), flush_(flush) {}
    esys_tr(esys_tr&& o) noexcept;
    esys_tr& operator=(esys_tr&& o) noexcept;
    esys_tr(const esys_tr&) = delete;
    esys_tr& operator=(const esys_tr&) = delete;
    ~esys_tr() { reset(); }

    ESYS_TR get() const noexcept { return tr_; }
    /// Flushes or closes now (errors are ignored: the handle is gone either way).
    void reset() noexcept;

private:
    ESYS_CONTEXT* ctx_ = nullptr;
    ESYS_TR tr_ = ESYS_TR_NONE;
    bool flush_ = false;
};

/// One ESYS context on one TCTI, opened lazily and reopened after a connection failure.
class esys_session {
public:
    /// `tcti` as in config: "swtpm:path=/x/sock", "device:/dev/tpmrm0", "mssim:host=h,port=p".
    explicit esys_session(std::string tcti) : tcti_(std::move(tcti)) {}
    ~esys_session() { close(); }
    esys_session(const esys_session&) = delete;
    esys_session& operator=(const esys_session&) = delete;

    /// The open context, opening (or reopening after mark_broken) it first.
    /// Errors: the TSS2_RC of Tss2_TctiLdr_Initialize / Esys_Initialize / Esys_Startup.
    core::result<ESYS_CONTEXT*> context();
    /// Starts a job: fresh() turns true only if this job's context() opens a new context.
    void begin_job() noexcept {
        fresh_ = false;
        busy_since_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                          std::memory_order_relaxed);
    }
    /// The job is over (whatever its outcome).
    void end_job() noexcept { busy_since_.store(0, std::memory_order_relaxed); }
    /// How long the current job has run (zero when idle). Thread: any.
    std::chrono::steady_clock::duration busy_for() const noexcept {
        const auto since = busy_since_.load(std::memory_order_relaxed);
        if (since == 0) return {};
        return std::chrono::steady_clock::now().time_since_epoch() -
               std::chrono::steady_clock::duration(since);
    }
    /// True when a context() call since begin_job() opened a fresh context.
    bool fresh() const noexcept { return fresh_; }
    /// Forces a reopen before the next call. Thread: any.
    void mark_broken() noexcept { broken_.store(true, std::memory_order_relaxed); }
    /// How many times a context was opened (tests observe reconnects).
    std::uint64_t opens() const noexcept { return opens_.load(std::memory_order_relaxed); }

private:
    void close() noexcept;
    void flush_leftovers() noexcept;

    std::string tcti_;
    TSS2_TCTI_CONTEXT* tcti_ctx_ = nullptr;
    ESYS_CONTEXT* ctx_ = nullptr;
    bool fresh_ = false;
    std::atomic<bool> broken_{false};
    std::atomic<std::uint64_t> opens_{0};
    std::atomic<std::chrono::steady_clock::rep> busy_since_{0};
};

/// One TPM2_GetCapability query (the first `count` entries from `property`).
core::result<esys_ptr<TPMS_CAPABILITY_DATA>> get_capability(ESYS_CONTEXT* ctx, TPM2_CAP capability,
                                                            std::uint32_t property, std::uint32_t count);

/// True when a persistent object or NV index sits at `handle`. Asks the capability list:
/// probing with Esys_TR_FromTPMPublic would log an ESYS error for an empty handle.
core::result<bool> handle_exists(ESYS_CONTEXT* ctx, std::uint32_t handle);

/// The two halves of an object made by TPM2_Create (the creation data is dropped).
struct created_object {
    esys_ptr<TPM2B_PRIVATE> priv;
    esys_ptr<TPM2B_PUBLIC> pub;
};

/// An HMAC session salted to the loaded key `salt_key`, with AES-128-CFB parameter encryption
/// (`attrs`: TPMA_SESSION_DECRYPT for the command's first parameter, TPMA_SESSION_ENCRYPT for
/// the response's). Passed as a command's second session, it keeps a secret from crossing the
/// bus to a discrete TPM in clear. Flushed when the esys_tr goes.
core::result<esys_tr> encrypt_session(ESYS_CONTEXT* ctx, ESYS_TR salt_key, TPMA_SESSION attrs);

/// TPM2_Create under `parent` (password session, the sensitive part sent under an
/// encrypt_session() salted to `parent`), no outside info, no creation PCRs.
core::result<created_object> create_object(ESYS_CONTEXT* ctx, ESYS_TR parent,
                                           const TPM2B_SENSITIVE_CREATE& sensitive,
                                           const TPM2B_PUBLIC& in_public);

/// A TSS2_RC as a failed result (rc != 0).
inline core::unexpected<std::error_code> fail_rc(TSS2_RC rc) {
    return core::fail(make_tss2_error(rc));
}

}  // namespace la::tpm
