// The TPM-resident agent key against a real swtpm per test, with the openssl CLI and
// crypto::rsa_public_key as independent peers.
#include "tpm/agent_key.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "crypto/rsa.hpp"
#include "io/ring.hpp"
#include "tests/support/swtpm_fixture.hpp"
#include "tests/unit/crypto/test_util.hpp"
#include "tpm/error.hpp"
#include "tpm/sealing.hpp"
#include "tpm/tpm_thread.hpp"

namespace la::tpm {
namespace {

using namespace std::chrono_literals;
using test::bytes_of;

constexpr std::uint32_t primary_handle = 0x81010001u;
constexpr std::uint32_t key_handle = 0x81010002u;

constexpr const char* oaep_opts =
    " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256";

std::span<const std::byte> as_span(const std::vector<std::uint8_t>& v) {
    return std::as_bytes(std::span(v));
}

bool same_bytes(const crypto::secure_buffer& b, std::span<const std::byte> want) {
    return b.size() == want.size() &&
           (want.empty() || std::memcmp(b.data(), want.data(), want.size()) == 0);
}

test::command_result sh(const std::string& cmd) { return test::run_command("( " + cmd + " ) 2>&1"); }

io::task<core::result<agent_key_info>> provision_both(tpm_thread& tpm) {
    auto p = co_await provision(tpm, primary_handle);
    if (!p) co_return core::fail(p.error());
    co_return co_await provision_agent_key(tpm, primary_handle, key_handle);
}

io::task<core::result<primary_info>> provision_primary(tpm_thread& tpm, std::uint32_t handle) {
    co_return co_await provision(tpm, handle);
}

io::task<core::result<agent_key_info>> provision_key(tpm_thread& tpm, std::uint32_t primary,
                                                     std::uint32_t key) {
    co_return co_await provision_agent_key(tpm, primary, key);
}

io::task<core::result<crypto::secure_buffer>> decrypt(tpm_thread& tpm, std::uint32_t key,
                                                      std::span<const std::byte> ct) {
    co_return co_await agent_decrypt_oaep(tpm, key, ct);
}

io::task<core::result<std::vector<std::uint8_t>>> sign(tpm_thread& tpm, std::uint32_t key,
                                                       std::span<const std::byte> msg) {
    co_return co_await agent_sign_pss(tpm, key, msg);
}

io::task<core::result<std::vector<std::uint8_t>>> public_der(tpm_thread& tpm, std::uint32_t key) {
    co_return co_await agent_public_der(tpm, key);
}

// The public area at a persistent handle, read with TPM2_ReadPublic.
io::task<core::result<TPMT_PUBLIC>> read_public(tpm_thread& tpm, std::uint32_t handle) {
    co_return co_await tpm.call([handle](esys_session& s) -> core::result<TPMT_PUBLIC> {
        ESYS_CONTEXT* ctx = LA_TRY(s.context());
        ESYS_TR tr = ESYS_TR_NONE;
        TSS2_RC rc = Esys_TR_FromTPMPublic(ctx, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        const esys_tr owner(ctx, tr, false);
        TPM2B_PUBLIC* pub_raw = nullptr;
        TPM2B_NAME* name_raw = nullptr;
        TPM2B_NAME* qname_raw = nullptr;
        rc = Esys_ReadPublic(ctx, owner.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw,
                             &name_raw, &qname_raw);
        const esys_ptr<TPM2B_PUBLIC> pub(pub_raw);
        const esys_ptr<TPM2B_NAME> name(name_raw);
        const esys_ptr<TPM2B_NAME> qname(qname_raw);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        return pub->publicArea;
    });
}

class AgentKeyTest : public test::with_swtpm<> {
  protected:
    std::string file(const std::string& name) const { return (swtpm_.dir() / name).string(); }

    // openssl encrypts `plain` to the SPKI DER with OAEP-SHA-256 and returns the ciphertext.
    std::vector<std::byte> openssl_encrypt(const std::vector<std::uint8_t>& spki,
                                           std::span<const std::byte> plain) {
        test::write_bytes(file("pub.der"), as_span(spki));
        test::write_bytes(file("plain.bin"), plain);
        const auto r = sh("openssl pkeyutl -encrypt -pubin -keyform DER -inkey " + file("pub.der") +
                          oaep_opts + " -in " + file("plain.bin") + " -out " + file("ct.bin"));
        EXPECT_EQ(r.status, 0) << r.out;
        return test::read_bytes(file("ct.bin"));
    }
};

TEST_F(AgentKeyTest, ProvisioningTwiceReusesTheKey) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    auto first = ring_->run(provision_both(tpm));
    ASSERT_TRUE(first.has_value()) << first.error().message();
    EXPECT_TRUE(first->created);
    EXPECT_EQ(first->handle, key_handle);
    EXPECT_FALSE(first->public_der.empty());

    auto second = ring_->run(provision_both(tpm));
    ASSERT_TRUE(second.has_value()) << second.error().message();
    EXPECT_FALSE(second->created);
    EXPECT_EQ(second->handle, key_handle);
    EXPECT_EQ(second->public_der, first->public_der);

    auto der = ring_->run(public_der(tpm, key_handle));
    ASSERT_TRUE(der.has_value()) << der.error().message();
    EXPECT_EQ(*der, first->public_der);
}

TEST_F(AgentKeyTest, PublicDerIsAnRsa2048SpkiThatOpensslAndWolfsslRead) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    auto info = ring_->run(provision_both(tpm));
    ASSERT_TRUE(info.has_value()) << info.error().message();
    test::write_bytes(file("pub.der"), as_span(info->public_der));
    const auto r = sh("openssl pkey -pubin -inform DER -in " + file("pub.der") + " -noout -text");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("Public-Key: (2048 bit)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Exponent: 65537"), std::string::npos) << r.out;
    auto key = crypto::rsa_public_key::from_der(as_span(info->public_der));
    ASSERT_TRUE(key.has_value()) << key.error().message();
    EXPECT_EQ(key->size(), 256u);
}

