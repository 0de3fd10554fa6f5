// la_tpm against a real swtpm started per test on a Unix socket in a private directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "io/ops.hpp"
#include "io/ring.hpp"
#include "io/scope.hpp"
#include "tpm/error.hpp"
#include "tpm/sealing.hpp"
#include "tpm/tpm_thread.hpp"
#include "tests/support/swtpm.hpp"


namespace la::tpm {
namespace {

using namespace std::chrono_literals;
using secret_t = std::array<std::byte, secret_size>;
constexpr std::uint32_t primary_handle = 0x81010001u;

class TpmTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(swtpm_.start()) << "swtpm did not start";
        auto r = io::ring::create();
        ASSERT_TRUE(r.has_value());
        ring_ = std::move(*r);
        for (std::size_t i = 0; i < secret_.size(); ++i)
            secret_[i] = static_cast<std::byte>(0xA0 + i);
    }

    test::swtpm_process swtpm_;
    std::unique_ptr<io::ring> ring_;
    secret_t secret_{};
    std::array<std::byte, 6> auth_{std::byte{'s'}, std::byte{'e'}, std::byte{'c'},
                                   std::byte{'r'}, std::byte{'e'}, std::byte{'t'}};
};

io::task<core::result<primary_info>> provision_once(tpm_thread& tpm) {
    co_return co_await provision(tpm, primary_handle);
}

io::task<core::result<std::vector<std::uint8_t>>> provision_and_seal(
    tpm_thread& tpm, const secret_t& secret, std::span<const std::byte> auth) {
    auto p = co_await provision(tpm, primary_handle);
    if (!p) co_return core::fail(p.error());
    co_return co_await seal(tpm, primary_handle, std::span<const std::byte, secret_size>(secret), auth);
}

io::task<core::result<crypto::secure_buffer>> unseal_once(tpm_thread& tpm,
                                                          const std::vector<std::uint8_t>& blob,
                                                          std::span<const std::byte> auth) {
    co_return co_await unseal(tpm, primary_handle, blob, auth);
}

struct thread_report {
    std::thread::id tpm_call;
    std::thread::id resumed;
};

io::task<core::result<thread_report>> observe_threads(tpm_thread& tpm) {
    auto id = co_await tpm.call([](esys_session&) -> core::result<std::thread::id> {
        return std::this_thread::get_id();
    });
    if (!id) co_return core::fail(id.error());
    co_return thread_report{*id, std::this_thread::get_id()};
}

bool same_bytes(const crypto::secure_buffer& b, const secret_t& s) {
    return b.size() == s.size() && std::memcmp(b.data(), s.data(), s.size()) == 0;
}

TEST_F(TpmTest, ProvisioningTwiceIsANoOp) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto first = ring_->run(provision_once(tpm));
    ASSERT_TRUE(first.has_value()) << first.error().message();
    EXPECT_TRUE(first->created);
    EXPECT_EQ(first->handle, primary_handle);
    EXPECT_EQ(first->type, TPM2_ALG_ECC);
    EXPECT_EQ(first->name.size(), 34u);  // nameAlg (2) + SHA-256 (32)

    auto second = ring_->run(provision_once(tpm));
    ASSERT_TRUE(second.has_value()) << second.error().message();
    EXPECT_FALSE(second->created);
    EXPECT_EQ(second->name, first->name);
    EXPECT_EQ(tpm.opens(), 1u);  // one context, reused
}

TEST_F(TpmTest, TpmCallsRunOnTheTpmThreadAndResumeOnTheRingThread) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto r = ring_->run(observe_threads(tpm));
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(r->tpm_call, tpm.thread_id());
    EXPECT_NE(r->tpm_call, std::this_thread::get_id());
    EXPECT_EQ(r->resumed, std::this_thread::get_id());
}

TEST_F(TpmTest, SealThenUnsealRoundTrips) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto blob = ring_->run(provision_and_seal(tpm, secret_, auth_));
    ASSERT_TRUE(blob.has_value()) << blob.error().message();
    // The blob never carries the secret in clear.
    const auto* raw = reinterpret_cast<const std::uint8_t*>(secret_.data());
    EXPECT_EQ(std::search(blob->begin(), blob->end(), raw, raw + 8), blob->end());

    auto out = ring_->run(unseal_once(tpm, *blob, auth_));
    ASSERT_TRUE(out.has_value()) << out.error().message();
    EXPECT_TRUE(same_bytes(*out, secret_));
}

TEST_F(TpmTest, WrongAuthRefusesToUnsealWithAClearError) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto blob = ring_->run(provision_and_seal(tpm, secret_, auth_));
    ASSERT_TRUE(blob.has_value()) << blob.error().message();
    const std::array<std::byte, 5> wrong{std::byte{'w'}, std::byte{'r'}, std::byte{'o'},
                                         std::byte{'n'}, std::byte{'g'}};
    // noDA: repeated failures never lock the TPM out, so the right auth still works after them.
    for (int i = 0; i < 5; ++i) {
        auto bad = ring_->run(unseal_once(tpm, *blob, wrong));
        ASSERT_FALSE(bad.has_value());
        EXPECT_EQ(bad.error().category(), tss2_category());
        EXPECT_TRUE(is_auth_failure(bad.error())) << bad.error().message();
        EXPECT_NE(bad.error().message().find("authorization"), std::string::npos)
            << bad.error().message();
    }
    auto good = ring_->run(unseal_once(tpm, *blob, auth_));
    ASSERT_TRUE(good.has_value()) << good.error().message();
    EXPECT_TRUE(same_bytes(*good, secret_));
}

