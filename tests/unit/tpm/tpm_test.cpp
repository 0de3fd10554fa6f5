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
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/ops.hpp"
#include "io/ring.hpp"
#include "io/scope.hpp"
#include "tpm/error.hpp"
#include "tpm/nv.hpp"
#include "tpm/sealing.hpp"
#include "tpm/tpm_thread.hpp"
#include "tests/support/swtpm_fixture.hpp"


namespace la::tpm {
namespace {

using namespace std::chrono_literals;
using secret_t = std::array<std::byte, secret_size>;
constexpr std::uint32_t primary_handle = 0x81010001u;

class TpmTest : public test::with_swtpm<> {
protected:
    void SetUp() override {
        test::with_swtpm<>::SetUp();
        if (this->HasFatalFailure()) return;
        for (std::size_t i = 0; i < secret_.size(); ++i)
            secret_[i] = static_cast<std::byte>(0xA0 + i);
    }

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
    const pcr_policy none{};
    co_return co_await seal(tpm, primary_handle, std::span<const std::byte, secret_size>(secret), auth,
                            none);
}

io::task<core::result<crypto::secure_buffer>> unseal_once(tpm_thread& tpm,
                                                          const std::vector<std::uint8_t>& blob,
                                                          std::span<const std::byte> auth) {
    const pcr_policy none{};
    co_return co_await unseal(tpm, primary_handle, blob, auth, none);
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

// Every byte between us and the TPM, captured by tpm2-tss's pcap TCTI wrapped around swtpm: the
// secret must cross neither way in clear (parameter encryption on Create and Unseal).
TEST_F(TpmTest, TheSecretNeverCrossesTheTpmInterfaceInClear) {
    const std::filesystem::path capture = swtpm_.dir() / "bus.pcap";
    ASSERT_EQ(::setenv("TCTI_PCAP_FILE", capture.c_str(), 1), 0);
    {
        tpm_thread tpm({"pcap:" + swtpm_.tcti(), 5000ms});
        auto blob = ring_->run(provision_and_seal(tpm, secret_, auth_));
        ASSERT_TRUE(blob.has_value()) << blob.error().message();
        auto out = ring_->run(unseal_once(tpm, *blob, auth_));
        ASSERT_TRUE(out.has_value()) << out.error().message();
        EXPECT_TRUE(same_bytes(*out, secret_));
    }  // the context closes: the capture is complete
    ::unsetenv("TCTI_PCAP_FILE");
    std::ifstream in(capture, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The capture did see the traffic: TPM2_Unseal's command code (0x0000015E) is in it.
    const std::string unseal_cc("\x00\x00\x01\x5e", 4);
    ASSERT_NE(bytes.find(unseal_cc), std::string::npos) << capture << ": " << bytes.size() << " bytes";
    const std::string secret(reinterpret_cast<const char*>(secret_.data()), 8);
    EXPECT_EQ(bytes.find(secret), std::string::npos) << "the secret crossed the TPM interface in clear";
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
    const pcr_policy none{};
    out->result = co_await unseal(tpm, primary_handle, blob, auth, none);
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

// Key generation gets its own, longer deadline: a real TPM can spend seconds finding RSA primes,
// far beyond a timeout sized for seals and reads.
io::task<std::pair<core::result<int>, core::result<int>>> slow_call_both_ways(tpm_thread& tpm) {
    const auto slow = [](esys_session&) -> core::result<int> {
        std::this_thread::sleep_for(300ms);
        return 7;
    };
    auto quick = co_await tpm.call(slow);
    auto keygen = co_await tpm.call_keygen(slow);
    co_return std::pair{std::move(quick), std::move(keygen)};
}

TEST_F(TpmTest, KeyGenerationCallsHaveTheLongerKeygenDeadline) {
    tpm_thread tpm({swtpm_.tcti(), 100ms, 10s});
    const auto [quick, keygen] = ring_->run(slow_call_both_ways(tpm));
    ASSERT_FALSE(quick.has_value());
    EXPECT_EQ(quick.error(), std::errc::timed_out);
    ASSERT_TRUE(keygen.has_value()) << keygen.error().message();
    EXPECT_EQ(*keygen, 7);
    // And provisioning uses it: an RSA/ECC primary under a 1 ms call timeout still succeeds.
    tpm_thread strict({swtpm_.tcti(), 1ms});
    auto p = ring_->run(provision_once(strict));
    EXPECT_TRUE(p.has_value()) << p.error().message();
}

// ---- PCR policy text ----

TEST(PcrPolicyTest, ConfigTextParsesIntoABankAndAMask) {
    auto none = parse_pcr_policy("");
    ASSERT_TRUE(none.has_value());
    EXPECT_TRUE(none->empty());
    EXPECT_EQ(to_string(*none), "none");
    auto blank = parse_pcr_policy("   ");
    ASSERT_TRUE(blank.has_value());
    EXPECT_TRUE(blank->empty());

    auto p = parse_pcr_policy("sha256:0,2,7");
    ASSERT_TRUE(p.has_value()) << p.error().message();
    EXPECT_EQ(p->hash, TPM2_ALG_SHA256);
    EXPECT_EQ(p->mask, 0x85u);
    EXPECT_EQ(to_string(*p), "sha256:0,2,7");

    auto spaced = parse_pcr_policy(" sha384 : 23 , 16 ");
    ASSERT_TRUE(spaced.has_value()) << spaced.error().message();
    EXPECT_EQ(spaced->hash, TPM2_ALG_SHA384);
    EXPECT_EQ(spaced->mask, (1u << 23) | (1u << 16));
    EXPECT_EQ(to_string(*spaced), "sha384:16,23");

    auto sha1 = parse_pcr_policy("sha1:0");
    ASSERT_TRUE(sha1.has_value());
    EXPECT_EQ(sha1->hash, TPM2_ALG_SHA1);
    EXPECT_EQ(sha1->mask, 1u);
}

TEST(PcrPolicyTest, BadConfigTextIsRefusedWithTheReason) {
    const struct {
        const char* text;
        pcr_policy_errc why;
    } cases[] = {
        {"sha512:1", pcr_policy_errc::unknown_bank},  {"SHA256:1", pcr_policy_errc::unknown_bank},
        {":1", pcr_policy_errc::unknown_bank},        {"sha256:24", pcr_policy_errc::out_of_range},
        {"sha256:1000", pcr_policy_errc::out_of_range}, {"sha256:7,7", pcr_policy_errc::duplicate},
        {"sha256:7,07", pcr_policy_errc::duplicate},  {"sha256:", pcr_policy_errc::empty_list},
        {"sha256: ", pcr_policy_errc::empty_list},    {"sha256", pcr_policy_errc::malformed},
        {"0,2,7", pcr_policy_errc::malformed},        {"sha256:a", pcr_policy_errc::not_a_number},
        {"sha256:1,,2", pcr_policy_errc::not_a_number}, {"sha256:-1", pcr_policy_errc::not_a_number},
        {"sha256:1,", pcr_policy_errc::not_a_number}, {"sha256:1;2", pcr_policy_errc::not_a_number},
        {"sha256:0:1", pcr_policy_errc::not_a_number},
    };
    for (const auto& c : cases) {
        auto r = parse_pcr_policy(c.text);
        ASSERT_FALSE(r.has_value()) << c.text;
        EXPECT_EQ(r.error(), make_error_code(c.why)) << c.text << ": " << r.error().message();
    }
    EXPECT_NE(make_error_code(pcr_policy_errc::out_of_range).message().find("0..23"),
              std::string::npos);
    EXPECT_NE(make_error_code(pcr_policy_errc::unknown_bank).message().find("sha256"),
              std::string::npos);
}

// ---- sealing with a PCR policy (PCR 16: the resettable debug PCR) ----

io::task<core::result<std::vector<std::uint8_t>>> provision_and_seal_to(
    tpm_thread& tpm, const secret_t& secret, std::span<const std::byte> auth, const pcr_policy& pcr) {
    auto p = co_await provision(tpm, primary_handle);
    if (!p) co_return core::fail(p.error());
    co_return co_await seal(tpm, primary_handle, std::span<const std::byte, secret_size>(secret), auth,
                            pcr);
}

io::task<core::result<crypto::secure_buffer>> unseal_with(tpm_thread& tpm,
                                                          const std::vector<std::uint8_t>& blob,
                                                          std::span<const std::byte> auth,
                                                          const pcr_policy& pcr) {
    co_return co_await unseal(tpm, primary_handle, blob, auth, pcr);
}

core::result<bool> pcr16(esys_session& s, bool reset) {
    auto ctx = s.context();
    if (!ctx) return core::fail(ctx.error());
    TSS2_RC rc = TSS2_RC_SUCCESS;
    if (reset) {
        rc = Esys_PCR_Reset(*ctx, ESYS_TR_PCR16, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
    } else {
        TPML_DIGEST_VALUES d{};
        d.count = 1;
        d.digests[0].hashAlg = TPM2_ALG_SHA256;
        std::memset(d.digests[0].digest.sha256, 0x5A, TPM2_SHA256_DIGEST_SIZE);
        rc = Esys_PCR_Extend(*ctx, ESYS_TR_PCR16, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d);
    }
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return true;
}

TEST_F(TpmTest, SealedToPcr16RefusesToUnsealAfterAnExtendAndOpensAfterAReset) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    const pcr_policy pcr = *parse_pcr_policy("sha256:16");
    auto blob = ring_->run(provision_and_seal_to(tpm, secret_, auth_, pcr));
    ASSERT_TRUE(blob.has_value()) << blob.error().message();
    auto out = ring_->run(unseal_with(tpm, *blob, auth_, pcr));
    ASSERT_TRUE(out.has_value()) << out.error().message();
    EXPECT_TRUE(same_bytes(*out, secret_));

    auto extended = ring_->run(tpm.call([](esys_session& s) { return pcr16(s, false); }));
    ASSERT_TRUE(extended.has_value()) << extended.error().message();
    auto refused = ring_->run(unseal_with(tpm, *blob, auth_, pcr));
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error(), make_error_code(seal_errc::pcr_mismatch));
    EXPECT_NE(refused.error().message().find("PCR policy not satisfied"), std::string::npos)
        << refused.error().message();

    auto reset = ring_->run(tpm.call([](esys_session& s) { return pcr16(s, true); }));
    ASSERT_TRUE(reset.has_value()) << reset.error().message();
    auto again = ring_->run(unseal_with(tpm, *blob, auth_, pcr));
    ASSERT_TRUE(again.has_value()) << again.error().message();
    EXPECT_TRUE(same_bytes(*again, secret_));
}

TEST_F(TpmTest, UnsealingWithAnotherPcrPolicyThanTheSealedOneIsRefused) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    const pcr_policy none{};
    const pcr_policy pcr = *parse_pcr_policy("sha256:16");
    auto blob = ring_->run(provision_and_seal_to(tpm, secret_, auth_, none));
    ASSERT_TRUE(blob.has_value()) << blob.error().message();
    auto r = ring_->run(unseal_with(tpm, *blob, auth_, pcr));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), make_error_code(seal_errc::pcr_mismatch));