TEST_F(AgentKeyTest, OpensslEncryptsToTheExportedKeyAndTheTpmDecrypts) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    auto info = ring_->run(provision_both(tpm));
    ASSERT_TRUE(info.has_value()) << info.error().message();
    std::array<std::byte, 32> secret{};
    for (std::size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<std::byte>(0x5A ^ (i * 13));

    const auto ct = openssl_encrypt(info->public_der, secret);
    ASSERT_EQ(ct.size(), 256u);
    auto pt = ring_->run(decrypt(tpm, key_handle, ct));
    ASSERT_TRUE(pt.has_value()) << pt.error().message();
    EXPECT_TRUE(same_bytes(*pt, secret));

    // And from our own software implementation.
    auto key = crypto::rsa_public_key::from_der(as_span(info->public_der));
    ASSERT_TRUE(key.has_value());
    auto ct2 = key->encrypt_oaep_sha256(secret);
    ASSERT_TRUE(ct2.has_value());
    auto pt2 = ring_->run(decrypt(tpm, key_handle, as_span(*ct2)));
    ASSERT_TRUE(pt2.has_value()) << pt2.error().message();
    EXPECT_TRUE(same_bytes(*pt2, secret));
}

TEST_F(AgentKeyTest, TamperedOrMisSizedCiphertextIsRefused) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    auto info = ring_->run(provision_both(tpm));
    ASSERT_TRUE(info.has_value()) << info.error().message();
    auto ct = openssl_encrypt(info->public_der, bytes_of("rotation secret"));
    ASSERT_EQ(ct.size(), 256u);
    auto bad_ct = ct;
    bad_ct[200] ^= std::byte{0x01};
    auto bad = ring_->run(decrypt(tpm, key_handle, bad_ct));
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error(), core::errc::auth_failed) << bad.error().message();

    auto shorter = ring_->run(decrypt(tpm, key_handle, std::span(ct).first(255)));
    ASSERT_FALSE(shorter.has_value());
    EXPECT_EQ(shorter.error(), core::errc::auth_failed) << shorter.error().message();

    // Encrypted to another key: just as undecryptable.
    auto other = crypto::rsa_private_key::generate();
    ASSERT_TRUE(other.has_value());
    auto foreign = other->public_key()->encrypt_oaep_sha256(bytes_of("rotation secret"));
    ASSERT_TRUE(foreign.has_value());
    auto wrong_key = ring_->run(decrypt(tpm, key_handle, as_span(*foreign)));
    ASSERT_FALSE(wrong_key.has_value());
    EXPECT_EQ(wrong_key.error(), core::errc::auth_failed) << wrong_key.error().message();

    // The refusals left the TPM fully usable.
    auto good = ring_->run(decrypt(tpm, key_handle, ct));
    ASSERT_TRUE(good.has_value()) << good.error().message();
    EXPECT_TRUE(same_bytes(*good, bytes_of("rotation secret")));

    EXPECT_EQ(ring_->run(decrypt(tpm, key_handle, {})).error(), std::errc::invalid_argument);
    const std::vector<std::byte> huge(513);
    EXPECT_EQ(ring_->run(decrypt(tpm, key_handle, huge)).error(), std::errc::invalid_argument);
}

