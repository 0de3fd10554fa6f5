#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "crypto/ct.hpp"
#include "crypto/random.hpp"
#include "crypto/sha256.hpp"
#include "crypto/siphash.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace la::crypto {
namespace {

using test::bytes_of;
using test::to_hex;

TEST(Sha256Test, MatchesFips180Vectors) {
    EXPECT_EQ(to_hex(sha256(bytes_of("abc"))),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(to_hex(sha256(bytes_of(""))),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(to_hex(sha256(bytes_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, IncrementalMatchesOneShotAcrossSplits) {
    std::vector<std::byte> data(1000);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7);
    const auto expected = sha256(data);
    for (std::size_t split : {0u, 1u, 63u, 64u, 65u, 999u, 1000u}) {
        sha256_hasher h;
        h.update(std::span(data).first(split));
        h.update(std::span(data).subspan(split));
        EXPECT_EQ(h.finish(), expected) << split;
    }
}

TEST(Sha256Test, CopyForksStateAndFinishResets) {
    sha256_hasher h;
    h.update(bytes_of("ab"));
    sha256_hasher fork = h;
    h.update(bytes_of("c"));
    fork.update(bytes_of("x"));
    EXPECT_EQ(h.finish(), sha256(bytes_of("abc")));
    EXPECT_EQ(fork.finish(), sha256(bytes_of("abx")));
    EXPECT_EQ(h.finish(), sha256(bytes_of("")));
    sha256_hasher assigned;
    assigned.update(bytes_of("zzz"));
    h.update(bytes_of("a"));
    assigned = h;
    assigned.update(bytes_of("bc"));
    EXPECT_EQ(assigned.finish(), sha256(bytes_of("abc")));
}

siphash_key reference_key() {
    siphash_key k;
    for (std::size_t i = 0; i < 16; ++i) k.bytes[i] = static_cast<std::byte>(i);
    return k;
}

TEST(SipHashTest, MatchesReferenceVectorsSip128) {
    // vectors_sip128 from the SipHash reference implementation (veorq/SipHash vectors.h):
    // key 00..0f, message 00..(len-1).
    std::array<std::byte, 64> msg{};
    for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<std::byte>(i);
    const auto key = reference_key();
    EXPECT_EQ(to_hex(siphash128(key, std::span(msg).first(0))), "a3817f04ba25a8e66df67214c7550293");
    EXPECT_EQ(to_hex(siphash128(key, std::span(msg).first(1))), "da87c1d86b99af44347659119b22fc45");
    EXPECT_EQ(to_hex(siphash128(key, std::span(msg).first(8))), "3b62a9ba6258f5610f83e264f31497b4");
    EXPECT_EQ(to_hex(siphash128(key, std::span(msg).first(15))),
              "5493e99933b0a8117e08ec0f97cfc3d9");
    EXPECT_EQ(to_hex(siphash128(key, std::span(msg).first(63))),
              "5150d1772f50834a503e069a973fbd7c");
}

TEST(SipHashTest, DependsOnKeyAndMessage) {
    const auto k1 = reference_key();
    auto k2 = k1;
    k2.bytes[15] ^= std::byte{1};
    EXPECT_NE(siphash128(k1, bytes_of("token")), siphash128(k2, bytes_of("token")));
    EXPECT_NE(siphash128(k1, bytes_of("token")), siphash128(k1, bytes_of("tokeN")));
    EXPECT_EQ(siphash128(k1, bytes_of("token")), siphash128(k1, bytes_of("token")));
}

TEST(SipHashTest, RandomKeysDiffer) {
    EXPECT_NE(siphash_key::random().bytes, siphash_key::random().bytes);
}

TEST(CtEqualTest, ComparesContentAndLength) {
    EXPECT_TRUE(ct_equal(bytes_of("secret"), bytes_of("secret")));
    EXPECT_TRUE(ct_equal(bytes_of(""), bytes_of("")));
    EXPECT_FALSE(ct_equal(bytes_of("secret"), bytes_of("secreT")));
    EXPECT_FALSE(ct_equal(bytes_of("secret"), bytes_of("Secret")));
    EXPECT_FALSE(ct_equal(bytes_of("secret"), bytes_of("secret!")));
    EXPECT_FALSE(ct_equal(bytes_of(""), bytes_of("a")));
}

TEST(RandomTest, FillsLargeBuffersWithDistinctBytes) {
    std::vector<std::byte> a(1 << 20);
    std::vector<std::byte> b(1 << 20);
    ASSERT_TRUE(random_bytes(a).has_value());
    ASSERT_TRUE(random_bytes(b).has_value());
    EXPECT_NE(a, b);
    // The tail is written too, not only the first getrandom chunk.
    const std::vector<std::byte> zeros(64);
    EXPECT_FALSE(std::equal(zeros.begin(), zeros.end(), a.end() - 64));
}

}  // namespace
}  // namespace la::crypto