    auto bound = ring_->run(provision_and_seal_to(tpm, secret_, auth_, pcr));
    ASSERT_TRUE(bound.has_value()) << bound.error().message();
    r = ring_->run(unseal_with(tpm, *bound, auth_, none));  // cannot drop the PCR part
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), make_error_code(seal_errc::pcr_mismatch));
}

TEST_F(TpmTest, WrongAuthOnAPcrBoundSecretIsStillAnAuthFailure) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    const pcr_policy pcr = *parse_pcr_policy("sha256:16");
    auto blob = ring_->run(provision_and_seal_to(tpm, secret_, auth_, pcr));
    ASSERT_TRUE(blob.has_value()) << blob.error().message();
    const std::array<std::byte, 5> wrong{std::byte{'w'}, std::byte{'r'}, std::byte{'o'},
                                         std::byte{'n'}, std::byte{'g'}};
    auto r = ring_->run(unseal_with(tpm, *blob, wrong, pcr));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(is_auth_failure(r.error())) << r.error().message();
}

// Deallocates the SHA-1 PCR bank (platform auth, empty on swtpm); effective after a restart.
core::result<bool> drop_sha1_bank(esys_session& s) {
    auto ctx = s.context();
    if (!ctx) return core::fail(ctx.error());
    TPML_PCR_SELECTION alloc{};
    alloc.count = 2;
    alloc.pcrSelections[0].hash = TPM2_ALG_SHA1;
    alloc.pcrSelections[0].sizeofSelect = 3;
    alloc.pcrSelections[1].hash = TPM2_ALG_SHA256;
    alloc.pcrSelections[1].sizeofSelect = 3;
    alloc.pcrSelections[1].pcrSelect[0] = alloc.pcrSelections[1].pcrSelect[1] =
        alloc.pcrSelections[1].pcrSelect[2] = 0xFF;
    TPMI_YES_NO ok = TPM2_NO;
    UINT32 max_pcr_out = 0, needed = 0, available = 0;
    const TSS2_RC rc = Esys_PCR_Allocate(*ctx, ESYS_TR_RH_PLATFORM, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                         ESYS_TR_NONE, &alloc, &ok, &max_pcr_out, &needed, &available);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return ok == TPM2_YES;
}

