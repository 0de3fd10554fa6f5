#include "core/keys.hpp"

#include <gtest/gtest.h>

#include "tests/unit/core/core_test_util.hpp"

namespace la::core {
namespace {

using test::temp_dir;
using test::write_file;

// A valid public Ed25519 key (RFC 8032 test 1) for hand-written JWK Sets.
constexpr std::string_view rfc8032_x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

std::string jwk(std::string_view members) { return std::string(R"({"keys":[)") + std::string(members) + "]}"; }

std::string signing_error(const std::string& json) {
    auto r = parse_signing_keys(json, "keys.json");
    EXPECT_FALSE(r.has_value()) << json;
    return r ? std::string() : r.error();
}

TEST(KeysTest, LoadsMintedKeyDirectory) {
    temp_dir dir;
    test::mint_keys(dir.path(), "k1,k2", "1,7");
    auto signing = load_signing_keys(dir / "signing-keys.json");
    ASSERT_TRUE(signing) << signing.error();
    EXPECT_EQ(signing->size(), 2u);
    EXPECT_NE(signing->find("k1"), nullptr);
    EXPECT_NE(signing->find("k2"), nullptr);
    EXPECT_EQ(signing->find("k3"), nullptr);
    EXPECT_EQ(signing->kid(1), "k2");

    file_secret_store store(dir / "secrets.json");
    auto secrets = store.load();
    ASSERT_TRUE(secrets) << secrets.error();
    EXPECT_EQ(secrets->size(), 2u);
    EXPECT_NE(secrets->find(1), nullptr);
    EXPECT_NE(secrets->find(7), nullptr);
    EXPECT_EQ(secrets->find(2), nullptr);
}

TEST(KeysTest, AcceptsHandWrittenSigningKey) {
    auto r = parse_signing_keys(jwk(R"({"kty":"OKP","crv":"Ed25519","kid":"a","x":")" + std::string(rfc8032_x) + "\"}"), "k");
    ASSERT_TRUE(r) << r.error();
    EXPECT_NE(r->find("a"), nullptr);
}

TEST(KeysTest, SigningKeyErrorsNameTheFileKeyAndField) {
    const std::string x(rfc8032_x);
    auto e = signing_error(jwk(R"({"kty":"RSA","crv":"Ed25519","kid":"a","x":")" + x + "\"}"));
    EXPECT_NE(e.find("keys.json: keys[0] (kid \"a\")"), std::string::npos) << e;
    EXPECT_NE(e.find("\"kty\" must be \"OKP\""), std::string::npos) << e;
    e = signing_error(jwk(R"({"kty":"OKP","crv":"X25519","kid":"a","x":")" + x + "\"}"));
    EXPECT_NE(e.find("\"crv\""), std::string::npos) << e;
    e = signing_error(jwk(R"({"kty":"OKP","crv":"Ed25519","kid":"a"})"));
    EXPECT_NE(e.find("missing \"x\""), std::string::npos) << e;
    e = signing_error(jwk(R"({"kty":"OKP","crv":"Ed25519","x":")" + x + "\"}"));
    EXPECT_NE(e.find("missing \"kid\""), std::string::npos) << e;
    e = signing_error(jwk(R"({"kty":"OKP","crv":"Ed25519","kid":"a","x":"AAAA"})"));
    EXPECT_NE(e.find("32 bytes"), std::string::npos) << e;
    e = signing_error(jwk(R"({"kty":"OKP","crv":"Ed25519","kid":"a","x":")" + x + R"("},{"kty":"OKP","crv":"Ed25519","kid":"a","x":")" + x + "\"}"));
    EXPECT_NE(e.find("keys[1]"), std::string::npos) << e;
    EXPECT_NE(e.find("duplicate kid"), std::string::npos) << e;
    e = signing_error(jwk(R"({"kty":"OKP","crv":"Ed25519","kid":"a","x":")" + x + R"(","d":"secret"})"));
    EXPECT_NE(e.find("private key"), std::string::npos) << e;
    e = signing_error(jwk(R"({"kty":"OKP","crv":"Ed25519","kid":"a","alg":"RS256","x":")" + x + "\"}"));
    EXPECT_NE(e.find("\"alg\""), std::string::npos) << e;
    e = signing_error(jwk(R"({"kty":"OKP","crv":"Ed25519","kid":")" + std::string(65, 'k') + R"(","x":")" + x + "\"}"));
    EXPECT_NE(e.find("longer than 64"), std::string::npos) << e;
    e = signing_error(R"({"keys":[]})");
    EXPECT_NE(e.find("empty"), std::string::npos) << e;
    e = signing_error(R"({"nokeys":1})");
    EXPECT_NE(e.find("missing \"keys\""), std::string::npos) << e;
    e = signing_error(R"({"keys":[1,]})");
    EXPECT_NE(e.find("keys.json: invalid JSON"), std::string::npos) << e;
    e = signing_error(R"({"keys":[],"keys":[]})");
    EXPECT_NE(e.find("duplicate key"), std::string::npos) << e;
}

