// The "tpm" secret backend against a real swtpm started per test: provisioning, the NV record,
// sealed blob files, the commit protocol's refusals, PCR policy, auth, restarts and I/O faults.
#include "tpm/vault.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <fmt/format.h>

#include "crypto/aes_gcm.hpp"
#include "crypto/base64url.hpp"
#include "io/crash_point.hpp"
#include "io/ring.hpp"
#include "tests/support/swtpm_fixture.hpp"
#include "tpm/nv.hpp"
#include "tpm/sealing.hpp"
#include "tpm/tpm_thread.hpp"

namespace la::tpm {
namespace {

using namespace std::chrono_literals;
using core::new_secret;
using core::secret_entry;
using core::secret_meta;
using core::secret_state;
using core::vault_metadata;
constexpr std::uint32_t nv_index = 0x01500020u;

// Known test secrets; never real keys.
std::array<std::byte, 32> secret_bytes(unsigned seed) {
    std::array<std::byte, 32> k{};
    for (std::size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<std::byte>(seed * 37U + i * 11U + 5U);
    return k;
}

new_secret make_secret(std::uint64_t version, secret_meta meta = {}) {
    new_secret s;
    s.version = version;
    s.meta = meta;
    auto buf = crypto::secure_buffer::allocate(32);
    if (!buf) std::abort();
    const auto bytes = secret_bytes(static_cast<unsigned>(version));
    std::memcpy(buf->data(), bytes.data(), bytes.size());
    s.key = std::move(*buf);
    return s;
}

crypto::secure_buffer auth_of(std::string_view text) {
    if (text.empty()) return {};
    auto buf = crypto::secure_buffer::allocate(text.size());
    if (!buf) std::abort();
    std::memcpy(buf->data(), text.data(), text.size());
    return std::move(*buf);
}

// The metadata after committing `added` on top of `base`.
vault_metadata next_of(const vault_metadata& base, const std::vector<new_secret>& added) {
    vault_metadata m = base;
    m.generation += 1;
    for (const new_secret& s : added) {
        m.secrets.push_back(secret_entry{s.version, s.meta});
        m.highest_version = std::max(m.highest_version, s.version);
    }
    std::sort(m.secrets.begin(), m.secrets.end(),
              [](const secret_entry& a, const secret_entry& b) { return a.version < b.version; });
    return m;
}

// True when `key` is the test secret of `version`: a ciphertext made with the known bytes
// decrypts under it.
bool holds_secret(const crypto::aes256_gcm_key& key, std::uint64_t version) {
    const auto raw = secret_bytes(static_cast<unsigned>(version));
    auto reference = crypto::aes256_gcm_key::create(raw);
    if (!reference) return false;
    const std::array<std::byte, 12> iv{std::byte{9}};
    const std::array<std::byte, 7> plain{std::byte{'l'}, std::byte{'i'}, std::byte{'c'},
                                         std::byte{'e'}, std::byte{'n'}, std::byte{'s'},
                                         std::byte{'e'}};
    std::array<std::byte, 7> ct{}, back{};
    std::array<std::byte, 16> tag{};
    if (!reference->encrypt(iv, {}, plain, tag, ct)) return false;
    if (!key.decrypt(iv, {}, ct, tag, back)) return false;
    return back == plain;
}

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

bool contains(const std::string& hay, std::string_view needle) {
    return hay.find(needle) != std::string::npos;
}

class TpmVaultTest : public test::with_swtpm<> {
protected:
    void SetUp() override {
        test::with_swtpm<>::SetUp();
        if (this->HasFatalFailure()) return;
        state_dir_ = swtpm_.dir() / "state";
        std::filesystem::create_directory(state_dir_);
        tpm_ = std::make_unique<tpm_thread>(tpm_options{swtpm_.tcti(), 5000ms});
    }

    std::unique_ptr<tpm_vault> make_vault(std::string_view auth = "vault-auth",
                                          std::string_view pcr = "") {
        tpm_vault_options o;
        o.tpm = tpm_.get();
        auto policy = parse_pcr_policy(pcr);
        EXPECT_TRUE(policy.has_value());
        if (policy) o.pcr = *policy;
        o.state_dir = state_dir_.string();
        o.auth = auth_of(auth);
        return std::make_unique<tpm_vault>(std::move(o));
    }

    void provision(tpm_vault& v) {
        auto r = ring_->run(v.provision());
        ASSERT_TRUE(r.has_value()) << r.error();
    }

    vault_metadata read(tpm_vault& v) {
        auto r = ring_->run(v.read_metadata());
        EXPECT_TRUE(r.has_value()) << r.error();
        return r ? *r : vault_metadata{};
    }

    // stage() then commit(): the manager's sequence without state.json. Returns the new metadata.
    vault_metadata add(tpm_vault& v, const std::vector<new_secret>& added) {
        const vault_metadata next = next_of(read(v), added);
        auto staged = ring_->run(v.stage(added));
        EXPECT_TRUE(staged.has_value()) << staged.error();
        auto committed = ring_->run(v.commit(next, added));
        EXPECT_TRUE(committed.has_value()) << committed.error();
        return next;
    }

    // Extends PCR 16 (the resettable debug PCR) with one SHA-256 digest.
    void extend_pcr16() {
        auto r = ring_->run(tpm_->call([](esys_session& s) -> core::result<bool> {
            auto ctx = s.context();
            if (!ctx) return core::fail(ctx.error());
            TPML_DIGEST_VALUES d{};
            d.count = 1;
            d.digests[0].hashAlg = TPM2_ALG_SHA256;
            std::memset(d.digests[0].digest.sha256, 0x5A, TPM2_SHA256_DIGEST_SIZE);
            const TSS2_RC rc = Esys_PCR_Extend(*ctx, ESYS_TR_PCR16, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                               ESYS_TR_NONE, &d);
            if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
            return true;
        }));
        ASSERT_TRUE(r.has_value()) << r.error().message();
    }

    // Runs `body(vault)` in a forked child with crash point `point` armed, on the child's own
    // ring and TPM thread (the parent's TPM thread is stopped first: fork copies only the
    // calling thread). True when the child died by SIGKILL, i.e. at the crash point.
    bool crashes_at(const char* point, io::task<void> (*body)(tpm_vault&)) {
        tpm_.reset();
        const pid_t pid = ::fork();
        if (pid < 0) return false;
        if (pid == 0) {
            io::arm_crash_point(point);
            auto ring = io::ring::create();
            if (!ring) ::_exit(2);
            tpm_ = std::make_unique<tpm_thread>(tpm_options{swtpm_.tcti(), 5000ms});
            auto v = make_vault();
            (*ring)->run(body(*v));
            ::_exit(0);  // the crash point was not reached
        }
        int status = 0;
        const bool reaped = ::waitpid(pid, &status, 0) == pid;
        tpm_ = std::make_unique<tpm_thread>(tpm_options{swtpm_.tcti(), 5000ms});
        return reaped && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    }

    std::vector<std::string> state_files() const {
        std::vector<std::string> names;
        for (const auto& e : std::filesystem::directory_iterator(state_dir_))
            names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }

    std::filesystem::path state_dir_;
    std::unique_ptr<tpm_thread> tpm_;
};

TEST_F(TpmVaultTest, ProvisioningTwiceIsANoOp) {
    auto v = make_vault();
    auto first = ring_->run(v->provision());
    ASSERT_TRUE(first.has_value()) << first.error();
    EXPECT_TRUE(first->primary_created);
    EXPECT_TRUE(first->nv_created);
    EXPECT_EQ(first->nv_index, nv_index);
    EXPECT_EQ(first->nv_size, tpm_vault::record_size);
    EXPECT_TRUE(contains(first->describe(), "created")) << first->describe();

    auto second = ring_->run(v->provision());
    ASSERT_TRUE(second.has_value()) << second.error();
    EXPECT_FALSE(second->primary_created);
    EXPECT_FALSE(second->nv_created);
    EXPECT_EQ(second->describe(),
              "primary 0x81010001 (ECC P-256) reused; NV index 0x01500020 (568 bytes) reused");
    EXPECT_TRUE(v->health().available);
    EXPECT_EQ(v->health().detail, "ok");
}

TEST_F(TpmVaultTest, AFreshVaultReadsGenerationZeroAndNoSecrets) {
    auto v = make_vault();
    provision(*v);
    const vault_metadata m = read(*v);
    EXPECT_EQ(m, vault_metadata{});
    auto set = ring_->run(v->load(m));
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(set->size(), 0u);
}

TEST_F(TpmVaultTest, ReadingAnUnprovisionedVaultNamesTheNvIndex) {
    auto v = make_vault();
    auto r = ring_->run(v->read_metadata());
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "0x01500020")) << r.error();
    EXPECT_TRUE(contains(r.error(), "not provisioned")) << r.error();
    EXPECT_EQ(v->health().detail, r.error());
}

TEST_F(TpmVaultTest, AnNvIndexOfAnotherShapeIsReportedNotRedefined) {
    auto other = ring_->run(provision_nv(*tpm_, nv_index, 64));
    ASSERT_TRUE(other.has_value()) << other.error().message();
    auto v = make_vault();
    auto r = ring_->run(v->provision());
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "0x01500020 already exists with 64 bytes")) << r.error();
    auto still = ring_->run(nv_describe(*tpm_, nv_index));
    ASSERT_TRUE(still.has_value() && still->has_value());
    EXPECT_EQ((*still)->size, 64u);
}