TEST_F(TpmTest, SealingToAnInactivePcrBankIsRefused) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto dropped = ring_->run(tpm.call([](esys_session& s) { return drop_sha1_bank(s); }));
    ASSERT_TRUE(dropped.has_value()) << dropped.error().message();
    ASSERT_TRUE(*dropped);
    swtpm_.stop();
    ASSERT_TRUE(swtpm_.start());
    const pcr_policy sha1 = *parse_pcr_policy("sha1:16");
    auto r = ring_->run(provision_and_seal_to(tpm, secret_, auth_, sha1));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), make_error_code(seal_errc::pcr_bank_inactive)) << r.error().message();
    const pcr_policy sha256 = *parse_pcr_policy("sha256:16");
    auto ok = ring_->run(provision_and_seal_to(tpm, secret_, auth_, sha256));
    EXPECT_TRUE(ok.has_value()) << ok.error().message();
}

TEST_F(TpmTest, MalformedPcrPolicyIsRejectedBeforeReachingTheTpm) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    const pcr_policy bad{TPM2_ALG_SHA256, 1u << 24};
    auto r = ring_->run(provision_and_seal_to(tpm, secret_, auth_, bad));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), std::errc::invalid_argument);
}

// ---- NV index ----

constexpr std::uint32_t test_nv = 0x01500021u;

