// The encrypted-file custody backend: round trips through commit / read_metadata / load,
// monotonic generations, wrong keys, corruption, file modes, every I/O step of a commit failing
// in turn, a crash before the write, sealed blobs, and that no file holds a secret.
#include "tpm/file_vault.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "crypto/aes_gcm.hpp"
#include "crypto/base64url.hpp"
#include "io/crash_point.hpp"
#include "io/ring.hpp"
#include "tests/unit/core/core_test_util.hpp"

namespace la::core {
namespace {

using test::temp_dir;

// Known test secrets by version; never a real key.
std::array<std::byte, 32> secret_bytes(std::uint64_t seed) {
    std::array<std::byte, 32> k{};
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::byte>(seed * 37U + i * 11U + 5U);
    return k;
}

std::string b64(std::span<const std::byte> b) {
    std::string s(crypto::base64url_encoded_size(b.size()), '\0');
    crypto::base64url_encode(b, s);
    return s;
}

std::string hex(std::span<const std::byte> b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const std::byte x : b) {
        out += digits[std::to_integer<unsigned>(x) >> 4];
        out += digits[std::to_integer<unsigned>(x) & 0xF];
    }
    return out;
}

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_all(const std::filesystem::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

std::span<const std::byte> as_bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

bool contains(const std::string& text, std::string_view needle) { return text.find(needle) != std::string::npos; }

// Encrypts with `a` and decrypts with `b`: true when both hold the same key.
bool same_key(const crypto::aes256_gcm_key& a, const crypto::aes256_gcm_key& b) {
    const std::array<std::byte, 12> iv{};
    const std::array<std::byte, 5> plain{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}, std::byte{5}};
    std::array<std::byte, 5> ct{}, back{};
    std::array<std::byte, 16> tag{};
    if (!a.encrypt(iv, {}, plain, tag, ct)) return false;
    if (!b.decrypt(iv, {}, ct, tag, back)) return false;
    return back == plain;
}

bool holds_secret(const secret_set& set, std::uint64_t version) {
    const auto want = crypto::aes256_gcm_key::create(secret_bytes(version));
    const auto* got = set.find(version);
    return want && got != nullptr && same_key(*want, *got) && same_key(*got, *want);
}

new_secret make_secret(std::uint64_t version, std::size_t size = 32) {
    new_secret s;
    s.version = version;
    auto key = crypto::secure_buffer::allocate(size);
    EXPECT_TRUE(key.has_value());
    const auto bytes = secret_bytes(version);
    std::memcpy(key->data(), bytes.data(), std::min(size, bytes.size()));
    s.key = std::move(*key);
    return s;
}

// A change: the metadata to commit and the secrets it adds.
struct change {
    vault_metadata next;
    std::vector<new_secret> added;
};

secret_meta grace_meta() {
    secret_meta m;
    m.valid_from = 1700000000;
    m.valid_until = 1800000000;
    m.grace_until = 1810000000;
    m.state = secret_state::grace;
    return m;
}

// Generation 1: version 1 in GRACE with dates, version 2 ACTIVE.
change first_change() {
    change c;
    c.next.generation = 1;
    c.next.highest_version = 2;
    c.next.secrets = {secret_entry{1, grace_meta()}, secret_entry{2, secret_meta{}}};
    c.added.push_back(make_secret(1));
    c.added.push_back(make_secret(2));
    return c;
}

// The file names in dir.
std::vector<std::string> names_in(const std::filesystem::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

class FileVaultTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto r = io::ring::create();
        ASSERT_TRUE(r.has_value());
        ring_ = std::move(*r);
        auto created = ring_->run(vault_.provision());
        ASSERT_TRUE(created.has_value()) << created.error();
        EXPECT_TRUE(*created);
    }

    std::unique_ptr<encrypted_file_vault> make_vault(kdf_kind kdf = kdf_kind::argon2id,
                                                     const std::filesystem::path* key = nullptr) {
        return std::make_unique<encrypted_file_vault>(enc_, key != nullptr ? *key : key_, kdf, worker_);
    }

    expected<vault_metadata, std::string> read(encrypted_file_vault& v) { return ring_->run(v.read_metadata()); }
    expected<vault_metadata, std::string> read() { return read(vault_); }
    expected<secret_set, std::string> load(const vault_metadata& m) { return ring_->run(vault_.load(m)); }
    expected<void, std::string> commit(encrypted_file_vault& v, const change& c) {
        return ring_->run(v.commit(c.next, c.added));
    }
    expected<void, std::string> commit(const change& c) { return commit(vault_, c); }

