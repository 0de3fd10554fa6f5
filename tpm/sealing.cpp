#include "tpm/sealing.hpp"

#include <tss2/tss2_mu.h>

#include <cstring>

#include <fmt/format.h>

namespace la::tpm {
namespace {

class seal_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "tpm.seal"; }
    std::string message(int ev) const override {
        switch (static_cast<seal_errc>(ev)) {
            case seal_errc::pcr_mismatch:
                return "PCR policy not satisfied: the PCR values (or the PCR selection) differ "
                       "from those the secret was sealed to";
            case seal_errc::pcr_bank_inactive:
                return "the PCR policy names a PCR bank or PCR the TPM does not have active";
        }
        return "unknown sealing error";
    }
};

class pcr_policy_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "tpm.pcr_policy"; }
    std::string message(int ev) const override {
        switch (static_cast<pcr_policy_errc>(ev)) {
            case pcr_policy_errc::malformed:
                return "malformed PCR policy: expected <bank>:<PCR list>, like \"sha256:0,2,7\"";
            case pcr_policy_errc::unknown_bank:
                return "unknown PCR bank: expected sha1, sha256 or sha384";
            case pcr_policy_errc::not_a_number: return "a PCR in the list is not a decimal number";
            case pcr_policy_errc::out_of_range:
                return fmt::format("a PCR number is out of range (0..{})", max_pcr);
            case pcr_policy_errc::duplicate: return "a PCR is listed twice";
            case pcr_policy_errc::empty_list: return "no PCR listed after the bank";
        }
        return "invalid PCR policy";
    }
};

struct bank_name {
    std::string_view name;
    TPMI_ALG_HASH alg;
};
constexpr bank_name banks[] = {
    {"sha1", TPM2_ALG_SHA1}, {"sha256", TPM2_ALG_SHA256}, {"sha384", TPM2_ALG_SHA384}};

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool valid(const pcr_policy& p) noexcept {
    if (p.empty()) return true;
    if (p.mask >> (max_pcr + 1) != 0) return false;
    for (const auto& b : banks)
        if (b.alg == p.hash) return true;
    return false;
}

// The policy as a TPML_PCR_SELECTION: one bank, three select bytes (PCRs 0..23).
TPML_PCR_SELECTION selection(const pcr_policy& p) noexcept {
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = p.hash;
    sel.pcrSelections[0].sizeofSelect = 3;
    for (unsigned i = 0; i < 3; ++i)
        sel.pcrSelections[0].pcrSelect[i] = static_cast<BYTE>((p.mask >> (8 * i)) & 0xFFu);
    return sel;
}

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
    if (LA_TRY(handle_exists(ctx, handle))) {
        const esys_tr existing = LA_TRY(load_parent(ctx, handle));
        return describe(ctx, existing.get(), handle, false);
    }

    const TPM2B_SENSITIVE_CREATE in_sensitive{};
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION pcrs{};
    TSS2_RC rc = TSS2_RC_SUCCESS;
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

