// Every validation status, end to end: independently minted tokens → C client → real agent.
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "tests/integration/integration_env.hpp"

namespace la::test {
namespace {

class StatusTest : public agent_test {
protected:
    void SetUp() override { ASSERT_TRUE(start(make_config())); }

    // Validates through a fresh C client; returns the status (or -1000 + rc on a client error).
    int status_of(const std::string& token, const char* prod = nullptr, const char* feature = nullptr,
                  const char* inst = nullptr) {
        auto c = client();
        if (!c) return -2000;
        lsa_result r{};
        const int rc = lsa_validate(c.get(), token.data(), token.size(), prod, feature, inst, &r);
        if (rc != 0) {
            ADD_FAILURE() << "lsa_validate: " << lsa_strerror(rc);
            return -1000 + rc;
        }
        return r.status;
    }
};

TEST_F(StatusTest, SignedLicenseIsValidWithAllItsFields) {
    const auto& t = tokens();
    auto c = client();
    ASSERT_TRUE(c);
    lsa_result r{};
    const std::string& tok = t["signed_valid"];
    ASSERT_EQ(lsa_validate(c.get(), tok.data(), tok.size(), product, "loyalty", nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_VALID);
    EXPECT_STREQ(r.status_name, "valid");
    EXPECT_EQ(r.kind, LSA_KIND_SIGNED);
    EXPECT_EQ(r.lic_type, LSA_LIC_SUBSCRIPTION);
    EXPECT_STREQ(r.lic_type_name, "subscription");
    EXPECT_EQ(r.has_claims, 1);
    EXPECT_EQ(r.has_expiry, 1);
    EXPECT_EQ(r.expires_at, t.now + 30 * 86400);
    EXPECT_EQ(r.issued_at, t.now - 60);
    EXPECT_STREQ(r.license_id, "LIC-SIGNED-1");
    EXPECT_STREQ(r.product, product);
    EXPECT_STREQ(r.subject, "cust-42");
    ASSERT_EQ(r.feature_count, 3u);
    EXPECT_STREQ(r.features[0], "sales");
    EXPECT_STREQ(r.features[1], "inventory");
    EXPECT_STREQ(r.features[2], "loyalty");
    ASSERT_EQ(r.meta_count, 2u);
    EXPECT_STREQ(r.meta[0].key, "seats");
    EXPECT_STREQ(r.meta[0].value, "3");
    EXPECT_STREQ(r.meta[1].key, "tier");
    EXPECT_STREQ(r.meta[1].value, "gold");
    EXPECT_EQ(r.error_message, nullptr);
}

TEST_F(StatusTest, SealedTokenIsValid) {
    auto c = client();
    ASSERT_TRUE(c);
    lsa_result r{};
    const std::string& tok = tokens()["sealed_valid"];
    ASSERT_EQ(lsa_validate(c.get(), tok.data(), tok.size(), product, "sales", instance, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_VALID);
    EXPECT_EQ(r.kind, LSA_KIND_SEALED);
    EXPECT_STREQ(r.license_id, "LIC-SEALED-1");
    EXPECT_EQ(r.expires_at, tokens().now + 30 * 86400);
    EXPECT_EQ(r.feature_count, 3u);
    EXPECT_EQ(r.meta_count, 2u);
}

TEST_F(StatusTest, PerpetualLicenseHasNoExpiry) {
    auto c = client();
    ASSERT_TRUE(c);
    lsa_result r{};
    const std::string& tok = tokens()["perpetual"];
    ASSERT_EQ(lsa_validate(c.get(), tok.data(), tok.size(), nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_VALID);
    EXPECT_EQ(r.lic_type, LSA_LIC_PERPETUAL);
    EXPECT_EQ(r.has_expiry, 0);
    EXPECT_EQ(r.expires_at, 0);
    EXPECT_STREQ(r.license_id, "LIC-PERP-1");
}

TEST_F(StatusTest, ExpiredLicenseStillNamesTheLicense) {
    auto c = client();
    ASSERT_TRUE(c);
    lsa_result r{};
    const std::string& tok = tokens()["expired"];
    ASSERT_EQ(lsa_validate(c.get(), tok.data(), tok.size(), nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_EXPIRED);
    EXPECT_EQ(r.has_claims, 1);
    EXPECT_STREQ(r.license_id, "LIC-EXPIRED");
    EXPECT_EQ(r.expires_at, tokens().now - 3600);
    EXPECT_EQ(status_of(tokens()["sealed_expired"]), LSA_STATUS_EXPIRED);
}

TEST_F(StatusTest, FutureNotBeforeIsNotYetValid) {
    EXPECT_EQ(status_of(tokens()["not_yet_valid"]), LSA_STATUS_NOT_YET_VALID);
}

TEST_F(StatusTest, TamperedTokensHaveBadSignatures) {
    EXPECT_EQ(status_of(tokens()["jws_tamper_signature"]), LSA_STATUS_BAD_SIGNATURE);
    EXPECT_EQ(status_of(tokens()["jws_tamper_payload"]), LSA_STATUS_BAD_SIGNATURE);
    EXPECT_EQ(status_of(tokens()["jwe_tamper_tag"]), LSA_STATUS_BAD_SIGNATURE);
    EXPECT_EQ(status_of(tokens()["jwe_tamper_ciphertext"]), LSA_STATUS_BAD_SIGNATURE);
}

TEST_F(StatusTest, UnknownKidsAreUnknownKeys) {
    EXPECT_EQ(status_of(tokens()["jws_unknown_kid"]), LSA_STATUS_UNKNOWN_KEY);
    EXPECT_EQ(status_of(tokens()["jwe_unknown_kid"]), LSA_STATUS_UNKNOWN_KEY);
}

TEST_F(StatusTest, ForbiddenAlgorithmsAreUnsupported) {
    EXPECT_EQ(status_of(tokens()["alg_none"]), LSA_STATUS_UNSUPPORTED_ALG);
    EXPECT_EQ(status_of(tokens()["alg_hs256"]), LSA_STATUS_UNSUPPORTED_ALG);
    EXPECT_EQ(status_of(tokens()["jwe_a128gcm"]), LSA_STATUS_UNSUPPORTED_ALG);
    EXPECT_EQ(status_of(tokens()["jwe_rsa_oaep"]), LSA_STATUS_UNSUPPORTED_ALG);
}

TEST_F(StatusTest, BrokenTokensAreMalformed) {
    EXPECT_EQ(status_of("garbage"), LSA_STATUS_MALFORMED);
    EXPECT_EQ(status_of("eyJ!!!.e30.c2ln"), LSA_STATUS_MALFORMED);
    const std::string& good = tokens()["signed_valid"];
    std::string bad_b64 = good;
    bad_b64[good.find('.') + 3] = '*';  // a character outside base64url inside the payload
    EXPECT_EQ(status_of(bad_b64), LSA_STATUS_MALFORMED);
    EXPECT_EQ(status_of(tokens()["duplicate_key"]), LSA_STATUS_MALFORMED);
    EXPECT_EQ(status_of(tokens()["missing_jti"]), LSA_STATUS_MALFORMED);
}

TEST_F(StatusTest, TokenOverTheLimitIsTooLarge) {
    const std::string& big = tokens()["oversized"];
    ASSERT_GT(big.size(), 8192u);
    EXPECT_EQ(status_of(big), LSA_STATUS_TOO_LARGE);
    EXPECT_EQ(status_of(std::string(8193, 'a')), LSA_STATUS_TOO_LARGE);
}

TEST_F(StatusTest, OtherIssuerIsWrongIssuer) {
    EXPECT_EQ(status_of(tokens()["wrong_issuer"]), LSA_STATUS_WRONG_ISSUER);
}

TEST_F(StatusTest, OtherProductIsWrongProduct) {
    EXPECT_EQ(status_of(tokens()["signed_valid"], "other-product"), LSA_STATUS_WRONG_PRODUCT);
    EXPECT_EQ(status_of(tokens()["sealed_valid"], "other-product"), LSA_STATUS_WRONG_PRODUCT);
}

TEST_F(StatusTest, InstanceBindingIsChecked) {
    EXPECT_EQ(status_of(tokens()["bound_other_instance"]), LSA_STATUS_WRONG_INSTANCE);
    EXPECT_EQ(status_of(tokens()["bound_this_instance"]), LSA_STATUS_VALID);
    EXPECT_EQ(status_of(tokens()["bound_this_instance"], nullptr, nullptr, "another-fp"),
              LSA_STATUS_WRONG_INSTANCE);
    EXPECT_EQ(status_of(tokens()["bound_other_instance"], nullptr, nullptr, "other-fp"), LSA_STATUS_VALID);
}

TEST_F(StatusTest, MissingFeatureIsNotGranted) {
    EXPECT_EQ(status_of(tokens()["signed_valid"], product, "payroll"), LSA_STATUS_FEATURE_NOT_GRANTED);
    EXPECT_EQ(status_of(tokens()["sealed_valid"], product, "payroll"), LSA_STATUS_FEATURE_NOT_GRANTED);
    EXPECT_EQ(status_of(tokens()["signed_valid"], product, "inventory"), LSA_STATUS_VALID);
}

TEST_F(StatusTest, CountersFollowTheAnswers) {
    auto c = client();
    ASSERT_TRUE(c);
    for (const char* name : {"signed_valid", "sealed_valid", "expired", "jws_tamper_signature"}) {
        lsa_result r{};
        const std::string& tok = tokens()[name];
        ASSERT_EQ(lsa_validate(c.get(), tok.data(), tok.size(), nullptr, nullptr, nullptr, &r), 0);
    }
    const std::string json = admin_status();
    EXPECT_EQ(json_number(json, "validations"), 4) << json;
    EXPECT_EQ(json_number(json, "valid"), 2) << json;
    EXPECT_EQ(json_number(json, "invalid"), 2) << json;
    EXPECT_EQ(json_number(json, "expired"), 1) << json;
    EXPECT_EQ(json_number(json, "bad_signature"), 1) << json;
}

TEST_F(StatusTest, ExpectedAgentUidIsChecked) {
    int rc = 0;
    auto wrong = lsa_open(cfg_->socket, rc, static_cast<long>(::getuid()) + 4242);
    EXPECT_FALSE(wrong);
    EXPECT_EQ(rc, -EPERM);
    auto right = lsa_open(cfg_->socket, rc, static_cast<long>(::getuid()));
    ASSERT_TRUE(right) << lsa_strerror(rc);
    lsa_result r{};
    const std::string& tok = tokens()["signed_valid"];
    ASSERT_EQ(lsa_validate(right.get(), tok.data(), tok.size(), nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_VALID);
}

}  // namespace
}  // namespace la::test