TEST_F(TpmVaultTest, StagedAndCommittedSecretsRoundTrip) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1, secret_meta{1'700'000'000, 1'800'000'000, 1'810'000'000,
                                               secret_state::grace}));
    added.push_back(make_secret(2));
    const vault_metadata next = add(*v, added);

    const vault_metadata m = read(*v);
    EXPECT_EQ(m, next);
    EXPECT_EQ(m.generation, 1u);
    EXPECT_EQ(m.highest_version, 2u);
    ASSERT_EQ(m.secrets.size(), 2u);
    EXPECT_EQ(m.secrets[0].meta.state, secret_state::grace);
    EXPECT_EQ(m.secrets[0].meta.grace_until, 1'810'000'000);

    auto set = ring_->run(v->load(m));
    ASSERT_TRUE(set.has_value()) << set.error();
    ASSERT_EQ(set->size(), 2u);
    for (std::uint64_t version : {1u, 2u}) {
        const crypto::aes256_gcm_key* key = set->find(version);
        ASSERT_NE(key, nullptr) << version;
        EXPECT_TRUE(holds_secret(*key, version)) << version;
    }
    EXPECT_FALSE(holds_secret(*set->find(1), 2));
    ASSERT_NE(set->meta(1), nullptr);
    EXPECT_EQ(set->meta(1)->valid_until, 1'800'000'000);
    EXPECT_EQ(set->meta(1)->state, secret_state::grace);

    // Blob files are owner-only.
    struct stat st{};
    ASSERT_EQ(::stat((state_dir_ / "secret-1.sealed").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(TpmVaultTest, ExpiredSecretsAreNotOpened) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    added.push_back(make_secret(2));
    vault_metadata m = add(*v, added);
    m.secrets[0].meta.state = secret_state::expired;
    std::filesystem::remove(state_dir_ / "secret-1.sealed");  // its blob is gone: not needed
    auto set = ring_->run(v->load(m));
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(set->size(), 1u);
    EXPECT_EQ(set->find(1), nullptr);
    ASSERT_NE(set->find(2), nullptr);
}

TEST_F(TpmVaultTest, CommitWithAStaleGenerationOrVersionIsRefused) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> first;
    first.push_back(make_secret(1));
    const vault_metadata one = add(*v, first);

    std::vector<new_secret> second;
    second.push_back(make_secret(2));
    ASSERT_TRUE(ring_->run(v->stage(second)).has_value());
    vault_metadata stale = next_of(one, second);
    stale.generation = one.generation;  // not above the committed one
    auto r = ring_->run(v->commit(stale, second));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "refusing to commit generation 1")) << r.error();
    EXPECT_TRUE(contains(r.error(), "0x01500020")) << r.error();

    vault_metadata lower = one;
    lower.generation = 5;
    lower.highest_version = 0;
    lower.secrets.clear();
    r = ring_->run(v->commit(lower, {}));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "highest_version 0 below the committed 1")) << r.error();

    EXPECT_EQ(read(*v), one);  // nothing changed
    const vault_metadata good = next_of(one, second);
    ASSERT_TRUE(ring_->run(v->commit(good, second)).has_value());
    EXPECT_EQ(read(*v), good);
}

