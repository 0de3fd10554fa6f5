#include "crypto/aes_gcm.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "crypto/base64url.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace la::crypto {
namespace {

using test::bytes_of;
using test::hex;
using test::to_hex;

// McGrew & Viega, "The Galois/Counter Mode of Operation", Test Case 16 (AES-256, with AAD).
struct tc16 {
    std::vector<std::byte> key =
        hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    std::vector<std::byte> iv = hex("cafebabefacedbaddecaf888");
    std::vector<std::byte> aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    std::vector<std::byte> pt = hex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
        "49a6b525b16aedf5aa0de657ba637b39");
    std::vector<std::byte> ct = hex(
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
        "56828838c5f61e6393ba7a0abcc9f662");
    std::vector<std::byte> tag = hex("76fc6ece0f4e1768cddf8853bb2d551b");
};

std::span<const std::byte, 12> iv12(const std::vector<std::byte>& v) {
    return std::span<const std::byte>(v).first<12>();
}
std::span<const std::byte, 16> tag16(const std::vector<std::byte>& v) {
    return std::span<const std::byte>(v).first<16>();
}

aes256_gcm_key make_key(const std::vector<std::byte>& raw) {
    auto k = aes256_gcm_key::create(raw);
    EXPECT_TRUE(k.has_value());
    return std::move(*k);
}

TEST(AesGcmTest, DecryptsMcGrewViegaTestCase16) {
    const tc16 v;
    const auto key = make_key(v.key);
    std::vector<std::byte> out(v.ct.size());
    auto r = key.decrypt(iv12(v.iv), v.aad, v.ct, tag16(v.tag), out);
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(out, v.pt);
}

TEST(AesGcmTest, EncryptsMcGrewViegaTestCase16) {
    const tc16 v;
    const auto key = make_key(v.key);
    std::vector<std::byte> out(v.pt.size());
    std::array<std::byte, 16> tag{};
    ASSERT_TRUE(key.encrypt(iv12(v.iv), v.aad, v.pt, tag, out).has_value());
    EXPECT_EQ(out, v.ct);
    EXPECT_EQ(to_hex(tag), to_hex(v.tag));
}

TEST(AesGcmTest, TamperedTagFailsAndZeroizesOutput) {
    const tc16 v;
    const auto key = make_key(v.key);
    auto bad_tag = v.tag;
    bad_tag[15] ^= std::byte{0x80};
    std::vector<std::byte> out(v.ct.size() + 4, std::byte{0xAA});
    auto r = key.decrypt(iv12(v.iv), v.aad, v.ct, tag16(bad_tag), out);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), core::errc::auth_failed);
    EXPECT_TRUE(std::all_of(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(v.ct.size()),
                            [](std::byte b) { return b == std::byte{0}; }));
    // Bytes past the ciphertext length are not ours to touch.
    EXPECT_EQ(out.back(), std::byte{0xAA});
}

TEST(AesGcmTest, TamperedCiphertextAadOrIvFails) {
    const tc16 v;
    const auto key = make_key(v.key);
    std::vector<std::byte> out(v.ct.size());

    auto ct = v.ct;
    ct[0] ^= std::byte{1};
    EXPECT_EQ(key.decrypt(iv12(v.iv), v.aad, ct, tag16(v.tag), out).error(),
              core::errc::auth_failed);
    auto aad = v.aad;
    aad.back() ^= std::byte{1};
    EXPECT_EQ(key.decrypt(iv12(v.iv), aad, v.ct, tag16(v.tag), out).error(),
              core::errc::auth_failed);
    EXPECT_EQ(key.decrypt(iv12(v.iv), {}, v.ct, tag16(v.tag), out).error(),
              core::errc::auth_failed);
    auto iv = v.iv;
    iv[11] ^= std::byte{1};
    EXPECT_EQ(key.decrypt(iv12(iv), v.aad, v.ct, tag16(v.tag), out).error(),
              core::errc::auth_failed);
    // The untouched inputs still decrypt with the same key object afterwards.
    EXPECT_TRUE(key.decrypt(iv12(v.iv), v.aad, v.ct, tag16(v.tag), out).has_value());
}

TEST(AesGcmTest, RejectsWrongKeyLength) {
    const auto short_key = hex("00112233445566778899aabbccddeeff");
    auto r = aes256_gcm_key::create(short_key);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), core::errc::key_invalid);
}

