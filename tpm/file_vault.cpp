#include "tpm/file_vault.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "core/detail/file.hpp"
#include "crypto/aes_gcm.hpp"
#include "crypto/base64url.hpp"
#include "crypto/kdf.hpp"
#include "crypto/random.hpp"

namespace la::core {
namespace {

using err = unexpected<std::string>;


// ---- secret.enc format v1 (integers big-endian; the whole header is the GCM AAD, so any
// change to the KDF id, its parameters, the salt, the nonce or the length fails the tag) ----
//   0  magic "LASE"          4  format version (1)   5  KDF id (kdf_kind)   6  u16 reserved (0)
//   8  u32 p1  12 u32 p2  16 u32 p3   (argon2id: t, m KiB, p; pbkdf2-sha256: iterations, 0, 0)
//  20  salt[16]  36  nonce[12]  48  u32 ciphertext length
//  52  ciphertext  then  tag[16]
constexpr std::array<std::byte, 4> magic{std::byte{'L'}, std::byte{'A'}, std::byte{'S'}, std::byte{'E'}};
constexpr std::uint8_t format_version = 1;
constexpr std::size_t salt_size = 16;
constexpr std::size_t nonce_size = 12;
constexpr std::size_t tag_size = 16;
constexpr std::size_t header_size = 52;
constexpr std::size_t key_size = 32;
// A JWK Set of at most secret_set::capacity secrets with dates is a few KiB.
constexpr std::size_t max_plaintext = 64 * 1024;

// Store parameters. Argon2id at the OWASP minimum (t=2, 19 MiB, p=1) keeps start-up fast and
// memory modest on POS terminals; the key material is 256 random bits, so the KDF's job is a
// fresh, file-bound KEK per save rather than stretching a weak password.
constexpr std::uint32_t argon2_t = 2;
constexpr std::uint32_t argon2_m_kib = 19 * 1024;
constexpr std::uint32_t argon2_p = 1;
constexpr std::uint32_t pbkdf2_iterations = 600'000;

// Bounds accepted on load: never below the store's parameters, and a corrupted header
// cannot make us allocate gigabytes or spin for minutes before the tag check.
constexpr std::uint32_t argon2_max_t = 10;
constexpr std::uint32_t argon2_max_m_kib = 1024 * 1024;
constexpr std::uint32_t argon2_max_p = 8;
constexpr std::uint32_t pbkdf2_max_iterations = 10'000'000;

// Key file: a header line naming the format, then base64url of the key material.
constexpr std::string_view key_file_header = "license-agent fallback key v1\n";

struct kdf_header {
    std::uint8_t kdf = 0;
    std::uint32_t p1 = 0, p2 = 0, p3 = 0;
    std::array<std::byte, salt_size> salt{};
    std::array<std::byte, nonce_size> nonce{};
    std::uint32_t ct_len = 0;
};

void put_u32(std::byte* p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (24 - 8 * i));
}

std::uint32_t get_u32(const std::byte* p) noexcept {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | std::to_integer<std::uint32_t>(p[i]);
    return v;
}

void encode_header(const kdf_header& h, std::span<std::byte, header_size> out) noexcept {
    std::memcpy(out.data(), magic.data(), magic.size());
    out[4] = std::byte{format_version};
    out[5] = std::byte{h.kdf};
    out[6] = out[7] = std::byte{0};
    put_u32(out.data() + 8, h.p1);
    put_u32(out.data() + 12, h.p2);
    put_u32(out.data() + 16, h.p3);
    std::memcpy(out.data() + 20, h.salt.data(), salt_size);
    std::memcpy(out.data() + 36, h.nonce.data(), nonce_size);
    put_u32(out.data() + 48, h.ct_len);
}

// Parses and range-checks the header; the file size must match the stated length exactly.
expected<kdf_header, std::string> decode_header(std::span<const std::byte> file, std::string_view name) {
    if (file.size() < header_size + tag_size)
        return err(fmt::format("{}: truncated or corrupted ({} bytes, shorter than any valid file)", name,
                               file.size()));
    if (std::memcmp(file.data(), magic.data(), magic.size()) != 0)
        return err(fmt::format("{}: not a license-agent encrypted secret file (bad magic)", name));
    const auto version = std::to_integer<unsigned>(file[4]);
    if (version != format_version) return err(fmt::format("{}: unsupported format version {}", name, version));
    if (file[6] != std::byte{0} || file[7] != std::byte{0})
        return err(fmt::format("{}: corrupted header (reserved bytes set)", name));
    kdf_header h;
    h.kdf = std::to_integer<std::uint8_t>(file[5]);
    h.p1 = get_u32(file.data() + 8);
    h.p2 = get_u32(file.data() + 12);
    h.p3 = get_u32(file.data() + 16);
    std::memcpy(h.salt.data(), file.data() + 20, salt_size);
    std::memcpy(h.nonce.data(), file.data() + 36, nonce_size);
    h.ct_len = get_u32(file.data() + 48);
    const std::size_t want = header_size + std::size_t{h.ct_len} + tag_size;
    if (h.ct_len == 0 || h.ct_len > max_plaintext || file.size() != want)
        return err(fmt::format("{}: truncated or corrupted ({} bytes, header says {})", name, file.size(), want));
    switch (static_cast<kdf_kind>(h.kdf)) {
        case kdf_kind::argon2id:
            if (h.p1 < argon2_t || h.p1 > argon2_max_t || h.p2 < argon2_m_kib || h.p2 > argon2_max_m_kib ||
                h.p3 < 1 || h.p3 > argon2_max_p)
                return err(fmt::format("{}: corrupted header (Argon2id parameters out of range: t={} m={} KiB p={})",
                                       name, h.p1, h.p2, h.p3));
            return h;
        case kdf_kind::pbkdf2_sha256:
            if (h.p1 < pbkdf2_iterations || h.p1 > pbkdf2_max_iterations || h.p2 != 0 || h.p3 != 0)
                return err(fmt::format("{}: corrupted header (PBKDF2 parameters out of range: {} iterations)", name,
                                       h.p1));
            return h;
    }
    return err(fmt::format("{}: unknown KDF id {}", name, h.kdf));
}

// The 32 bytes of key material from the owner-only key file, in secure memory.
expected<crypto::secure_buffer, std::string> read_key_material(const std::filesystem::path& path) {
    const std::string name = path.string();
    auto text = LA_TRY(detail::read_secret_file(path));
    const std::span<const std::byte> bytes = text.bytes();
    const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (view.substr(0, key_file_header.size()) != key_file_header)
        return err(fmt::format("{}: not a license-agent fallback key file (first line must be \"{}\")", name,
                               key_file_header.substr(0, key_file_header.size() - 1)));
    std::string_view b64 = view.substr(key_file_header.size());
    if (!b64.empty() && b64.back() == '\n') b64.remove_suffix(1);
    auto key = crypto::secure_buffer::allocate(key_size + 1);
    if (!key) return err(fmt::format("{}: cannot allocate secure memory: {}", name, key.error().message()));
    // The key text never appears in an error message.
    const auto n = crypto::base64url_decode(b64, key->bytes());
    if (!n || *n != key_size)
        return err(fmt::format("{}: the second line must be base64url of {} bytes", name, key_size));
    return std::move(*key);
}

// KEK = KDF(key material, salt) with the header's parameters, in secure memory.
expected<crypto::secure_buffer, std::string> derive_kek(const crypto::secure_buffer& material, const kdf_header& h,
                                                        std::string_view name) {
    auto kek = crypto::secure_buffer::allocate(key_size);
    if (!kek) return err(fmt::format("{}: cannot allocate secure memory: {}", name, kek.error().message()));
    const auto password = material.bytes().first(key_size);
    const auto r = static_cast<kdf_kind>(h.kdf) == kdf_kind::argon2id
                       ? crypto::argon2id(password, h.salt, h.p1, h.p2, h.p3, kek->bytes())
                       : crypto::pbkdf2_sha256(password, h.salt, h.p1, kek->bytes());
    if (!r) return err(fmt::format("{}: key derivation failed: {}", name, r.error().message()));
    return std::move(*kek);
}

// Closes a descriptor on every path.
class unique_fd {
public:
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }
    int get() const noexcept { return fd_; }
    // Closes now; returns close's result so write errors reported at close are not lost.
    int reset() noexcept {
        const int r = fd_ >= 0 ? ::close(fd_) : 0;
        fd_ = -1;
        return r;
    }

private:
    int fd_;
};

