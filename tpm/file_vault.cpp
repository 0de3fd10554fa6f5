#include "tpm/file_vault.hpp"

#include <fcntl.h>
#include <stdio.h>  // RENAME_NOREPLACE
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "crypto/aes_gcm.hpp"
#include "crypto/base64url.hpp"
#include "crypto/kdf.hpp"
#include "crypto/random.hpp"
#include "io/atomic_file.hpp"
#include "io/crash_point.hpp"
#include "io/ops.hpp"

namespace la::core {

/// secret.enc as read and decrypted by one operation; dropped (and wiped) when it ends.
struct encrypted_file_vault::current {
    bool exists = false;                // secret.enc was there
    std::vector<std::byte> file;        // its bytes as read: restored if a commit must be undone
    crypto::secure_buffer material;     // the key file's 32 bytes (empty when not needed)
    crypto::secure_buffer plain;        // the decrypted content (empty when !exists)
    vault_metadata meta;                // parsed from plain (generation 0 when !exists)
};

namespace {

using err = unexpected<std::string>;

// ---- Sealed files (integers big-endian). The whole header (and a blob's purpose) is the GCM
// AAD, so any change to the magic, the KDF id, its parameters, the salt, the nonce or the
// length fails the tag. ----
//   0  magic[4]   4  format version   5  KDF id (kdf_kind)   6  u16 reserved (0)
//   8  u32 p1  12 u32 p2  16 u32 p3   (argon2id: t, m KiB, p; pbkdf2-sha256: iterations, 0, 0)
//  20  salt[16]  36  nonce[12]  48  u32 ciphertext length
//  52  ciphertext  then  tag[16]
// secret.enc: magic "LASE", format 2 (format 1 held a JWK Set), AAD = header.
// Blobs:      magic "LASB", format 1, AAD = header || purpose. The magic keeps the two apart.
struct file_kind {
    std::array<std::byte, 4> magic;
    std::uint8_t version;
    std::string_view what;  // completes "not a ..." when the magic is wrong
};
constexpr file_kind secret_file{{std::byte{'L'}, std::byte{'A'}, std::byte{'S'}, std::byte{'E'}},
                                2,
                                "license-agent encrypted secret file"};
constexpr file_kind blob_file{{std::byte{'L'}, std::byte{'A'}, std::byte{'S'}, std::byte{'B'}},
                              1,
                              "license-agent sealed blob"};

constexpr std::size_t salt_size = 16;
constexpr std::size_t nonce_size = 12;
constexpr std::size_t tag_size = 16;
constexpr std::size_t header_size = 52;
constexpr std::size_t key_size = 32;
// secret.enc holds at most secret_set::capacity entries (about 1 KiB); an RSA key is ~2 KiB.
constexpr std::size_t max_plaintext = 64 * 1024;
constexpr std::size_t max_sealed = header_size + max_plaintext + tag_size;

// ---- secret.enc content (format 2, big-endian), the plaintext ----
//   0  u64 generation   8  u64 highest_version   16  u32 count   20  count entries of 72 bytes:
//   +0 u64 version  +8 i64 valid_from  +16 i64 valid_until  +24 i64 grace_until
//   +32 u8 state  +33 u8 has_key  +34 six zero bytes  +40 key[32] (zeros without a key)
// Binary rather than JSON so that the keys are copied straight between secure buffers.
constexpr std::size_t content_head = 20;
constexpr std::size_t entry_size = 72;
constexpr std::size_t entry_key_at = 40;

// Store parameters. Argon2id at the OWASP minimum (t=2, 19 MiB, p=1) keeps start-up fast and
// memory modest on POS terminals; the key material is 256 random bits, so the KDF's job is a
// fresh, file-bound KEK per write rather than stretching a weak password.
constexpr std::uint32_t argon2_t = 2;
constexpr std::uint32_t argon2_m_kib = 19 * 1024;
constexpr std::uint32_t argon2_p = 1;
constexpr std::uint32_t pbkdf2_iterations = 600'000;

// Bounds accepted when reading: never below the store's parameters, and a corrupted header
// cannot make us allocate gigabytes or spin for minutes before the tag check.
constexpr std::uint32_t argon2_max_t = 10;
constexpr std::uint32_t argon2_max_m_kib = 1024 * 1024;
constexpr std::uint32_t argon2_max_p = 8;
constexpr std::uint32_t pbkdf2_max_iterations = 10'000'000;

// Key file: a header line naming the format, then base64url of the key material.
constexpr std::string_view key_file_header = "license-agent fallback key v1\n";
constexpr std::size_t key_file_size = key_file_header.size() + crypto::base64url_encoded_size(key_size) + 1;
constexpr std::size_t max_key_file = 256;

std::atomic<std::thread::id> last_kdf_thread_id{};

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

void put_u64(std::byte* p, std::uint64_t v) noexcept {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (56 - 8 * i));
}

std::uint64_t get_u64(const std::byte* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
    return v;
}

void encode_header(const file_kind& kind, const kdf_header& h, std::span<std::byte, header_size> out) noexcept {
    std::memcpy(out.data(), kind.magic.data(), kind.magic.size());
    out[4] = std::byte{kind.version};
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
expected<kdf_header, std::string> decode_header(const file_kind& kind, std::span<const std::byte> file,
                                                std::string_view name) {
    if (file.size() < header_size + tag_size)
        return err(fmt::format("{}: truncated or corrupted ({} bytes, shorter than any valid file)", name,
                               file.size()));
    if (std::memcmp(file.data(), kind.magic.data(), kind.magic.size()) != 0)
        return err(fmt::format("{}: not a {} (bad magic)", name, kind.what));
    const auto version = std::to_integer<unsigned>(file[4]);
    if (version != kind.version) return err(fmt::format("{}: unsupported format version {}", name, version));
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

// KEK = KDF(key material, salt) with the header's parameters, in secure memory. Slow on purpose:
// callers run it on a worker thread.
expected<crypto::secure_buffer, std::string> derive_kek(const crypto::secure_buffer& material, const kdf_header& h,
                                                        std::string_view name) {
    last_kdf_thread_id.store(std::this_thread::get_id(), std::memory_order_relaxed);
    if (material.size() != key_size)
        return err(fmt::format("{}: the key material must be {} bytes", name, key_size));
    auto kek = crypto::secure_buffer::allocate(key_size);
    if (!kek) return err(fmt::format("{}: cannot allocate secure memory: {}", name, kek.error().message()));
    const auto r = static_cast<kdf_kind>(h.kdf) == kdf_kind::argon2id
                       ? crypto::argon2id(material.bytes(), h.salt, h.p1, h.p2, h.p3, kek->bytes())
                       : crypto::pbkdf2_sha256(material.bytes(), h.salt, h.p1, kek->bytes());
    if (!r) return err(fmt::format("{}: key derivation failed: {}", name, r.error().message()));
    return std::move(*kek);
}

// The AAD: the header alone, or the header followed by the purpose (blobs).
// (One allocation and two memcpys: GCC 12 -O2 misreads vector::insert of an empty span here as
// an out-of-bounds copy, -Warray-bounds.)
std::vector<std::byte> make_aad(std::span<const std::byte> header, std::string_view purpose) {
    std::vector<std::byte> aad(header.size() + purpose.size());
    if (!header.empty()) std::memcpy(aad.data(), header.data(), header.size());
    if (!purpose.empty()) std::memcpy(aad.data() + header.size(), purpose.data(), purpose.size());
    return aad;
}

// Encrypts plain under a fresh salt (hence a fresh KEK) and a fresh nonce.
expected<std::vector<std::byte>, std::string> seal_raw(const file_kind& kind, const crypto::secure_buffer& material,
                                                       std::span<const std::byte> plain, std::string_view purpose,
                                                       kdf_kind kdf, std::string_view name) {
    if (plain.empty() || plain.size() > max_plaintext)
        return err(fmt::format("{}: the content to seal must be 1 to {} bytes", name, max_plaintext));
    kdf_header h;
    h.kdf = static_cast<std::uint8_t>(kdf);
    if (kdf == kdf_kind::argon2id) {
        h.p1 = argon2_t;
        h.p2 = argon2_m_kib;
        h.p3 = argon2_p;
    } else {
        h.p1 = pbkdf2_iterations;
    }
    h.ct_len = static_cast<std::uint32_t>(plain.size());
    // A fresh salt gives a fresh KEK per write, so the random nonce is never reused under a key.
    if (auto r = crypto::random_bytes(h.salt); !r)
        return err(fmt::format("{}: getrandom failed: {}", name, r.error().message()));
    if (auto r = crypto::random_bytes(h.nonce); !r)
        return err(fmt::format("{}: getrandom failed: {}", name, r.error().message()));
    const auto kek = LA_TRY(derive_kek(material, h, name));
    auto key = crypto::aes256_gcm_key::create(kek.bytes());
    if (!key) return err(fmt::format("{}: cannot load the derived key: {}", name, key.error().message()));

    std::vector<std::byte> out(header_size + plain.size() + tag_size);
    const std::span<std::byte> all(out);
    encode_header(kind, h, all.first<header_size>());
    const std::vector<std::byte> aad = make_aad(all.first(header_size), purpose);
    const auto r = key->encrypt(h.nonce, aad, plain, all.subspan(header_size + plain.size()).first<tag_size>(),
                                all.subspan(header_size, plain.size()));
    if (!r) return err(fmt::format("{}: encryption failed: {}", name, r.error().message()));
    return out;
}

// Checks and decrypts a sealed file into secure memory.
expected<crypto::secure_buffer, std::string> open_raw(const file_kind& kind, const crypto::secure_buffer& material,
                                                      std::span<const std::byte> file, std::string_view purpose,
                                                      std::string_view name) {
    const kdf_header h = LA_TRY(decode_header(kind, file, name));
    const auto kek = LA_TRY(derive_kek(material, h, name));
    auto key = crypto::aes256_gcm_key::create(kek.bytes());
    if (!key) return err(fmt::format("{}: cannot load the derived key: {}", name, key.error().message()));
    auto plain = crypto::secure_buffer::allocate(h.ct_len);
    if (!plain) return err(fmt::format("{}: cannot allocate secure memory: {}", name, plain.error().message()));
    const std::vector<std::byte> aad = make_aad(file.first(header_size), purpose);
    const auto r = key->decrypt(h.nonce, aad, file.subspan(header_size, h.ct_len),
                                file.subspan(header_size + h.ct_len).first<tag_size>(), plain->bytes());
    if (!r) {
        if (r.error() == make_error_code(errc::auth_failed))
            return err(fmt::format("{}: authentication failed (wrong key file?)", name));
        return err(fmt::format("{}: decryption failed: {}", name, r.error().message()));
    }
    return std::move(*plain);
}

// ---- secret.enc content ----

std::span<const std::byte> entry_at(std::span<const std::byte> plain, std::size_t i) noexcept {
    return plain.subspan(content_head + i * entry_size, entry_size);
}

// Parses and checks the content; keys stay where they are (see find_key).
expected<vault_metadata, std::string> parse_content(std::span<const std::byte> plain, std::string_view name) {
    const auto corrupt = [name](std::string_view why) {
        return err(fmt::format("{}: corrupted content ({})", name, why));
    };
    if (plain.size() < content_head) return corrupt("shorter than its header");
    vault_metadata m;
    m.generation = get_u64(plain.data());
    m.highest_version = get_u64(plain.data() + 8);
    const std::uint32_t count = get_u32(plain.data() + 16);
    if (count > secret_set::capacity) return corrupt(fmt::format("{} secrets, more than {}", count, secret_set::capacity));
    if (plain.size() != content_head + std::size_t{count} * entry_size) return corrupt("length does not match the count");
    for (std::size_t i = 0; i < count; ++i) {
        const auto e = entry_at(plain, i);
        secret_entry s;
        s.version = get_u64(e.data());
        s.meta.valid_from = static_cast<std::int64_t>(get_u64(e.data() + 8));
        s.meta.valid_until = static_cast<std::int64_t>(get_u64(e.data() + 16));
        s.meta.grace_until = static_cast<std::int64_t>(get_u64(e.data() + 24));
        const auto state = std::to_integer<unsigned>(e[32]);
        const auto has_key = std::to_integer<unsigned>(e[33]);
        if (state > static_cast<unsigned>(secret_state::expired)) return corrupt("unknown secret state");
        s.meta.state = static_cast<secret_state>(state);
        if (has_key > 1 || std::any_of(e.begin() + 34, e.begin() + entry_key_at, [](std::byte b) { return b != std::byte{0}; }))
            return corrupt("reserved bytes set");
        if (s.version == 0 || (!m.secrets.empty() && s.version <= m.secrets.back().version))
            return corrupt("versions not in increasing order");
        if (s.version > m.highest_version) return corrupt("a version above highest_version");
        m.secrets.push_back(s);
    }
    return m;
}

// The key of `version` in parsed content, or an empty span (unknown, or kept without a key).
std::span<const std::byte> find_key(std::span<const std::byte> plain, std::uint64_t version) noexcept {
    if (plain.size() < content_head) return {};
    const std::size_t count = (plain.size() - content_head) / entry_size;
    for (std::size_t i = 0; i < count; ++i) {
        const auto e = entry_at(plain, i);
        if (get_u64(e.data()) == version)
            return e[33] == std::byte{1} ? e.subspan(entry_key_at, key_size) : std::span<const std::byte>{};
    }
    return {};
}

const new_secret* find_added(std::span<const new_secret> added, std::uint64_t version) noexcept {
    for (const auto& a : added)
        if (a.version == version) return &a;
    return nullptr;
}

// stage()'s checks, repeated by commit(): what the caller hands in, before any file is read.
expected<void, std::string> check_added(std::span<const new_secret> added, std::string_view name) {
    if (added.size() > secret_set::capacity)
        return err(fmt::format("{}: {} new secrets, more than {}", name, added.size(), secret_set::capacity));
    for (std::size_t i = 0; i < added.size(); ++i) {
        const new_secret& a = added[i];
        if (a.version == 0) return err(fmt::format("{}: a new secret has version 0", name));
        if (a.key.size() != key_size)
            return err(fmt::format("{}: new secret version {}: the key must be {} bytes, not {}", name, a.version,
                                   key_size, a.key.size()));
        for (std::size_t j = 0; j < i; ++j)
            if (added[j].version == a.version)
                return err(fmt::format("{}: new secret version {} given twice", name, a.version));
    }
    return {};
}

// commit()'s checks of `next` against the file as it stands.
expected<void, std::string> check_next(const vault_metadata& cur, std::span<const std::byte> cur_plain,
                                       const vault_metadata& next, std::span<const new_secret> added,
                                       std::string_view name) {
    if (next.generation <= cur.generation)
        return err(fmt::format("{}: refusing generation {}: the file is at generation {} and generations only increase",
                               name, next.generation, cur.generation));
    if (next.secrets.size() > secret_set::capacity)
        return err(fmt::format("{}: {} secrets, more than {}", name, next.secrets.size(), secret_set::capacity));
    if (next.highest_version < cur.highest_version)
        return err(fmt::format("{}: highest_version {} is below the committed {}", name, next.highest_version,
                               cur.highest_version));
    for (std::size_t i = 0; i < next.secrets.size(); ++i) {
        const secret_entry& e = next.secrets[i];
        if (e.version == 0 || (i > 0 && e.version <= next.secrets[i - 1].version))
            return err(fmt::format("{}: the secrets must be listed once each by increasing non-zero version", name));
        if (e.version > next.highest_version)
            return err(fmt::format("{}: secret version {} is above highest_version {}", name, e.version,
                                   next.highest_version));
        if (find_added(added, e.version) != nullptr || e.meta.state == secret_state::expired) continue;
        if (find_key(cur_plain, e.version).empty())
            return err(fmt::format("{}: kept secret version {} has no key in the file", name, e.version));
    }
    for (const new_secret& a : added) {
        if (a.version <= cur.highest_version)
            return err(fmt::format("{}: new secret version {} is not above the highest version ever committed ({}): "
                                   "a version is never reused",
                                   name, a.version, cur.highest_version));
        const bool listed = std::any_of(next.secrets.begin(), next.secrets.end(),
                                        [&a](const secret_entry& e) { return e.version == a.version; });
        if (!listed) return err(fmt::format("{}: new secret version {} is not in the new metadata", name, a.version));
    }
    return {};
}

// The content for `next`: kept keys copied from the current content, new ones from `added`,
// none for expired entries. Runs on the worker; checked by check_next beforehand.
expected<crypto::secure_buffer, std::string> encode_content(const vault_metadata& next,
                                                            std::span<const std::byte> cur_plain,
                                                            std::span<const new_secret> added, std::string_view name) {
    auto out = crypto::secure_buffer::allocate(content_head + next.secrets.size() * entry_size);
    if (!out) return err(fmt::format("{}: cannot allocate secure memory: {}", name, out.error().message()));
    const std::span<std::byte> b = out->bytes();
    put_u64(b.data(), next.generation);
    put_u64(b.data() + 8, next.highest_version);
    put_u32(b.data() + 16, static_cast<std::uint32_t>(next.secrets.size()));
    for (std::size_t i = 0; i < next.secrets.size(); ++i) {
        const secret_entry& s = next.secrets[i];
        std::byte* e = b.data() + content_head + i * entry_size;
        put_u64(e, s.version);
        put_u64(e + 8, static_cast<std::uint64_t>(s.meta.valid_from));
        put_u64(e + 16, static_cast<std::uint64_t>(s.meta.valid_until));
        put_u64(e + 24, static_cast<std::uint64_t>(s.meta.grace_until));
        e[32] = static_cast<std::byte>(s.meta.state);
        if (s.meta.state == secret_state::expired) continue;  // swept: the key leaves the disk too
        std::span<const std::byte> key;
        if (const new_secret* a = find_added(added, s.version)) key = a->key.bytes();
        else key = find_key(cur_plain, s.version);
        if (key.size() != key_size) return err(fmt::format("{}: secret version {} has no key", name, s.version));
        e[33] = std::byte{1};
        std::memcpy(e + entry_key_at, key.data(), key_size);
    }
    return std::move(*out);
}

// ---- Files through the executor ----

struct read_failure {
    bool missing = false;  // ENOENT at open
    std::string text;      // names the file
};

// Reads the whole regular file at `path_view` into `buf`; a file filling buf is refused as too
// large (give the bound plus one byte). owner_only refuses st_mode & 077 (checked on the
// opened descriptor, so the file checked is the file read). Returns the size.
io::task<expected<std::size_t, read_failure>> read_bounded(std::string_view path_view, std::span<std::byte> buf,
                                                            bool owner_only) {
    const std::string path(path_view);
    auto fd = co_await io::openat(AT_FDCWD, path.c_str(), O_RDONLY);
    if (!fd) {
        co_return unexpected<read_failure>(read_failure{fd.error() == std::errc::no_such_file_or_directory,
                                                        fmt::format("{}: cannot open: {}", path, fd.error().message())});
    }
    std::string problem;
    struct stat st {};
    // fstat on an open descriptor does no I/O: no need for the ring.
    if (::fstat(*fd, &st) != 0) {
        problem = fmt::format("{}: cannot stat: {}", path, std::strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        problem = fmt::format("{}: not a regular file", path);
    } else if (owner_only && (st.st_mode & 077) != 0) {
        problem = fmt::format("{}: refusing a file readable or writable by group or others (mode {:04o}); run chmod "
                              "600 on it",
                              path, st.st_mode & 07777);
    }
    std::size_t done = 0;
    while (problem.empty() && done < buf.size()) {
        auto n = co_await io::read(*fd, buf.subspan(done), static_cast<std::int64_t>(done));
        if (!n) problem = fmt::format("{}: read failed: {}", path, n.error().message());
        else if (*n == 0) break;
        else done += *n;
    }
    if (problem.empty() && done == buf.size())
        problem = fmt::format("{}: file too large (over {} bytes)", path, buf.size() - 1);
    auto closed = co_await io::close(*fd);
    if (problem.empty() && !closed) problem = fmt::format("{}: close failed: {}", path, closed.error().message());
    if (!problem.empty()) co_return unexpected<read_failure>(read_failure{false, std::move(problem)});
    co_return done;
}

// The 32 bytes of key material in a key file's text, in secure memory.
expected<crypto::secure_buffer, std::string> parse_key_text(std::span<const std::byte> bytes, std::string_view name) {
    const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (view.substr(0, key_file_header.size()) != key_file_header)
        return err(fmt::format("{}: not a license-agent fallback key file (first line must be \"{}\")", name,
                               key_file_header.substr(0, key_file_header.size() - 1)));
    std::string_view b64 = view.substr(key_file_header.size());
    if (!b64.empty() && b64.back() == '\n') b64.remove_suffix(1);
    auto key = crypto::secure_buffer::allocate(key_size);
    if (!key) return err(fmt::format("{}: cannot allocate secure memory: {}", name, key.error().message()));
    // The key text never appears in an error message.
    const auto n = crypto::base64url_decode(b64, key->bytes());
    if (!n || *n != key_size) return err(fmt::format("{}: the second line must be base64url of {} bytes", name, key_size));
    return std::move(*key);
}

io::task<expected<crypto::secure_buffer, read_failure>> read_key_material(std::string_view path) {
    auto text = crypto::secure_buffer::allocate(max_key_file + 1);
    if (!text) {
        co_return unexpected<read_failure>(read_failure{
            false, fmt::format("{}: cannot allocate secure memory: {}", path, text.error().message())});
    }
    auto n = co_await read_bounded(path, text->bytes(), true);
    if (!n) {
        if (n.error().missing) n.error().text = fmt::format("{}: the key file is missing", path);
        co_return unexpected<read_failure>(std::move(n.error()));
    }
    auto material = parse_key_text(text->bytes().first(*n), path);
    if (!material) co_return unexpected<read_failure>(read_failure{false, std::move(material.error())});
    co_return std::move(*material);
}

// fsyncs a directory, so that a rename or unlink in it is durable.
io::task<core::result<void>> sync_dir(std::string_view dir_view) {
    const std::string dir(dir_view);
    auto dfd = co_await io::openat(AT_FDCWD, dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (!dfd) co_return core::fail(dfd.error());
    auto synced = co_await io::fsync(*dfd);
    auto closed = co_await io::close(*dfd);
    if (!synced) co_return core::fail(synced.error());
    if (!closed) co_return core::fail(closed.error());
    co_return core::result<void>{};
}

// renameat2(RENAME_NOREPLACE) on the ring: io::renameat has no flags argument, and a key file
// must never be replaced (that would make secret.enc unreadable for good).
auto rename_noreplace(const char* from, const char* to) noexcept {
    return io::detail::make_op<io::detail::yields::nothing>(
        io::op_kind::rename,
        [from, to](io_uring_sqe* s) {
            io_uring_prep_renameat(s, AT_FDCWD, from, AT_FDCWD, to, static_cast<unsigned>(RENAME_NOREPLACE));
        },
        io::op_options{});
}

std::string parent_of(const std::filesystem::path& p) {
    return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

}  // namespace

encrypted_file_vault::encrypted_file_vault(std::filesystem::path enc_file, std::filesystem::path key_file,
                                           kdf_kind kdf, io::worker_thread& worker)
    : enc_file_(std::move(enc_file)),
      key_file_(std::move(key_file)),
      enc_path_(enc_file_.string()),
      key_path_(key_file_.string()),
      dir_(parent_of(enc_file_)),
      name_(enc_file_.filename().string()),
      kdf_(kdf),
      worker_(&worker),
      health_{false, fmt::format("encrypted file {}: not read yet", enc_path_)} {}

void encrypted_file_vault::set_health(bool ok, std::string detail) {
    health_.available = ok;
    health_.detail = std::move(detail);
}

io::task<expected<encrypted_file_vault::current, std::string>> encrypted_file_vault::open_current(bool need_key) {
    current c;
    std::vector<std::byte> buf(max_sealed + 1);
    auto n = co_await read_bounded(enc_path_, buf, false);
    if (!n && !n.error().missing) co_return err(std::move(n.error().text));
    c.exists = n.has_value();
    if (c.exists) {
        buf.resize(*n);
        c.file = std::move(buf);
    }
    if (!c.exists && !need_key) co_return std::move(c);
    auto material = co_await read_key_material(key_path_);
    if (!material) {
        if (c.exists) co_return err(fmt::format("{} (needed to decrypt {})", material.error().text, enc_path_));
        co_return err(std::move(material.error().text));
    }
    c.material = std::move(*material);
    if (!c.exists) co_return std::move(c);

    const crypto::secure_buffer* m = &c.material;
    const std::vector<std::byte>* file = &c.file;
    const std::string* name = &enc_path_;
    auto plain = co_await io::offload(*worker_, [m, file, name] { return open_raw(secret_file, *m, *file, {}, *name); });
    if (!plain) co_return err(std::move(plain.error()));
    c.plain = std::move(*plain);
    auto meta = parse_content(c.plain.bytes(), enc_path_);
    if (!meta) co_return err(std::move(meta.error()));
    c.meta = std::move(*meta);
    co_return std::move(c);
}

io::task<expected<vault_metadata, std::string>> encrypted_file_vault::read_metadata() {
    auto cur = co_await open_current(false);
    if (!cur) {
        set_health(false, cur.error());
        co_return err(std::move(cur.error()));
    }
    set_health(true, cur->exists ? fmt::format("encrypted file {}: generation {}", enc_path_, cur->meta.generation)
                                 : fmt::format("encrypted file {}: not written yet", enc_path_));
    co_return std::move(cur->meta);
}

io::task<expected<secret_set, std::string>> encrypted_file_vault::load(const vault_metadata& meta) {
    auto cur = co_await open_current(false);
    if (!cur) {
        set_health(false, cur.error());
        co_return err(std::move(cur.error()));
    }
    set_health(true, fmt::format("encrypted file {}: generation {}", enc_path_, cur->meta.generation));
    secret_set set;
    for (const secret_entry& e : meta.secrets) {
        if (e.meta.state == secret_state::expired) continue;  // swept: no key to open
        const auto key = find_key(cur->plain.bytes(), e.version);
        if (key.empty()) co_return err(fmt::format("{}: secret version {} is not in the file", enc_path_, e.version));
        auto k = crypto::aes256_gcm_key::create(key);
        if (!k) {
            co_return err(fmt::format("{}: secret version {}: cannot load the key: {}", enc_path_, e.version,
                                      k.error().message()));
        }
        auto added = set.add(e.version, std::move(*k), e.meta);
        if (!added) co_return err(fmt::format("{}: {}", enc_path_, added.error()));
    }
    co_return std::move(set);
}

io::task<expected<void, std::string>> encrypted_file_vault::stage(std::span<const new_secret> added) {
    co_return check_added(added, enc_path_);
}

io::task<expected<void, std::string>> encrypted_file_vault::commit(const vault_metadata& next,
                                                                   std::span<const new_secret> added) {
    if (auto ok = check_added(added, enc_path_); !ok) co_return err(std::move(ok.error()));
    auto cur = co_await open_current(true);
    if (!cur) {
        set_health(false, cur.error());
        co_return err(std::move(cur.error()));
    }
    if (auto ok = check_next(cur->meta, cur->plain.bytes(), next, added, enc_path_); !ok)
        co_return err(std::move(ok.error()));

    // Content and encryption on the worker: the KDF takes tens of milliseconds.
    const current* c = &*cur;
    const vault_metadata* n = &next;
    const std::span<const new_secret>* a = &added;
    const std::string* name = &enc_path_;
    const kdf_kind kdf = kdf_;
    auto sealed = co_await io::offload(*worker_, [c, n, a, name, kdf]() -> expected<std::vector<std::byte>, std::string> {
        const auto content = LA_TRY(encode_content(*n, c->plain.bytes(), *a, *name));
        return seal_raw(secret_file, c->material, content.bytes(), {}, kdf, *name);
    });
    if (!sealed) co_return err(std::move(sealed.error()));

    io::crash_point("file.encrypted");
    const std::span<const std::byte> bytes(*sealed);
    auto written = co_await io::write_file_atomically(dir_, name_, bytes, 0600);
    if (!written) {
        std::string why = co_await undo_rename(*cur, bytes, written.error());
        set_health(false, why);
        co_return err(std::move(why));
    }
    set_health(true, fmt::format("encrypted file {}: generation {}", enc_path_, next.generation));
    co_return expected<void, std::string>{};
}

// Called when write_file_atomically failed. Before its rename nothing changed (the temp file is
// gone). After it (the directory fsync failed) the new content is visible but not durable:
// commit() promises the old metadata stays authoritative, so the old content is put back.
// Yields the error text for commit().
io::task<std::string> encrypted_file_vault::undo_rename(const current& old,
                                                                        std::span<const std::byte> written,
                                                                        std::error_code cause) {
    const std::string failed = fmt::format("{}: cannot write the new content: {}", enc_path_, cause.message());
    std::vector<std::byte> buf(max_sealed + 1);
    auto n = co_await read_bounded(enc_path_, buf, false);
    if (!n && !n.error().missing)
        co_return fmt::format("{}; reading the file back failed too ({}): it may hold either content", failed,
                              n.error().text);
    const bool renamed = n && *n == written.size() && std::equal(written.begin(), written.end(), buf.begin());
    if (!renamed) co_return fmt::format("{} (the previous content is kept)", failed);

    core::result<void> undone{};
    if (old.exists) {
        const std::span<const std::byte> previous(old.file);
        undone = co_await io::write_file_atomically(dir_, name_, previous, 0600);
    } else {
        auto removed = co_await io::unlinkat(AT_FDCWD, enc_path_.c_str());
        if (removed) undone = co_await sync_dir(dir_);
        else undone = core::fail(removed.error());
    }
    if (!undone)
        co_return fmt::format("{} after the rename; putting the previous content back failed too ({}): the file "
                              "may hold either content",
                              failed, undone.error().message());
    co_return fmt::format("{} after the rename; the previous content was put back", failed);
}

io::task<expected<bool, std::string>> encrypted_file_vault::provision() {
    auto existing = co_await read_key_material(key_path_);
    if (existing) co_return false;
    if (!existing.error().missing) co_return err(std::move(existing.error().text));

    // secret.enc without its key file: the key is lost, and a new one would never open it.
    {
        auto enc = co_await io::openat(AT_FDCWD, enc_path_.c_str(), O_RDONLY);
        if (enc) {
            auto closed = co_await io::close(*enc);
            (void)closed;
            co_return err(fmt::format("{}: the key file is missing but {} exists; restore the key file (a new one "
                                      "could not decrypt it) or remove {}",
                                      key_path_, enc_path_, enc_path_));
        }
        if (enc.error() != std::errc::no_such_file_or_directory)
            co_return err(fmt::format("{}: cannot open: {}", enc_path_, enc.error().message()));
    }

    auto raw = crypto::secure_buffer::allocate(key_size);
    auto text = crypto::secure_buffer::allocate(key_file_size);
    if (!raw || !text) co_return err(fmt::format("{}: cannot allocate secure memory", key_path_));
    if (auto r = crypto::random_bytes(raw->bytes()); !r)
        co_return err(fmt::format("{}: getrandom failed: {}", key_path_, r.error().message()));
    const std::span<std::byte> t = text->bytes();
    std::memcpy(t.data(), key_file_header.data(), key_file_header.size());
    const std::span<char> b64(reinterpret_cast<char*>(t.data() + key_file_header.size()),
                              crypto::base64url_encoded_size(key_size));
    LA_CHECK(crypto::base64url_encode(raw->bytes(), b64) == b64.size());
    t.back() = std::byte{'\n'};

    // Temp file, fsync, rename without replacing, directory fsync: the key file appears whole.
    const std::string dir = parent_of(key_file_);
    const std::string temp = dir + "/." + key_file_.filename().string() + ".tmp";
    // O_EXCL: a file planted under the temp name (with a wider mode) is never reused.
    auto fd = co_await io::openat(AT_FDCWD, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (!fd && fd.error() == std::errc::file_exists) {
        auto removed = co_await io::unlinkat(AT_FDCWD, temp.c_str());  // left by a crash
        (void)removed;
        fd = co_await io::openat(AT_FDCWD, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    }
    if (!fd) co_return err(fmt::format("{}: cannot create {}: {}", key_path_, temp, fd.error().message()));
    std::string failed;
    std::size_t done = 0;
    while (done < t.size()) {
        auto w = co_await io::write(*fd, t.subspan(done), static_cast<std::int64_t>(done));
        if (!w) {
            failed = fmt::format("write failed: {}", w.error().message());
            break;
        }
        if (*w == 0) {
            failed = "write failed: no space left";
            break;
        }
        done += *w;
    }
    if (failed.empty()) {
        auto synced = co_await io::fsync(*fd);
        if (!synced) failed = fmt::format("fsync failed: {}", synced.error().message());
    }
    auto closed = co_await io::close(*fd);
    if (failed.empty() && !closed) failed = fmt::format("close failed: {}", closed.error().message());
    if (failed.empty()) {
        auto renamed = co_await rename_noreplace(temp.c_str(), key_path_.c_str());
        if (!renamed && renamed.error() == std::errc::file_exists)
            failed = "it appeared while being created; not replaced";
        else if (!renamed)
            failed = fmt::format("rename failed: {}", renamed.error().message());
    }
    if (!failed.empty()) {
        auto removed = co_await io::unlinkat(AT_FDCWD, temp.c_str());
        (void)removed;  // best effort: the next attempt removes it anyway
        co_return err(fmt::format("{}: cannot create the key file: {}", key_path_, failed));
    }
    auto synced = co_await sync_dir(dir);
    if (!synced)
        co_return err(fmt::format("{}: created, but its directory fsync failed: {}", key_path_, synced.error().message()));
    co_return true;
}

io::task<expected<crypto::secure_buffer, std::string>> read_key_file(std::string_view path) {
    auto material = co_await read_key_material(path);
    if (!material) co_return err(std::move(material.error().text));
    co_return std::move(*material);
}

namespace {

constexpr std::string_view agent_key_purpose = "agent-key";
constexpr std::size_t max_agent_key_blob = 16 * 1024;

}  // namespace

io::task<expected<crypto::rsa_private_key, std::string>> load_file_agent_key(std::string_view key_file,
                                                                            std::string_view path,
                                                                            io::worker_thread& worker) {
    auto material = co_await read_key_file(key_file);
    if (!material) co_return err(std::move(material.error()));
    std::vector<std::byte> blob(max_agent_key_blob + 1);
    auto n = co_await read_bounded(path, blob, true);
    if (!n) co_return err(std::move(n.error().text));
    blob.resize(*n);
    const crypto::secure_buffer* m = &*material;
    const std::vector<std::byte>* b = &blob;
    const std::string_view name = path;
    // Key derivation and RSA parsing are slow: off the ring thread.
    co_return co_await io::offload(worker, [m, b, name]() -> expected<crypto::rsa_private_key, std::string> {
        auto der = open_with_key_file(*m, agent_key_purpose, *b, name);
        if (!der) return err(std::move(der.error()));
        auto key = crypto::rsa_private_key::from_der(der->bytes());
        if (!key) return err(fmt::format("{}: not an RSA private key: {}", name, key.error().message()));
        return std::move(*key);
    });
}

io::task<expected<file_agent_key_info, std::string>> provision_file_agent_key(
    std::string_view key_file, std::string_view path, kdf_kind kdf, io::worker_thread& worker) {
    const std::string path_text(path);
    struct stat st {};
    if (::stat(path_text.c_str(), &st) == 0) {
        auto existing = co_await load_file_agent_key(key_file, path, worker);
        if (!existing) co_return err(std::move(existing.error()));
        auto pub = existing->public_der();
        if (!pub) co_return err(fmt::format("{}: {}", path, pub.error().message()));
        co_return file_agent_key_info{false, std::move(*pub)};
    }
    auto material = co_await read_key_file(key_file);
    if (!material) co_return err(std::move(material.error()));
    struct made {
        std::vector<std::byte> blob;
        std::vector<std::uint8_t> public_der;
    };
    const crypto::secure_buffer* m = &*material;
    const std::string_view name = path;
    auto fresh = co_await io::offload(worker, [m, kdf, name]() -> expected<made, std::string> {
        auto key = crypto::rsa_private_key::generate(2048);
        if (!key) return err(fmt::format("{}: RSA key generation failed: {}", name, key.error().message()));
        auto der = key->to_der();
        auto pub = key->public_der();
        if (!der || !pub) return err(fmt::format("{}: cannot encode the RSA key", name));
        auto blob = seal_with_key_file(*m, agent_key_purpose, der->bytes(), kdf, name);
        if (!blob) return err(std::move(blob.error()));
        return made{std::move(*blob), std::move(*pub)};
    });
    if (!fresh) co_return err(std::move(fresh.error()));
    const std::filesystem::path p(path_text);
    const std::string dir = p.parent_path().string();
    const std::string file = p.filename().string();
    const std::span<const std::byte> bytes = fresh->blob;
    auto written = co_await io::write_file_atomically(dir, file, bytes, 0600);
    if (!written) co_return err(fmt::format("{}: cannot write: {}", path, written.error().message()));
    co_return file_agent_key_info{true, std::move(fresh->public_der)};
}

expected<std::vector<std::byte>, std::string> seal_with_key_file(const crypto::secure_buffer& material,
                                                                 std::string_view purpose,
                                                                 std::span<const std::byte> plain, kdf_kind kdf,
                                                                 std::string_view name) {
    return seal_raw(blob_file, material, plain, purpose, kdf, name);
}

expected<crypto::secure_buffer, std::string> open_with_key_file(const crypto::secure_buffer& material,
                                                                std::string_view purpose,
                                                                std::span<const std::byte> blob,
                                                                std::string_view name) {
    return open_raw(blob_file, material, blob, purpose, name);
}

namespace detail {
std::thread::id last_kdf_thread() noexcept { return last_kdf_thread_id.load(std::memory_order_relaxed); }
}  // namespace detail

}  // namespace la::core
