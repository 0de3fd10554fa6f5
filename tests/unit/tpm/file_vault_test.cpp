// The encrypted-file secret backend: round trips, wrong keys, corruption, file modes, and
// that no file it writes contains a secret in any encoding.
#include "tpm/file_vault.hpp"

#include <sys/stat.h>

#include <array>
#include <cstddef>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/core/core_test_util.hpp"
#include "crypto/aes_gcm.hpp"
#include "crypto/base64url.hpp"

namespace la::core {
namespace {

using test::temp_dir;

// Two known test secrets (versions 1 and 2); never a real key.
std::array<std::byte, 32> secret_bytes(unsigned seed) {
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

std::string jwks_text() {
    return R"({"keys":[{"kty":"oct","kid":"1","k":")" + b64(secret_bytes(1)) +
           R"(","valid_from":1700000000,"valid_until":1800000000,"grace_until":1810000000,"state":"grace"},)" +
           R"({"kty":"oct","kid":"2","k":")" + b64(secret_bytes(2)) + R"(","state":"active"}]})";
}

std::span<const std::byte> as_bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_all(const std::filesystem::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

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

class EncryptedStoreTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(encrypted_file_store::create_key_file(key_)) << "create_key_file"; }

    // Saves the test JWK Set with the given KDF; returns the store.
    encrypted_file_store saved(kdf_kind kdf = kdf_kind::argon2id) {
        encrypted_file_store store(enc_, key_, kdf);
        const std::string text = jwks_text();
        const auto r = store.save(as_bytes(text));
        EXPECT_TRUE(r.has_value()) << r.error();
        return store;
    }

    std::string load_error() {
        encrypted_file_store store(enc_, key_);
        auto r = store.load();
        EXPECT_FALSE(r.has_value());
        return r ? std::string() : r.error();
    }

    temp_dir dir_;
    std::filesystem::path enc_ = dir_ / "secret.enc";
    std::filesystem::path key_ = dir_ / "fallback.key";
};

void expect_round_trip(encrypted_file_store& store) {
    auto set = store.load();
    ASSERT_TRUE(set.has_value()) << set.error();
    ASSERT_EQ(set->size(), 2U);
    for (const unsigned v : {1U, 2U}) {
        const auto want = crypto::aes256_gcm_key::create(secret_bytes(v));
        ASSERT_TRUE(want.has_value());
        const auto* got = set->find(v);
        ASSERT_NE(got, nullptr) << "version " << v;
        EXPECT_TRUE(same_key(*want, *got)) << "version " << v;
        EXPECT_TRUE(same_key(*got, *want)) << "version " << v;
    }
    EXPECT_FALSE(same_key(*set->find(1), *set->find(2)));
    // Dates and states survive the round trip.
    ASSERT_NE(set->meta(1), nullptr);
    EXPECT_EQ(set->meta(1)->state, secret_state::grace);
    EXPECT_EQ(set->meta(1)->valid_from, 1700000000);
    EXPECT_EQ(set->meta(1)->valid_until, 1800000000);
    EXPECT_EQ(set->meta(1)->grace_until, 1810000000);
    EXPECT_EQ(set->meta(2)->state, secret_state::active);
}

TEST_F(EncryptedStoreTest, KeyFileIsOwnerOnlyAndNeverReplaced) {
    struct stat st {};
    ASSERT_EQ(::stat(key_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U);
    const std::string before = read_all(key_);
    EXPECT_EQ(before.rfind("license-agent fallback key v1\n", 0), 0U) << before.size();
    const auto again = encrypted_file_store::create_key_file(key_);
    ASSERT_FALSE(again.has_value());
    EXPECT_NE(again.error().find(key_.string()), std::string::npos) << again.error();
    EXPECT_NE(again.error().find("already exists"), std::string::npos) << again.error();
    EXPECT_EQ(read_all(key_), before);
}

TEST_F(EncryptedStoreTest, RoundTripsWithArgon2id) {
    auto store = saved();
    EXPECT_EQ(store.backend(), "encrypted-file");
    encrypted_file_store fresh(enc_, key_);
    expect_round_trip(fresh);
}

TEST_F(EncryptedStoreTest, RoundTripsWithPbkdf2) {
    saved(kdf_kind::pbkdf2_sha256);
    // The reader takes the KDF from the file, whatever it would use for saving.
    encrypted_file_store fresh(enc_, key_, kdf_kind::argon2id);
    expect_round_trip(fresh);
}

TEST_F(EncryptedStoreTest, LoadJwksKeepsDatesAndStates) {
    auto store = saved();
    auto text = store.load_jwks();
    ASSERT_TRUE(text.has_value()) << text.error();
    const auto b = text->bytes();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), b.size()), jwks_text());
}