    // Commits the first change (with the given KDF) and checks it worked.
    void committed(kdf_kind kdf = kdf_kind::argon2id) {
        auto v = make_vault(kdf);
        const auto r = commit(*v, first_change());
        ASSERT_TRUE(r.has_value()) << r.error();
    }

    std::string read_error() {
        auto r = read();
        EXPECT_FALSE(r.has_value());
        return r ? std::string() : r.error();
    }

    temp_dir dir_;
    std::filesystem::path enc_ = dir_ / "secret.enc";
    std::filesystem::path key_ = dir_ / "fallback.key";
    io::worker_thread worker_{"la-test-kdf"};
    std::unique_ptr<io::ring> ring_;
    encrypted_file_vault vault_{enc_, key_, kdf_kind::argon2id, worker_};
};

void expect_first_change(const secret_set& set) {
    ASSERT_EQ(set.size(), 2U);
    EXPECT_TRUE(holds_secret(set, 1));
    EXPECT_TRUE(holds_secret(set, 2));
    EXPECT_FALSE(same_key(*set.find(1), *set.find(2)));
    ASSERT_NE(set.meta(1), nullptr);
    EXPECT_EQ(set.meta(1)->state, secret_state::grace);
    EXPECT_EQ(set.meta(1)->valid_from, 1700000000);
    EXPECT_EQ(set.meta(1)->valid_until, 1800000000);
    EXPECT_EQ(set.meta(1)->grace_until, 1810000000);
    ASSERT_NE(set.meta(2), nullptr);
    EXPECT_EQ(set.meta(2)->state, secret_state::active);
}

TEST_F(FileVaultTest, ProvisionCreatesAnOwnerOnlyKeyFileOnlyOnce) {
    struct stat st {};
    ASSERT_EQ(::stat(key_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U);
    const std::string before = read_all(key_);
    EXPECT_EQ(before.rfind("license-agent fallback key v1\n", 0), 0U);
    EXPECT_EQ(before.size(), 30U + 43U + 1U);
    auto again = ring_->run(vault_.provision());
    ASSERT_TRUE(again.has_value()) << again.error();
    EXPECT_FALSE(*again);
    EXPECT_EQ(read_all(key_), before);
    EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"fallback.key"});
}

TEST_F(FileVaultTest, ProvisionRefusesAKeyFileOpenToGroupOrOthers) {
    ASSERT_EQ(::chmod(key_.c_str(), 0640), 0);
    const std::string before = read_all(key_);
    auto r = ring_->run(vault_.provision());
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), key_.string())) << r.error();
    EXPECT_TRUE(contains(r.error(), "refusing")) << r.error();
    EXPECT_EQ(read_all(key_), before);
}

TEST_F(FileVaultTest, ProvisionWillNotReplaceALostKeyFileWhileSecretEncExists) {
    committed();
    ASSERT_TRUE(std::filesystem::remove(key_));
    auto r = ring_->run(vault_.provision());
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), key_.string())) << r.error();
    EXPECT_TRUE(contains(r.error(), enc_.string())) << r.error();
    EXPECT_FALSE(std::filesystem::exists(key_));
    EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"secret.enc"});
}

TEST_F(FileVaultTest, ANeverWrittenVaultIsGenerationZeroEvenWithoutAKeyFile) {
    ASSERT_TRUE(std::filesystem::remove(key_));
    auto m = read();
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_EQ(*m, vault_metadata{});
    auto set = load(*m);
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(set->size(), 0U);
    // Writing needs the key file, and says which.
    auto r = commit(first_change());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), key_.string() + ": the key file is missing");
    EXPECT_FALSE(std::filesystem::exists(enc_));
}

TEST_F(FileVaultTest, AMissingKeyFileIsAnErrorNamingIt) {
    committed();
    ASSERT_TRUE(std::filesystem::remove(key_));
    const std::string e = read_error();
    EXPECT_EQ(e, key_.string() + ": the key file is missing (needed to decrypt " + enc_.string() + ")");
}

