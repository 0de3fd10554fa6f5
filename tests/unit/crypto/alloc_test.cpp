// The token-validation primitives must not allocate per call once keys are set up.
// Counts every allocation of the thread (tests/support/alloc_counter: operator new and the malloc
// family) and wolfCrypt's XMALLOC (wolfSSL_SetAllocators).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <string_view>

#include "crypto/aes_gcm.hpp"
#include "crypto/base64url.hpp"
#include "crypto/ct.hpp"
#include "crypto/detail/wolf.hpp"
#include "crypto/ed25519.hpp"
#include "crypto/sha256.hpp"
#include "crypto/siphash.hpp"
#include "tests/support/alloc_counter.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace la::crypto {
namespace {

std::atomic<std::size_t> wolf_mallocs{0};

void* counting_malloc(size_t n) {
    wolf_mallocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n);
}
void counting_free(void* p) { std::free(p); }
void* counting_realloc(void* p, size_t n) {
    wolf_mallocs.fetch_add(1, std::memory_order_relaxed);
    return std::realloc(p, n);
}

// Installs the counting wolfCrypt allocators for the test's lifetime.
class WolfAllocCounter : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_EQ(wolfSSL_GetAllocators(&old_malloc_, &old_free_, &old_realloc_), 0);
        ASSERT_EQ(wolfSSL_SetAllocators(counting_malloc, counting_free, counting_realloc), 0);
    }
    void TearDown() override { wolfSSL_SetAllocators(old_malloc_, old_free_, old_realloc_); }

  private:
    wolfSSL_Malloc_cb old_malloc_ = nullptr;
    wolfSSL_Free_cb old_free_ = nullptr;
    wolfSSL_Realloc_cb old_realloc_ = nullptr;
};

TEST_F(WolfAllocCounter, CountersSeeAllocations) {
    // Positive control: both counters are live, so a zero below means something.
    {
        const test::alloc_scope scope;
        void* p = ::operator new(16);
        ::operator delete(p);
        EXPECT_EQ(scope.count(), 1u);
    }

    const std::size_t wolf_before = wolf_mallocs.load();
    auto key = ed25519_private_key::generate();  // wc_InitRng allocates its DRBG
    ASSERT_TRUE(key.has_value());
    EXPECT_GT(wolf_mallocs.load(), wolf_before);
}

TEST_F(WolfAllocCounter, HotPathPrimitivesDoNotAllocate) {
    // Setup (may allocate): keys, a signed message, a sealed message.
    auto priv = ed25519_private_key::generate();
    ASSERT_TRUE(priv.has_value());
    auto pub = ed25519_public_key::import(priv->public_bytes());
    ASSERT_TRUE(pub.has_value());
    constexpr std::string_view message = "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJsaWMtMSJ9";
    std::array<std::byte, 64> sig{};
    ASSERT_TRUE(priv->sign(test::bytes_of(message), sig).has_value());

    std::array<std::byte, 32> raw_key{};
    raw_key[0] = std::byte{1};
    auto aes = aes256_gcm_key::create(raw_key);
    ASSERT_TRUE(aes.has_value());
    const std::array<std::byte, 12> iv{};
    std::array<std::byte, 200> plain{};
    std::array<std::byte, 200> sealed{};
    std::array<std::byte, 16> tag{};
    ASSERT_TRUE(aes->encrypt(iv, test::bytes_of(message), plain, tag, sealed).has_value());
    const siphash_key sip = siphash_key::random();
    std::array<std::byte, 64> decoded{};

    const std::size_t new_before = test::thread_allocations();
    const std::size_t wolf_before = wolf_mallocs.load();
    std::size_t ok = 0;
    for (int i = 0; i < 1000; ++i) {
        ok += pub->verify(test::bytes_of(message), sig) ? 1U : 0U;
        ok += aes->decrypt(iv, test::bytes_of(message), sealed, tag, plain).has_value() ? 1U : 0U;
        ok += base64url_decode(message.substr(0, 20), decoded).has_value() ? 1U : 0U;
        const auto h = siphash128(sip, test::bytes_of(message));
        const auto d = sha256(test::bytes_of(message));
        ok += ct_equal(h, siphash128(sip, test::bytes_of(message))) ? 1U : 0U;
        ok += d[0] == sha256(test::bytes_of(message))[0] ? 1U : 0U;
    }
    const std::size_t new_calls = test::thread_allocations() - new_before;
    const std::size_t wolf_calls = wolf_mallocs.load() - wolf_before;
    EXPECT_EQ(ok, 5000u);
    EXPECT_EQ(new_calls, 0u);
    EXPECT_EQ(wolf_calls, 0u);
}

TEST_F(WolfAllocCounter, FailurePathsDoNotAllocate) {
    auto pub = ed25519_public_key::import(
        test::hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
    ASSERT_TRUE(pub.has_value());
    std::array<std::byte, 32> raw_key{};
    auto aes = aes256_gcm_key::create(raw_key);
    ASSERT_TRUE(aes.has_value());
    const std::array<std::byte, 12> iv{};
    const std::array<std::byte, 16> tag{};
    std::array<std::byte, 32> buf{};
    const std::array<std::byte, 64> bad_sig{};

    // Warm-up: one-time lazy initialisation (seen under ASan's allocator) is not per call.
    (void)pub->verify(buf, bad_sig);
    (void)aes->decrypt(iv, {}, buf, tag, buf);
    (void)base64url_decode("Zm9v+A==", buf);

    const std::size_t new_before = test::thread_allocations();
    const std::size_t wolf_before = wolf_mallocs.load();
    std::size_t rejected = 0;
    for (int i = 0; i < 1000; ++i) {
        rejected += pub->verify(buf, bad_sig) ? 0U : 1U;
        auto r = aes->decrypt(iv, {}, buf, tag, buf);
        rejected += (!r && r.error() == core::errc::auth_failed) ? 1U : 0U;
        rejected += base64url_decode("Zm9v+A==", buf).has_value() ? 0U : 1U;
    }
    EXPECT_EQ(rejected, 3000u);
    EXPECT_EQ(test::thread_allocations() - new_before, 0u);
    EXPECT_EQ(wolf_mallocs.load() - wolf_before, 0u);
}

}  // namespace
}  // namespace la::crypto