TEST_F(AgentKeyTest, TpmPssSignatureVerifiesWithOpensslAndWolfssl) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    auto info = ring_->run(provision_both(tpm));
    ASSERT_TRUE(info.has_value()) << info.error().message();
    const std::string message = "rotate: key 7 -> key 8";
    auto sig = ring_->run(sign(tpm, key_handle, bytes_of(message)));
    ASSERT_TRUE(sig.has_value()) << sig.error().message();
    ASSERT_EQ(sig->size(), 256u);

    test::write_bytes(file("pub.der"), as_span(info->public_der));
    test::write_bytes(file("msg"), bytes_of(message));
    test::write_bytes(file("sig"), as_span(*sig));
    const std::string verify = "openssl dgst -sha256 -keyform DER -verify " + file("pub.der") +
                               " -sigopt rsa_padding_mode:pss -sigopt rsa_mgf1_md:sha256 -signature " +
                               file("sig") + " -sigopt rsa_pss_saltlen:";
    // Salt auto-detection accepts it; pinning the length shows what swtpm (libtpms) uses: the
    // digest size (32), not the maximum (222 for RSA-2048 / SHA-256).
    auto r = sh(verify + "auto " + file("msg"));
    EXPECT_EQ(r.status, 0) << r.out;
    r = sh(verify + "32 " + file("msg"));
    EXPECT_EQ(r.status, 0) << r.out;
    r = sh(verify + "max " + file("msg"));
    EXPECT_NE(r.status, 0) << r.out;

    auto key = crypto::rsa_public_key::from_der(as_span(info->public_der));
    ASSERT_TRUE(key.has_value());
    EXPECT_TRUE(key->verify_pss_sha256(bytes_of(message), as_span(*sig)).has_value());
    EXPECT_EQ(key->verify_pss_sha256(bytes_of("rotate: key 7 -> key 9"), as_span(*sig)).error(),
              core::errc::auth_failed);
    auto tampered = *sig;
    tampered[17] ^= 0x04;
    EXPECT_EQ(key->verify_pss_sha256(bytes_of(message), as_span(tampered)).error(),
              core::errc::auth_failed);

    // PSS is randomized in the TPM too.
    auto again = ring_->run(sign(tpm, key_handle, bytes_of(message)));
    ASSERT_TRUE(again.has_value());
    EXPECT_NE(*again, *sig);
    EXPECT_TRUE(key->verify_pss_sha256(bytes_of(message), as_span(*again)).has_value());
}

TEST_F(AgentKeyTest, KeySurvivesSwtpmRestart) {
    std::vector<std::uint8_t> der;
    {
        tpm_thread tpm({swtpm_.tcti(), 10000ms});
        auto info = ring_->run(provision_both(tpm));
        ASSERT_TRUE(info.has_value()) << info.error().message();
        ASSERT_TRUE(info->created);
        der = info->public_der;
    }
    swtpm_.stop();
    ASSERT_TRUE(swtpm_.start());

    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    auto again = ring_->run(provision_both(tpm));
    ASSERT_TRUE(again.has_value()) << again.error().message();
    EXPECT_FALSE(again->created);
    EXPECT_EQ(again->public_der, der);
    const auto ct = openssl_encrypt(der, bytes_of("after restart"));
    auto pt = ring_->run(decrypt(tpm, key_handle, ct));
    ASSERT_TRUE(pt.has_value()) << pt.error().message();
    EXPECT_TRUE(same_bytes(*pt, bytes_of("after restart")));
}