TEST_F(FileVaultTest, CommitRoundTripsThroughReadMetadataAndLoad) {
    committed();
    EXPECT_EQ(vault_.backend(), "encrypted-file");
    auto fresh = make_vault();
    auto m = read(*fresh);
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_EQ(*m, first_change().next);
    auto set = ring_->run(fresh->load(*m));
    ASSERT_TRUE(set.has_value()) << set.error();
    expect_first_change(*set);
    struct stat st {};
    ASSERT_EQ(::stat(enc_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U);
}

TEST_F(FileVaultTest, RoundTripsWithPbkdf2WhateverTheReaderWouldWrite) {
    committed(kdf_kind::pbkdf2_sha256);
    EXPECT_EQ(read_all(enc_)[5], '\x02');  // the KDF id in the header
    auto m = read();  // vault_ writes Argon2id; it reads the KDF from the file
    ASSERT_TRUE(m.has_value()) << m.error();
    auto set = load(*m);
    ASSERT_TRUE(set.has_value()) << set.error();
    expect_first_change(*set);
}

TEST_F(FileVaultTest, GenerationsOnlyIncrease) {
    committed();
    const std::string before = read_all(enc_);
    for (const std::uint64_t g : {0U, 1U}) {
        change c;
        c.next = first_change().next;
        c.next.generation = g;
        auto r = commit(c);
        ASSERT_FALSE(r.has_value()) << g;
        EXPECT_TRUE(contains(r.error(), "generations only increase")) << r.error();
        EXPECT_EQ(read_all(enc_), before);
    }
    change c;
    c.next = first_change().next;
    c.next.generation = 5;  // a jump is fine: only going back is refused
    auto r = commit(c);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(read()->generation, 5U);
}

TEST_F(FileVaultTest, KeptSecretsSurviveACommitThatAddsOne) {
    committed();
    // Generation 2: version 1 leaves, version 2 is kept (now in GRACE), version 3 arrives.
    change c;
    c.next.generation = 2;
    c.next.highest_version = 3;
    c.next.secrets = {secret_entry{2, grace_meta()}, secret_entry{3, secret_meta{}}};
    c.added.push_back(make_secret(3));
    auto r = commit(c);
    ASSERT_TRUE(r.has_value()) << r.error();

    auto m = read();
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_EQ(*m, c.next);
    auto set = load(*m);
    ASSERT_TRUE(set.has_value()) << set.error();
    ASSERT_EQ(set->size(), 2U);
    EXPECT_EQ(set->find(1), nullptr);
    EXPECT_TRUE(holds_secret(*set, 2));
    EXPECT_TRUE(holds_secret(*set, 3));
    EXPECT_EQ(set->meta(2)->state, secret_state::grace);
    // Version 1's key is gone from the file: it cannot come back.
    change back;
    back.next = c.next;
    back.next.generation = 3;
    back.next.secrets.insert(back.next.secrets.begin(), secret_entry{1, secret_meta{}});
    auto refused = commit(back);
    ASSERT_FALSE(refused.has_value());
    EXPECT_TRUE(contains(refused.error(), "kept secret version 1 has no key")) << refused.error();
}

TEST_F(FileVaultTest, ExpiredEntriesLoseTheirKeyAndAreNotLoaded) {
    committed();
    change c;
    c.next = first_change().next;
    c.next.generation = 2;
    c.next.secrets[0].meta.state = secret_state::expired;
    ASSERT_TRUE(commit(c).has_value());
    auto m = read();
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_EQ(m->secrets[0].meta.state, secret_state::expired);
    auto set = load(*m);
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(set->size(), 1U);
    EXPECT_EQ(set->meta(1), nullptr);
    EXPECT_TRUE(holds_secret(*set, 2));
    // Reviving it is refused: its key was not written again.
    change revive;
    revive.next = first_change().next;
    revive.next.generation = 3;
    auto r = commit(revive);
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "kept secret version 1 has no key")) << r.error();
}

TEST_F(FileVaultTest, CommitRefusesInvalidChangesAndKeepsTheFile) {
    committed();
    const std::string before = read_all(enc_);
    const auto refused = [&](change c, std::string_view why) {
        auto r = commit(c);
        ASSERT_FALSE(r.has_value()) << why;
        EXPECT_TRUE(contains(r.error(), enc_.string())) << r.error();
        EXPECT_TRUE(contains(r.error(), why)) << r.error();
        EXPECT_EQ(read_all(enc_), before) << why;
    };
    const auto base = [] {
        change c;
        c.next = first_change().next;
        c.next.generation = 2;
        return c;
    };
    {
        change c = base();  // version 2 again with another key
        c.added.push_back(make_secret(2));
        refused(std::move(c), "a version is never reused");
    }
    {
        change c = base();  // added but not listed
        c.next.highest_version = 3;
        c.added.push_back(make_secret(3));
        refused(std::move(c), "new secret version 3 is not in the new metadata");
    }
    {
        change c = base();  // listed, never added, not in the file
        c.next.highest_version = 4;
        c.next.secrets.push_back(secret_entry{4, secret_meta{}});
        refused(std::move(c), "kept secret version 4 has no key");
    }
    {
        change c = base();
        c.next.highest_version = 3;
        c.next.secrets.push_back(secret_entry{3, secret_meta{}});
        c.added.push_back(make_secret(3, 16));
        refused(std::move(c), "the key must be 32 bytes, not 16");
    }
    {
        change c = base();
        std::swap(c.next.secrets[0], c.next.secrets[1]);
        refused(std::move(c), "by increasing non-zero version");
    }
    {
        change c = base();
        c.next.highest_version = 1;
        refused(std::move(c), "highest_version 1 is below the committed 2");
    }
    {
        change c = base();
        c.next.highest_version = 3;
        c.next.secrets.push_back(secret_entry{3, secret_meta{}});
        c.added.push_back(make_secret(3));
        c.added.push_back(make_secret(3));
        refused(std::move(c), "given twice");
    }
}