TEST_F(TpmVaultTest, CommittingASecretThatWasNotStagedIsRefused) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    auto r = ring_->run(v->commit(next_of({}, added), added));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "secret 1")) << r.error();
    EXPECT_TRUE(contains(r.error(), "was not staged")) << r.error();
    EXPECT_EQ(read(*v), vault_metadata{});
}

TEST_F(TpmVaultTest, StagingAVersionNotAboveTheCommittedOnesIsRefused) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(3));
    add(*v, added);
    const std::string before = read_all(state_dir_ / "secret-3.sealed");
    std::vector<new_secret> again;
    again.push_back(make_secret(3));
    auto r = ring_->run(v->stage(again));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "secret 3: version not above")) << r.error();
    EXPECT_EQ(read_all(state_dir_ / "secret-3.sealed"), before);  // the live blob is untouched
}

TEST_F(TpmVaultTest, StageWithoutCommitLeavesTheMetadataUnchanged) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> first;
    first.push_back(make_secret(1));
    const vault_metadata one = add(*v, first);

    // A crash between stage and commit: the new blob exists, the NV record does not list it.
    std::vector<new_secret> second;
    second.push_back(make_secret(2));
    ASSERT_TRUE(ring_->run(v->stage(second)).has_value());
    EXPECT_TRUE(std::filesystem::exists(state_dir_ / "secret-2.sealed"));

    auto fresh = make_vault();  // as after a restart
    const vault_metadata m = read(*fresh);
    EXPECT_EQ(m, one);
    auto set = ring_->run(fresh->load(m));
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(set->size(), 1u);
    EXPECT_EQ(set->find(2), nullptr);

    // The next change re-stages and commits; the orphan of the crashed attempt is replaced.
    const vault_metadata two = add(*fresh, second);
    auto loaded = ring_->run(fresh->load(two));
    ASSERT_TRUE(loaded.has_value()) << loaded.error();
    ASSERT_NE(loaded->find(2), nullptr);
    EXPECT_TRUE(holds_secret(*loaded->find(2), 2));
}