TEST_F(TpmTest, MalformedBlobIsRejectedBeforeReachingTheTpm) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    const std::vector<std::uint8_t> junk{0x00, 0x40, 0x01};
    auto r = ring_->run(unseal_once(tpm, junk, auth_));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), std::errc::invalid_argument);
    EXPECT_EQ(tpm.opens(), 0u);
}

TEST_F(TpmTest, UnsealStillWorksAfterSwtpmRestarts) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto blob = ring_->run(provision_and_seal(tpm, secret_, auth_));
    ASSERT_TRUE(blob.has_value()) << blob.error().message();

    swtpm_.stop();
    ASSERT_TRUE(swtpm_.start());
    // The old connection is dead: the call reconnects on its own (the swtpm TCTI of
    // tpm2-tss 3.2 opens a socket per command; others need esys_session's one retry).
    auto out = ring_->run(unseal_once(tpm, *blob, auth_));
    ASSERT_TRUE(out.has_value()) << out.error().message();
    EXPECT_TRUE(same_bytes(*out, secret_));
    auto again = ring_->run(provision_once(tpm));
    ASSERT_TRUE(again.has_value()) << again.error().message();
    EXPECT_FALSE(again->created);  // the persistent primary survived the restart
}

io::task<void> tick(const bool* stop, int* ticks) {
    while (!*stop) {
        (void)co_await io::sleep_for(10ms);
        ++*ticks;
    }
}

struct hung_call {
    core::result<crypto::secure_buffer> result;
    std::chrono::milliseconds elapsed;
    int ticks = 0;
};

io::task<void> timed_unseal(tpm_thread& tpm, const std::vector<std::uint8_t>& blob,
                            std::span<const std::byte> auth, hung_call* out, bool* stop) {
    const auto t0 = std::chrono::steady_clock::now();
    out->result = co_await unseal(tpm, primary_handle, blob, auth);
    out->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    *stop = true;
}

io::task<hung_call> unseal_while_ticking(tpm_thread& tpm, const std::vector<std::uint8_t>& blob,
                                         std::span<const std::byte> auth) {
    hung_call out{core::fail(std::errc::interrupted), 0ms, 0};
    bool stop = false;
    io::task_scope scope;
    scope.spawn(tick(&stop, &out.ticks));
    scope.spawn(timed_unseal(tpm, blob, auth, &out, &stop));
    co_await scope.join();
    co_return out;
}

TEST_F(TpmTest, HungTpmTimesOutWithoutBlockingTheRingAndRecoversAfterSigcont) {
    tpm_thread tpm({swtpm_.tcti(), 500ms});
    auto blob = ring_->run(provision_and_seal(tpm, secret_, auth_));
    ASSERT_TRUE(blob.has_value()) << blob.error().message();
    const auto opens_before = tpm.opens();

    ASSERT_EQ(::kill(swtpm_.pid(), SIGSTOP), 0);
    auto hung = ring_->run(unseal_while_ticking(tpm, *blob, auth_));
    ASSERT_FALSE(hung.result.has_value());
    EXPECT_EQ(hung.result.error(), std::errc::timed_out);
    EXPECT_GE(hung.elapsed, 450ms);
    EXPECT_LT(hung.elapsed, 1500ms);
    EXPECT_GE(hung.ticks, 20);  // the ring kept running timers while the TPM hung

    ASSERT_EQ(::kill(swtpm_.pid(), SIGCONT), 0);
    auto out = ring_->run(unseal_once(tpm, *blob, auth_));
    ASSERT_TRUE(out.has_value()) << out.error().message();
    EXPECT_TRUE(same_bytes(*out, secret_));
    EXPECT_EQ(tpm.opens(), opens_before + 1);  // reopened after the timeout
}

TEST_F(TpmTest, CallsQueuedBehindAHungOneTimeOutToo) {
    tpm_thread tpm({swtpm_.tcti(), 300ms});
    auto blob = ring_->run(provision_and_seal(tpm, secret_, auth_));
    ASSERT_TRUE(blob.has_value()) << blob.error().message();
    ASSERT_EQ(::kill(swtpm_.pid(), SIGSTOP), 0);
    auto first = ring_->run(unseal_once(tpm, *blob, auth_));
    auto second = ring_->run(unseal_once(tpm, *blob, auth_));
    ASSERT_FALSE(first.has_value());
    ASSERT_FALSE(second.has_value());
    EXPECT_EQ(second.error(), std::errc::timed_out);
    ASSERT_EQ(::kill(swtpm_.pid(), SIGCONT), 0);
    auto out = ring_->run(unseal_once(tpm, *blob, auth_));
    ASSERT_TRUE(out.has_value()) << out.error().message();
}

}  // namespace
}  // namespace la::tpm