TEST_F(AgentKeyTest, PrivatePartIsBoundToThisTpm) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    auto info = ring_->run(provision_both(tpm));
    ASSERT_TRUE(info.has_value()) << info.error().message();
    auto pub = ring_->run(read_public(tpm, key_handle));
    ASSERT_TRUE(pub.has_value()) << pub.error().message();
    const TPMA_OBJECT a = pub->objectAttributes;
    // fixedTPM + fixedParent: TPM2_Duplicate is refused, the private part never leaves the TPM
    // except wrapped by this TPM's own storage key. sensitiveDataOrigin: the TPM generated it.
    EXPECT_NE(a & TPMA_OBJECT_FIXEDTPM, 0u);
    EXPECT_NE(a & TPMA_OBJECT_FIXEDPARENT, 0u);
    EXPECT_NE(a & TPMA_OBJECT_SENSITIVEDATAORIGIN, 0u);
    EXPECT_NE(a & TPMA_OBJECT_NODA, 0u);
    EXPECT_NE(a & TPMA_OBJECT_DECRYPT, 0u);
    EXPECT_NE(a & TPMA_OBJECT_SIGN_ENCRYPT, 0u);
    EXPECT_EQ(a & TPMA_OBJECT_RESTRICTED, 0u);
    EXPECT_EQ(a & TPMA_OBJECT_ENCRYPTEDDUPLICATION, 0u);
    EXPECT_EQ(pub->type, TPM2_ALG_RSA);
    EXPECT_EQ(pub->parameters.rsaDetail.keyBits, 2048u);
    EXPECT_EQ(pub->parameters.rsaDetail.scheme.scheme, TPM2_ALG_NULL);
    EXPECT_EQ(pub->authPolicy.size, 0u);
}

TEST_F(AgentKeyTest, HandleHoldingAnotherObjectIsRefused) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    // A storage primary (restricted, ECC) where the agent key should be.
    auto p = ring_->run(provision_primary(tpm, key_handle));
    ASSERT_TRUE(p.has_value()) << p.error().message();
    auto p2 = ring_->run(provision_primary(tpm, primary_handle));
    ASSERT_TRUE(p2.has_value()) << p2.error().message();

    auto r = ring_->run(provision_key(tpm, primary_handle, key_handle));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), core::errc::key_invalid);
    auto der = ring_->run(public_der(tpm, key_handle));
    ASSERT_FALSE(der.has_value());
    EXPECT_EQ(der.error(), core::errc::key_invalid);
    // The storage key itself refuses to act as the agent key.
    auto sig = ring_->run(sign(tpm, key_handle, bytes_of("x")));
    ASSERT_FALSE(sig.has_value());
    EXPECT_EQ(sig.error().category(), tss2_category());
}

TEST_F(AgentKeyTest, BadHandlesAreRefusedBeforeReachingTheTpm) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    EXPECT_EQ(ring_->run(provision_key(tpm, primary_handle, 0x80000001u)).error(),
              std::errc::invalid_argument);
    EXPECT_EQ(ring_->run(provision_key(tpm, 0x40000001u, key_handle)).error(),
              std::errc::invalid_argument);
    EXPECT_EQ(ring_->run(provision_key(tpm, primary_handle, primary_handle)).error(),
              std::errc::invalid_argument);
    EXPECT_EQ(ring_->run(public_der(tpm, 0x01000000u)).error(), std::errc::invalid_argument);
    EXPECT_EQ(ring_->run(sign(tpm, 0x82000000u, bytes_of("x"))).error(), std::errc::invalid_argument);
    EXPECT_EQ(tpm.opens(), 0u);
}

TEST_F(AgentKeyTest, MissingKeyOrPrimaryIsATpmError) {
    tpm_thread tpm({swtpm_.tcti(), 10000ms});
    auto no_primary = ring_->run(provision_key(tpm, primary_handle, key_handle));
    ASSERT_FALSE(no_primary.has_value());
    EXPECT_EQ(no_primary.error().category(), tss2_category()) << no_primary.error().message();

    auto sig = ring_->run(sign(tpm, key_handle, bytes_of("x")));
    ASSERT_FALSE(sig.has_value());
    EXPECT_EQ(sig.error().category(), tss2_category()) << sig.error().message();
    auto der = ring_->run(public_der(tpm, key_handle));
    ASSERT_FALSE(der.has_value());
    EXPECT_EQ(der.error().category(), tss2_category()) << der.error().message();
}

}  // namespace
}  // namespace la::tpm
