#include "tpm/vault.hpp"

#include <fcntl.h>
#include <limits.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "crypto/aes_gcm.hpp"
#include "crypto/ct.hpp"
#include "crypto/sha256.hpp"
#include "io/atomic_file.hpp"
#include "io/crash_point.hpp"
#include "io/ops.hpp"
#include "tpm/error.hpp"
#include "tpm/nv.hpp"

namespace la::tpm {
namespace {

using err = core::unexpected<std::string>;
using core::secret_entry;
using core::vault_metadata;

// ---- NV record (layout in vault.hpp) ----
constexpr std::array<std::uint8_t, 4> record_magic{'L', 'A', 'N', 'V'};
constexpr std::uint8_t record_format = 1;
constexpr std::size_t capacity = core::secret_set::capacity;
constexpr std::size_t record_header = 24;
constexpr std::size_t entry_size = 33;
constexpr std::size_t record_body = record_header + capacity * entry_size;
constexpr std::size_t record_check = 16;
static_assert(record_body + record_check == tpm_vault::record_size);
static_assert(tpm_vault::record_size <= max_nv_size);
using record_bytes = std::array<std::uint8_t, tpm_vault::record_size>;

// ---- blob file (layout in vault.hpp) ----
constexpr std::array<std::uint8_t, 4> blob_magic{'L', 'A', 'S', 'B'};
constexpr std::uint8_t blob_format = 1;
constexpr std::size_t blob_header = 24;
constexpr std::size_t max_blob = sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE);
constexpr std::size_t max_blob_file = blob_header + max_blob;

void put_be(std::uint8_t* p, std::uint64_t v, int n) noexcept {
    for (int i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * (n - 1 - i)));
}

std::uint64_t get_be(const std::uint8_t* p, int n) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    return v;
}

std::string hex_index(std::uint32_t h) { return fmt::format("0x{:08x}", h); }

// Structural checks shared by commit (what we write) and decode (what we read).
std::optional<std::string> check_metadata(const vault_metadata& m) {
    if (m.secrets.size() > capacity)
        return fmt::format("{} secrets listed, at most {}", m.secrets.size(), capacity);
    std::uint64_t previous = 0;
    for (const secret_entry& e : m.secrets) {
        if (e.version == 0) return std::string("secret version 0 listed");
        if (e.version <= previous)
            return fmt::format("secret versions not strictly increasing ({} after {})", e.version,
                               previous);
        if (e.version > m.highest_version)
            return fmt::format("secret version {} above highest_version {}", e.version,
                               m.highest_version);
        if (static_cast<std::uint8_t>(e.meta.state) > static_cast<std::uint8_t>(core::secret_state::expired))
            return fmt::format("secret version {} has an unknown state", e.version);
        if (e.meta.grace_until < e.meta.valid_until)
            return fmt::format("secret version {}: grace_until is before valid_until", e.version);
        previous = e.version;
    }
    return std::nullopt;
}

std::array<std::uint8_t, record_check> record_checksum(std::span<const std::uint8_t> body) {
    const auto d = crypto::sha256(std::as_bytes(body));
    std::array<std::uint8_t, record_check> out{};
    for (std::size_t i = 0; i < record_check; ++i) out[i] = std::to_integer<std::uint8_t>(d[i]);
    return out;
}

record_bytes encode_record(const vault_metadata& m) {
    record_bytes r{};
    std::memcpy(r.data(), record_magic.data(), record_magic.size());
    r[4] = record_format;
    r[5] = static_cast<std::uint8_t>(m.secrets.size());
    put_be(r.data() + 8, m.generation, 8);
    put_be(r.data() + 16, m.highest_version, 8);
    std::uint8_t* p = r.data() + record_header;
    for (const secret_entry& e : m.secrets) {
        put_be(p, e.version, 8);
        put_be(p + 8, static_cast<std::uint64_t>(e.meta.valid_from), 8);
        put_be(p + 16, static_cast<std::uint64_t>(e.meta.valid_until), 8);
        put_be(p + 24, static_cast<std::uint64_t>(e.meta.grace_until), 8);
        p[32] = static_cast<std::uint8_t>(e.meta.state);
        p += entry_size;
    }
    const auto check = record_checksum(std::span<const std::uint8_t>(r).first(record_body));
    std::memcpy(r.data() + record_body, check.data(), record_check);
    return r;
}