TEST_F(TpmVaultTest, CommitRemovesBlobFilesOfVersionsNoLongerListed) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    added.push_back(make_secret(2));
    const vault_metadata both = add(*v, added);
    // A blob staged but never committed, and a temp file a crash left behind.
    std::vector<new_secret> orphan;
    orphan.push_back(make_secret(7));
    ASSERT_TRUE(ring_->run(v->stage(orphan)).has_value());
    std::ofstream(state_dir_ / ".secret-8.sealed.tmp") << "partial";
    std::ofstream(state_dir_ / "unrelated.txt") << "kept";

    vault_metadata dropped = both;
    dropped.generation += 1;
    dropped.secrets.erase(dropped.secrets.begin());  // version 1 leaves
    ASSERT_TRUE(ring_->run(v->commit(dropped, {})).has_value());
    EXPECT_EQ(state_files(), (std::vector<std::string>{"secret-2.sealed", "unrelated.txt"}));
    EXPECT_EQ(read(*v), dropped);
}

TEST_F(TpmVaultTest, VaultSurvivesSwtpmRestart) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    const vault_metadata one = add(*v, added);

    swtpm_.stop();
    ASSERT_TRUE(swtpm_.start());
    auto again = make_vault();
    auto report = ring_->run(again->provision());
    ASSERT_TRUE(report.has_value()) << report.error();
    EXPECT_FALSE(report->primary_created);
    EXPECT_FALSE(report->nv_created);
    const vault_metadata m = read(*again);
    EXPECT_EQ(m, one);
    auto set = ring_->run(again->load(m));
    ASSERT_TRUE(set.has_value()) << set.error();
    ASSERT_NE(set->find(1), nullptr);
    EXPECT_TRUE(holds_secret(*set->find(1), 1));
}