TEST_F(FileVaultTest, StageChecksTheKeysAndWritesNothing) {
    std::vector<new_secret> good;
    good.push_back(make_secret(1));
    auto ok = ring_->run(vault_.stage(good));
    ASSERT_TRUE(ok.has_value()) << ok.error();
    EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"fallback.key"});
    std::vector<new_secret> bad;
    bad.push_back(make_secret(1, 31));
    auto r = ring_->run(vault_.stage(bad));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "version 1: the key must be 32 bytes")) << r.error();
    std::vector<new_secret> zero;
    zero.push_back(make_secret(0));
    EXPECT_FALSE(ring_->run(vault_.stage(zero)).has_value());
}

TEST_F(FileVaultTest, LoadNamesAVersionMissingFromTheFile) {
    committed();
    vault_metadata m = first_change().next;
    m.secrets.push_back(secret_entry{7, secret_meta{}});
    auto set = load(m);
    ASSERT_FALSE(set.has_value());
    EXPECT_EQ(set.error(), enc_.string() + ": secret version 7 is not in the file");
}

TEST_F(FileVaultTest, EachCommitUsesAFreshSaltAndNonce) {
    committed();
    const std::string first = read_all(enc_);
    change c = first_change();
    c.next.generation = 2;
    c.added.clear();
    ASSERT_TRUE(commit(c).has_value());
    const std::string second = read_all(enc_);
    ASSERT_EQ(first.size(), second.size());
    EXPECT_NE(first.substr(20, 28), second.substr(20, 28));  // salt and nonce
    EXPECT_NE(first.substr(52), second.substr(52));          // ciphertext and tag
}

TEST_F(FileVaultTest, WrongKeyFileFailsAuthentication) {
    committed();
    temp_dir elsewhere;
    const auto other_key = elsewhere / "k";
    encrypted_file_vault maker(elsewhere / "secret.enc", other_key, kdf_kind::argon2id, worker_);
    ASSERT_TRUE(ring_->run(maker.provision()).has_value());
    auto wrong = make_vault(kdf_kind::argon2id, &other_key);
    auto r = read(*wrong);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), enc_.string() + ": authentication failed (wrong key file?)");
    EXPECT_FALSE(wrong->health().available);
    EXPECT_TRUE(contains(wrong->health().detail, "authentication failed")) << wrong->health().detail;
    // Nor can it commit over a file it cannot read.
    const std::string before = read_all(enc_);
    change c = first_change();
    c.next.generation = 2;
    c.added.clear();
    EXPECT_FALSE(commit(*wrong, c).has_value());
    EXPECT_EQ(read_all(enc_), before);
}

TEST_F(FileVaultTest, RefusesAKeyFileOpenToGroupOrOthers) {
    committed();
    ASSERT_EQ(::chmod(key_.c_str(), 0644), 0);
    const std::string e = read_error();
    EXPECT_TRUE(contains(e, key_.string())) << e;
    EXPECT_TRUE(contains(e, "refusing")) << e;
    const std::string before = read_all(enc_);
    change c = first_change();
    c.next.generation = 2;
    c.added.clear();
    EXPECT_FALSE(commit(c).has_value());
    EXPECT_EQ(read_all(enc_), before);
}

TEST_F(FileVaultTest, RefusesAMalformedKeyFile) {
    committed();
    test::write_file(key_, "license-agent fallback key v1\nnot-base64!\n", 0600);
    std::string e = read_error();
    EXPECT_TRUE(contains(e, key_.string())) << e;
    EXPECT_TRUE(contains(e, "base64url of 32 bytes")) << e;
    test::write_file(key_, "something else\n", 0600);
    e = read_error();
    EXPECT_TRUE(contains(e, "not a license-agent fallback key file")) << e;
    auto p = ring_->run(vault_.provision());
    ASSERT_FALSE(p.has_value());  // a malformed key file is reported, not replaced
    EXPECT_EQ(read_all(key_), "something else\n");
}