core::expected<vault_metadata, std::string> decode_record(std::span<const std::uint8_t> r,
                                                          std::uint32_t index) {
    const auto corrupt = [&](std::string_view why) {
        return err(fmt::format("NV index {}: corrupt vault record: {}", hex_index(index), why));
    };
    if (r.size() != tpm_vault::record_size)
        return corrupt(fmt::format("{} bytes, expected {}", r.size(), tpm_vault::record_size));
    if (std::memcmp(r.data(), record_magic.data(), record_magic.size()) != 0)
        return corrupt("bad magic (not a license-agent record)");
    if (r[4] != record_format) return corrupt(fmt::format("unsupported format {}", r[4]));
    const auto check = record_checksum(r.first(record_body));
    if (!crypto::ct_equal(std::as_bytes(std::span<const std::uint8_t>(check)),
                          std::as_bytes(r.subspan(record_body, record_check))))
        return corrupt("checksum mismatch (torn or altered write)");
    if (r[6] != 0 || r[7] != 0) return corrupt("reserved bytes set");
    const std::size_t count = r[5];
    if (count > capacity) return corrupt(fmt::format("{} entries, at most {}", count, capacity));
    vault_metadata m;
    m.generation = get_be(r.data() + 8, 8);
    m.highest_version = get_be(r.data() + 16, 8);
    const std::uint8_t* p = r.data() + record_header;
    for (std::size_t i = 0; i < capacity; ++i, p += entry_size) {
        if (i >= count) {
            if (std::any_of(p, p + entry_size, [](std::uint8_t b) { return b != 0; }))
                return corrupt("data after the last entry");
            continue;
        }
        secret_entry e;
        e.version = get_be(p, 8);
        e.meta.valid_from = static_cast<std::int64_t>(get_be(p + 8, 8));
        e.meta.valid_until = static_cast<std::int64_t>(get_be(p + 16, 8));
        e.meta.grace_until = static_cast<std::int64_t>(get_be(p + 24, 8));
        e.meta.state = static_cast<core::secret_state>(p[32]);
        m.secrets.push_back(e);
    }
    if (auto why = check_metadata(m)) return corrupt(*why);
    return m;
}

std::vector<std::byte> encode_blob_file(std::uint64_t version, const pcr_policy& pcr,
                                        std::span<const std::uint8_t> blob) {
    std::vector<std::byte> out(blob_header + blob.size());
    auto* p = reinterpret_cast<std::uint8_t*>(out.data());
    std::memcpy(p, blob_magic.data(), blob_magic.size());
    p[4] = blob_format;
    put_be(p + 6, pcr.empty() ? 0 : pcr.hash, 2);
    put_be(p + 8, pcr.mask, 4);
    put_be(p + 12, version, 8);
    put_be(p + 20, blob.size(), 4);
    std::memcpy(p + blob_header, blob.data(), blob.size());
    return out;
}

struct blob_view {
    pcr_policy pcr;
    std::span<const std::uint8_t> blob;
};

core::expected<blob_view, std::string> decode_blob_file(std::span<const std::byte> file,
                                                        std::uint64_t version) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(file.data());
    if (file.size() < blob_header) return err(fmt::format("truncated ({} bytes)", file.size()));
    if (std::memcmp(p, blob_magic.data(), blob_magic.size()) != 0)
        return err(std::string("bad magic (not a license-agent sealed secret)"));
    if (p[4] != blob_format) return err(fmt::format("unsupported format {}", p[4]));
    if (p[5] != 0) return err(std::string("reserved byte set"));
    blob_view v;
    v.pcr.hash = static_cast<TPMI_ALG_HASH>(get_be(p + 6, 2));
    v.pcr.mask = static_cast<std::uint32_t>(get_be(p + 8, 4));
    if (v.pcr.mask == 0) v.pcr.hash = TPM2_ALG_NULL;
    const std::uint64_t stored = get_be(p + 12, 8);
    if (stored != version) return err(fmt::format("holds version {}", stored));
    const std::uint64_t len = get_be(p + 20, 4);
    if (len != file.size() - blob_header)
        return err(fmt::format("truncated or corrupted ({} bytes, header says {})", file.size(),
                               blob_header + len));
    v.blob = std::span<const std::uint8_t>(p + blob_header, len);
    return v;
}