TEST_F(TpmVaultTest, PcrPolicyRefusesToUnsealOnceThePcrChangesWithAClearError) {
    auto v = make_vault("vault-auth", "sha256:16");
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    const vault_metadata one = add(*v, added);
    ASSERT_TRUE(ring_->run(v->load(one)).has_value());

    extend_pcr16();
    auto r = ring_->run(v->load(one));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "secret 1 (")) << r.error();
    EXPECT_TRUE(contains(r.error(), "secret-1.sealed")) << r.error();
    EXPECT_TRUE(contains(r.error(), "PCR policy sha256:16 not satisfied")) << r.error();
    EXPECT_TRUE(v->health().available);  // the TPM answered: it refused
    EXPECT_EQ(v->health().detail, r.error());

    // A TPM restart resets PCR 16, as a reboot resets the boot PCRs: the secret opens again.
    swtpm_.stop();
    ASSERT_TRUE(swtpm_.start());
    auto set = ring_->run(v->load(one));
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_TRUE(holds_secret(*set->find(1), 1));
}

TEST_F(TpmVaultTest, PcrPolicyIsTakenFromTheBlobNotTheCurrentConfig) {
    auto v = make_vault("vault-auth", "sha256:16");
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    const vault_metadata one = add(*v, added);
    // The config now says no PCRs: the secret stays bound to PCR 16 until it is re-sealed.
    auto relaxed = make_vault("vault-auth", "");
    extend_pcr16();
    auto r = ring_->run(relaxed->load(one));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "PCR policy sha256:16 not satisfied")) << r.error();
}

TEST_F(TpmVaultTest, WrongAuthFailsWithAClearError) {
    auto v = make_vault("right-auth");
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    const vault_metadata one = add(*v, added);

    auto wrong = make_vault("wrong-auth");
    auto r = ring_->run(wrong->load(one));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "secret 1 (")) << r.error();
    EXPECT_TRUE(contains(r.error(), "wrong auth value")) << r.error();
    // noDA: the right auth still works at once.
    ASSERT_TRUE(ring_->run(v->load(one)).has_value());
}

TEST_F(TpmVaultTest, MissingOrCorruptBlobNamesTheVersionAndFile) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(4));
    const vault_metadata m = add(*v, added);
    const auto path = state_dir_ / "secret-4.sealed";
    const std::string good = read_all(path);

    std::ofstream(path, std::ios::binary | std::ios::trunc) << good.substr(0, good.size() - 9);
    auto r = ring_->run(v->load(m));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "secret 4 (" + path.string() + "): corrupt")) << r.error();

    std::string flipped = good;
    flipped[flipped.size() - 20] = static_cast<char>(flipped[flipped.size() - 20] ^ 0x40);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << flipped;
    r = ring_->run(v->load(m));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "secret 4 (" + path.string() + "): corrupt, or sealed under"))
        << r.error();

    std::filesystem::remove(path);
    r = ring_->run(v->load(m));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "secret 4 (" + path.string() + "): cannot read")) << r.error();
    EXPECT_TRUE(contains(r.error(), "No such file")) << r.error();
}