TEST_F(FileVaultTest, TruncatedFileIsReportedAsTruncated) {
    committed();
    const std::string full = read_all(enc_);
    for (const std::size_t len : {std::size_t{0}, std::size_t{10}, std::size_t{52}, std::size_t{68}, full.size() - 1}) {
        write_all(enc_, full.substr(0, len));
        const std::string e = read_error();
        EXPECT_TRUE(contains(e, enc_.string() + ": truncated or corrupted")) << len << ": " << e;
    }
    write_all(enc_, full + "x");
    EXPECT_TRUE(contains(read_error(), "truncated or corrupted"));
    write_all(enc_, full + std::string(70 * 1024, 'x'));
    EXPECT_TRUE(contains(read_error(), "file too large"));
}

TEST_F(FileVaultTest, CorruptedBytesAreRejectedClearly) {
    committed();
    const std::string full = read_all(enc_);
    auto with_byte = [&](std::size_t at, char value) {
        std::string s = full;
        s[at] = value;
        write_all(enc_, s);
        return read_error();
    };
    const auto flip = [&](std::size_t at) { return with_byte(at, static_cast<char>(full[at] ^ 0x01)); };
    EXPECT_TRUE(contains(flip(0), "not a license-agent encrypted secret file (bad magic)"));
    EXPECT_TRUE(contains(flip(4), "unsupported format version 3"));
    EXPECT_TRUE(contains(with_byte(4, 1), "unsupported format version 1"));  // the old JWK Set format
    EXPECT_TRUE(contains(with_byte(5, 9), "unknown KDF id 9"));
    EXPECT_TRUE(contains(flip(9), "parameters out of range"));  // t becomes 65538
    EXPECT_TRUE(contains(flip(25), "authentication failed"));    // salt
    EXPECT_TRUE(contains(flip(40), "authentication failed"));    // nonce
    EXPECT_TRUE(contains(flip(60), "authentication failed"));    // ciphertext
    EXPECT_TRUE(contains(flip(full.size() - 1), "authentication failed"));  // tag
}

TEST_F(FileVaultTest, TamperedKdfParametersFailAuthentication) {
    committed();
    std::string s = read_all(enc_);
    ASSERT_EQ(s[11], '\x02');  // t = 2, big-endian at offset 8
    s[11] = '\x03';
    write_all(enc_, s);
    EXPECT_EQ(read_error(), enc_.string() + ": authentication failed (wrong key file?)");
}

TEST_F(FileVaultTest, TamperedPbkdf2IterationsFailAuthentication) {
    committed(kdf_kind::pbkdf2_sha256);
    std::string s = read_all(enc_);
    s[11] = static_cast<char>(s[11] + 1);  // 600,000 -> 600,001 iterations
    write_all(enc_, s);
    EXPECT_EQ(read_error(), enc_.string() + ": authentication failed (wrong key file?)");
}

