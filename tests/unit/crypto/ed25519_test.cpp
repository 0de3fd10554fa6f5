#include "crypto/ed25519.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <thread>
#include <vector>

#include "crypto/base64url.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace la::crypto {
namespace {

using test::bytes_of;
using test::hex;

struct rfc8032_vector {
    const char* name;
    const char* public_key;
    const char* message;
    const char* signature;
};

// RFC 8032 §7.1, TEST 1..3.
constexpr rfc8032_vector rfc8032_vectors[] = {
    {"TEST 1", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b"
     "46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11"
     "d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc"
     "6594a7c15e9716ed28dc027beceea1ec40a"},
};

ed25519_public_key import_hex(const char* h) {
    auto r = ed25519_public_key::import(hex(h));
    EXPECT_TRUE(r.has_value()) << h;
    return *r;
}

TEST(Ed25519Test, VerifiesRfc8032Vectors) {
    for (const auto& v : rfc8032_vectors) {
        const auto key = import_hex(v.public_key);
        EXPECT_TRUE(key.verify(hex(v.message), hex(v.signature))) << v.name;
    }
}

TEST(Ed25519Test, RejectsTamperedMessageOrSignature) {
    for (const auto& v : rfc8032_vectors) {
        const auto key = import_hex(v.public_key);
        auto msg = hex(v.message);
        msg.push_back(std::byte{0});
        EXPECT_FALSE(key.verify(msg, hex(v.signature))) << v.name;
        for (std::size_t i : {0u, 31u, 32u, 63u}) {
            auto sig = hex(v.signature);
            sig[i] ^= std::byte{0x01};
            EXPECT_FALSE(key.verify(hex(v.message), sig)) << v.name << " byte " << i;
        }
    }
}

TEST(Ed25519Test, RejectsSignatureUnderAnotherKey) {
    const auto other = import_hex(rfc8032_vectors[1].public_key);
    EXPECT_FALSE(other.verify(hex(rfc8032_vectors[0].message), hex(rfc8032_vectors[0].signature)));
}

TEST(Ed25519Test, RejectsWrongSignatureLength) {
    const auto& v = rfc8032_vectors[0];
    const auto key = import_hex(v.public_key);
    auto sig = hex(v.signature);
    EXPECT_FALSE(key.verify(hex(v.message), std::span(sig).first(63)));
    sig.push_back(std::byte{0});
    EXPECT_FALSE(key.verify(hex(v.message), sig));
    EXPECT_FALSE(key.verify(hex(v.message), {}));
}

TEST(Ed25519Test, RejectsMalleableSignatureWithSPlusL) {
    // TEST 1's signature with S replaced by S + L: same point equation, non-canonical S.
    const auto key = import_hex(rfc8032_vectors[0].public_key);
    EXPECT_FALSE(
        key.verify({}, hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e0652249015"
                           "54c8c7872aa064e049dbb3013fbf29380d25bf5f0595bbe24655141438e7a1"
                           "01b")));
}

TEST(Ed25519Test, ImportRejectsWrongLength) {
    const auto raw = hex(rfc8032_vectors[0].public_key);
    auto r = ed25519_public_key::import(std::span(raw).first(31));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), core::errc::key_invalid);
    auto longer = raw;
    longer.push_back(std::byte{0});
    EXPECT_EQ(ed25519_public_key::import(longer).error(), core::errc::key_invalid);
    EXPECT_EQ(ed25519_public_key::import({}).error(), core::errc::key_invalid);
}

TEST(Ed25519Test, ImportRejectsPointOffTheCurve) {
    // y = 2: (y^2 - 1) / (d y^2 + 1) is not a square mod 2^255 - 19, so no x exists.
    std::array<std::byte, 32> raw{};
    raw[0] = std::byte{2};
    auto r = ed25519_public_key::import(raw);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), core::errc::key_invalid);
}

TEST(Ed25519Test, ImportRejectsNonCanonicalY) {
    // y = p = 2^255 - 19 encodes the same field element as y = 0 (a valid point), but
    // RFC 8032 §5.1.3 requires y < p.
    auto raw = hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    EXPECT_EQ(ed25519_public_key::import(raw).error(), core::errc::key_invalid);
    raw[0] = std::byte{0xEC};  // y = p - 1 = -1: the canonical encoding of the point (0, -1)
    EXPECT_TRUE(ed25519_public_key::import(raw).has_value());
}