TEST_F(TpmVaultTest, ACorruptNvRecordIsAnErrorNamingTheIndex) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    add(*v, added);
    // Flip one byte of the generation, as a torn or tampered write would.
    auto bytes = ring_->run(nv_read(*tpm_, nv_index));
    ASSERT_TRUE(bytes.has_value() && bytes->has_value());
    std::vector<std::uint8_t> record = **bytes;
    record[15] ^= 1;
    ASSERT_TRUE(ring_->run(nv_write(*tpm_, nv_index, record)).has_value());
    auto r = ring_->run(v->read_metadata());
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "NV index 0x01500020: corrupt vault record")) << r.error();
    EXPECT_TRUE(contains(r.error(), "checksum")) << r.error();
}

TEST_F(TpmVaultTest, BlobFilesNeverContainTheSecretInAnyEncoding) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    added.push_back(make_secret(2));
    add(*v, added);

    const auto files = state_files();
    ASSERT_EQ(files.size(), 2u);
    for (const std::string& name : files) {
        const std::string content = read_all(state_dir_ / name);
        for (unsigned version : {1u, 2u}) {
            const auto raw = secret_bytes(version);
            const std::span<const std::byte> half(raw.data(), 16);  // any 16-byte run is enough
            const std::string raw_text(reinterpret_cast<const char*>(half.data()), half.size());
            std::string hex, b64(crypto::base64url_encoded_size(raw.size()), '\0');
            for (const std::byte b : raw) hex += fmt::format("{:02x}", std::to_integer<unsigned>(b));
            crypto::base64url_encode(raw, b64);
            std::string upper = hex;
            std::transform(upper.begin(), upper.end(), upper.begin(),
                           [](char c) { return static_cast<char>(std::toupper(c)); });
            EXPECT_FALSE(contains(content, raw_text)) << name;
            EXPECT_FALSE(contains(content, hex.substr(0, 32))) << name;
            EXPECT_FALSE(contains(content, upper.substr(0, 32))) << name;
            EXPECT_FALSE(contains(content, b64.substr(0, 20))) << name;
        }
    }
}

// Each crash test's child runs one of these.
io::task<void> stage_v1(tpm_vault& v) {
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    auto r = co_await v.stage(added);
    (void)r;
}

io::task<void> commit_without_v1(tpm_vault& v) {
    auto m = co_await v.read_metadata();
    if (!m) co_return;
    vault_metadata next = *m;
    next.generation += 1;
    next.secrets.erase(next.secrets.begin());
    auto r = co_await v.commit(next, {});
    (void)r;
}

TEST_F(TpmVaultTest, ACrashAfterSealingLeavesTheVaultAsItWas) {
    auto v = make_vault();
    provision(*v);
    ASSERT_TRUE(crashes_at("tpm.sealed", stage_v1));
    EXPECT_TRUE(state_files().empty());
    v = make_vault();
    EXPECT_EQ(read(*v), vault_metadata{});
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    const vault_metadata one = add(*v, added);
    auto set = ring_->run(v->load(one));
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_TRUE(holds_secret(*set->find(1), 1));
}

TEST_F(TpmVaultTest, ACrashAfterTheNvWriteKeepsTheCommitAndTheNextCommitSweepsTheLeftover) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));
    added.push_back(make_secret(2));
    const vault_metadata both = add(*v, added);

    ASSERT_TRUE(crashes_at("tpm.nv_written", commit_without_v1));
    v = make_vault();
    const vault_metadata m = read(*v);
    EXPECT_EQ(m.generation, both.generation + 1);  // the commit point was passed
    ASSERT_EQ(m.secrets.size(), 1u);
    EXPECT_EQ(m.secrets[0].version, 2u);
    EXPECT_TRUE(std::filesystem::exists(state_dir_ / "secret-1.sealed"));  // died before the sweep
    auto set = ring_->run(v->load(m));
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(set->size(), 1u);

    std::vector<new_secret> third;
    third.push_back(make_secret(3));
    add(*v, third);
    EXPECT_EQ(state_files(), (std::vector<std::string>{"secret-2.sealed", "secret-3.sealed"}));
}