TEST_F(EncryptedStoreTest, SaveUsesFreshSaltAndNonce) {
    saved();
    const std::string first = read_all(enc_);
    saved();
    const std::string second = read_all(enc_);
    ASSERT_EQ(first.size(), second.size());
    EXPECT_NE(first.substr(20, 28), second.substr(20, 28));  // salt and nonce
    EXPECT_NE(first.substr(52), second.substr(52));          // ciphertext and tag
}

TEST_F(EncryptedStoreTest, WrongKeyFileFailsAuthentication) {
    saved();
    const auto other = dir_ / "other.key";
    ASSERT_TRUE(encrypted_file_store::create_key_file(other));
    encrypted_file_store store(enc_, other);
    auto r = store.load();
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), enc_.string() + ": authentication failed (wrong key file?)");
}

TEST_F(EncryptedStoreTest, RefusesKeyFileOpenToGroupOrOthers) {
    saved();
    ASSERT_EQ(::chmod(key_.c_str(), 0644), 0);
    const std::string e = load_error();
    EXPECT_NE(e.find(key_.string()), std::string::npos) << e;
    EXPECT_NE(e.find("refusing"), std::string::npos) << e;
    // save refuses too, and leaves secret.enc alone.
    const std::string before = read_all(enc_);
    encrypted_file_store store(enc_, key_);
    const std::string text = jwks_text();
    EXPECT_FALSE(store.save(as_bytes(text)).has_value());
    EXPECT_EQ(read_all(enc_), before);
}

TEST_F(EncryptedStoreTest, RefusesMalformedKeyFile) {
    saved();
    test::write_file(key_, "license-agent fallback key v1\nnot-base64!\n", 0600);
    std::string e = load_error();
    EXPECT_NE(e.find(key_.string()), std::string::npos) << e;
    EXPECT_NE(e.find("base64url of 32 bytes"), std::string::npos) << e;
    test::write_file(key_, "something else\n", 0600);
    e = load_error();
    EXPECT_NE(e.find("not a license-agent fallback key file"), std::string::npos) << e;
}

TEST_F(EncryptedStoreTest, TruncatedFileIsReportedAsTruncated) {
    saved();
    const std::string full = read_all(enc_);
    for (const std::size_t len : {std::size_t{0}, std::size_t{10}, std::size_t{52}, std::size_t{68},
                                  full.size() - 1}) {
        write_all(enc_, full.substr(0, len));
        const std::string e = load_error();
        EXPECT_NE(e.find(enc_.string() + ": truncated or corrupted"), std::string::npos) << len << ": " << e;
    }
    write_all(enc_, full + "x");
    EXPECT_NE(load_error().find("truncated or corrupted"), std::string::npos);
}

