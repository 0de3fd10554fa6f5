// core::secret_manager over the real backends (encrypted file; TPM on a per-test swtpm): the
// start-up reconciliation outcomes, and a secret change that meets EIO or ENOSPC at each of
// its I/O operations in turn.
#include "core/secret_manager.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/state_file.hpp"
#include "io/clock.hpp"
#include "io/offload.hpp"
#include "io/ring.hpp"
#include "tests/support/swtpm.hpp"
#include "tpm/custody.hpp"
#include "tpm/file_vault.hpp"
#include "tpm/nv.hpp"
#include "tpm/vault.hpp"

namespace la::tpm {
namespace {

using core::new_secret;
using core::state_outcome;

constexpr std::uint32_t primary = 0x81010001u;
constexpr std::uint32_t nv_index = 0x01500020u;

new_secret make_secret(std::uint64_t version) {
    new_secret s;
    s.version = version;
    auto buf = crypto::secure_buffer::allocate(32);
    if (!buf) std::abort();
    for (std::size_t i = 0; i < 32; ++i) buf->data()[i] = static_cast<std::byte>(version * 31 + i);
    s.key = std::move(*buf);
    return s;
}

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

class SecretManagerTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        auto r = io::ring::create();
        ASSERT_TRUE(r.has_value());
        ring_ = std::move(*r);
        if (tpm_backend()) {
            ASSERT_TRUE(swtpm_.start()) << "swtpm did not start";
            tpm_ = std::make_unique<tpm_thread>(tpm_options{swtpm_.tcti(), std::chrono::milliseconds(5000)});
        }
        fresh_dir();
    }

    bool tpm_backend() const { return GetParam() == "tpm"; }

    // A new, empty vault in a new state directory (the TPM's NV index is redefined).
    void fresh_dir() {
        store_.reset();
        vault_.reset();
        dir_ = std::filesystem::path(::testing::TempDir()) /
               fmt_name(::testing::UnitTest::GetInstance()->current_test_info()->name(), ++dirs_);
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
        if (tpm_backend()) {
            auto gone = ring_->run(nv_undefine(*tpm_, nv_index));
            ASSERT_TRUE(gone.has_value()) << gone.error().message();
            tpm_vault_options o;
            o.tpm = tpm_.get();
            o.primary_handle = primary;
            o.nv_index = nv_index;
            o.state_dir = dir_.string();
            auto v = std::make_unique<tpm_vault>(std::move(o));
            auto p = ring_->run(v->provision());
            ASSERT_TRUE(p.has_value()) << p.error();
            vault_ = std::move(v);
        } else {
            auto v = std::make_unique<core::encrypted_file_vault>(dir_ / "secret.enc", dir_ / "fallback.key",
                                                                  core::kdf_kind::argon2id, worker_);
            auto p = ring_->run(v->provision());
            ASSERT_TRUE(p.has_value()) << p.error();
            vault_ = std::move(v);
        }
        store_ = std::make_unique<core::state_store>(dir_.string(), 3);
    }

    static std::string fmt_name(const char* test, int n) {
        std::string s = std::string("la-mgr-") + test + "-" + std::to_string(n);
        for (char& c : s)
            if (c == '/') c = '_';
        return s;
    }

    std::unique_ptr<core::secret_manager> manager() {
        return std::make_unique<core::secret_manager>(*vault_, *store_, clock_);
    }

    core::expected<core::secret_set, std::string> open(core::secret_manager& m) {
        return ring_->run(m.open());
    }

    core::expected<core::secret_set, std::string> add(core::secret_manager& m, std::uint64_t version) {
        std::vector<new_secret> added;
        added.push_back(make_secret(version));
        const std::vector<new_secret>& list = added;
        return ring_->run(m.add(list));
    }