TEST(Ed25519Test, CopiesAreIndependentValues) {
    const auto& v = rfc8032_vectors[2];
    auto key = import_hex(v.public_key);
    const ed25519_public_key copy = key;
    key = import_hex(rfc8032_vectors[0].public_key);
    EXPECT_TRUE(copy.verify(hex(v.message), hex(v.signature)));
    EXPECT_FALSE(key.verify(hex(v.message), hex(v.signature)));
    EXPECT_EQ(test::to_hex(copy.raw()), v.public_key);
}

TEST(Ed25519Test, GeneratedKeySignsAndVerifies) {
    auto priv = ed25519_private_key::generate();
    ASSERT_TRUE(priv.has_value()) << priv.error().message();
    auto pub = ed25519_public_key::import(priv->public_bytes());
    ASSERT_TRUE(pub.has_value());

    std::array<std::byte, 64> sig{};
    ASSERT_TRUE(priv->sign(bytes_of("license payload"), sig).has_value());
    EXPECT_TRUE(pub->verify(bytes_of("license payload"), sig));
    EXPECT_FALSE(pub->verify(bytes_of("license payloae"), sig));

    std::array<std::byte, 64> again{};
    ASSERT_TRUE(priv->sign(bytes_of("license payload"), again).has_value());
    EXPECT_EQ(sig, again);  // RFC 8032 signatures are deterministic

    std::array<std::byte, 64> empty_sig{};
    ASSERT_TRUE(priv->sign({}, empty_sig).has_value());
    EXPECT_TRUE(pub->verify({}, empty_sig));

    ed25519_private_key moved = std::move(*priv);
    ASSERT_TRUE(moved.sign(bytes_of("x"), sig).has_value());
    EXPECT_TRUE(pub->verify(bytes_of("x"), sig));
}

TEST(Ed25519Test, GeneratedKeysDiffer) {
    auto a = ed25519_private_key::generate();
    auto b = ed25519_private_key::generate();
    ASSERT_TRUE(a && b);
    EXPECT_NE(a->public_bytes(), b->public_bytes());
}

TEST(Ed25519Test, VerifiesConcurrentlyOnOneKey) {
    // verify is documented as safe to share: each call works on its own stack key.
    const auto& v = rfc8032_vectors[2];
    const auto key = import_hex(v.public_key);
    const auto msg = hex(v.message);
    const auto sig = hex(v.signature);
    auto bad = sig;
    bad[5] ^= std::byte{1};
    std::array<int, 2> good_counts{};
    std::array<int, 2> bad_counts{};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 100; ++i) {
                good_counts[t] += key.verify(msg, sig) ? 1 : 0;
                bad_counts[t] += key.verify(msg, bad) ? 1 : 0;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(good_counts[0] + good_counts[1], 200);
    EXPECT_EQ(bad_counts[0] + bad_counts[1], 0);
}

std::vector<std::byte> b64(std::string_view s) {
    std::vector<std::byte> out(base64url_decoded_max(s.size()));
    auto r = base64url_decode(s, out);
    EXPECT_TRUE(r.has_value()) << s;
    out.resize(r ? *r : 0);
    return out;
}

TEST(Ed25519Test, VerifiesJwsSignedByJwcrypto) {
    // An independent implementation mints an EdDSA JWS compact token; we verify it as the
    // agent will: signing input is the ASCII "header.payload".
    const auto res = test::run_command(R"(/usr/bin/python3 - <<'PYEOF'
import json
from jwcrypto import jwk, jws
k = jwk.JWK.generate(kty='OKP', crv='Ed25519')
s = jws.JWS(b'{"jti":"lic-1","sub":"cust"}')
s.add_signature(k, alg='EdDSA', protected=json.dumps({"alg": "EdDSA", "kid": "k1"}))
print(k['x'])
print(s.serialize(compact=True))
PYEOF
)");
    ASSERT_EQ(res.status, 0) << res.out;
    const auto lines = test::split(res.out, '\n');
    ASSERT_GE(lines.size(), 2u);
    const auto parts = test::split(lines[1], '.');
    ASSERT_EQ(parts.size(), 3u);

    auto key = ed25519_public_key::import(b64(lines[0]));
    ASSERT_TRUE(key.has_value());
    const std::string signing_input = parts[0] + "." + parts[1];
    const auto sig = b64(parts[2]);
    EXPECT_TRUE(key->verify(bytes_of(signing_input), sig));

    std::string tampered = signing_input;
    tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
    EXPECT_FALSE(key->verify(bytes_of(tampered), sig));
}

}  // namespace
}  // namespace la::crypto