// Reads a small file through the ring; more than `max` bytes is an error (EFBIG).
io::task<core::result<std::vector<std::byte>>> read_small_file(const std::string& path,
                                                               std::size_t max) {
    auto fd = co_await io::openat(AT_FDCWD, path.c_str(), O_RDONLY);
    if (!fd) co_return core::fail(fd.error());
    std::vector<std::byte> buf(max + 1);
    std::size_t done = 0;
    core::result<void> outcome{};
    while (done < buf.size()) {
        const std::span<std::byte> rest = std::span<std::byte>(buf).subspan(done);
        auto n = co_await io::read(*fd, rest, static_cast<std::int64_t>(done));
        if (!n) {
            outcome = core::fail(n.error());
            break;
        }
        if (*n == 0) break;
        done += *n;
    }
    auto closed = co_await io::close(*fd);
    (void)closed;  // read-only: nothing to lose at close
    if (!outcome) co_return core::fail(outcome.error());
    if (done > max) co_return core::fail(std::errc::file_too_large);
    buf.resize(done);
    co_return buf;
}

// Lists the versions of secret-<v>.sealed files and leftover .secret-<v>.sealed.tmp files, on
// the TPM thread (directory reads block; the ring must not). Trivially copyable: the path is
// copied in, so an abandoned job never reads the vault.
struct scan_job {
    std::array<char, PATH_MAX> dir;

    core::result<std::vector<std::string>> operator()(esys_session&) const {
        std::error_code ec;
        std::filesystem::directory_iterator it(std::filesystem::path(dir.data()), ec);
        if (ec) return core::fail(ec);
        std::vector<std::string> names;
        for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
            if (ec) return core::fail(ec);
            names.push_back(it->path().filename().string());
        }
        if (ec) return core::fail(ec);
        return names;
    }
};

// The version a blob (or its leftover temp) file name carries, if it is one.
std::optional<std::uint64_t> blob_version(std::string_view name) {
    std::string_view rest = name;
    if (rest.starts_with(".") && rest.ends_with(".tmp")) {
        rest.remove_prefix(1);
        rest.remove_suffix(4);
    }
    constexpr std::string_view prefix = "secret-";
    constexpr std::string_view suffix = ".sealed";
    if (!rest.starts_with(prefix) || !rest.ends_with(suffix)) return std::nullopt;
    rest = rest.substr(prefix.size(), rest.size() - prefix.size() - suffix.size());
    std::uint64_t v = 0;
    if (!core::parse_version(rest, v)) return std::nullopt;
    return v;
}

// TPM_RC_INTEGRITY on any parameter: the private part does not match the public part or the
// parent (a damaged blob, or a primary that was recreated).
bool is_integrity_failure(const std::error_code& ec) {
    if (ec.category() != tss2_category()) return false;
    const auto rc = static_cast<std::uint32_t>(ec.value());
    return (rc & 0xFF0000u) == 0 && (rc & 0x80u) != 0 && (rc & 0x3Fu) == (TPM2_RC_INTEGRITY & 0x3Fu);
}

bool listed(const vault_metadata& m, std::uint64_t version) {
    return std::any_of(m.secrets.begin(), m.secrets.end(),
                       [&](const secret_entry& e) { return e.version == version; });
}

// Precondition errors that no TPM call can fix.
std::optional<std::string> misconfigured(const tpm_vault_options& o) {
    if (o.tpm == nullptr) return std::string("tpm vault: no TPM thread configured");
    if (o.auth.size() > max_auth_size)
        return fmt::format("tpm vault: the auth value is {} bytes, at most {}", o.auth.size(),
                           max_auth_size);
    if (o.state_dir.empty()) return std::string("tpm vault: no state directory configured");
    if (o.state_dir.size() >= PATH_MAX) return std::string("tpm vault: state directory path too long");
    return std::nullopt;
}

}  // namespace