    std::unique_ptr<io::ring> ring_;
    test::swtpm_process swtpm_;
    std::unique_ptr<tpm_thread> tpm_;
    io::worker_thread worker_{"la-test-kdf"};
    io::manual_clock clock_{1'760'000'000};
    std::filesystem::path dir_;
    int dirs_ = 0;
    std::unique_ptr<core::secret_vault> vault_;
    std::unique_ptr<core::state_store> store_;
};

TEST_P(SecretManagerTest, FirstStartCreatesTheStateAndAnAddIsCommittedEverywhere) {
    auto m = manager();
    auto set = open(*m);
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(set->size(), 0u);
    EXPECT_EQ(m->report().outcome, state_outcome::created);

    auto added = add(*m, 1);
    ASSERT_TRUE(added.has_value()) << added.error();
    EXPECT_NE(added->find(1), nullptr);
    EXPECT_EQ(m->metadata().generation, 1u);

    auto again = manager();
    auto reopened = open(*again);
    ASSERT_TRUE(reopened.has_value()) << reopened.error();
    EXPECT_EQ(again->report().outcome, state_outcome::consistent);
    EXPECT_NE(reopened->find(1), nullptr);
    EXPECT_NE(read_all(dir_ / "state.json").find("\"generation\":1"), std::string::npos);
}

TEST_P(SecretManagerTest, VersionsAreNeverReused) {
    auto m = manager();
    ASSERT_TRUE(open(*m).has_value());
    ASSERT_TRUE(add(*m, 5).has_value());
    for (std::uint64_t v : {5u, 4u, 1u}) {
        auto again = add(*m, v);
        ASSERT_FALSE(again.has_value()) << v;
        EXPECT_NE(again.error().find("never reused"), std::string::npos) << again.error();
    }
    EXPECT_TRUE(add(*m, 6).has_value());
}

TEST_P(SecretManagerTest, AStateFileAheadOfTheVaultIsRolledBack) {
    auto m = manager();
    ASSERT_TRUE(open(*m).has_value());
    ASSERT_TRUE(add(*m, 1).has_value());
    // What a crash between the state.json write and the commit leaves behind.
    core::state_document ahead;
    ahead.backend = std::string(vault_->backend());
    ahead.vault = m->metadata();
    ahead.vault.generation = 2;
    ahead.vault.highest_version = 2;
    ahead.vault.secrets.push_back(core::secret_entry{2, {}});
    ASSERT_TRUE(ring_->run(store_->save(ahead)).has_value());

    auto again = manager();
    auto set = open(*again);
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(again->report().outcome, state_outcome::rolled_back);
    EXPECT_EQ(again->metadata().generation, 1u);
    EXPECT_EQ(set->find(2), nullptr);
    EXPECT_TRUE(add(*again, 2).has_value());
}

TEST_P(SecretManagerTest, AnOlderStateFileIsReportedAsTamperingAndRewritten) {
    auto m = manager();
    ASSERT_TRUE(open(*m).has_value());
    ASSERT_TRUE(add(*m, 1).has_value());
    const std::string old_state = read_all(dir_ / "state.json");
    ASSERT_TRUE(add(*m, 2).has_value());
    std::ofstream(dir_ / "state.json", std::ios::binary | std::ios::trunc) << old_state;

    auto again = manager();
    auto set = open(*again);
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(again->report().outcome, state_outcome::tampering);
    ASSERT_FALSE(again->report().notes.empty());
    EXPECT_NE(again->report().notes.back().find("TAMPERING"), std::string::npos);
    EXPECT_NE(set->find(2), nullptr);
    EXPECT_NE(read_all(dir_ / "state.json").find("\"generation\":2"), std::string::npos);
}

TEST_P(SecretManagerTest, ACorruptStateFileIsRecoveredFromACopyAndTheVault) {
    auto m = manager();
    ASSERT_TRUE(open(*m).has_value());
    ASSERT_TRUE(add(*m, 1).has_value());
    std::ofstream(dir_ / "state.json", std::ios::binary | std::ios::trunc) << "{\"format\":1,\"gen";

    auto again = manager();
    auto set = open(*again);
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(again->report().outcome, state_outcome::recovered);
    EXPECT_NE(set->find(1), nullptr);
    auto third = manager();
    ASSERT_TRUE(open(*third).has_value());
    EXPECT_EQ(third->report().outcome, state_outcome::consistent);
}

// Every I/O operation of a secret change fails in turn (EIO, and ENOSPC for the writes): the
// change either aborts with the old secret still in service and the old metadata committed, or
// (a failed best-effort clean-up) completes; a restart never reports tampering; and the same
// change succeeds once the fault is gone.
TEST_P(SecretManagerTest, EveryFailingIoStepOfAChangeKeepsTheOldSecretAndTheRetrySucceeds) {
    struct kind_case {
        io::op_kind kind;
        int error;
    };
    const kind_case kinds[] = {
        {io::op_kind::openat, EIO}, {io::op_kind::write, EIO},  {io::op_kind::write, ENOSPC},
        {io::op_kind::fsync, EIO},  {io::op_kind::fsync, ENOSPC}, {io::op_kind::rename, EIO},
        {io::op_kind::read, EIO},   {io::op_kind::close, EIO},  {io::op_kind::unlink, EIO},
    };
    int aborted = 0;
    for (const kind_case& k : kinds) {
        for (std::uint64_t nth = 1;; ++nth) {
            SCOPED_TRACE(::testing::Message() << "op kind " << static_cast<int>(k.kind) << " #" << nth
                                              << " errno " << k.error);
            fresh_dir();
            auto m = manager();
            ASSERT_TRUE(open(*m).has_value());
            ASSERT_TRUE(add(*m, 1).has_value());

            ring_->set_fault_plan(io::fault_plan{k.kind, nth, k.error});
            auto changed = add(*m, 2);
            const bool fired = ring_->fault_state().seen >= nth;
            ring_->set_fault_plan(io::fault_plan{});
            if (!fired) {
                EXPECT_TRUE(changed.has_value()) << changed.error();
                break;  // the change has fewer operations of this kind
            }
            const bool committed = changed.has_value() ||
                                   changed.error().find("is committed") != std::string::npos;
            if (!committed) {
                ++aborted;
                EXPECT_EQ(m->metadata().generation, 1u);
                auto meta = ring_->run(vault_->read_metadata());
                ASSERT_TRUE(meta.has_value()) << meta.error();
                EXPECT_EQ(meta->generation, 1u) << changed.error();
            }
            // A restart: the old (or, after a failed clean-up, the new) state, never tampering.
            auto again = manager();
            auto set = open(*again);
            ASSERT_TRUE(set.has_value()) << set.error();
            EXPECT_NE(again->report().outcome, state_outcome::tampering);
            EXPECT_NE(set->find(1), nullptr);
            if (!committed) {
                EXPECT_EQ(set->find(2), nullptr);
                auto retried = add(*again, 2);
                ASSERT_TRUE(retried.has_value()) << retried.error();
                EXPECT_NE(retried->find(2), nullptr);
            } else {
                EXPECT_NE(set->find(2), nullptr);
            }
            ASSERT_LT(nth, 40u) << "the fault never stopped firing";
        }
    }
    EXPECT_GE(aborted, 7);  // every kind but the clean-up ones aborts the change at least once
}

INSTANTIATE_TEST_SUITE_P(Backends, SecretManagerTest, ::testing::Values("encrypted-file", "tpm"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                             return i.param == "tpm" ? std::string("tpm") : std::string("encrypted_file");
                         });

}  // namespace
}  // namespace la::tpm
