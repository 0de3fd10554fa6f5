// RSA-OAEP(SHA-256) and RSA-PSS(SHA-256) over wolfCrypt, cross-checked against the openssl CLI
// in both directions (it encrypts, we decrypt; we sign, it verifies; and the reverse).
#include "crypto/rsa.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/unit/crypto/test_util.hpp"

namespace la::crypto {
namespace {

using test::bytes_of;
using test::run_command;

std::span<const std::byte> as_span(const std::vector<std::uint8_t>& v) {
    return std::as_bytes(std::span(v));
}

bool same_bytes(const secure_buffer& b, std::span<const std::byte> want) {
    return b.size() == want.size() &&
           (want.empty() || std::memcmp(b.data(), want.data(), want.size()) == 0);
}

// A private temporary directory for the files openssl reads and writes.
class temp_dir {
  public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "la-rsa-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    std::string file(const std::string& name) const { return (path_ / name).string(); }
    bool ok() const { return !path_.empty(); }

  private:
    std::filesystem::path path_;
};

// Runs cmd with stderr folded into the captured output (shown on failure).
test::command_result sh(const std::string& cmd) { return run_command("( " + cmd + " ) 2>&1"); }

constexpr const char* oaep_opts =
    " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256";

// One generated key shared by the suite: 2048-bit generation is the slow part.
class RsaTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        auto k = rsa_private_key::generate();
        ASSERT_TRUE(k.has_value()) << k.error().message();
        key_ = std::make_unique<rsa_private_key>(std::move(*k));
    }
    static void TearDownTestSuite() { key_.reset(); }

    void SetUp() override {
        ASSERT_TRUE(key_ != nullptr);
        ASSERT_TRUE(dir_.ok());
    }

    rsa_public_key pub() const {
        auto p = key_->public_key();
        EXPECT_TRUE(p.has_value());
        return *p;
    }

    // An openssl-generated key as PKCS#8 DER at key.p8.der, PKCS#1 at key.p1.der, public SPKI
    // at key.pub.der.
    void openssl_key(unsigned bits = 2048) {
        const auto p8 = dir_.file("key.p8.der");
        auto r = sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:" + std::to_string(bits) +
                    " -outform DER -out " + p8 + " && openssl pkcs8 -topk8 -nocrypt -inform DER -in " +
                    p8 + " -outform DER -out " + p8 + ".tmp && mv " + p8 + ".tmp " + p8 +
                    " && openssl rsa -inform DER -in " + p8 + " -traditional -outform DER -out " +
                    dir_.file("key.p1.der") + " && openssl pkey -inform DER -in " + p8 +
                    " -pubout -outform DER -out " + dir_.file("key.pub.der"));
        ASSERT_EQ(r.status, 0) << r.out;
    }

    static std::unique_ptr<rsa_private_key> key_;
    temp_dir dir_;
};

std::unique_ptr<rsa_private_key> RsaTest::key_;

TEST_F(RsaTest, OaepRoundTripsFromEmptyToTheLongestMessage) {
    const auto p = pub();
    EXPECT_EQ(p.size(), 256u);
    EXPECT_EQ(key_->size(), 256u);
    for (const std::size_t len : {std::size_t{1}, std::size_t{32}, std::size_t{190}}) {
        std::vector<std::byte> msg(len);
        for (std::size_t i = 0; i < len; ++i) msg[i] = static_cast<std::byte>(i * 7 + 3);
        auto ct = p.encrypt_oaep_sha256(msg);
        ASSERT_TRUE(ct.has_value()) << len << ": " << ct.error().message();
        EXPECT_EQ(ct->size(), 256u);
        auto pt = key_->decrypt_oaep_sha256(as_span(*ct));
        ASSERT_TRUE(pt.has_value()) << len << ": " << pt.error().message();
        EXPECT_TRUE(same_bytes(*pt, msg)) << len;
    }
    // 256 - 2 * 32 - 2 = 190 bytes is the OAEP-SHA-256 limit for a 2048-bit key.
    std::vector<std::byte> too_long(191);
    EXPECT_EQ(p.encrypt_oaep_sha256(too_long).error(), std::errc::invalid_argument);
    // wolfSSL 5.5 handles no empty OAEP message (see OpensslEncryptsToOurPublicKeyAndWeDecrypt).
    EXPECT_EQ(p.encrypt_oaep_sha256({}).error(), std::errc::invalid_argument);
}

