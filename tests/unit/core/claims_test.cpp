#include "core/claims.hpp"

#include <array>
#include <string>

#include <gtest/gtest.h>

namespace la::core {
namespace {

struct result_holder {
    std::string buf;
    std::array<json::token, claims_json_tokens> toks{};
    claims c{};
    status st{};
};

result_holder parse(std::string text) {
    result_holder h;
    h.buf = std::move(text);
    h.st = parse_claims(std::span<char>(h.buf.data(), h.buf.size()), h.toks, h.c);
    return h;
}

const std::string base = R"("jti":"lic-1","iss":"acme","sub":"cust","product":"pos","iat":100)";

TEST(ClaimsTest, ParsesEveryClaim) {
    auto h = parse("{" + base +
                   R"(,"lic_type":"subscription","nbf":90,"exp":200,"features":["a","b"],"versions":["17.0"],)"
                   R"("instance":"term-1","meta":{"tier":"gold","site":"x"},"unknown":{"deep":[1,{"z":null}]}})");
    ASSERT_EQ(h.st, status::valid);
    EXPECT_EQ(h.c.jti, "lic-1");
    EXPECT_EQ(h.c.iss, "acme");
    EXPECT_EQ(h.c.sub, "cust");
    EXPECT_EQ(h.c.product, "pos");
    EXPECT_EQ(h.c.type, lic_type::subscription);
    EXPECT_EQ(h.c.iat, 100);
    EXPECT_TRUE(h.c.has_nbf);
    EXPECT_EQ(h.c.nbf, 90);
    EXPECT_TRUE(h.c.has_exp);
    EXPECT_EQ(h.c.exp, 200);
    ASSERT_EQ(h.c.features().size(), 2u);
    EXPECT_EQ(h.c.features()[1], "b");
    ASSERT_EQ(h.c.versions().size(), 1u);
    EXPECT_EQ(h.c.versions()[0], "17.0");
    EXPECT_EQ(h.c.instance, "term-1");
    ASSERT_EQ(h.c.meta().size(), 2u);
    EXPECT_EQ(h.c.meta()[0].key, "tier");
    EXPECT_EQ(h.c.meta()[0].value, "gold");
}

TEST(ClaimsTest, PerpetualMayOmitOrNullExp) {
    auto a = parse("{" + base + R"(,"lic_type":"perpetual"})");
    EXPECT_EQ(a.st, status::valid);
    EXPECT_FALSE(a.c.has_exp);
    auto b = parse("{" + base + R"(,"lic_type":"perpetual","exp":null})");
    EXPECT_EQ(b.st, status::valid);
    EXPECT_FALSE(b.c.has_exp);
}

TEST(ClaimsTest, NonPerpetualNeedsExp) {
    EXPECT_EQ(parse("{" + base + R"(,"lic_type":"subscription"})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + R"(,"lic_type":"demo","exp":null})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + R"(,"lic_type":"demo","exp":1000})").st, status::valid);
}

TEST(ClaimsTest, MissingRequiredClaimIsMalformed) {
    for (const char* drop : {"jti", "iss", "sub", "product", "iat"}) {
        std::string text = "{" + base + R"(,"lic_type":"perpetual"})";
        const std::string key = std::string("\"") + drop + "\":";
        const std::size_t at = text.find(key);
        const std::size_t end = text.find(',', at);
        text.erase(at, end - at + 1);
        EXPECT_EQ(parse(text).st, status::malformed) << drop << ": " << text;
    }
    EXPECT_EQ(parse("{" + base + "}").st, status::malformed);  // no lic_type
}

TEST(ClaimsTest, WrongTypesAreMalformed) {
    const std::string p = R"(,"lic_type":"perpetual")";
    EXPECT_EQ(parse(R"({"jti":1,"iss":"acme","sub":"c","product":"p","iat":1,"lic_type":"perpetual"})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + R"(,"lic_type":"forever"})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + R"(,"lic_type":3})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"features":"a"})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"features":["a",1]})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"versions":[17]})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"meta":{"a":1}})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"meta":["a"]})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"instance":true})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"nbf":"soon"})").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"exp":1e10})").st, status::malformed);
    EXPECT_EQ(parse(R"({"jti":"","iss":"a","sub":"c","product":"p","iat":1,"lic_type":"perpetual"})").st, status::malformed);
    EXPECT_EQ(parse(R"(["not","an","object"])").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + "} trailing").st, status::malformed);
    EXPECT_EQ(parse("{" + base + p + R"(,"jti":"dup"})").st, status::malformed);
}

TEST(ClaimsTest, CapacityOverflowIsTooLarge) {
    std::string feats;
    for (std::size_t i = 0; i <= claims::max_features; ++i) feats += (i ? ",\"f" : "\"f") + std::to_string(i) + "\"";
    EXPECT_EQ(parse("{" + base + R"(,"lic_type":"perpetual","features":[)" + feats + "]}").st, status::too_large);
    std::string meta;
    for (std::size_t i = 0; i <= claims::max_meta; ++i) meta += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":\"v\"";
    EXPECT_EQ(parse("{" + base + R"(,"lic_type":"perpetual","meta":{)" + meta + "}}").st, status::too_large);
    std::string junk;
    for (int i = 0; i < 600; ++i) junk += (i ? ",1" : "1");
    EXPECT_EQ(parse("{" + base + R"(,"lic_type":"perpetual","x":[)" + junk + "]}").st, status::too_large);
}

}  // namespace
}  // namespace la::core