// Unlinks the temp file unless the write completed.
class temp_file_guard {
public:
    explicit temp_file_guard(std::string path) : path_(std::move(path)) {}
    temp_file_guard(const temp_file_guard&) = delete;
    temp_file_guard& operator=(const temp_file_guard&) = delete;
    ~temp_file_guard() {
        if (armed_) ::unlink(path_.c_str());
    }
    void disarm() noexcept { armed_ = false; }

private:
    std::string path_;
    bool armed_ = true;
};

std::string errno_text(std::string_view name, std::string_view what) {
    return fmt::format("{}: {}: {}", name, what, std::strerror(errno));
}

}  // namespace

expected<void, std::string> write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> data,
                                              write_mode mode) {
    const std::string name = path.string();
    std::string tmp = name + ".tmp-XXXXXX";
    // mkostemp creates the file with mode 0600 and O_EXCL.
    unique_fd fd(::mkostemp(tmp.data(), O_CLOEXEC));
    if (fd.get() < 0) return err(errno_text(name, "cannot create a temp file next to it"));
    temp_file_guard guard(tmp);
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t w = ::write(fd.get(), data.data() + done, data.size() - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return err(errno_text(name, "write failed"));
        }
        done += static_cast<std::size_t>(w);
    }
    if (::fsync(fd.get()) != 0) return err(errno_text(name, "fsync failed"));
    if (fd.reset() != 0) return err(errno_text(name, "close failed"));
    if (mode == write_mode::replace) {
        if (::rename(tmp.c_str(), name.c_str()) != 0) return err(errno_text(name, "rename failed"));
        guard.disarm();
    } else {
        // link() never replaces: an existing file is refused atomically.
        if (::link(tmp.c_str(), name.c_str()) != 0) {
            if (errno == EEXIST) return err(fmt::format("{}: already exists; refusing to replace it", name));
            return err(errno_text(name, "link failed"));
        }
        // The guard unlinks the temp name; the data lives on under path.
    }
    const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    unique_fd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) return err(errno_text(name, "cannot open its directory"));
    if (::fsync(dir.get()) != 0) return err(errno_text(name, "directory fsync failed"));
    return {};
}