TEST_F(RsaTest, OaepCiphertextsOfTheSameMessageDiffer) {
    const auto p = pub();
    auto a = p.encrypt_oaep_sha256(bytes_of("secret"));
    auto b = p.encrypt_oaep_sha256(bytes_of("secret"));
    ASSERT_TRUE(a && b);
    EXPECT_NE(*a, *b);
}

TEST_F(RsaTest, TamperedOrMisSizedCiphertextIsRefused) {
    auto ct = pub().encrypt_oaep_sha256(bytes_of("the new secret"));
    ASSERT_TRUE(ct.has_value());
    for (const std::size_t i : {std::size_t{0}, std::size_t{100}, std::size_t{255}}) {
        auto bad = *ct;
        bad[i] ^= 0x01;
        auto r = key_->decrypt_oaep_sha256(as_span(bad));
        ASSERT_FALSE(r.has_value()) << i;
        EXPECT_EQ(r.error(), core::errc::auth_failed) << i;
    }
    // A value >= n cannot be a ciphertext.
    std::vector<std::uint8_t> all_ff(256, 0xFF);
    EXPECT_EQ(key_->decrypt_oaep_sha256(as_span(all_ff)).error(), core::errc::auth_failed);
    auto shorter = *ct;
    shorter.pop_back();
    EXPECT_EQ(key_->decrypt_oaep_sha256(as_span(shorter)).error(), std::errc::invalid_argument);
    EXPECT_EQ(key_->decrypt_oaep_sha256({}).error(), std::errc::invalid_argument);
}

TEST_F(RsaTest, CiphertextForAnotherKeyIsRefused) {
    auto other = rsa_private_key::generate();
    ASSERT_TRUE(other.has_value());
    auto other_pub = other->public_key();
    ASSERT_TRUE(other_pub.has_value());
    auto ct = other_pub->encrypt_oaep_sha256(bytes_of("x"));
    ASSERT_TRUE(ct.has_value());
    EXPECT_EQ(key_->decrypt_oaep_sha256(as_span(*ct)).error(), core::errc::auth_failed);
    EXPECT_NE(*other->public_der(), *key_->public_der());
}

TEST_F(RsaTest, PssSignatureVerifiesAndTamperingIsRefused) {
    const auto p = pub();
    auto sig = key_->sign_pss_sha256(bytes_of("rotate to key 7"));
    ASSERT_TRUE(sig.has_value()) << sig.error().message();
    EXPECT_EQ(sig->size(), 256u);
    EXPECT_TRUE(p.verify_pss_sha256(bytes_of("rotate to key 7"), as_span(*sig)).has_value());

    EXPECT_EQ(p.verify_pss_sha256(bytes_of("rotate to key 8"), as_span(*sig)).error(),
              core::errc::auth_failed);
    for (const std::size_t i : {std::size_t{0}, std::size_t{128}, std::size_t{255}}) {
        auto bad = *sig;
        bad[i] ^= 0x80;
        EXPECT_EQ(p.verify_pss_sha256(bytes_of("rotate to key 7"), as_span(bad)).error(),
                  core::errc::auth_failed)
            << i;
    }
    auto shorter = *sig;
    shorter.pop_back();
    EXPECT_EQ(p.verify_pss_sha256(bytes_of("rotate to key 7"), as_span(shorter)).error(),
              core::errc::auth_failed);
    EXPECT_EQ(p.verify_pss_sha256(bytes_of("rotate to key 7"), {}).error(), core::errc::auth_failed);

    // PSS is randomized (32 bytes of salt), and an empty message signs fine.
    auto again = key_->sign_pss_sha256(bytes_of("rotate to key 7"));
    ASSERT_TRUE(again.has_value());
    EXPECT_NE(*again, *sig);
    auto empty_sig = key_->sign_pss_sha256({});
    ASSERT_TRUE(empty_sig.has_value());
    EXPECT_TRUE(p.verify_pss_sha256({}, as_span(*empty_sig)).has_value());
}