core::result<std::uint32_t> nv_buffer_max(esys_session& s) {
    auto ctx = s.context();
    if (!ctx) return core::fail(ctx.error());
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA* raw = nullptr;
    const TSS2_RC rc = Esys_GetCapability(*ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                          TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more,
                                          &raw);
    const esys_ptr<TPMS_CAPABILITY_DATA> caps(raw);
    if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
    return caps->data.tpmProperties.tpmProperty[0].value;
}

TEST_F(TpmTest, NvProvisioningIsIdempotentAndANewIndexReadsAsNeverWritten) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto first = ring_->run(provision_nv(tpm, test_nv, 100));
    ASSERT_TRUE(first.has_value()) << first.error().message();
    EXPECT_TRUE(first->created);
    auto second = ring_->run(provision_nv(tpm, test_nv, 100));
    ASSERT_TRUE(second.has_value()) << second.error().message();
    EXPECT_FALSE(second->created);
    EXPECT_EQ(second->size, 100u);
    EXPECT_EQ(second->attributes & nv_attributes, nv_attributes);
    EXPECT_EQ(second->attributes & TPMA_NV_WRITTEN, 0u);

    auto never = ring_->run(nv_read(tpm, test_nv));
    ASSERT_TRUE(never.has_value()) << never.error().message();
    EXPECT_FALSE(never->has_value());
}