TEST_F(EncryptedStoreTest, CorruptedBytesAreRejectedClearly) {
    saved();
    const std::string full = read_all(enc_);
    auto with_byte = [&](std::size_t at, char value) {
        std::string s = full;
        s[at] = value;
        write_all(enc_, s);
        return load_error();
    };
    const auto flip = [&](std::size_t at) { return with_byte(at, static_cast<char>(full[at] ^ 0x01)); };
    EXPECT_NE(flip(0).find("bad magic"), std::string::npos);
    EXPECT_NE(flip(4).find("unsupported format version 0"), std::string::npos);
    EXPECT_NE(with_byte(5, 9).find("unknown KDF id 9"), std::string::npos);
    EXPECT_NE(flip(9).find("parameters out of range"), std::string::npos);  // t becomes 65538
    EXPECT_NE(flip(25).find("authentication failed"), std::string::npos);    // salt
    EXPECT_NE(flip(40).find("authentication failed"), std::string::npos);    // nonce
    EXPECT_NE(flip(60).find("authentication failed"), std::string::npos);    // ciphertext
    EXPECT_NE(flip(full.size() - 1).find("authentication failed"), std::string::npos);  // tag
}

TEST_F(EncryptedStoreTest, TamperedKdfParametersFailAuthentication) {
    saved();
    std::string s = read_all(enc_);
    ASSERT_EQ(s[11], '\x02');  // t = 2, big-endian at offset 8
    s[11] = '\x03';
    write_all(enc_, s);
    EXPECT_EQ(load_error(), enc_.string() + ": authentication failed (wrong key file?)");
}

TEST_F(EncryptedStoreTest, TamperedPbkdf2IterationsFailAuthentication) {
    saved(kdf_kind::pbkdf2_sha256);
    std::string s = read_all(enc_);
    s[11] = static_cast<char>(s[11] + 1);  // 600,000 -> 600,001 iterations
    write_all(enc_, s);
    EXPECT_NE(load_error().find("authentication failed (wrong key file?)"), std::string::npos);
}

TEST_F(EncryptedStoreTest, SaveRefusesInvalidSecretsAndKeepsTheOldFile) {
    saved();
    const std::string before = read_all(enc_);
    encrypted_file_store store(enc_, key_);
    const std::string bad = R"({"keys":[{"kty":"oct","kid":"01","k":"AAAA"}]})";
    auto r = store.save(as_bytes(bad));
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("(new secrets)"), std::string::npos) << r.error();
    EXPECT_EQ(read_all(enc_), before);
}

TEST_F(EncryptedStoreTest, NoFileWrittenContainsTheSecrets) {
    saved();
    saved(kdf_kind::pbkdf2_sha256);
    std::vector<std::string> needles;
    for (const unsigned v : {1U, 2U}) {
        const auto k = secret_bytes(v);
        needles.emplace_back(reinterpret_cast<const char*>(k.data()), k.size());
        needles.push_back(hex(k));
        needles.push_back(b64(k));
        // A prefix catches partial leaks (e.g. a truncated write of the plaintext).
        needles.push_back(b64(k).substr(0, 16));
    }
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
        ++files;
        const std::string data = read_all(entry.path());
        for (const auto& n : needles) EXPECT_EQ(data.find(n), std::string::npos) << entry.path();
        EXPECT_EQ(data.find("\"kty\""), std::string::npos) << entry.path();
    }
    // Only the key file and secret.enc: no temp files left behind.
    EXPECT_EQ(files, 2U);
}

TEST(WriteFileAtomicTest, ReplacesAndCreatesNewOnlyOnce) {
    temp_dir dir;
    const auto p = dir / "state";
    const std::string a = "first", b = "second";
    ASSERT_TRUE(write_file_atomic(p, as_bytes(a), write_mode::create_new));
    EXPECT_EQ(read_all(p), a);
    const auto again = write_file_atomic(p, as_bytes(b), write_mode::create_new);
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(read_all(p), a);
    ASSERT_TRUE(write_file_atomic(p, as_bytes(b)));
    EXPECT_EQ(read_all(p), b);
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(WriteFileAtomicTest, ReportsAMissingDirectoryByName) {
    temp_dir dir;
    const auto p = dir / "missing" / "file";
    const std::string a = "x";
    const auto r = write_file_atomic(p, as_bytes(a));
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find(p.string()), std::string::npos) << r.error();
}

}  // namespace
}  // namespace la::core