TEST_F(RsaTest, PrivateDerRoundTripsInSecureMemory) {
    auto der = key_->to_der();
    ASSERT_TRUE(der.has_value()) << der.error().message();
    EXPECT_GT(der->size(), 1000u);
    EXPECT_EQ(std::to_integer<unsigned>(der->bytes()[0]), 0x30u);  // a DER SEQUENCE
    auto back = rsa_private_key::from_der(der->bytes());
    ASSERT_TRUE(back.has_value()) << back.error().message();
    EXPECT_EQ(*back->public_der(), *key_->public_der());

    auto ct = pub().encrypt_oaep_sha256(bytes_of("carried over"));
    ASSERT_TRUE(ct.has_value());
    auto pt = back->decrypt_oaep_sha256(as_span(*ct));
    ASSERT_TRUE(pt.has_value());
    EXPECT_TRUE(same_bytes(*pt, bytes_of("carried over")));
}

TEST_F(RsaTest, MovedKeyKeepsWorking) {
    auto k = rsa_private_key::from_der(key_->to_der()->bytes());
    ASSERT_TRUE(k.has_value());
    rsa_private_key moved = std::move(*k);
    auto sig = moved.sign_pss_sha256(bytes_of("m"));
    ASSERT_TRUE(sig.has_value());
    EXPECT_TRUE(pub().verify_pss_sha256(bytes_of("m"), as_span(*sig)).has_value());

    auto other = rsa_private_key::generate();
    ASSERT_TRUE(other.has_value());
    moved = std::move(*other);  // frees the first key's state, takes the second's
    EXPECT_NE(*moved.public_der(), *key_->public_der());
    auto sig2 = moved.sign_pss_sha256(bytes_of("m"));
    ASSERT_TRUE(sig2.has_value());
    EXPECT_TRUE(moved.public_key()->verify_pss_sha256(bytes_of("m"), as_span(*sig2)).has_value());
}

TEST_F(RsaTest, PublicDerIsWhatOpensslReadsAsSpki) {
    auto der = key_->public_der();
    ASSERT_TRUE(der.has_value());
    test::write_bytes(dir_.file("pub.der"), as_span(*der));
    const auto r = sh("openssl pkey -pubin -inform DER -in " + dir_.file("pub.der") +
                      " -noout -text");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("Public-Key: (2048 bit)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Exponent: 65537"), std::string::npos) << r.out;
    // openssl re-encodes it to the very same bytes: our DER is canonical SPKI.
    const auto re = sh("openssl pkey -pubin -inform DER -in " + dir_.file("pub.der") +
                       " -pubout -outform DER -out " + dir_.file("re.der"));
    ASSERT_EQ(re.status, 0) << re.out;
    EXPECT_EQ(test::read_bytes(dir_.file("re.der")), std::vector<std::byte>(as_span(*der).begin(),
                                                                     as_span(*der).end()));
    auto imported = rsa_public_key::from_der(as_span(*der));
    ASSERT_TRUE(imported.has_value());
    EXPECT_EQ(imported->der(), *der);
}