TEST_F(TpmTest, NvIndexOfAnotherSizeIsRefusedNotRedefined) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    ASSERT_TRUE(ring_->run(provision_nv(tpm, test_nv, 64)).has_value());
    const std::vector<std::uint8_t> data(64, 0x42);
    ASSERT_TRUE(ring_->run(nv_write(tpm, test_nv, data)).has_value());
    auto r = ring_->run(provision_nv(tpm, test_nv, 128));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), make_error_code(nv_errc::shape_mismatch));
    auto kept = ring_->run(nv_read(tpm, test_nv));
    ASSERT_TRUE(kept.has_value() && kept->has_value());
    EXPECT_EQ(**kept, data);  // the existing content was not touched
}

TEST_F(TpmTest, NvWriteAndReadRoundTripAcrossSeveralChunks) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto chunk = ring_->run(tpm.call([](esys_session& s) { return nv_buffer_max(s); }));
    ASSERT_TRUE(chunk.has_value()) << chunk.error().message();
    ASSERT_LT(*chunk, max_nv_size) << "the TPM moves a whole index per command: chunking untested";

    ASSERT_TRUE(ring_->run(provision_nv(tpm, test_nv, static_cast<std::uint16_t>(max_nv_size))).has_value());
    std::vector<std::uint8_t> data(max_nv_size);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7 + i / 256);
    auto w = ring_->run(nv_write(tpm, test_nv, data));
    ASSERT_TRUE(w.has_value()) << w.error().message();
    auto r = ring_->run(nv_read(tpm, test_nv));
    ASSERT_TRUE(r.has_value()) << r.error().message();
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ(**r, data);

    // Survives a TPM restart (NV is non-volatile; the index is not CLEAR_STCLEAR).
    swtpm_.stop();
    ASSERT_TRUE(swtpm_.start());
    auto after = ring_->run(nv_read(tpm, test_nv));
    ASSERT_TRUE(after.has_value() && after->has_value()) << (after ? "" : after.error().message());
    EXPECT_EQ(**after, data);
}

TEST_F(TpmTest, NvCallsOnAnUndefinedIndexSayNotDefined) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    auto r = ring_->run(nv_read(tpm, test_nv));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), make_error_code(nv_errc::not_defined));
    const std::vector<std::uint8_t> data(8, 1);
    auto w = ring_->run(nv_write(tpm, test_nv, data));
    ASSERT_FALSE(w.has_value());
    EXPECT_EQ(w.error(), make_error_code(nv_errc::not_defined));
    auto d = ring_->run(nv_describe(tpm, test_nv));
    ASSERT_TRUE(d.has_value()) << d.error().message();
    EXPECT_FALSE(d->has_value());
}

TEST_F(TpmTest, NvUndefineRemovesTheIndexAndToleratesItsAbsence) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    ASSERT_TRUE(ring_->run(provision_nv(tpm, test_nv, 32)).has_value());
    ASSERT_TRUE(ring_->run(nv_undefine(tpm, test_nv)).has_value());
    auto d = ring_->run(nv_describe(tpm, test_nv));
    ASSERT_TRUE(d.has_value()) << d.error().message();
    EXPECT_FALSE(d->has_value());
    EXPECT_TRUE(ring_->run(nv_undefine(tpm, test_nv)).has_value());
}

TEST_F(TpmTest, NvArgumentsOutOfRangeAreRejectedBeforeReachingTheTpm) {
    tpm_thread tpm({swtpm_.tcti(), 5000ms});
    EXPECT_EQ(ring_->run(provision_nv(tpm, 0x81000000u, 32)).error(), std::errc::invalid_argument);
    EXPECT_EQ(ring_->run(provision_nv(tpm, test_nv, 0)).error(), std::errc::invalid_argument);
    EXPECT_EQ(ring_->run(provision_nv(tpm, test_nv, static_cast<std::uint16_t>(max_nv_size + 1))).error(),
              std::errc::invalid_argument);
    const std::vector<std::uint8_t> empty;
    EXPECT_EQ(ring_->run(nv_write(tpm, test_nv, empty)).error(), std::errc::invalid_argument);
    EXPECT_EQ(tpm.opens(), 0u);
}

}  // namespace
}  // namespace la::tpm