// Every I/O operation of a commit fails in turn (the Nth openat, read, write, fsync, close,
// rename, with EIO then ENOSPC): the commit reports it, the old file and metadata stay, no temp
// file is left, and the same commit succeeds once the fault is gone.
TEST_F(FileVaultTest, EveryFailingIoStepKeepsTheOldFileAndTheNextCommitSucceeds) {
    committed();
    vault_metadata current = first_change().next;
    std::uint64_t version = 3;
    struct kind_case {
        io::op_kind kind;
        const char* name;
        std::uint64_t ops;  // how many a commit makes: two files read, one written, the directory
    };
    const kind_case kinds[] = {{io::op_kind::openat, "openat", 4}, {io::op_kind::read, "read", 4},
                               {io::op_kind::close, "close", 4},   {io::op_kind::write, "write", 1},
                               {io::op_kind::fsync, "fsync", 2},   {io::op_kind::rename, "rename", 1}};
    for (const int error : {EIO, ENOSPC}) {
        for (const kind_case& k : kinds) {
            std::uint64_t failed = 0;
            for (std::uint64_t nth = 1; nth <= 20; ++nth) {
                SCOPED_TRACE(testing::Message() << k.name << " #" << nth << " " << std::strerror(error));
                // Keep the newest secret, add the next version.
                change c;
                c.next.generation = current.generation + 1;
                c.next.highest_version = version;
                c.next.secrets = {current.secrets.back(), secret_entry{version, secret_meta{}}};
                c.added.push_back(make_secret(version));
                const std::string before = read_all(enc_);

                ring_->set_fault_plan(io::fault_plan{k.kind, nth, error});
                auto r = commit(c);
                ring_->set_fault_plan(io::fault_plan{});
                if (!r) {
                    ++failed;
                    EXPECT_TRUE(contains(r.error(), std::strerror(error))) << r.error();
                    EXPECT_TRUE(contains(r.error(), enc_.string()) || contains(r.error(), key_.string())) << r.error();
                    EXPECT_FALSE(vault_.health().available);
                    // Past the rename (directory open, fsync, close), the old content is put back.
                    const bool after_rename = (k.kind == io::op_kind::openat || k.kind == io::op_kind::close)
                                                  ? nth == 4
                                                  : (k.kind == io::op_kind::fsync && nth == 2);
                    const bool writing = ((k.kind == io::op_kind::openat || k.kind == io::op_kind::close) && nth >= 3) ||
                                         k.kind == io::op_kind::write || k.kind == io::op_kind::fsync ||
                                         k.kind == io::op_kind::rename;
                    if (after_rename) {
                        EXPECT_TRUE(contains(r.error(), "the previous content was put back")) << r.error();
                    } else if (writing) {
                        EXPECT_TRUE(contains(r.error(), "(the previous content is kept)")) << r.error();
                    }
                    EXPECT_EQ(read_all(enc_), before);
                    EXPECT_EQ(names_in(dir_.path()), (std::vector<std::string>{"fallback.key", "secret.enc"}));
                    auto m = read();
                    ASSERT_TRUE(m.has_value()) << m.error();
                    EXPECT_EQ(*m, current);
                    auto set = load(*m);
                    ASSERT_TRUE(set.has_value()) << set.error();
                    EXPECT_TRUE(holds_secret(*set, current.secrets.back().version));
                    r = commit(c);
                    ASSERT_TRUE(r.has_value()) << r.error();
                }
                // Committed, with or without a fault before.
                auto m = read();
                ASSERT_TRUE(m.has_value()) << m.error();
                EXPECT_EQ(*m, c.next);
                auto set = load(*m);
                ASSERT_TRUE(set.has_value()) << set.error();
                EXPECT_TRUE(holds_secret(*set, version));
                current = c.next;
                ++version;
                if (failed < nth) break;  // nth is past the commit's last op of this kind
            }
            EXPECT_EQ(failed, k.ops) << k.name << " " << std::strerror(error);
        }
    }
}

// The directory fsync fails on the very first commit: the new file was renamed into place but is
// not durable, so it is removed again (generation 0 stays authoritative).
TEST_F(FileVaultTest, AFirstCommitFailingAfterItsRenameLeavesNoFile) {
    ring_->set_fault_plan(io::fault_plan{io::op_kind::fsync, 2, EIO});
    auto r = commit(first_change());
    ring_->set_fault_plan(io::fault_plan{});
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "previous content was put back")) << r.error();
    EXPECT_EQ(names_in(dir_.path()), std::vector<std::string>{"fallback.key"});
    auto m = read();
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_EQ(m->generation, 0U);
}

// kill -9 between encryption and the write: the old file and metadata stay. Not a fixture test:
// no thread may be alive at fork() (TSan refuses a child that starts threads after that).
TEST(FileVaultCrashTest, ACrashAfterEncryptionKeepsTheOldFile) {
    temp_dir dir;
    const std::filesystem::path enc = dir / "secret.enc";
    const std::filesystem::path key = dir / "fallback.key";
    // Each step gets its own ring and worker, gone (joined) before the fork.
    const auto on_fresh_vault = [&](auto step) {
        auto r = io::ring::create();
        if (!r) return false;
        io::worker_thread w;
        encrypted_file_vault v(enc, key, kdf_kind::argon2id, w);
        return step(**r, v);
    };
    ASSERT_TRUE(on_fresh_vault([](io::ring& r, encrypted_file_vault& v) {
        const auto created = r.run(v.provision());
        const change c = first_change();
        return created.has_value() && r.run(v.commit(c.next, c.added)).has_value();
    }));
    const std::string before = read_all(enc);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        io::arm_crash_point("file.encrypted");
        (void)on_fresh_vault([](io::ring& r, encrypted_file_vault& v) {
            change c = first_change();
            c.next.generation = 2;
            c.added.clear();
            return r.run(v.commit(c.next, c.added)).has_value();
        });
        ::_exit(3);  // not reached: the crash point kills the process
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    EXPECT_EQ(read_all(enc), before);
    ASSERT_TRUE(on_fresh_vault([](io::ring& r, encrypted_file_vault& v) {
        const auto m = r.run(v.read_metadata());
        return m.has_value() && *m == first_change().next;
    }));
}