TEST_F(RsaTest, OpensslEncryptsToOurPublicKeyAndWeDecrypt) {
    auto der = key_->public_der();
    ASSERT_TRUE(der.has_value());
    test::write_bytes(dir_.file("pub.der"), as_span(*der));
    std::vector<std::byte> secret(32);
    for (std::size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<std::byte>(0xC0 ^ i);
    test::write_bytes(dir_.file("secret.bin"), secret);
    const auto r = sh("openssl pkeyutl -encrypt -pubin -keyform DER -inkey " + dir_.file("pub.der") +
                      oaep_opts + " -in " + dir_.file("secret.bin") + " -out " + dir_.file("ct.bin"));
    ASSERT_EQ(r.status, 0) << r.out;
    const auto ct = test::read_bytes(dir_.file("ct.bin"));
    ASSERT_EQ(ct.size(), 256u);
    auto pt = key_->decrypt_oaep_sha256(ct);
    ASSERT_TRUE(pt.has_value()) << pt.error().message();
    EXPECT_TRUE(same_bytes(*pt, secret));

    test::write_bytes(dir_.file("empty.bin"), {});
    const auto e = sh("openssl pkeyutl -encrypt -pubin -keyform DER -inkey " + dir_.file("pub.der") +
                      oaep_opts + " -in " + dir_.file("empty.bin") + " -out " + dir_.file("ect.bin"));
    ASSERT_EQ(e.status, 0) << e.out;
    // A valid encryption of the empty message: wolfSSL 5.5 cannot decrypt it (RSA_BUFFER_E),
    // so it is refused like any undecryptable ciphertext. Agent secrets are never empty.
    EXPECT_EQ(key_->decrypt_oaep_sha256(test::read_bytes(dir_.file("ect.bin"))).error(),
              core::errc::auth_failed);
}

TEST_F(RsaTest, OpensslDecryptsWhatWeEncryptToItsKey) {
    ASSERT_NO_FATAL_FAILURE(openssl_key());
    auto p = rsa_public_key::from_der(test::read_bytes(dir_.file("key.pub.der")));
    ASSERT_TRUE(p.has_value()) << p.error().message();
    auto ct = p->encrypt_oaep_sha256(bytes_of("from wolfssl to openssl"));
    ASSERT_TRUE(ct.has_value());
    test::write_bytes(dir_.file("ct.bin"), as_span(*ct));
    const auto r = run_command("openssl pkeyutl -decrypt -keyform DER -inkey " +
                               dir_.file("key.p8.der") + oaep_opts + " -in " + dir_.file("ct.bin"));
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, "from wolfssl to openssl");
}

TEST_F(RsaTest, OpensslVerifiesOurPssSignatureWithSalt32) {
    auto der = key_->public_der();
    ASSERT_TRUE(der.has_value());
    test::write_bytes(dir_.file("pub.der"), as_span(*der));
    test::write_bytes(dir_.file("msg"), bytes_of("rotation request 42"));
    auto sig = key_->sign_pss_sha256(bytes_of("rotation request 42"));
    ASSERT_TRUE(sig.has_value());
    test::write_bytes(dir_.file("sig"), as_span(*sig));
    const std::string verify = "openssl dgst -sha256 -keyform DER -verify " + dir_.file("pub.der") +
                               " -sigopt rsa_padding_mode:pss -sigopt rsa_mgf1_md:sha256 -signature " +
                               dir_.file("sig") + " -sigopt rsa_pss_saltlen:";
    auto r = sh(verify + "32 " + dir_.file("msg"));
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("Verified OK"), std::string::npos) << r.out;
    r = sh(verify + "auto " + dir_.file("msg"));
    EXPECT_EQ(r.status, 0) << r.out;
    r = sh(verify + "max " + dir_.file("msg"));  // salt 222 would be "max" for 2048/SHA-256
    EXPECT_NE(r.status, 0) << r.out;

    test::write_bytes(dir_.file("msg2"), bytes_of("rotation request 43"));
    r = sh(verify + "32 " + dir_.file("msg2"));
    EXPECT_NE(r.status, 0) << r.out;
}