std::string provision_report::describe() const {
    return fmt::format("primary {} ({}) {}; NV index {} ({} bytes) {}", hex_index(primary_handle),
                       primary_type == TPM2_ALG_ECC ? "ECC P-256" : "RSA-2048",
                       primary_created ? "created" : "reused", hex_index(nv_index), nv_size,
                       nv_created ? "created" : "reused");
}

tpm_vault::tpm_vault(tpm_vault_options opts) : opts_(std::move(opts)) {}

tpm_vault::~tpm_vault() = default;

std::string tpm_vault::blob_name(std::uint64_t version) {
    return fmt::format("secret-{}.sealed", version);
}

// Text for a failed TPM call; also records whether the TPM answered at all.
std::string tpm_vault::tpm_text(const std::error_code& ec) const {
    if (ec == std::errc::timed_out)
        return fmt::format("TPM did not answer within {} ms", opts_.tpm->options().timeout.count());
    if (ec.category() == tss2_category()) {
        const auto rc = static_cast<std::uint32_t>(ec.value());
        if (is_connection_failure(rc))
            return fmt::format("TPM unreachable ({}): {} (rc 0x{:x})", opts_.tpm->options().tcti,
                               ec.message(), rc);
        if (is_auth_failure(ec))
            return fmt::format("the TPM refused the authorization (wrong auth value?): {} (rc 0x{:x})",
                               ec.message(), rc);
        return fmt::format("TPM error: {} (rc 0x{:x})", ec.message(), rc);
    }
    return ec.message();
}

void tpm_vault::note(const std::error_code& ec) {
    bool answered = true;
    if (ec == std::errc::timed_out) answered = false;
    if (ec.category() == tss2_category() && is_connection_failure(static_cast<std::uint32_t>(ec.value())))
        answered = false;
    health_.available = answered;
}

core::unexpected<std::string> tpm_vault::failed(std::string text) {
    health_.detail = text;
    return err(std::move(text));
}

void tpm_vault::ok() { health_.available = true; }

io::task<core::expected<provision_report, std::string>> tpm_vault::provision() {
    if (auto why = misconfigured(opts_)) co_return failed(std::move(*why));
    provision_report report;
    auto primary = co_await tpm::provision(*opts_.tpm, opts_.primary_handle);
    if (!primary) {
        note(primary.error());
        co_return failed(fmt::format("storage primary {}: {}", hex_index(opts_.primary_handle),
                                     tpm_text(primary.error())));
    }
    ok();
    report.primary_handle = primary->handle;
    report.primary_created = primary->created;
    report.primary_type = primary->type;

    auto nv = co_await provision_nv(*opts_.tpm, opts_.nv_index, record_size);
    if (!nv && nv.error() == nv_errc::shape_mismatch) {
        auto found = co_await nv_describe(*opts_.tpm, opts_.nv_index);
        std::string how = "another shape";
        if (found && *found)
            how = fmt::format("{} bytes and attributes 0x{:08x}", (*found)->size,
                              (*found)->attributes & ~TPMA_NV_WRITTEN);
        co_return failed(fmt::format(
            "NV index {} already exists with {} (expected {} bytes and attributes 0x{:08x}): it is "
            "not ours or from another version; refusing to redefine it (choose another nv_index)",
            hex_index(opts_.nv_index), how, record_size, nv_attributes));
    }
    if (!nv) {
        note(nv.error());
        co_return failed(fmt::format("NV index {}: {}", hex_index(opts_.nv_index), tpm_text(nv.error())));
    }
    report.nv_index = nv->index;
    report.nv_created = nv->created;
    report.nv_size = nv->size;
    health_.detail = "ok";
    co_return report;
}

io::task<core::expected<vault_metadata, std::string>> tpm_vault::read_record() {
    auto bytes = co_await nv_read(*opts_.tpm, opts_.nv_index);
    if (!bytes) {
        note(bytes.error());
        if (bytes.error() == nv_errc::not_defined)
            co_return err(fmt::format("NV index {} is not defined: the TPM vault is not provisioned",
                                      hex_index(opts_.nv_index)));
        co_return err(fmt::format("NV index {}: cannot read the vault record: {}",
                                  hex_index(opts_.nv_index), tpm_text(bytes.error())));
    }
    ok();
    if (!*bytes) co_return vault_metadata{};  // never written
    co_return decode_record(**bytes, opts_.nv_index);
}