TEST_F(FileVaultTest, NoFileWrittenContainsTheSecrets) {
    committed();
    auto pbkdf2 = make_vault(kdf_kind::pbkdf2_sha256);
    change c;
    c.next = first_change().next;
    c.next.generation = 2;
    c.next.highest_version = 3;
    c.next.secrets.push_back(secret_entry{3, secret_meta{}});
    c.added.push_back(make_secret(3));
    ring_->set_fault_plan(io::fault_plan{io::op_kind::fsync, 2, EIO});  // a failed attempt first
    EXPECT_FALSE(commit(*pbkdf2, c).has_value());
    ring_->set_fault_plan(io::fault_plan{});
    ASSERT_TRUE(commit(*pbkdf2, c).has_value());
    std::vector<std::string> needles;
    for (const std::uint64_t v : {1U, 2U, 3U}) {
        const auto k = secret_bytes(v);
        needles.emplace_back(reinterpret_cast<const char*>(k.data()), k.size());
        needles.push_back(hex(k));
        needles.push_back(b64(k));
        // A prefix catches partial leaks (e.g. a truncated write of the plaintext).
        needles.push_back(b64(k).substr(0, 16));
        needles.emplace_back(reinterpret_cast<const char*>(k.data()), 8);
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
        const std::string data = read_all(entry.path());
        for (const auto& n : needles) EXPECT_FALSE(contains(data, n)) << entry.path();
    }
    EXPECT_EQ(names_in(dir_.path()), (std::vector<std::string>{"fallback.key", "secret.enc"}));
}

TEST_F(FileVaultTest, KeyDerivationRunsOnTheWorkerNotTheRingThread) {
    committed();
    ASSERT_TRUE(read().has_value());
    EXPECT_EQ(detail::last_kdf_thread(), worker_.id());
    EXPECT_NE(detail::last_kdf_thread(), std::this_thread::get_id());
}

TEST_F(FileVaultTest, HealthFollowsTheLastOperation) {
    EXPECT_FALSE(vault_.health().available);
    committed();
    ASSERT_TRUE(read().has_value());
    EXPECT_TRUE(vault_.health().available);
    EXPECT_TRUE(contains(vault_.health().detail, "generation 1")) << vault_.health().detail;
    ASSERT_TRUE(std::filesystem::remove(key_));
    EXPECT_FALSE(read().has_value());
    EXPECT_FALSE(vault_.health().available);
    EXPECT_TRUE(contains(vault_.health().detail, key_.string())) << vault_.health().detail;
}

// ---- Blobs sealed under the key file (the agent's RSA key) ----

class SealedBlobTest : public FileVaultTest {
protected:
    crypto::secure_buffer material() {
        const std::string path = key_.string();
        auto m = ring_->run(read_key_file(path));
        EXPECT_TRUE(m.has_value()) << m.error();
        return m ? std::move(*m) : crypto::secure_buffer{};
    }
    const std::string plain_ = "-----BEGIN PRIVATE KEY----- not really, a test blob";
};

TEST_F(SealedBlobTest, RoundTripsForItsPurposeOnly) {
    const auto m = material();
    ASSERT_EQ(m.size(), 32U);
    auto blob = seal_with_key_file(m, "agent-key", as_bytes(plain_), kdf_kind::argon2id, "agent.key.enc");
    ASSERT_TRUE(blob.has_value()) << blob.error();
    const std::string text(reinterpret_cast<const char*>(blob->data()), blob->size());
    EXPECT_FALSE(contains(text, "not really"));
    auto back = open_with_key_file(m, "agent-key", *blob, "agent.key.enc");
    ASSERT_TRUE(back.has_value()) << back.error();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(back->data()), back->size()), plain_);
    auto other = open_with_key_file(m, "agent-key2", *blob, "agent.key.enc");
    ASSERT_FALSE(other.has_value());
    EXPECT_EQ(other.error(), "agent.key.enc: authentication failed (wrong key file?)");
    auto pb = seal_with_key_file(m, "agent-key", as_bytes(plain_), kdf_kind::pbkdf2_sha256, "agent.key.enc");
    ASSERT_TRUE(pb.has_value()) << pb.error();
    EXPECT_TRUE(open_with_key_file(m, "agent-key", *pb, "agent.key.enc").has_value());
}