expected<crypto::secure_buffer, std::string> encrypted_file_store::load_jwks() {
    const std::string name = enc_file_.string();
    const auto material = LA_TRY(read_key_material(key_file_));
    const std::string file = LA_TRY(detail::read_file(enc_file_, detail::file_access::shared));
    const auto bytes = std::as_bytes(std::span<const char>(file.data(), file.size()));
    const kdf_header h = LA_TRY(decode_header(bytes, name));
    const auto kek = LA_TRY(derive_kek(material, h, name));
    auto key = crypto::aes256_gcm_key::create(kek.bytes());
    if (!key) return err(fmt::format("{}: cannot load the derived key: {}", name, key.error().message()));
    auto plain = crypto::secure_buffer::allocate(h.ct_len);
    if (!plain) return err(fmt::format("{}: cannot allocate secure memory: {}", name, plain.error().message()));
    const auto ct = bytes.subspan(header_size, h.ct_len);
    const auto r = key->decrypt(h.nonce, bytes.first(header_size), ct,
                                bytes.subspan(header_size + h.ct_len).first<tag_size>(), plain->bytes());
    if (!r) {
        if (r.error() == make_error_code(errc::auth_failed))
            return err(fmt::format("{}: authentication failed (wrong key file?)", name));
        return err(fmt::format("{}: decryption failed: {}", name, r.error().message()));
    }
    return std::move(*plain);
}

