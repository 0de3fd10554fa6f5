#include "tpm/sealing.hpp"

#include <tss2/tss2_mu.h>

#include <cstring>

namespace la::tpm {
namespace {

constexpr std::uint32_t persistent_first = 0x81000000u;
constexpr std::uint32_t persistent_last = 0x81FFFFFFu;

// The standard storage-key template (as tpm2_createprimary -G ecc / -G rsa): restricted
// decryption key, AES-128-CFB for its children.
TPM2B_PUBLIC storage_template(bool ecc) noexcept {
    TPM2B_PUBLIC pub{};
    TPMT_PUBLIC& t = pub.publicArea;
    t.nameAlg = TPM2_ALG_SHA256;
    t.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                         TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                         TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    if (ecc) {
        t.type = TPM2_ALG_ECC;
        TPMS_ECC_PARMS& p = t.parameters.eccDetail;
        p.symmetric.algorithm = TPM2_ALG_AES;
        p.symmetric.keyBits.aes = 128;
        p.symmetric.mode.aes = TPM2_ALG_CFB;
        p.scheme.scheme = TPM2_ALG_NULL;
        p.curveID = TPM2_ECC_NIST_P256;
        p.kdf.scheme = TPM2_ALG_NULL;
    } else {
        t.type = TPM2_ALG_RSA;
        TPMS_RSA_PARMS& p = t.parameters.rsaDetail;
        p.symmetric.algorithm = TPM2_ALG_AES;
        p.symmetric.keyBits.aes = 128;
        p.symmetric.mode.aes = TPM2_ALG_CFB;
        p.scheme.scheme = TPM2_ALG_NULL;
        p.keyBits = 2048;
        p.exponent = 0;
    }
    return pub;
}

core::result<primary_info> describe(ESYS_CONTEXT* ctx, ESYS_TR tr, std::uint32_t handle,
                                    bool created) {
    TPM2B_PUBLIC* pub_raw = nullptr;
    TPM2B_NAME* name_raw = nullptr;
    TPM2B_NAME* qname_raw = nullptr;
    const TSS2_RC rc = Esys_ReadPublic(ctx, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw,
                                       &name_raw, &qname_raw);
    esys_ptr<TPM2B_PUBLIC> pub(pub_raw);
    esys_ptr<TPM2B_NAME> name(name_raw);
    esys_ptr<TPM2B_NAME> qname(qname_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    primary_info info;
    info.handle = handle;
    info.created = created;
    info.type = pub->publicArea.type;
    info.name.assign(name->name, name->name + name->size);
    return info;
}

core::result<esys_tr> load_parent(ESYS_CONTEXT* ctx, std::uint32_t handle) {
    ESYS_TR tr = ESYS_TR_NONE;
    const TSS2_RC rc =
        Esys_TR_FromTPMPublic(ctx, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return esys_tr(ctx, tr, false);
}

core::result<primary_info> provision_on(esys_session& s, std::uint32_t handle) {
    ESYS_CONTEXT* ctx = LA_TRY(s.context());
    // Ask for the handle first: probing with Esys_TR_FromTPMPublic would log an ESYS error.
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA* caps_raw = nullptr;
    TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    TPM2_CAP_HANDLES, handle, 1, &more, &caps_raw);
    const esys_ptr<TPMS_CAPABILITY_DATA> caps(caps_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const TPML_HANDLE& found = caps->data.handles;
    if (found.count > 0 && found.handle[0] == handle) {
        const esys_tr existing = LA_TRY(load_parent(ctx, handle));
        return describe(ctx, existing.get(), handle, false);
    }

    const TPM2B_SENSITIVE_CREATE in_sensitive{};
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION pcrs{};
    ESYS_TR primary_raw = ESYS_TR_NONE;
    for (const bool ecc : {true, false}) {
        const TPM2B_PUBLIC in_public = storage_template(ecc);
        TPM2B_PUBLIC* out_public = nullptr;
        TPM2B_CREATION_DATA* creation_data = nullptr;
        TPM2B_DIGEST* creation_hash = nullptr;
        TPMT_TK_CREATION* ticket = nullptr;
        rc = Esys_CreatePrimary(ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                &in_sensitive, &in_public, &outside, &pcrs, &primary_raw,
                                &out_public, &creation_data, &creation_hash, &ticket);
        esys_ptr<TPM2B_PUBLIC> p1(out_public);
        esys_ptr<TPM2B_CREATION_DATA> p2(creation_data);
        esys_ptr<TPM2B_DIGEST> p3(creation_hash);
        esys_ptr<TPMT_TK_CREATION> p4(ticket);
        // A TPM-layer refusal of the ECC template (no ECC, no P-256) falls back to RSA.
        if (rc == TSS2_RC_SUCCESS || !ecc || (rc & 0xFF0000u) != 0) break;
    }
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const esys_tr primary(ctx, primary_raw, true);

    ESYS_TR persistent_raw = ESYS_TR_NONE;
    rc = Esys_EvictControl(ctx, ESYS_TR_RH_OWNER, primary.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, handle, &persistent_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const esys_tr persistent(ctx, persistent_raw, false);
    return describe(ctx, persistent.get(), handle, true);
}

// A policy session (trial or real) with PolicyAuthValue applied.
core::result<esys_tr> auth_value_session(ESYS_CONTEXT* ctx, TPM2_SE type) {
    const TPMT_SYM_DEF sym{TPM2_ALG_NULL, {}, {}};
    ESYS_TR raw = ESYS_TR_NONE;
    TSS2_RC rc = Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, nullptr, type, &sym, TPM2_ALG_SHA256, &raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    esys_tr session(ctx, raw, true);
    rc = Esys_PolicyAuthValue(ctx, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return session;
}

struct seal_job {
    std::uint32_t handle;
    TPM2B_SENSITIVE_CREATE sensitive;

    core::result<std::vector<std::uint8_t>> operator()(esys_session& s) const {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        const esys_tr parent = LA_TRY(load_parent(ctx, handle));

        // The policy digest of "PolicyAuthValue", from a trial session.
        TPM2B_DIGEST* digest_raw = nullptr;
        {
            const esys_tr trial = LA_TRY(auth_value_session(ctx, TPM2_SE_TRIAL));
            const TSS2_RC rc = Esys_PolicyGetDigest(ctx, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                                    ESYS_TR_NONE, &digest_raw);
            if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        }
        const esys_ptr<TPM2B_DIGEST> digest(digest_raw);

        TPM2B_PUBLIC in_public{};
        TPMT_PUBLIC& t = in_public.publicArea;
        t.type = TPM2_ALG_KEYEDHASH;
        t.nameAlg = TPM2_ALG_SHA256;
        // No USERWITHAUTH: only the policy opens it. NODA: a wrong auth after an unclean
        // restart does not push the TPM towards dictionary-attack lockout.
        t.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
        t.authPolicy = *digest;
        t.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;

        const TPM2B_DATA outside{};
        const TPML_PCR_SELECTION pcrs{};
        TPM2B_PRIVATE* priv_raw = nullptr;
        TPM2B_PUBLIC* pub_raw = nullptr;
        TPM2B_CREATION_DATA* creation_data = nullptr;
        TPM2B_DIGEST* creation_hash = nullptr;
        TPMT_TK_CREATION* ticket = nullptr;
        const TSS2_RC rc = Esys_Create(ctx, parent.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &sensitive, &in_public, &outside, &pcrs,
                                       &priv_raw, &pub_raw, &creation_data, &creation_hash, &ticket);
        const esys_ptr<TPM2B_PRIVATE> priv(priv_raw);
        const esys_ptr<TPM2B_PUBLIC> pub(pub_raw);
        const esys_ptr<TPM2B_CREATION_DATA> p3(creation_data);
        const esys_ptr<TPM2B_DIGEST> p4(creation_hash);
        const esys_ptr<TPMT_TK_CREATION> p5(ticket);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);

        std::vector<std::uint8_t> blob(sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE));
        std::size_t off = 0;
        TSS2_RC mrc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub.get(), blob.data(), blob.size(), &off);
        if (mrc == TSS2_RC_SUCCESS)
            mrc = Tss2_MU_TPM2B_PRIVATE_Marshal(priv.get(), blob.data(), blob.size(), &off);
        if (mrc != TSS2_RC_SUCCESS) return fail_rc(mrc);
        blob.resize(off);
        return blob;
    }
};

struct unseal_job {
    std::uint32_t handle;
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
    TPM2B_AUTH auth;

    core::result<crypto::secure_buffer> operator()(esys_session& s) const {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        const esys_tr parent = LA_TRY(load_parent(ctx, handle));
        ESYS_TR obj_raw = ESYS_TR_NONE;
        TSS2_RC rc = Esys_Load(ctx, parent.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               &priv, &pub, &obj_raw);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        const esys_tr obj(ctx, obj_raw, true);  // flushed on every path
        rc = Esys_TR_SetAuth(ctx, obj.get(), &auth);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        const esys_tr policy = LA_TRY(auth_value_session(ctx, TPM2_SE_POLICY));

        TPM2B_SENSITIVE_DATA* out_raw = nullptr;
        rc = Esys_Unseal(ctx, obj.get(), policy.get(), ESYS_TR_NONE, ESYS_TR_NONE, &out_raw);
        const esys_ptr<TPM2B_SENSITIVE_DATA> out(out_raw);
        // ESYS keeps the auth value in its object metadata until the flush; the clear copy in
        // `out` is wiped below before Esys_Free.
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        struct wipe {
            TPM2B_SENSITIVE_DATA* p;
            ~wipe() { crypto::secure_zero(p, sizeof *p); }
        } const wiper{out.get()};
        if (out->size != secret_size) return core::fail(std::errc::invalid_argument);
        auto buf = LA_TRY(crypto::secure_buffer::allocate(secret_size));
        std::memcpy(buf.data(), out->buffer, secret_size);
        return buf;
    }
};

}  // namespace

io::task<core::result<primary_info>> provision(tpm_thread& tpm, std::uint32_t handle) {
    if (handle < persistent_first || handle > persistent_last)
        co_return core::fail(std::errc::invalid_argument);
    co_return co_await tpm.call([handle](esys_session& s) { return provision_on(s, handle); });
}

io::task<core::result<std::vector<std::uint8_t>>> seal(
    tpm_thread& tpm, std::uint32_t primary_handle, std::span<const std::byte, secret_size> secret,
    std::span<const std::byte> auth) {
    if (auth.size() > max_auth_size) co_return core::fail(std::errc::invalid_argument);
    seal_job job{primary_handle, {}};
    job.sensitive.sensitive.userAuth.size = static_cast<std::uint16_t>(auth.size());
    if (!auth.empty()) std::memcpy(job.sensitive.sensitive.userAuth.buffer, auth.data(), auth.size());
    job.sensitive.sensitive.data.size = static_cast<std::uint16_t>(secret.size());
    std::memcpy(job.sensitive.sensitive.data.buffer, secret.data(), secret.size());
    auto r = co_await tpm.call(job);
    crypto::secure_zero(&job, sizeof job);
    co_return r;
}

io::task<core::result<crypto::secure_buffer>> unseal(tpm_thread& tpm, std::uint32_t primary_handle,
                                                     std::span<const std::uint8_t> blob,
                                                     std::span<const std::byte> auth) {
    if (auth.size() > max_auth_size) co_return core::fail(std::errc::invalid_argument);
    unseal_job job{primary_handle, {}, {}, {}};
    std::size_t off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob.data(), blob.size(), &off, &job.pub) !=
            TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob.data(), blob.size(), &off, &job.priv) !=
            TSS2_RC_SUCCESS ||
        off != blob.size())
        co_return core::fail(std::errc::invalid_argument);
    job.auth.size = static_cast<std::uint16_t>(auth.size());
    if (!auth.empty()) std::memcpy(job.auth.buffer, auth.data(), auth.size());
    auto r = co_await tpm.call(job);
    crypto::secure_zero(&job.auth, sizeof job.auth);
    co_return r;
}

}  // namespace la::tpm