TEST_F(SealedBlobTest, ABlobIsNeverTakenForSecretEncNorTheReverse) {
    committed();
    const auto m = material();
    const std::string secret_enc = read_all(enc_);
    // secret.enc handed to the blob opener: wrong magic.
    auto opened = open_with_key_file(m, "", as_bytes(secret_enc), "x");
    ASSERT_FALSE(opened.has_value());
    EXPECT_TRUE(contains(opened.error(), "bad magic")) << opened.error();
    // A blob put in place of secret.enc: wrong magic; with the magic and version forged, the
    // authenticated header no longer matches.
    auto blob = seal_with_key_file(m, "", as_bytes(plain_), kdf_kind::argon2id, "blob");
    ASSERT_TRUE(blob.has_value()) << blob.error();
    std::string forged(reinterpret_cast<const char*>(blob->data()), blob->size());
    write_all(enc_, forged);
    EXPECT_TRUE(contains(read_error(), "bad magic"));
    forged[3] = 'E';
    forged[4] = '\x02';
    write_all(enc_, forged);
    EXPECT_EQ(read_error(), enc_.string() + ": authentication failed (wrong key file?)");
}

TEST_F(SealedBlobTest, ReadKeyFileRefusesAWideModeAndNamesAMissingFile) {
    ASSERT_EQ(::chmod(key_.c_str(), 0604), 0);
    const std::string path = key_.string();
    auto r = ring_->run(read_key_file(path));
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(contains(r.error(), "refusing")) << r.error();
    const std::string missing = (dir_ / "nope.key").string();
    auto n = ring_->run(read_key_file(missing));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error(), missing + ": the key file is missing");
}

}  // namespace
}  // namespace la::core

namespace la::core {
namespace {

class FileAgentKeyTest : public FileVaultTest {};

TEST_F(FileAgentKeyTest, ProvisionCreatesTheKeyOnceAndItDecryptsOaepToItsPublicKey) {
    const std::string key_file = key_.string();
    const std::string path = (dir_.path() / "agent-key.enc").string();
    auto first = ring_->run(provision_file_agent_key(key_file, path, kdf_kind::argon2id, worker_));
    ASSERT_TRUE(first.has_value()) << first.error();
    EXPECT_TRUE(first->created);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U);

    auto second = ring_->run(provision_file_agent_key(key_file, path, kdf_kind::argon2id, worker_));
    ASSERT_TRUE(second.has_value()) << second.error();
    EXPECT_FALSE(second->created);
    EXPECT_EQ(second->public_der, first->public_der);

    auto pub = crypto::rsa_public_key::from_der(
        std::as_bytes(std::span(first->public_der.data(), first->public_der.size())));
    ASSERT_TRUE(pub.has_value());
    const std::array<std::byte, 32> secret{std::byte{0x5A}, std::byte{0x17}};
    auto ct = pub->encrypt_oaep_sha256(secret);
    ASSERT_TRUE(ct.has_value());
    auto key = ring_->run(load_file_agent_key(key_file, path, worker_));
    ASSERT_TRUE(key.has_value()) << key.error();
    auto back = key->decrypt_oaep_sha256(std::as_bytes(std::span(ct->data(), ct->size())));
    ASSERT_TRUE(back.has_value());
    ASSERT_EQ(back->size(), secret.size());
    EXPECT_EQ(std::memcmp(back->data(), secret.data(), secret.size()), 0);

    // At rest the private key is sealed: its DER does not appear in the file.
    auto der = key->to_der();
    ASSERT_TRUE(der.has_value());
    const std::string blob = read_all(path);
    const std::string_view der_text(reinterpret_cast<const char*>(der->data()), 64);
    EXPECT_EQ(blob.find(der_text.substr(32)), std::string::npos);
}

TEST_F(FileAgentKeyTest, AnAgentKeyBlobDoesNotOpenUnderAnotherKeyFile) {
    const std::string path = (dir_.path() / "agent-key.enc").string();
    ASSERT_TRUE(ring_->run(provision_file_agent_key(key_.string(), path, kdf_kind::pbkdf2_sha256, worker_)));
    encrypted_file_vault other(dir_.path() / "other.enc", dir_.path() / "other.key", kdf_kind::argon2id, worker_);
    ASSERT_TRUE(ring_->run(other.provision()));
    const std::string other_key = (dir_.path() / "other.key").string();
    auto opened = ring_->run(load_file_agent_key(other_key, path, worker_));
    ASSERT_FALSE(opened.has_value());
    EXPECT_TRUE(contains(opened.error(), "authentication failed")) << opened.error();
    EXPECT_TRUE(contains(opened.error(), path)) << opened.error();
}

}  // namespace
}  // namespace la::core
