#include "crypto/base64url.hpp"

#include <gtest/gtest.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/crypto/test_util.hpp"

namespace la::crypto {
namespace {

using test::bytes_of;

std::string decode_to_string(std::string_view in) {
    std::vector<std::byte> out(base64url_decoded_max(in.size()));
    auto r = base64url_decode(in, out);
    EXPECT_TRUE(r.has_value()) << in;
    if (!r) return "<error>";
    return {reinterpret_cast<const char*>(out.data()), *r};
}

std::error_code decode_error(std::string_view in) {
    std::array<std::byte, 64> out{};
    auto r = base64url_decode(in, out);
    return r ? std::error_code{} : r.error();
}

std::string encode(std::span<const std::byte> in) {
    std::string out(base64url_encoded_size(in.size()), '\0');
    EXPECT_EQ(base64url_encode(in, out), out.size());
    return out;
}

TEST(Base64UrlTest, DecodesRfc4648Vectors) {
    EXPECT_EQ(decode_to_string(""), "");
    EXPECT_EQ(decode_to_string("Zg"), "f");
    EXPECT_EQ(decode_to_string("Zm8"), "fo");
    EXPECT_EQ(decode_to_string("Zm9v"), "foo");
    EXPECT_EQ(decode_to_string("Zm9vYg"), "foob");
    EXPECT_EQ(decode_to_string("Zm9vYmE"), "fooba");
    EXPECT_EQ(decode_to_string("Zm9vYmFy"), "foobar");
}

TEST(Base64UrlTest, EncodesRfc4648Vectors) {
    EXPECT_EQ(encode(bytes_of("")), "");
    EXPECT_EQ(encode(bytes_of("f")), "Zg");
    EXPECT_EQ(encode(bytes_of("fo")), "Zm8");
    EXPECT_EQ(encode(bytes_of("foo")), "Zm9v");
    EXPECT_EQ(encode(bytes_of("foob")), "Zm9vYg");
    EXPECT_EQ(encode(bytes_of("fooba")), "Zm9vYmE");
    EXPECT_EQ(encode(bytes_of("foobar")), "Zm9vYmFy");
}

TEST(Base64UrlTest, UsesUrlSafeAlphabetForHighValues) {
    const auto raw = test::hex("fbffbf");
    EXPECT_EQ(encode(raw), "-_-_");
    std::array<std::byte, 3> out{};
    auto r = base64url_decode("-_-_", out);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, 3u);
    EXPECT_EQ(test::to_hex(out), "fbffbf");
    EXPECT_EQ(encode(test::hex("fbff")), "-_8");
}

TEST(Base64UrlTest, RejectsPadding) {
    EXPECT_EQ(decode_error("Zg=="), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("Zm8="), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("Zm=v"), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("===="), std::errc::invalid_argument);
}

TEST(Base64UrlTest, RejectsStandardAlphabetCharacters) {
    EXPECT_EQ(decode_error("-_-_"), std::error_code{});
    EXPECT_EQ(decode_error("+_-_"), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("-/-_"), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("+/8"), std::errc::invalid_argument);
}

TEST(Base64UrlTest, RejectsWhitespaceAndControlBytes) {
    EXPECT_EQ(decode_error("Zm9v Yg"), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("Zm9v\nYmFy"), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("Zm9\tv"), std::errc::invalid_argument);
    EXPECT_EQ(decode_error(" Zm9v"), std::errc::invalid_argument);
    EXPECT_EQ(decode_error(std::string_view("Zm\0v", 4)), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("Zm\xC3\xA9"), std::errc::invalid_argument);
}

TEST(Base64UrlTest, RejectsLengthOneModuloFour) {
    EXPECT_EQ(decode_error("Z"), std::errc::invalid_argument);
    EXPECT_EQ(decode_error("Zm9vY"), std::errc::invalid_argument);
}

TEST(Base64UrlTest, RejectsNonCanonicalTrailingBits) {
    EXPECT_EQ(decode_error("Zg"), std::error_code{});
    EXPECT_EQ(decode_error("Zh"), std::errc::invalid_argument);  // low 4 bits set
    EXPECT_EQ(decode_error("Zm8"), std::error_code{});
    EXPECT_EQ(decode_error("Zm9"), std::errc::invalid_argument);  // low 2 bits set
    EXPECT_EQ(decode_error("Zm9vYh"), std::errc::invalid_argument);
}

TEST(Base64UrlTest, RejectsOutputTooSmall) {
    std::array<std::byte, 6> exact{};
    EXPECT_TRUE(base64url_decode("Zm9vYmFy", exact).has_value());
    std::array<std::byte, 5> small{};
    auto r = base64url_decode("Zm9vYmFy", small);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), std::errc::no_buffer_space);
    std::array<std::byte, 1> one{};
    EXPECT_EQ(base64url_decode("Zm8", one).error(), std::errc::no_buffer_space);
}

TEST(Base64UrlTest, EncodeReturnsZeroWhenOutputTooSmall) {
    std::array<char, 7> small{};
    EXPECT_EQ(base64url_encode(bytes_of("foobar"), small), 0u);
    std::array<char, 8> exact{};
    EXPECT_EQ(base64url_encode(bytes_of("foobar"), exact), 8u);
}

TEST(Base64UrlTest, SizesAreExactForValidInput) {
    for (std::size_t n = 0; n < 100; ++n) {
        EXPECT_EQ(base64url_decoded_max(base64url_encoded_size(n)), n) << n;
    }
    static_assert(base64url_encoded_size(32) == 43);
    static_assert(base64url_decoded_max(86) == 64);
}

TEST(Base64UrlTest, RoundTripsRandomData) {
    std::mt19937 rng(12345);
    for (std::size_t len = 0; len < 300; ++len) {
        std::vector<std::byte> data(len);
        for (auto& b : data) b = static_cast<std::byte>(rng());
        const std::string text = encode(data);
        ASSERT_EQ(text.size(), base64url_encoded_size(len));
        std::vector<std::byte> back(base64url_decoded_max(text.size()));
        auto r = base64url_decode(text, back);
        ASSERT_TRUE(r.has_value()) << text;
        ASSERT_EQ(*r, len);
        EXPECT_EQ(back, data);
    }
}

}  // namespace
}  // namespace la::crypto