// A policy session (trial or real) with PolicyAuthValue, then PolicyPCR when `pcr` selects
// PCRs. The PCR digest argument is empty, so the TPM uses the PCRs' current values: in a trial
// session that is what the object gets bound to; in a real one a changed PCR yields another
// session digest than the object's authPolicy.
core::result<esys_tr> policy_session(ESYS_CONTEXT* ctx, TPM2_SE type, const pcr_policy& pcr) {
    const TPMT_SYM_DEF sym{TPM2_ALG_NULL, {}, {}};
    ESYS_TR raw = ESYS_TR_NONE;
    TSS2_RC rc = Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, nullptr, type, &sym, TPM2_ALG_SHA256, &raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    esys_tr session(ctx, raw, true);
    rc = Esys_PolicyAuthValue(ctx, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    if (!pcr.empty()) {
        const TPM2B_DIGEST current{};
        const TPML_PCR_SELECTION sel = selection(pcr);
        rc = Esys_PolicyPCR(ctx, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current,
                            &sel);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    }
    return session;
}

core::result<esys_ptr<TPM2B_DIGEST>> session_digest(ESYS_CONTEXT* ctx, const esys_tr& session) {
    TPM2B_DIGEST* raw = nullptr;
    const TSS2_RC rc =
        Esys_PolicyGetDigest(ctx, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw);
    esys_ptr<TPM2B_DIGEST> digest(raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return digest;
}

// A bank that is not allocated would make PolicyPCR bind to nothing: refuse it up front.
core::result<void> check_bank_active(ESYS_CONTEXT* ctx, const pcr_policy& pcr) {
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA* caps_raw = nullptr;
    const TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                          TPM2_CAP_PCRS, 0, 1, &more, &caps_raw);
    const esys_ptr<TPMS_CAPABILITY_DATA> caps(caps_raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    const TPML_PCR_SELECTION& active = caps->data.assignedPCR;
    for (std::uint32_t i = 0; i < active.count && i < TPM2_NUM_PCR_BANKS; ++i) {
        const TPMS_PCR_SELECTION& bank = active.pcrSelections[i];
        if (bank.hash != pcr.hash) continue;
        std::uint32_t have = 0;
        for (unsigned b = 0; b < bank.sizeofSelect && b < 4; ++b)
            have |= std::uint32_t{bank.pcrSelect[b]} << (8 * b);
        if ((have & pcr.mask) == pcr.mask) return {};
    }
    return core::fail(make_error_code(seal_errc::pcr_bank_inactive));
}

struct seal_job {
    std::uint32_t handle;
    pcr_policy pcr;
    TPM2B_SENSITIVE_CREATE sensitive;

    core::result<std::vector<std::uint8_t>> operator()(esys_session& s) const {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        if (!pcr.empty()) {
            if (auto active = check_bank_active(ctx, pcr); !active) return core::fail(active.error());
        }
        const esys_tr parent = LA_TRY(load_parent(ctx, handle));

        // The policy digest, from a trial session (flushed at the end of the block).
        esys_ptr<TPM2B_DIGEST> digest;
        {
            const esys_tr trial = LA_TRY(policy_session(ctx, TPM2_SE_TRIAL, pcr));
            digest = LA_TRY(session_digest(ctx, trial));
        }

        TPM2B_PUBLIC in_public{};
        TPMT_PUBLIC& t = in_public.publicArea;
        t.type = TPM2_ALG_KEYEDHASH;
        t.nameAlg = TPM2_ALG_SHA256;
        // No USERWITHAUTH: only the policy opens it. NODA: a wrong auth after an unclean
        // restart does not push the TPM towards dictionary-attack lockout.
        t.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
        t.authPolicy = *digest;
        t.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;

        const created_object made = LA_TRY(create_object(ctx, parent.get(), sensitive, in_public));
        const esys_ptr<TPM2B_PRIVATE>& priv = made.priv;
        const esys_ptr<TPM2B_PUBLIC>& pub = made.pub;

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
    pcr_policy pcr;
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
        const esys_tr policy = LA_TRY(policy_session(ctx, TPM2_SE_POLICY, pcr));
        // PolicyAuthValue contributes the same to every digest, so a difference here is the PCR
        // part: say so instead of letting Unseal answer a bare TPM_RC_POLICY_FAIL.
        const auto digest = LA_TRY(session_digest(ctx, policy));
        const TPM2B_DIGEST& want = pub.publicArea.authPolicy;
        if (digest->size != want.size || std::memcmp(digest->buffer, want.buffer, want.size) != 0)
            return core::fail(make_error_code(seal_errc::pcr_mismatch));

        // The unsealed secret travels back encrypted under a session salted to the primary.
        const esys_tr enc = LA_TRY(encrypt_session(ctx, parent.get(), TPMA_SESSION_ENCRYPT));
        TPM2B_SENSITIVE_DATA* out_raw = nullptr;
        rc = Esys_Unseal(ctx, obj.get(), policy.get(), enc.get(), ESYS_TR_NONE, &out_raw);
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

core::result<pcr_policy> parse_pcr_policy(std::string_view text) {
    const auto bad = [](pcr_policy_errc e) { return core::fail(make_error_code(e)); };
    const std::string_view all = trim(text);
    if (all.empty()) return pcr_policy{};
    const auto colon = all.find(':');
    if (colon == std::string_view::npos) return bad(pcr_policy_errc::malformed);
    const std::string_view bank = trim(all.substr(0, colon));
    pcr_policy out;
    for (const auto& b : banks)
        if (b.name == bank) out.hash = b.alg;
    if (out.hash == TPM2_ALG_NULL) return bad(pcr_policy_errc::unknown_bank);
    std::string_view rest = all.substr(colon + 1);
    if (trim(rest).empty()) return bad(pcr_policy_errc::empty_list);
    while (true) {
        const auto comma = rest.find(',');
        const std::string_view item = trim(rest.substr(0, comma));
        if (item.empty() || item.find_first_not_of("0123456789") != std::string_view::npos)
            return bad(pcr_policy_errc::not_a_number);
        unsigned pcr = 0;
        for (const char c : item.substr(0, 3)) pcr = pcr * 10 + static_cast<unsigned>(c - '0');
        if (item.size() > 3 || pcr > max_pcr) return bad(pcr_policy_errc::out_of_range);
        const std::uint32_t bit = std::uint32_t{1} << pcr;
        if ((out.mask & bit) != 0) return bad(pcr_policy_errc::duplicate);
        out.mask |= bit;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return out;
}

std::string to_string(const pcr_policy& p) {
    if (p.empty()) return "none";
    std::string out = "?";
    for (const auto& b : banks)
        if (b.alg == p.hash) out = b.name;
    char sep = ':';
    for (unsigned i = 0; i <= 31; ++i) {
        if ((p.mask >> i & 1u) == 0) continue;
        out += sep;
        out += std::to_string(i);
        sep = ',';
    }
    return out;
}

const std::error_category& pcr_policy_category() noexcept {
    static const pcr_policy_category_impl category;
    return category;
}

const std::error_category& seal_category() noexcept {
    static const seal_category_impl category;
    return category;
}

io::task<core::result<primary_info>> provision(tpm_thread& tpm, std::uint32_t handle) {
    if (handle < persistent_first || handle > persistent_last)
        co_return core::fail(std::errc::invalid_argument);
    co_return co_await tpm.call_keygen([handle](esys_session& s) { return provision_on(s, handle); });
}

io::task<core::result<std::vector<std::uint8_t>>> seal(
    tpm_thread& tpm, std::uint32_t primary_handle, std::span<const std::byte, secret_size> secret,
    std::span<const std::byte> auth, const pcr_policy& pcr) {
    if (auth.size() > max_auth_size || !valid(pcr)) co_return core::fail(std::errc::invalid_argument);
    seal_job job{primary_handle, pcr, {}};
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
                                                     std::span<const std::byte> auth,
                                                     const pcr_policy& pcr) {
    if (auth.size() > max_auth_size || !valid(pcr)) co_return core::fail(std::errc::invalid_argument);
    unseal_job job{primary_handle, pcr, {}, {}, {}};
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