TEST_F(RsaTest, WeVerifyOpensslPssSignaturesOnlyWithSalt32) {
    ASSERT_NO_FATAL_FAILURE(openssl_key());
    auto p = rsa_public_key::from_der(test::read_bytes(dir_.file("key.pub.der")));
    ASSERT_TRUE(p.has_value());
    test::write_bytes(dir_.file("msg"), bytes_of("hello"));
    const std::string sign = "openssl dgst -sha256 -keyform DER -sign " + dir_.file("key.p1.der") +
                             " -sigopt rsa_padding_mode:pss -sigopt rsa_mgf1_md:sha256 -out " +
                             dir_.file("sig") + " -sigopt rsa_pss_saltlen:";
    const std::string msg = " " + dir_.file("msg");
    auto r = sh(sign + "32" + msg);
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_TRUE(p->verify_pss_sha256(bytes_of("hello"), test::read_bytes(dir_.file("sig"))).has_value());
    EXPECT_EQ(p->verify_pss_sha256(bytes_of("hellO"), test::read_bytes(dir_.file("sig"))).error(),
              core::errc::auth_failed);
    // Same scheme, other salt lengths: refused, the salt length is part of our contract.
    for (const char* salt : {"20", "max"}) {
        r = sh(sign + salt + msg);
        ASSERT_EQ(r.status, 0) << r.out;
        EXPECT_EQ(p->verify_pss_sha256(bytes_of("hello"), test::read_bytes(dir_.file("sig"))).error(),
                  core::errc::auth_failed)
            << salt;
    }
}

TEST_F(RsaTest, ImportsOpensslKeysInPkcs1AndPkcs8) {
    ASSERT_NO_FATAL_FAILURE(openssl_key());
    const auto spki = test::read_bytes(dir_.file("key.pub.der"));
    for (const char* name : {"key.p1.der", "key.p8.der"}) {
        auto k = rsa_private_key::from_der(test::read_bytes(dir_.file(name)));
        ASSERT_TRUE(k.has_value()) << name << ": " << k.error().message();
        auto der = k->public_der();
        ASSERT_TRUE(der.has_value());
        EXPECT_EQ(std::vector<std::byte>(as_span(*der).begin(), as_span(*der).end()), spki) << name;
        // Our PKCS#1 export is byte-identical to openssl's.
        auto p1 = k->to_der();
        ASSERT_TRUE(p1.has_value());
        EXPECT_TRUE(same_bytes(*p1, test::read_bytes(dir_.file("key.p1.der")))) << name;
    }
}

TEST_F(RsaTest, BuildsTheSameSpkiFromModulusAndExponent) {
    ASSERT_NO_FATAL_FAILURE(openssl_key());
    const auto r = run_command("openssl rsa -inform DER -in " + dir_.file("key.p1.der") +
                               " -noout -modulus");
    ASSERT_EQ(r.status, 0) << r.out;
    ASSERT_EQ(r.out.rfind("Modulus=", 0), 0u) << r.out;
    std::string hex_n = r.out.substr(8);
    while (!hex_n.empty() && (hex_n.back() == '\n' || hex_n.back() == '\r')) hex_n.pop_back();
    const auto n = test::hex(hex_n);
    ASSERT_EQ(n.size(), 256u);
    const auto spki = test::read_bytes(dir_.file("key.pub.der"));
    for (const std::uint32_t e : {0u, 65537u}) {  // 0 is the TPM's way of writing 65537
        auto k = rsa_public_key::from_components(n, e);
        ASSERT_TRUE(k.has_value()) << k.error().message();
        EXPECT_EQ(std::vector<std::byte>(as_span(k->der()).begin(), as_span(k->der()).end()), spki);
    }
    EXPECT_EQ(rsa_public_key::from_components(n, 65536).error(), core::errc::key_invalid);
    EXPECT_EQ(rsa_public_key::from_components(n, 1).error(), core::errc::key_invalid);
    EXPECT_EQ(rsa_public_key::from_components(std::span(n).first(128), 65537).error(),
              core::errc::key_invalid);
    EXPECT_EQ(rsa_public_key::from_components({}, 65537).error(), core::errc::key_invalid);
}