TEST(AesGcmTest, RejectsOutputTooSmall) {
    const tc16 v;
    const auto key = make_key(v.key);
    std::vector<std::byte> out(v.ct.size() - 1);
    EXPECT_EQ(key.decrypt(iv12(v.iv), v.aad, v.ct, tag16(v.tag), out).error(),
              std::errc::no_buffer_space);
    std::array<std::byte, 16> tag{};
    EXPECT_EQ(key.encrypt(iv12(v.iv), v.aad, v.pt, tag, out).error(), std::errc::no_buffer_space);
}

TEST(AesGcmTest, RoundTripsEmptyPlaintextAndAad) {
    const tc16 v;
    auto key = make_key(v.key);
    std::array<std::byte, 16> tag{};
    ASSERT_TRUE(key.encrypt(iv12(v.iv), {}, {}, tag, {}).has_value());
    EXPECT_TRUE(key.decrypt(iv12(v.iv), {}, {}, tag, {}).has_value());
    tag[0] ^= std::byte{1};
    EXPECT_EQ(key.decrypt(iv12(v.iv), {}, {}, tag, {}).error(), core::errc::auth_failed);

    aes256_gcm_key moved = std::move(key);
    std::vector<std::byte> out(v.ct.size());
    EXPECT_TRUE(moved.decrypt(iv12(v.iv), v.aad, v.ct, tag16(v.tag), out).has_value());
    key = std::move(moved);
    EXPECT_TRUE(key.decrypt(iv12(v.iv), v.aad, v.ct, tag16(v.tag), out).has_value());
}

TEST(AesGcmTest, DecryptsPythonCryptographyVector) {
    const auto res = test::run_command(R"(/usr/bin/python3 - <<'PYEOF'
import os
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
k, iv, aad = os.urandom(32), os.urandom(12), os.urandom(37)
pt = os.urandom(1000)
ct = AESGCM(k).encrypt(iv, pt, aad)
for x in (k, iv, aad, pt, ct[:-16], ct[-16:]):
    print(x.hex())
PYEOF
)");
    ASSERT_EQ(res.status, 0) << res.out;
    const auto f = test::split(res.out, '\n');
    ASSERT_GE(f.size(), 6u);
    const auto key = make_key(hex(f[0]));
    const auto iv = hex(f[1]);
    const auto ct = hex(f[4]);
    const auto tag = hex(f[5]);
    std::vector<std::byte> out(ct.size());
    ASSERT_TRUE(key.decrypt(iv12(iv), hex(f[2]), ct, tag16(tag), out).has_value());
    EXPECT_EQ(to_hex(out), f[3]);
}

std::vector<std::byte> b64(std::string_view s) {
    std::vector<std::byte> out(base64url_decoded_max(s.size()));
    auto r = base64url_decode(s, out);
    EXPECT_TRUE(r.has_value()) << s;
    out.resize(r ? *r : 0);
    return out;
}

TEST(AesGcmTest, DecryptsJweDirA256GcmFromJwcrypto) {
    // A sealed token as an independent tool mints it: AAD is the ASCII of the encoded header.
    const auto res = test::run_command(R"(/usr/bin/python3 - <<'PYEOF'
import json
from jwcrypto import jwk, jwe
k = jwk.JWK.generate(kty='oct', size=256)
e = jwe.JWE(b'{"jti":"lic-2"}', protected=json.dumps({"alg": "dir", "enc": "A256GCM", "kid": "7"}))
e.add_recipient(k)
print(k['k'])
print(e.serialize(compact=True))
PYEOF
)");
    ASSERT_EQ(res.status, 0) << res.out;
    const auto lines = test::split(res.out, '\n');
    ASSERT_GE(lines.size(), 2u);
    const auto parts = test::split(lines[1], '.');
    ASSERT_EQ(parts.size(), 5u);
    EXPECT_TRUE(parts[1].empty());  // dir: no encrypted key

    const auto key = make_key(b64(lines[0]));
    const auto iv = b64(parts[2]);
    const auto ct = b64(parts[3]);
    const auto tag = b64(parts[4]);
    ASSERT_EQ(iv.size(), 12u);
    ASSERT_EQ(tag.size(), 16u);
    std::vector<std::byte> out(ct.size());
    auto r = key.decrypt(iv12(iv), bytes_of(parts[0]), ct, tag16(tag), out);
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), out.size()),
              R"({"jti":"lic-2"})");
}

}  // namespace
}  // namespace la::crypto