TEST(KeysTest, SigningSetRefusesMoreThanCapacity) {
    std::string members;
    for (std::size_t i = 0; i <= signing_key_set::capacity; ++i) {
        if (i) members += ",";
        members += R"({"kty":"OKP","crv":"Ed25519","kid":"k)" + std::to_string(i) + R"(","x":")" + std::string(rfc8032_x) + "\"}";
    }
    const auto e = signing_error(jwk(members));
    EXPECT_NE(e.find("more than 32"), std::string::npos) << e;
}

TEST(KeysTest, SecretsFileReadableByOthersIsRefusedNamingThePath) {
    temp_dir dir;
    test::mint_keys(dir.path());
    const auto path = dir / "secrets.json";
    ::chmod(path.c_str(), 0640);
    auto r = file_secret_store(path).load();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find(path.string()), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("group or others"), std::string::npos) << r.error();
    ::chmod(path.c_str(), 0604);
    EXPECT_FALSE(file_secret_store(path).load());
    ::chmod(path.c_str(), 0600);
    EXPECT_TRUE(file_secret_store(path).load());
}

TEST(KeysTest, SecretErrorsNameTheKeyButNeverItsBytes) {
    temp_dir dir;
    const std::string k32 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";  // 32 bytes
    const auto load = [&](const std::string& json) {
        const auto path = dir / "s.json";
        write_file(path, json);
        return file_secret_store(path).load();
    };
    auto ok = load(jwk(R"({"kty":"oct","kid":"3","k":")" + k32 + "\"}"));
    ASSERT_TRUE(ok) << ok.error();
    EXPECT_NE(ok->find(3), nullptr);

    auto r = load(jwk(R"({"kty":"oct","kid":"abc","k":")" + k32 + "\"}"));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("decimal"), std::string::npos) << r.error();
    r = load(jwk(R"({"kty":"OKP","kid":"1","k":")" + k32 + "\"}"));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("\"kty\" must be \"oct\""), std::string::npos) << r.error();
    const std::string short_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg";  // 31 bytes
    r = load(jwk(R"({"kty":"oct","kid":"1","k":")" + short_key + "\"}"));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("(kid \"1\"): \"k\" must be base64url of 32 bytes"), std::string::npos) << r.error();
    EXPECT_EQ(r.error().find(short_key), std::string::npos) << "key material leaked into the message";
    r = load(jwk(R"({"kty":"oct","kid":"1","k":")" + k32 + R"("},{"kty":"oct","kid":"1","k":")" + k32 + "\"}"));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("duplicate secret version 1"), std::string::npos) << r.error();
    EXPECT_EQ(r.error().find(k32), std::string::npos);
    r = load(jwk(R"({"kty":"oct","kid":"1"})"));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("missing \"k\""), std::string::npos) << r.error();
}

TEST(KeysTest, ParsesCanonicalVersionsOnly) {
    std::uint64_t v = 0;
    EXPECT_TRUE(parse_version("1", v));
    EXPECT_EQ(v, 1u);
    EXPECT_TRUE(parse_version("18446744073709551615", v));
    EXPECT_EQ(v, UINT64_MAX);
    EXPECT_FALSE(parse_version("18446744073709551616", v));
    EXPECT_FALSE(parse_version("01", v));
    EXPECT_FALSE(parse_version("", v));
    EXPECT_FALSE(parse_version("-1", v));
    EXPECT_FALSE(parse_version("1a", v));
    EXPECT_TRUE(parse_version("0", v));
}

}  // namespace
}  // namespace la::core