TEST_F(RsaTest, MalformedOrForeignDerIsRefused) {
    ASSERT_NO_FATAL_FAILURE(openssl_key());
    const auto p1 = test::read_bytes(dir_.file("key.p1.der"));
    const auto p8 = test::read_bytes(dir_.file("key.p8.der"));
    const auto spki = test::read_bytes(dir_.file("key.pub.der"));
    auto r = sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -outform DER -out " +
                dir_.file("ec.der") + " && openssl pkcs8 -topk8 -nocrypt -inform DER -in " +
                dir_.file("ec.der") + " -outform DER -out " + dir_.file("ec.p8.der") +
                " && openssl pkey -inform DER -in " + dir_.file("ec.der") +
                " -pubout -outform DER -out " + dir_.file("ec.pub.der") +
                " && openssl rsa -inform DER -in " + dir_.file("key.p1.der") +
                " -RSAPublicKey_out -outform DER -out " + dir_.file("rsapub.p1.der"));
    ASSERT_EQ(r.status, 0) << r.out;

    auto priv_refused = [](std::span<const std::byte> der, const char* what) {
        auto k = rsa_private_key::from_der(der);
        ASSERT_FALSE(k.has_value()) << what;
        EXPECT_EQ(k.error(), core::errc::key_invalid) << what;
    };
    auto pub_refused = [](std::span<const std::byte> der, const char* what) {
        auto k = rsa_public_key::from_der(der);
        ASSERT_FALSE(k.has_value()) << what;
        EXPECT_EQ(k.error(), core::errc::key_invalid) << what;
    };
    const std::vector<std::byte> garbage(300, std::byte{0x5A});
    auto trailing = p1;
    trailing.push_back(std::byte{0});
    auto spki_trailing = spki;
    spki_trailing.push_back(std::byte{0});

    priv_refused({}, "empty");
    priv_refused(garbage, "garbage");
    priv_refused(std::span(p1).first(p1.size() - 1), "truncated PKCS#1");
    priv_refused(std::span(p8).first(100), "truncated PKCS#8");
    priv_refused(trailing, "trailing byte");
    priv_refused(spki, "public key as private");
    priv_refused(test::read_bytes(dir_.file("ec.p8.der")), "EC PKCS#8");
    priv_refused(test::read_bytes(dir_.file("ec.der")), "EC SEC1");

    pub_refused({}, "empty");
    pub_refused(garbage, "garbage");
    pub_refused(std::span(spki).first(spki.size() - 1), "truncated SPKI");
    pub_refused(spki_trailing, "trailing byte");
    pub_refused(p1, "private key as public");
    pub_refused(test::read_bytes(dir_.file("ec.pub.der")), "EC SPKI");
    pub_refused(test::read_bytes(dir_.file("rsapub.p1.der")), "bare PKCS#1 RSAPublicKey");
}

TEST_F(RsaTest, InconsistentPrivateKeyIsRefused) {
    ASSERT_NO_FATAL_FAILURE(openssl_key());
    auto p1 = test::read_bytes(dir_.file("key.p1.der"));
    // The last byte belongs to the CRT coefficient u = q^-1 mod p: still well-formed DER, but
    // private operations no longer match the modulus.
    p1.back() ^= std::byte{0x01};
    auto k = rsa_private_key::from_der(p1);
    ASSERT_FALSE(k.has_value());
    EXPECT_EQ(k.error(), core::errc::key_invalid);
}

TEST_F(RsaTest, WeakOrOddKeySizesAreRefused) {
    EXPECT_EQ(rsa_private_key::generate(1024).error(), std::errc::invalid_argument);
    EXPECT_EQ(rsa_private_key::generate(2047).error(), std::errc::invalid_argument);
    EXPECT_EQ(rsa_private_key::generate(8192).error(), std::errc::invalid_argument);
    ASSERT_NO_FATAL_FAILURE(openssl_key(1024));
    EXPECT_EQ(rsa_private_key::from_der(test::read_bytes(dir_.file("key.p8.der"))).error(),
              core::errc::key_invalid);
    EXPECT_EQ(rsa_public_key::from_der(test::read_bytes(dir_.file("key.pub.der"))).error(),
              core::errc::key_invalid);
}

}  // namespace
}  // namespace la::crypto