io::task<core::expected<vault_metadata, std::string>> tpm_vault::read_metadata() {
    if (auto why = misconfigured(opts_)) co_return failed(std::move(*why));
    auto r = co_await read_record();
    health_.detail = r ? "ok" : r.error();
    co_return r;
}

io::task<core::expected<core::secret_set, std::string>> tpm_vault::load(const vault_metadata& meta) {
    if (auto why = misconfigured(opts_)) co_return failed(std::move(*why));
    if (auto why = check_metadata(meta)) co_return failed(fmt::format("tpm vault: {}", *why));
    core::secret_set set;
    for (const secret_entry& e : meta.secrets) {
        if (e.meta.state == core::secret_state::expired) continue;  // swept: no key to open
        const std::string path = opts_.state_dir + "/" + blob_name(e.version);
        const auto where = [&] { return fmt::format("secret {} ({})", e.version, path); };
        auto file = co_await read_small_file(path, max_blob_file);
        if (!file) {
            if (file.error() == std::errc::file_too_large)
                co_return failed(fmt::format("{}: corrupt: larger than {} bytes", where(), max_blob_file));
            co_return failed(fmt::format("{}: cannot read: {}", where(), file.error().message()));
        }
        auto view = decode_blob_file(*file, e.version);
        if (!view) co_return failed(fmt::format("{}: corrupt: {}", where(), view.error()));
        const std::span<const std::uint8_t> blob = view->blob;
        const pcr_policy pcr = view->pcr;
        auto key = co_await unseal(*opts_.tpm, opts_.primary_handle, blob, opts_.auth.bytes(), pcr);
        if (!key) {
            note(key.error());
            const std::error_code& ec = key.error();
            if (ec == seal_errc::pcr_mismatch)
                co_return failed(fmt::format(
                    "{}: refused by the TPM: PCR policy {} not satisfied (the PCR values differ "
                    "from those it was sealed to)",
                    where(), to_string(pcr)));
            if (ec == std::errc::invalid_argument)
                co_return failed(fmt::format("{}: corrupt: not a sealed TPM object", where()));
            if (is_integrity_failure(ec))
                co_return failed(fmt::format(
                    "{}: corrupt, or sealed under another storage primary: the TPM refused to load "
                    "it ({}, rc 0x{:x})",
                    where(), ec.message(), static_cast<std::uint32_t>(ec.value())));
            if (is_auth_failure(ec))
                co_return failed(fmt::format("{}: refused by the TPM: wrong auth value ({}, rc 0x{:x})",
                                             where(), ec.message(), static_cast<std::uint32_t>(ec.value())));
            co_return failed(fmt::format("{}: cannot unseal: {}", where(), tpm_text(ec)));
        }
        ok();
        auto aes = crypto::aes256_gcm_key::create(key->bytes());
        if (!aes) co_return failed(fmt::format("{}: unusable key: {}", where(), aes.error().message()));
        auto added = set.add(e.version, std::move(*aes), e.meta);
        if (!added) co_return failed(fmt::format("{}: {}", where(), added.error()));
    }
    health_.detail = "ok";
    co_return set;
}

