#include "core/engine.hpp"

#include <gtest/gtest.h>

#include "tests/unit/core/engine_fixture.hpp"

namespace la::core {
namespace {

using test::now;
using test::tokens;

class EngineTest : public ::testing::Test {
protected:
    io::manual_clock clock_{now};

    status check(engine& e, const std::string& token, std::string_view product = {}, std::string_view feature = {},
                 std::string_view instance = {}) {
        return e.validate(validate_request{token, product, feature, instance}).st;
    }
    status check(const std::string& name, std::string_view product = {}, std::string_view feature = {},
                 std::string_view instance = {}) {
        engine e = test::make_engine(clock_, 0);
        return check(e, tokens()[name], product, feature, instance);
    }
    static std::string part_replaced(const std::string& token, std::size_t index, std::string_view with) {
        std::size_t b = 0;
        for (std::size_t i = 0; i < index; ++i) b = token.find('.', b) + 1;
        const std::size_t e = token.find('.', b);
        std::string out = token;
        return out.replace(b, (e == std::string::npos ? token.size() : e) - b, with);
    }
};

TEST(StatusTest, NamesAreStableWireNames) {
    EXPECT_EQ(to_string(status::valid), "valid");
    EXPECT_EQ(to_string(status::feature_not_granted), "feature_not_granted");
    EXPECT_EQ(to_string(status::internal_error), "internal_error");
    EXPECT_EQ(static_cast<int>(status::internal_error), 14);
    EXPECT_EQ(to_string(lic_type::subscription), "subscription");
    EXPECT_EQ(to_string(token_kind::sealed_jwe), "sealed");
}

TEST_F(EngineTest, ValidSignedTokenExposesItsLicense) {
    engine e = test::make_engine(clock_);
    const validation v = e.validate({tokens()["s_valid"], "pos", "reports", {}});
    ASSERT_EQ(v.st, status::valid);
    ASSERT_TRUE(v.has_claims);
    EXPECT_EQ(v.lic.license_id, "lic-1");
    EXPECT_EQ(v.lic.subject, "cust-1");
    EXPECT_EQ(v.lic.product, "pos");
    EXPECT_EQ(v.lic.type, lic_type::subscription);
    EXPECT_EQ(v.lic.kind, token_kind::signed_jws);
    EXPECT_TRUE(v.lic.has_exp);
    EXPECT_EQ(v.lic.expires_at, now + 3600);
    EXPECT_EQ(v.lic.issued_at, now - 1000);
    ASSERT_EQ(v.lic.features.size(), 2u);
    EXPECT_EQ(v.lic.features[0], "reports");
    EXPECT_EQ(v.lic.features[1], "export");
    ASSERT_EQ(v.lic.meta.size(), 2u);
    EXPECT_EQ(v.lic.meta[1].key, "seats");
    EXPECT_EQ(v.lic.meta[1].value, "3");
    EXPECT_EQ(check("s_valid_k2"), status::valid);
    EXPECT_EQ(check("s_fraction"), status::valid);
}

TEST_F(EngineTest, ValidSealedTokenExposesItsLicense) {
    engine e = test::make_engine(clock_);
    const validation v = e.validate({tokens()["e_valid"], "pos", "export", {}});
    ASSERT_EQ(v.st, status::valid);
    ASSERT_TRUE(v.has_claims);
    EXPECT_EQ(v.lic.kind, token_kind::sealed_jwe);
    EXPECT_EQ(v.lic.license_id, "lic-1");
    EXPECT_EQ(v.lic.features.size(), 2u);
    EXPECT_EQ(check("e_valid_v2"), status::valid);
}

TEST_F(EngineTest, PerpetualLicenseNeedsNoExp) {
    EXPECT_EQ(check("s_perpetual_noexp"), status::valid);
    EXPECT_EQ(check("s_perpetual_nullexp"), status::valid);
    engine e = test::make_engine(clock_);
    const validation v = e.validate({tokens()["s_perpetual_noexp"], {}, {}, {}});
    EXPECT_FALSE(v.lic.has_exp);
    EXPECT_EQ(v.lic.type, lic_type::perpetual);
    EXPECT_EQ(check("s_sub_noexp"), status::malformed);
    EXPECT_EQ(check("s_sub_nullexp"), status::malformed);
}

TEST_F(EngineTest, ExpiryHonoursLeewayEdges) {
    engine e = test::make_engine(clock_, 0, "", 60);
    const auto& tok = tokens()["s_exp_edge"];  // exp = now
    clock_.set(now + 59);
    EXPECT_EQ(check(e, tok), status::valid);
    clock_.set(now + 60);
    const validation v = e.validate({tok, {}, {}, {}});
    EXPECT_EQ(v.st, status::expired);
    EXPECT_TRUE(v.has_claims);  // callers can name the expired license
    EXPECT_EQ(v.lic.license_id, "lic-1");
    engine strict = test::make_engine(clock_, 0, "", 0);
    clock_.set(now - 1);
    EXPECT_EQ(check(strict, tok), status::valid);
    clock_.set(now);
    EXPECT_EQ(check(strict, tok), status::expired);
}

TEST_F(EngineTest, NotBeforeHonoursLeewayEdges) {
    engine e = test::make_engine(clock_, 0, "", 60);
    const auto& tok = tokens()["s_nbf_edge"];  // nbf = now
    clock_.set(now - 60);
    EXPECT_EQ(check(e, tok), status::valid);
    clock_.set(now - 61);
    const validation v = e.validate({tok, {}, {}, {}});
    EXPECT_EQ(v.st, status::not_yet_valid);
    EXPECT_TRUE(v.has_claims);
}

TEST_F(EngineTest, BadSignatureInBothFormats) {
    EXPECT_EQ(check("s_tamper_sig"), status::bad_signature);
    EXPECT_EQ(check("s_tamper_payload"), status::bad_signature);
    EXPECT_EQ(check("s_foreign"), status::bad_signature);
    EXPECT_EQ(check("e_tamper_tag"), status::bad_signature);
    EXPECT_EQ(check("e_tamper_ct"), status::bad_signature);
    EXPECT_EQ(check("e_tamper_iv"), status::bad_signature);
    EXPECT_EQ(check("e_tamper_header"), status::bad_signature);  // the AAD covers the header
    EXPECT_EQ(check("e_foreign"), status::bad_signature);
}

TEST_F(EngineTest, UnknownKeyInBothFormats) {
    EXPECT_EQ(check("s_unknown_kid"), status::unknown_key);
    EXPECT_EQ(check("e_unknown"), status::unknown_key);
    EXPECT_EQ(check("e_kid_text"), status::unknown_key);
}

TEST_F(EngineTest, ForeignAlgorithmsAreUnsupported) {
    EXPECT_EQ(check("s_none"), status::unsupported_alg);
    EXPECT_EQ(check("s_hs256"), status::unsupported_alg);
    EXPECT_EQ(check("s_rs256"), status::unsupported_alg);
    EXPECT_EQ(check("s_crit"), status::unsupported_alg);
    EXPECT_EQ(check("e_rsa"), status::unsupported_alg);
    EXPECT_EQ(check("e_a128"), status::unsupported_alg);
    EXPECT_EQ(check("e_zip"), status::unsupported_alg);
    EXPECT_EQ(check("e_crit"), status::unsupported_alg);
}

TEST_F(EngineTest, MalformedTokens) {
    for (const char* name : {"s_no_kid", "s_crit_bad", "s_no_alg", "s_alg_number", "s_hdr_dup", "s_dup_payload",
                             "s_not_json", "s_trailing", "s_exponent", "s_bad_type", "s_missing_sub", "e_no_kid",
                             "e_no_enc", "e_enc_key", "e_dup_payload"}) {
        EXPECT_EQ(check(name), status::malformed) << name;
    }
    engine e = test::make_engine(clock_, 0);
    const std::string& s = tokens()["s_valid"];
    const std::string& j = tokens()["e_valid"];
    EXPECT_EQ(check(e, ""), status::malformed);
    EXPECT_EQ(check(e, "abc"), status::malformed);
    EXPECT_EQ(check(e, "a.b"), status::malformed);
    EXPECT_EQ(check(e, "a.b.c.d"), status::malformed);
    EXPECT_EQ(check(e, "a.b.c.d.e.f"), status::malformed);
    EXPECT_EQ(check(e, "!" + s.substr(1)), status::malformed);        // bad base64url in the header
    EXPECT_EQ(check(e, s + "="), status::malformed);                  // padding
    EXPECT_EQ(check(e, part_replaced(s, 2, "AAAA")), status::malformed);  // 3-byte signature
    EXPECT_EQ(check(e, part_replaced(s, 1, "e30*")), status::malformed);  // bad payload base64url
    EXPECT_EQ(check(e, part_replaced(j, 2, "AAAAAAAAAAA")), status::malformed);  // 8-byte IV
    EXPECT_EQ(check(e, part_replaced(j, 4, "AAAA")), status::malformed);         // 3-byte tag
    EXPECT_EQ(check(e, part_replaced(j, 3, "A")), status::malformed);            // impossible length
    EXPECT_EQ(check(e, "e30.e30.AAAA"), status::malformed);  // header {} without alg
}

TEST_F(EngineTest, OversizedInputIsTooLarge) {
    engine e = test::make_engine(clock_);
    EXPECT_EQ(check(e, std::string(max_token_bytes + 1, 'a')), status::too_large);
    std::string padded = tokens()["s_valid"];
    padded.append(max_token_bytes + 1 - padded.size(), 'A');
    EXPECT_EQ(check(e, padded), status::too_large);
    EXPECT_EQ(check("s_too_many_features"), status::too_large);
}

TEST_F(EngineTest, IssuerProductFeatureChecks) {
    engine e = test::make_engine(clock_);
    const validation v = e.validate({tokens()["s_wrong_iss"], {}, {}, {}});
    EXPECT_EQ(v.st, status::wrong_issuer);
    EXPECT_TRUE(v.has_claims);
    EXPECT_EQ(check("s_valid", "pos"), status::valid);
    EXPECT_EQ(check("s_valid", "erp"), status::wrong_product);
    EXPECT_EQ(check("e_valid", "erp"), status::wrong_product);
    EXPECT_EQ(check("s_valid", {}, "export"), status::valid);
    EXPECT_EQ(check("s_valid", {}, "payroll"), status::feature_not_granted);
    EXPECT_EQ(check("e_valid", {}, "payroll"), status::feature_not_granted);
    EXPECT_EQ(check("e_expired"), status::expired);
    // Order: product is checked before feature.
    EXPECT_EQ(check("s_valid", "erp", "payroll"), status::wrong_product);
}

TEST_F(EngineTest, InstanceBindingUsesRequestThenEngineInstance) {
    EXPECT_EQ(check("s_instance", {}, {}, "term-1"), status::valid);
    EXPECT_EQ(check("s_instance", {}, {}, "term-2"), status::wrong_instance);
    EXPECT_EQ(check("s_instance"), status::wrong_instance);  // bound license, no instance known
    EXPECT_EQ(check("e_instance", {}, {}, "term-2"), status::wrong_instance);
    engine bound = test::make_engine(clock_, 0, "term-1");
    EXPECT_EQ(check(bound, tokens()["s_instance"]), status::valid);
    EXPECT_EQ(check(bound, tokens()["s_instance"], {}, {}, "term-2"), status::wrong_instance);
    EXPECT_EQ(check(bound, tokens()["s_valid"]), status::valid);  // unbound license: any instance
}

TEST_F(EngineTest, CacheCountsHitsAndMisses) {
    engine e = test::make_engine(clock_);
    const auto& tok = tokens()["s_valid"];
    EXPECT_EQ(check(e, tok), status::valid);
    EXPECT_EQ(e.stats().cache_misses, 1u);
    EXPECT_EQ(e.stats().cache_hits, 0u);
    const validation v = e.validate({tok, "pos", "export", {}});
    EXPECT_EQ(v.st, status::valid);
    EXPECT_EQ(e.stats().cache_hits, 1u);
    // A hit reproduces the full license view from the cache entry.
    EXPECT_EQ(v.lic.license_id, "lic-1");
    EXPECT_EQ(v.lic.subject, "cust-1");
    EXPECT_EQ(v.lic.expires_at, now + 3600);
    ASSERT_EQ(v.lic.features.size(), 2u);
    EXPECT_EQ(v.lic.features[1], "export");
    ASSERT_EQ(v.lic.meta.size(), 2u);
    EXPECT_EQ(v.lic.meta[0].value, "gold");
    // Request checks are redone on a hit.
    EXPECT_EQ(check(e, tok, "erp"), status::wrong_product);
    EXPECT_EQ(check(e, tok, {}, "payroll"), status::feature_not_granted);
    // Sealed tokens and failures are never cached.
    EXPECT_EQ(check(e, tokens()["e_valid"]), status::valid);
    EXPECT_EQ(check(e, tokens()["e_valid"]), status::valid);
    EXPECT_EQ(check(e, tokens()["s_tamper_payload"]), status::bad_signature);
    EXPECT_EQ(check(e, tokens()["s_tamper_payload"]), status::bad_signature);
    EXPECT_EQ(e.stats().cache_hits, 3u);
    EXPECT_EQ(e.stats().cache_misses, 3u);
    EXPECT_EQ(e.stats().validations, 8u);
    EXPECT_EQ(e.stats().valid, 4u);
    EXPECT_EQ(e.stats().invalid, 4u);

    engine off = test::make_engine(clock_, 0);
    EXPECT_EQ(check(off, tok), status::valid);
    EXPECT_EQ(check(off, tok), status::valid);
    EXPECT_EQ(off.stats().cache_hits + off.stats().cache_misses, 0u);
}

TEST_F(EngineTest, CachedEntryExpiresLater) {
    engine e = test::make_engine(clock_);
    const auto& tok = tokens()["s_expires_later"];  // exp = now + 100
    EXPECT_EQ(check(e, tok), status::valid);
    EXPECT_EQ(check(e, tok), status::valid);
    clock_.advance(200);
    const validation v = e.validate({tok, {}, {}, {}});
    EXPECT_EQ(v.st, status::expired);
    EXPECT_TRUE(v.has_claims);
    EXPECT_EQ(e.stats().cache_hits, 2u);
    EXPECT_EQ(e.stats().cache_misses, 1u);
}

TEST_F(EngineTest, ReplaceKeysFlushesTheCache) {
    engine e = test::make_engine(clock_);
    const auto& tok = tokens()["s_valid"];
    EXPECT_EQ(check(e, tok), status::valid);
    EXPECT_EQ(check(e, tok), status::valid);
    EXPECT_EQ(e.stats().cache_hits, 1u);
    // Same kids, different keys: a stale cache entry would still say valid.
    e.replace_keys(test::signing_keys(tokens().other.path()), test::secrets(tokens().other.path()));
    EXPECT_EQ(check(e, tok), status::bad_signature);
    EXPECT_EQ(check(e, tokens()["e_valid"]), status::bad_signature);
    EXPECT_EQ(e.stats().cache_hits, 1u);
    EXPECT_EQ(e.stats().cache_misses, 2u);
    e.replace_keys(test::signing_keys(tokens().dir.path()), test::secrets(tokens().dir.path()));
    EXPECT_EQ(check(e, tok), status::valid);
    EXPECT_EQ(check(e, tokens()["e_valid"]), status::valid);
}

TEST_F(EngineTest, CacheEvictsLeastRecentlyUsedWithinASet) {
    engine e = test::make_engine(clock_, 4);  // one set of 4 ways
    const auto lru = [](int i) { return tokens()["s_lru" + std::to_string(i)]; };
    for (int i = 0; i < 4; ++i) EXPECT_EQ(check(e, lru(i)), status::valid);
    EXPECT_EQ(e.stats().cache_misses, 4u);
    EXPECT_EQ(check(e, lru(0)), status::valid);  // hit: 0 becomes most recent; 1 is now oldest
    EXPECT_EQ(e.stats().cache_hits, 1u);
    EXPECT_EQ(check(e, lru(4)), status::valid);  // miss: evicts 1
    EXPECT_EQ(e.stats().cache_misses, 5u);
    const validation v0 = e.validate({lru(0), {}, {}, {}});
    EXPECT_EQ(v0.lic.license_id, "lic-lru-0");
    EXPECT_EQ(e.stats().cache_hits, 2u);
    EXPECT_EQ(check(e, lru(1)), status::valid);  // was evicted
    EXPECT_EQ(e.stats().cache_misses, 6u);
    const validation v4 = e.validate({lru(4), {}, {}, {}});
    EXPECT_EQ(v4.lic.license_id, "lic-lru-4");
    EXPECT_EQ(e.stats().cache_hits, 3u);
}

TEST_F(EngineTest, EngineIsMovable) {
    engine a = test::make_engine(clock_);
    engine b = std::move(a);
    EXPECT_EQ(check(b, tokens()["s_valid"]), status::valid);
}

}  // namespace
}  // namespace la::core