expected<secret_set, std::string> encrypted_file_store::load() {
    auto plain = LA_TRY(load_jwks());
    const std::span<std::byte> bytes = plain.bytes();
    // Parsed in place inside the secure buffer, which its destructor wipes.
    return parse_secrets({reinterpret_cast<char*>(bytes.data()), bytes.size()}, enc_file_.string());
}

expected<void, std::string> encrypted_file_store::save(std::span<const std::byte> jwks) {
    const std::string name = enc_file_.string();
    if (jwks.empty() || jwks.size() > max_plaintext)
        return err(fmt::format("{}: the secrets document must be 1 to {} bytes", name, max_plaintext));
    {
        // Refuse to write what load() could not read; the scratch copy is wiped on scope exit.
        auto scratch = crypto::secure_buffer::allocate(jwks.size());
        if (!scratch)
            return err(fmt::format("{}: cannot allocate secure memory: {}", name, scratch.error().message()));
        std::memcpy(scratch->data(), jwks.data(), jwks.size());
        auto parsed = parse_secrets({reinterpret_cast<char*>(scratch->data()), scratch->size()},
                                    fmt::format("{} (new secrets)", name));
        if (!parsed) return err(std::move(parsed.error()));
    }
    const auto material = LA_TRY(read_key_material(key_file_));

    kdf_header h;
    h.kdf = static_cast<std::uint8_t>(kdf_);
    if (kdf_ == kdf_kind::argon2id) {
        h.p1 = argon2_t;
        h.p2 = argon2_m_kib;
        h.p3 = argon2_p;
    } else {
        h.p1 = pbkdf2_iterations;
    }
    h.ct_len = static_cast<std::uint32_t>(jwks.size());
    // A fresh salt gives a fresh KEK per save, so the random nonce is never reused under a key.
    if (auto r = crypto::random_bytes(h.salt); !r)
        return err(fmt::format("{}: getrandom failed: {}", name, r.error().message()));
    if (auto r = crypto::random_bytes(h.nonce); !r)
        return err(fmt::format("{}: getrandom failed: {}", name, r.error().message()));
    const auto kek = LA_TRY(derive_kek(material, h, name));
    auto key = crypto::aes256_gcm_key::create(kek.bytes());
    if (!key) return err(fmt::format("{}: cannot load the derived key: {}", name, key.error().message()));

    std::vector<std::byte> out(header_size + jwks.size() + tag_size);
    const std::span<std::byte> all(out);
    encode_header(h, all.first<header_size>());
    const auto r = key->encrypt(h.nonce, all.first(header_size), jwks,
                                all.subspan(header_size + jwks.size()).first<tag_size>(),
                                all.subspan(header_size, jwks.size()));
    if (!r) return err(fmt::format("{}: encryption failed: {}", name, r.error().message()));
    return write_file_atomic(enc_file_, out, write_mode::replace);
}

expected<void, std::string> encrypted_file_store::create_key_file(const std::filesystem::path& path) {
    const std::string name = path.string();
    auto raw = crypto::secure_buffer::allocate(key_size);
    if (!raw) return err(fmt::format("{}: cannot allocate secure memory: {}", name, raw.error().message()));
    if (auto r = crypto::random_bytes(raw->bytes()); !r)
        return err(fmt::format("{}: getrandom failed: {}", name, r.error().message()));
    constexpr std::size_t b64_size = crypto::base64url_encoded_size(key_size);
    auto text = crypto::secure_buffer::allocate(key_file_header.size() + b64_size + 1);
    if (!text) return err(fmt::format("{}: cannot allocate secure memory: {}", name, text.error().message()));
    const std::span<std::byte> t = text->bytes();
    std::memcpy(t.data(), key_file_header.data(), key_file_header.size());
    const std::span<char> b64(reinterpret_cast<char*>(t.data() + key_file_header.size()), b64_size);
    LA_CHECK(crypto::base64url_encode(raw->bytes(), b64) == b64_size);
    t.back() = std::byte{'\n'};
    return write_file_atomic(path, t, write_mode::create_new);
}

}  // namespace la::core