struct fault_case {
    io::op_kind kind;
    int error;
    const char* text;  // strerror of `error`
};

class TpmVaultFaultTest : public TpmVaultTest, public ::testing::WithParamInterface<fault_case> {};

TEST_P(TpmVaultFaultTest, AnInjectedFaultFailsStageCleanlyAndARetrySucceeds) {
    auto v = make_vault();
    provision(*v);
    std::vector<new_secret> added;
    added.push_back(make_secret(1));

    ring_->set_fault_plan(io::fault_plan{GetParam().kind, 1, GetParam().error, false, 0});
    auto r = ring_->run(v->stage(added));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "secret 1 (")) << r.error();
    EXPECT_TRUE(contains(r.error(), "cannot write the sealed blob")) << r.error();
    EXPECT_TRUE(contains(r.error(), GetParam().text)) << r.error();
    EXPECT_TRUE(state_files().empty());  // neither the blob nor its temp file
    EXPECT_EQ(read(*v), vault_metadata{});

    ring_->set_fault_plan(io::fault_plan{});
    const vault_metadata next = add(*v, added);
    EXPECT_EQ(read(*v), next);
    auto set = ring_->run(v->load(next));
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_TRUE(holds_secret(*set->find(1), 1));
}

INSTANTIATE_TEST_SUITE_P(
    Faults, TpmVaultFaultTest,
    ::testing::Values(fault_case{io::op_kind::write, EIO, "Input/output error"},
                      fault_case{io::op_kind::write, ENOSPC, "No space left on device"},
                      fault_case{io::op_kind::fsync, EIO, "Input/output error"},
                      fault_case{io::op_kind::rename, ENOSPC, "No space left on device"}),
    [](const ::testing::TestParamInfo<fault_case>& param_info) {
        const fault_case& c = param_info.param;
        const char* kind = c.kind == io::op_kind::write   ? "Write"
                           : c.kind == io::op_kind::fsync ? "Fsync"
                                                          : "Rename";
        return std::string(kind) + (c.error == EIO ? "Eio" : "Enospc");
    });

TEST_F(TpmVaultTest, AHungTpmIsReportedInHealthAndRecoveredFrom) {
    tpm_ = std::make_unique<tpm_thread>(tpm_options{swtpm_.tcti(), 300ms});
    auto v = make_vault();
    provision(*v);
    ASSERT_EQ(::kill(swtpm_.pid(), SIGSTOP), 0);
    auto r = ring_->run(v->read_metadata());
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "TPM did not answer within 300 ms")) << r.error();
    EXPECT_FALSE(v->health().available);
    EXPECT_TRUE(contains(v->health().detail, "TPM did not answer within 300 ms"));

    ASSERT_EQ(::kill(swtpm_.pid(), SIGCONT), 0);
    auto ok = ring_->run(v->read_metadata());
    ASSERT_TRUE(ok.has_value()) << ok.error();
    EXPECT_TRUE(v->health().available);
    EXPECT_EQ(v->health().detail, "ok");
}

TEST_F(TpmVaultTest, AnOversizedAuthIsRefusedBeforeTheTpm) {
    tpm_vault_options o;
    o.tpm = tpm_.get();
    o.state_dir = state_dir_.string();
    o.auth = auth_of(std::string(33, 'a'));
    tpm_vault v(std::move(o));
    auto r = ring_->run(v.read_metadata());
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "auth value is 33 bytes")) << r.error();
    EXPECT_EQ(tpm_->opens(), 0u);
}

}  // namespace
}  // namespace la::tpm
