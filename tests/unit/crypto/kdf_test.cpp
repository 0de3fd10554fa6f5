// PBKDF2-HMAC-SHA256 against the published vectors; Argon2id against values computed with
// two independent tools (argon2-cffi's hash_secret_raw and the Debian `argon2` CLI).
#include "crypto/kdf.hpp"

#include <array>
#include <cstddef>
#include <string>

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace la::crypto {
namespace {

using test::bytes_of;
using test::to_hex;

std::string pbkdf2_hex(std::string_view p, std::string_view s, std::uint32_t c, std::size_t len = 32) {
    std::vector<std::byte> out(len);
    const auto r = pbkdf2_sha256(bytes_of(p), bytes_of(s), c, out);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return to_hex(out);
}

TEST(Pbkdf2Sha256Test, MatchesPublishedVectors) {
    EXPECT_EQ(pbkdf2_hex("password", "salt", 1), "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
    EXPECT_EQ(pbkdf2_hex("password", "salt", 2), "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
    EXPECT_EQ(pbkdf2_hex("password", "salt", 4096),
              "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
}

TEST(Pbkdf2Sha256Test, MatchesMultiBlockVector) {
    // dkLen 40 spans two HMAC blocks (RFC 7914-style vector set for PBKDF2-HMAC-SHA256).
    EXPECT_EQ(pbkdf2_hex("passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 40),
              "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9");
}

TEST(Pbkdf2Sha256Test, RejectsZeroIterationsAndEmptyOutput) {
    std::array<std::byte, 32> out{};
    EXPECT_EQ(pbkdf2_sha256(bytes_of("p"), bytes_of("salt"), 0, out).error(),
              std::make_error_code(std::errc::invalid_argument));
    EXPECT_EQ(pbkdf2_sha256(bytes_of("p"), bytes_of("salt"), 1, std::span<std::byte>{}).error(),
              std::make_error_code(std::errc::invalid_argument));
}

std::string argon2id_hex(std::string_view p, std::string_view s, std::uint32_t t, std::uint32_t m,
                         std::uint32_t par) {
    std::array<std::byte, 32> out{};
    const auto r = argon2id(bytes_of(p), bytes_of(s), t, m, par, out);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return to_hex(out);
}

TEST(Argon2idTest, MatchesReferenceVector) {
    // The reference implementation's test.c vector (t=2, m=2^16 KiB, p=1).
    EXPECT_EQ(argon2id_hex("password", "somesalt", 2, 65536, 1),
              "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7");
}

TEST(Argon2idTest, MatchesIndependentToolsAtStoreParameters) {
    // t=2, m=19 MiB, p=1: the encrypted-file store's parameters (OWASP minimum).
    EXPECT_EQ(argon2id_hex("password", "somesaltsomesalt", 2, 19456, 1),
              "2b5dc4054886ec957ef59c73b661c54dd6fb274590b278f657c6d96aac8fa6d1");
    EXPECT_EQ(argon2id_hex("password", "somesalt", 1, 64, 2),
              "7ee97262358926f30e4431533d4ab811ab69977948b628b123dc4cf41e9e6f5d");
}

TEST(Argon2idTest, RejectsShortSaltAndZeroesOutput) {
    std::array<std::byte, 32> out{};
    out.fill(std::byte{0xAA});
    const auto r = argon2id(bytes_of("password"), bytes_of("short"), 2, 64, 1, out);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(&r.error().category(), &argon2_category());
    EXPECT_NE(r.error().message().find("Salt"), std::string::npos) << r.error().message();
    for (std::byte b : out) EXPECT_EQ(b, std::byte{0});
}

}  // namespace
}  // namespace la::crypto
