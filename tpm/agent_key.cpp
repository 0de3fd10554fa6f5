#include "tpm/agent_key.hpp"

#include <cstring>

#include "crypto/rsa.hpp"
#include "crypto/sha256.hpp"

namespace la::tpm {
namespace {

constexpr std::uint32_t persistent_first = 0x81000000u;
constexpr std::uint32_t persistent_last = 0x81FFFFFFu;

bool persistent(std::uint32_t handle) noexcept {
    return handle >= persistent_first && handle <= persistent_last;
}

// fixedTPM | fixedParent: the private part can never be duplicated out of this TPM;
// sensitiveDataOrigin: the TPM generated it, nobody outside ever saw it.
constexpr TPMA_OBJECT agent_attributes =
    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_SIGN_ENCRYPT;

TPM2B_PUBLIC agent_template() noexcept {
    TPM2B_PUBLIC pub{};
    TPMT_PUBLIC& t = pub.publicArea;
    t.type = TPM2_ALG_RSA;
    t.nameAlg = TPM2_ALG_SHA256;
    t.objectAttributes = agent_attributes;
    TPMS_RSA_PARMS& p = t.parameters.rsaDetail;
    p.symmetric.algorithm = TPM2_ALG_NULL;  // not a storage key
    p.scheme.scheme = TPM2_ALG_NULL;        // the scheme comes with each Decrypt / Sign
    p.keyBits = agent_key_bits;
    p.exponent = 0;                         // 65537
    return pub;
}

// True when a public area is exactly what agent_template() creates (the TPM fills in unique).
bool is_agent_key(const TPMT_PUBLIC& t) noexcept {
    const TPMS_RSA_PARMS& p = t.parameters.rsaDetail;
    return t.type == TPM2_ALG_RSA && t.nameAlg == TPM2_ALG_SHA256 &&
           t.objectAttributes == agent_attributes && t.authPolicy.size == 0 &&
           p.symmetric.algorithm == TPM2_ALG_NULL && p.scheme.scheme == TPM2_ALG_NULL &&
           p.keyBits == agent_key_bits && (p.exponent == 0 || p.exponent == 65537) &&
           t.unique.rsa.size == agent_key_bits / 8;
}

core::result<esys_tr> open_persistent(ESYS_CONTEXT* ctx, std::uint32_t handle) {
    ESYS_TR tr = ESYS_TR_NONE;
    const TSS2_RC rc =
        Esys_TR_FromTPMPublic(ctx, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return esys_tr(ctx, tr, false);
}

// Reads the public area at tr and, when it is an agent key, its SPKI DER.
core::result<std::vector<std::uint8_t>> agent_spki(ESYS_CONTEXT* ctx, ESYS_TR tr) {
    TPM2B_PUBLIC* pub_raw = nullptr;
    TPM2B_NAME* name_raw = nullptr;
    TPM2B_NAME* qname_raw = nullptr;
    const TSS2_RC rc = Esys_ReadPublic(ctx, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw,
                                       &name_raw, &qname_raw);
    const esys_ptr<TPM2B_PUBLIC> pub(pub_raw);
    const esys_ptr<TPM2B_NAME> name(name_raw);
    const esys_ptr<TPM2B_NAME> qname(qname_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const TPMT_PUBLIC& t = pub->publicArea;
    if (!is_agent_key(t)) return core::fail(core::errc::key_invalid);
    const auto modulus = std::as_bytes(std::span(t.unique.rsa.buffer, t.unique.rsa.size));
    auto key = crypto::rsa_public_key::from_components(modulus, t.parameters.rsaDetail.exponent);
    if (!key) return core::fail(key.error());
    return key->der();
}

core::result<agent_key_info> provision_on(esys_session& s, std::uint32_t primary_handle,
                                          std::uint32_t key_handle) {
    ESYS_CONTEXT* ctx = LA_TRY(s.context());
    agent_key_info info;
    info.handle = key_handle;
    if (LA_TRY(handle_exists(ctx, key_handle))) {
        // Reused whatever its parent: a persistent key works on its own, and fixedParent only
        // matters for duplication, which fixedTPM forbids anyway.
        const esys_tr existing = LA_TRY(open_persistent(ctx, key_handle));
        info.public_der = LA_TRY(agent_spki(ctx, existing.get()));
        return info;
    }

    const esys_tr parent = LA_TRY(open_persistent(ctx, primary_handle));
    const TPM2B_SENSITIVE_CREATE sensitive{};
    const TPM2B_PUBLIC in_public = agent_template();
    const created_object made = LA_TRY(create_object(ctx, parent.get(), sensitive, in_public));
    const esys_ptr<TPM2B_PRIVATE>& priv = made.priv;
    const esys_ptr<TPM2B_PUBLIC>& pub = made.pub;

    ESYS_TR loaded_raw = ESYS_TR_NONE;
    TSS2_RC rc = Esys_Load(ctx, parent.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv.get(),
                   pub.get(), &loaded_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const esys_tr loaded(ctx, loaded_raw, true);  // the transient copy is flushed on every path

    // Until this succeeds nothing persists: a failure or crash before it leaves the handle
    // empty and the next provisioning starts over.
    ESYS_TR persistent_raw = ESYS_TR_NONE;
    rc = Esys_EvictControl(ctx, ESYS_TR_RH_OWNER, loaded.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, key_handle, &persistent_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const esys_tr persistent_key(ctx, persistent_raw, false);
    info.created = true;
    info.public_der = LA_TRY(agent_spki(ctx, persistent_key.get()));
    return info;
}

// TPM answers meaning "this ciphertext does not decrypt under the key": the reference code
// returns TPM_RC_VALUE (bad padding) or TPM_RC_SIZE (length != modulus), on any parameter;
// libtpms's OpenSSL backend (swtpm) returns TPM_RC_FAILURE for bad padding, without entering
// failure mode (a TPM in failure mode would already have refused the ReadPublic that
// Esys_TR_FromTPMPublic sent just before).
bool is_bad_ciphertext(TSS2_RC rc) noexcept {
    if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) return false;
    if (rc == TPM2_RC_FAILURE) return true;
    if ((rc & TPM2_RC_FMT1) == 0) return false;
    const TSS2_RC base = rc & (TPM2_RC_FMT1 | 0x3Fu);  // drop the parameter/handle number
    return base == TPM2_RC_VALUE || base == TPM2_RC_SIZE;
}

struct decrypt_job {
    std::uint32_t handle;
    TPM2B_PUBLIC_KEY_RSA ciphertext;

    core::result<crypto::secure_buffer> operator()(esys_session& s) const {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        const esys_tr key = LA_TRY(open_persistent(ctx, handle));
        TPMT_RSA_DECRYPT scheme{};
        scheme.scheme = TPM2_ALG_OAEP;
        scheme.details.oaep.hashAlg = TPM2_ALG_SHA256;  // the TPM's MGF1 uses the same hash
        const TPM2B_DATA label{};
        // The plaintext travels back encrypted under a session salted to this key itself.
        const esys_tr enc = LA_TRY(encrypt_session(ctx, key.get(), TPMA_SESSION_ENCRYPT));
        TPM2B_PUBLIC_KEY_RSA* out_raw = nullptr;
        const TSS2_RC rc = Esys_RSA_Decrypt(ctx, key.get(), ESYS_TR_PASSWORD, enc.get(),
                                            ESYS_TR_NONE, &ciphertext, &scheme, &label, &out_raw);
        const esys_ptr<TPM2B_PUBLIC_KEY_RSA> out(out_raw);
        if (is_bad_ciphertext(rc)) return core::fail(core::errc::auth_failed);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        // The clear plaintext in ESYS's buffer is wiped before Esys_Free.
        struct wipe {
            TPM2B_PUBLIC_KEY_RSA* p;
            ~wipe() { crypto::secure_zero(p, sizeof *p); }
        } const wiper{out.get()};
        if (out->size == 0) return crypto::secure_buffer{};
        auto buf = LA_TRY(crypto::secure_buffer::allocate(out->size));
        std::memcpy(buf.data(), out->buffer, out->size);
        return buf;
    }
};

struct sign_job {
    std::uint32_t handle;
    TPM2B_DIGEST digest;

    core::result<std::vector<std::uint8_t>> operator()(esys_session& s) const {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        const esys_tr key = LA_TRY(open_persistent(ctx, handle));
        TPMT_SIG_SCHEME scheme{};
        scheme.scheme = TPM2_ALG_RSAPSS;
        scheme.details.rsapss.hashAlg = TPM2_ALG_SHA256;
        // An unrestricted key signs any digest: the validation ticket may be the NULL ticket.
        TPMT_TK_HASHCHECK validation{};
        validation.tag = TPM2_ST_HASHCHECK;
        validation.hierarchy = TPM2_RH_NULL;
        TPMT_SIGNATURE* sig_raw = nullptr;
        const TSS2_RC rc = Esys_Sign(ctx, key.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                     &digest, &scheme, &validation, &sig_raw);
        const esys_ptr<TPMT_SIGNATURE> sig(sig_raw);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        if (sig->sigAlg != TPM2_ALG_RSAPSS) return core::fail(core::errc::crypto_failure);
        const TPM2B_PUBLIC_KEY_RSA& raw = sig->signature.rsapss.sig;
        return std::vector<std::uint8_t>(raw.buffer, raw.buffer + raw.size);
    }
};

}  // namespace

io::task<core::result<agent_key_info>> provision_agent_key(tpm_thread& tpm,
                                                           std::uint32_t primary_handle,
                                                           std::uint32_t key_handle) {
    if (!persistent(primary_handle) || !persistent(key_handle) || primary_handle == key_handle)
        co_return core::fail(std::errc::invalid_argument);
    co_return co_await tpm.call_keygen([primary_handle, key_handle](esys_session& s) {
        return provision_on(s, primary_handle, key_handle);
    });
}

io::task<core::result<crypto::secure_buffer>> agent_decrypt_oaep(
    tpm_thread& tpm, std::uint32_t key_handle, std::span<const std::byte> ciphertext) {
    if (!persistent(key_handle)) co_return core::fail(std::errc::invalid_argument);
    decrypt_job job{key_handle, {}};
    if (ciphertext.empty() || ciphertext.size() > sizeof job.ciphertext.buffer)
        co_return core::fail(std::errc::invalid_argument);
    job.ciphertext.size = static_cast<std::uint16_t>(ciphertext.size());
    std::memcpy(job.ciphertext.buffer, ciphertext.data(), ciphertext.size());
    co_return co_await tpm.call(job);
}

io::task<core::result<std::vector<std::uint8_t>>> agent_sign_pss(
    tpm_thread& tpm, std::uint32_t key_handle, std::span<const std::byte> message) {
    if (!persistent(key_handle)) co_return core::fail(std::errc::invalid_argument);
    const crypto::sha256_digest digest = crypto::sha256(message);
    sign_job job{key_handle, {}};
    job.digest.size = static_cast<std::uint16_t>(digest.size());
    std::memcpy(job.digest.buffer, digest.data(), digest.size());
    co_return co_await tpm.call(job);
}

io::task<core::result<std::vector<std::uint8_t>>> agent_public_der(tpm_thread& tpm,
                                                                   std::uint32_t key_handle) {
    if (!persistent(key_handle)) co_return core::fail(std::errc::invalid_argument);
    co_return co_await tpm.call([key_handle](esys_session& s)
                                    -> core::result<std::vector<std::uint8_t>> {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        const esys_tr key = LA_TRY(open_persistent(ctx, key_handle));
        return agent_spki(ctx, key.get());
    });
}

}  // namespace la::tpm