io::task<core::expected<void, std::string>> tpm_vault::stage(std::span<const core::new_secret> added) {
    if (auto why = misconfigured(opts_)) co_return failed(std::move(*why));
    if (added.size() > capacity)
        co_return failed(fmt::format("tpm vault: {} secrets to stage, at most {}", added.size(), capacity));
    for (std::size_t i = 0; i < added.size(); ++i) {
        const core::new_secret& n = added[i];
        if (n.version == 0) co_return failed(std::string("tpm vault: secret version 0 cannot be staged"));
        if (n.key.size() != secret_size)
            co_return failed(fmt::format("secret {}: the key is {} bytes, expected {}", n.version,
                                         n.key.size(), secret_size));
        for (std::size_t j = 0; j < i; ++j)
            if (added[j].version == n.version)
                co_return failed(fmt::format("secret {}: staged twice", n.version));
    }
    auto current = co_await read_record();
    if (!current) co_return failed(std::move(current.error()));
    for (const core::new_secret& n : added) {
        if (n.version <= current->highest_version)
            co_return failed(fmt::format(
                "secret {}: version not above the committed highest version {} (its blob file "
                "may belong to a committed secret)",
                n.version, current->highest_version));
    }
    for (const core::new_secret& n : added) {
        const std::span<const std::byte, secret_size> secret(n.key.data(), secret_size);
        auto blob = co_await seal(*opts_.tpm, opts_.primary_handle, secret, opts_.auth.bytes(), opts_.pcr);
        if (!blob) {
            note(blob.error());
            if (blob.error() == seal_errc::pcr_bank_inactive)
                co_return failed(fmt::format("secret {}: cannot seal: PCR policy {}: {}", n.version,
                                             to_string(opts_.pcr), blob.error().message()));
            co_return failed(fmt::format("secret {}: cannot seal: {}", n.version, tpm_text(blob.error())));
        }
        ok();
        io::crash_point("tpm.sealed");
        const std::vector<std::byte> file = encode_blob_file(n.version, opts_.pcr, *blob);
        const std::string name = blob_name(n.version);
        auto written = co_await io::write_file_atomically(opts_.state_dir, name, file, 0600);
        if (!written)
            co_return failed(fmt::format("secret {} ({}/{}): cannot write the sealed blob: {}", n.version,
                                         opts_.state_dir, name, written.error().message()));
    }
    health_.detail = "ok";
    co_return core::expected<void, std::string>{};
}

io::task<core::expected<void, std::string>> tpm_vault::commit(const vault_metadata& next,
                                                              std::span<const core::new_secret> added) {
    if (auto why = misconfigured(opts_)) co_return failed(std::move(*why));
    if (auto why = check_metadata(next)) co_return failed(fmt::format("tpm vault: cannot commit: {}", *why));
    // Every added secret must be listed and staged: the record must never name a blob that
    // is not on disk.
    for (const core::new_secret& n : added) {
        if (!listed(next, n.version))
            co_return failed(fmt::format("tpm vault: cannot commit: added secret {} is not listed",
                                         n.version));
        const std::string path = opts_.state_dir + "/" + blob_name(n.version);
        auto file = co_await read_small_file(path, max_blob_file);
        if (!file)
            co_return failed(fmt::format("tpm vault: cannot commit: secret {} ({}) was not staged: {}",
                                         n.version, path, file.error().message()));
        if (auto view = decode_blob_file(*file, n.version); !view)
            co_return failed(fmt::format("tpm vault: cannot commit: secret {} ({}) is corrupt: {}",
                                         n.version, path, view.error()));
    }
    auto current = co_await read_record();
    if (!current) co_return failed(std::move(current.error()));
    if (next.generation <= current->generation)
        co_return failed(fmt::format(
            "NV index {}: refusing to commit generation {}: the vault is at generation {} (the "
            "generation only grows)",
            hex_index(opts_.nv_index), next.generation, current->generation));
    if (next.highest_version < current->highest_version)
        co_return failed(fmt::format(
            "NV index {}: refusing to commit highest_version {} below the committed {}",
            hex_index(opts_.nv_index), next.highest_version, current->highest_version));

    const record_bytes record = encode_record(next);
    const std::span<const std::uint8_t> record_view(record);
    auto written = co_await nv_write(*opts_.tpm, opts_.nv_index, record_view);
    if (!written) {
        note(written.error());
        co_return failed(fmt::format("NV index {}: cannot write the vault record: {}",
                                     hex_index(opts_.nv_index), tpm_text(written.error())));
    }
    ok();
    io::crash_point("tpm.nv_written");

    // Committed. Blob files of versions the record no longer lists (removed now, left by a
    // crash after an earlier commit, or staged and never committed) go: best effort.
    scan_job scan{};
    std::memcpy(scan.dir.data(), opts_.state_dir.data(), opts_.state_dir.size());
    auto names = co_await opts_.tpm->call(scan);
    if (names) {
        for (const std::string& name : *names) {
            const auto v = blob_version(name);
            if (!v || (listed(next, *v) && !name.starts_with("."))) continue;
            const std::string path = opts_.state_dir + "/" + name;
            auto removed = co_await io::unlinkat(AT_FDCWD, path.c_str());
            (void)removed;
        }
    }
    health_.detail = "ok";
    co_return core::expected<void, std::string>{};
}

}  // namespace la::tpm
