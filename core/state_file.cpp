#include "core/state_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>

#include <array>
#include <iterator>
#include <limits>
#include <span>
#include <utility>

#include "core/json.hpp"
#include "crypto/sha256.hpp"
#include "io/atomic_file.hpp"
#include "io/ops.hpp"

namespace la::core {
namespace {

constexpr std::string_view main_name = "state.json";
constexpr std::string_view checksum_prefix = ",\"checksum\":\"";
constexpr std::int64_t no_date_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t no_date_max = std::numeric_limits<std::int64_t>::max();

unexpected<std::string> err(std::string text) { return unexpected<std::string>(std::move(text)); }

std::string to_hex(const crypto::sha256_digest& d) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(d.size() * 2);
    for (const std::byte b : d) {
        const auto v = std::to_integer<unsigned>(b);
        out += digits[v >> 4];
        out += digits[v & 0xF];
    }
    return out;
}

// The checksum covers the document without its checksum member: `body` + "}".
std::string checksum_of(std::string_view body) {
    crypto::sha256_hasher h;
    h.update(std::as_bytes(std::span(body)));
    const std::string_view close = "}";
    h.update(std::as_bytes(std::span(close)));
    return to_hex(h.finish());
}

void append_string(std::string& out, std::string_view s) {
    out += '"';
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
        } else {
            out += c;
        }
    }
    out += '"';
}

void append_date(std::string& out, std::string_view key, std::int64_t v, std::int64_t absent) {
    fmt::format_to(std::back_inserter(out), ",\"{}\":", key);
    if (v == absent) out += "null";
    else fmt::format_to(std::back_inserter(out), "{}", v);
}

bool is_lower_hex(std::string_view s) noexcept {
    for (const char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

// Typed member readers; `where` prefixes errors inside a secret entry ("secrets[2]: ").
expected<std::uint64_t, std::string> uint_member(const json::document& d, std::size_t obj,
                                                 std::string_view key, std::string_view where) {
    const auto v = d.find(obj, key);
    if (!v) return err(fmt::format("{}missing \"{}\"", where, key));
    std::uint64_t out = 0;
    if (d[*v].kind != json::type::number || !parse_version(d[*v].text, out))
        return err(fmt::format("{}\"{}\" must be an unsigned integer", where, key));
    return out;
}

expected<std::int64_t, std::string> int_member(const json::document& d, std::size_t obj,
                                               std::string_view key) {
    const auto v = d.find(obj, key);
    if (!v) return err(fmt::format("missing \"{}\"", key));
    std::int64_t out = 0;
    if (d[*v].kind != json::type::number || !json::to_int64(d[*v].text, out))
        return err(fmt::format("\"{}\" must be an integer", key));
    return out;
}

// A date: absent or null means the secret_meta default `absent`.
expected<std::int64_t, std::string> date_member(const json::document& d, std::size_t obj,
                                                std::string_view key, std::int64_t absent,
                                                std::string_view where) {
    const auto v = d.find(obj, key);
    if (!v || d[*v].kind == json::type::null) return absent;
    std::int64_t out = 0;
    if (d[*v].kind != json::type::number || !json::to_int64(d[*v].text, out))
        return err(fmt::format("{}\"{}\" must be an integer or null", where, key));
    return out;
}

expected<secret_state, std::string> state_member(const json::document& d, std::size_t obj,
                                                 std::string_view where) {
    const auto v = d.find(obj, "state");
    if (!v) return err(fmt::format("{}missing \"state\"", where));
    if (d[*v].kind != json::type::string) return err(fmt::format("{}\"state\" must be a string", where));
    for (const secret_state s : {secret_state::active, secret_state::grace, secret_state::invalidated,
                                 secret_state::expired})
        if (d[*v].text == to_string(s)) return s;
    return err(fmt::format("{}unknown state \"{}\"", where, d[*v].text));
}

expected<secret_entry, std::string> decode_secret(const json::document& d, std::size_t obj,
                                                  std::string_view where) {
    if (d[obj].kind != json::type::object) return err(fmt::format("{}expected an object", where));
    secret_entry e;
    e.version = LA_TRY(uint_member(d, obj, "version", where));
    e.meta.state = LA_TRY(state_member(d, obj, where));
    e.meta.valid_from = LA_TRY(date_member(d, obj, "valid_from", no_date_min, where));
    e.meta.valid_until = LA_TRY(date_member(d, obj, "valid_until", no_date_max, where));
    e.meta.grace_until = LA_TRY(date_member(d, obj, "grace_until", no_date_max, where));
    if (e.meta.grace_until < e.meta.valid_until)
        return err(fmt::format("{}\"grace_until\" before \"valid_until\"", where));
    return e;
}

// Checks the checksum member: present, 64 lowercase hex digits, written last, and matching.
expected<void, std::string> verify_checksum(const json::document& d, std::string_view text) {
    const auto c = d.find(0, "checksum");
    if (!c) return err("missing checksum");
    const std::string_view hex = d[*c].text;
    if (d[*c].kind != json::type::string || hex.size() != 64 || !is_lower_hex(hex))
        return err("malformed checksum");
    if (text.ends_with('\n')) text.remove_suffix(1);
    // `,"checksum":"<hex>"}` must end the text, so the covered bytes are exactly what precedes it.
    const std::size_t suffix = checksum_prefix.size() + hex.size() + 2;
    if (text.size() < suffix + 1 || !text.ends_with("\"}") ||
        text.substr(text.size() - suffix, checksum_prefix.size()) != checksum_prefix ||
        text.substr(text.size() - hex.size() - 2, hex.size()) != hex)
        return err("checksum is not the last member");
    if (checksum_of(text.substr(0, text.size() - suffix)) != hex) return err("checksum mismatch");
    return {};
}

struct file_read {
    enum class kind { ok, missing, failed };
    kind k = kind::failed;
    std::string data;   ///< the content when ok
    std::string error;  ///< what went wrong when failed
};

// Reads a whole file of at most max_state_bytes through the ring.
io::task<file_read> read_bounded(const std::string& path) {
    file_read out;
    auto fd = co_await io::openat(AT_FDCWD, path.c_str(), O_RDONLY);
    if (!fd) {
        if (fd.error() == std::errc::no_such_file_or_directory) out.k = file_read::kind::missing;
        else out.error = fmt::format("unreadable: {}", fd.error().message());
        co_return out;
    }
    // One byte more than allowed tells a too-big file from one of exactly the limit.
    out.data.resize(max_state_bytes + 1);
    std::size_t done = 0;
    while (done < out.data.size()) {
        auto n = co_await io::read(*fd, std::as_writable_bytes(std::span(out.data)).subspan(done),
                                   static_cast<std::int64_t>(done));
        if (!n) {
            out.error = fmt::format("unreadable: {}", n.error().message());
            break;
        }
        if (*n == 0) break;
        done += *n;
    }
    auto closed = co_await io::close(*fd);
    (void)closed;  // a read-only descriptor has nothing left to flush
    if (!out.error.empty()) {
        out.data.clear();
        co_return out;
    }
    if (done > max_state_bytes) {
        out.data.clear();
        out.error = fmt::format("larger than {} bytes", max_state_bytes);
        co_return out;
    }
    out.data.resize(done);
    out.k = file_read::kind::ok;
    co_return out;
}

std::string copy_file_name(std::uint64_t k) { return fmt::format("{}.{}", main_name, k); }

}  // namespace

std::string encode_state(const state_document& doc) {
    std::string out;
    out.reserve(256 + doc.vault.secrets.size() * 160);
    fmt::format_to(std::back_inserter(out), "{{\"format\":{},\"backend\":", state_format);
    append_string(out, doc.backend);
    fmt::format_to(std::back_inserter(out),
                   ",\"generation\":{},\"highest_version\":{},\"updated_at\":{},\"secrets\":[",
                   doc.vault.generation, doc.vault.highest_version, doc.updated_at);
    bool first = true;
    for (const secret_entry& e : doc.vault.secrets) {
        if (!first) out += ',';
        first = false;
        fmt::format_to(std::back_inserter(out), "{{\"version\":{},\"state\":", e.version);
        append_string(out, to_string(e.meta.state));
        append_date(out, "valid_from", e.meta.valid_from, no_date_min);
        append_date(out, "valid_until", e.meta.valid_until, no_date_max);
        append_date(out, "grace_until", e.meta.grace_until, no_date_max);
        out += '}';
    }
    out += ']';
    const std::string sum = checksum_of(out);
    out += checksum_prefix;
    out += sum;
    out += "\"}\n";
    return out;
}

expected<state_document, std::string> decode_state(std::string_view text) {
    if (text.empty()) return err("empty");
    if (text.size() > max_state_bytes) return err(fmt::format("larger than {} bytes", max_state_bytes));
    std::string buf(text);  // the scanner unescapes in place
    std::vector<json::token> tokens(buf.size() + 2);
    const json::parse_result pr = json::parse(buf, tokens);
    if (pr.err != json::error::none)
        return err(fmt::format("not JSON ({} near byte {})", json::to_string(pr.err), pr.offset));
    const json::document d{std::span<const json::token>(tokens).first(pr.count)};
    if (d[0].kind != json::type::object) return err("not a JSON object");

    // The format first: a newer, incompatible writer gets named rather than a checksum error.
    const std::int64_t format = LA_TRY(int_member(d, 0, "format"));
    if (format != state_format) return err(fmt::format("unsupported format {}", format));
    if (auto ok = verify_checksum(d, text); !ok) return err(std::move(ok.error()));

    state_document doc;
    const auto backend = d.find(0, "backend");
    if (!backend) return err("missing \"backend\"");
    if (d[*backend].kind != json::type::string) return err("\"backend\" must be a string");
    if (d[*backend].text.empty()) return err("\"backend\" is empty");
    doc.backend = std::string(d[*backend].text);
    doc.vault.generation = LA_TRY(uint_member(d, 0, "generation", ""));
    doc.vault.highest_version = LA_TRY(uint_member(d, 0, "highest_version", ""));
    doc.updated_at = LA_TRY(int_member(d, 0, "updated_at"));

    const auto secrets = d.find(0, "secrets");
    if (!secrets) return err("missing \"secrets\"");
    if (d[*secrets].kind != json::type::array) return err("\"secrets\" must be an array");
    if (d[*secrets].size > secret_set::capacity)
        return err(fmt::format("more than {} secrets", secret_set::capacity));
    std::size_t index = 0;
    for (const json::member m : d.children(*secrets)) {
        const std::string where = fmt::format("secrets[{}]: ", index++);
        secret_entry e = LA_TRY(decode_secret(d, m.value, where));
        if (!doc.vault.secrets.empty() && e.version <= doc.vault.secrets.back().version)
            return err(fmt::format("{}version {} out of order or repeated", where, e.version));
        if (e.version > doc.vault.highest_version)
            return err(fmt::format("{}version {} above \"highest_version\" {}", where, e.version,
                                   doc.vault.highest_version));
        doc.vault.secrets.push_back(e);
    }
    return doc;
}

state_store::state_store(std::string dir, std::size_t copies)
    : dir_(std::move(dir)), copies_(copies == 0 ? 1 : copies) {}

io::task<expected<void, std::string>> state_store::save(const state_document& doc) {
    const std::string text = encode_state(doc);
    const std::string copy = copy_file_name(doc.vault.generation % copies_);
    const auto bytes = std::as_bytes(std::span(text));
    const std::string_view dir = dir_;
    auto written = co_await io::write_file_atomically(dir, main_name, bytes, 0600);
    if (!written)
        co_return err(fmt::format("cannot write {}: {}", main_name, written.error().message()));
    const std::string_view copy_view = copy;
    auto copied = co_await io::write_file_atomically(dir, copy_view, bytes, 0600);
    if (!copied) co_return err(fmt::format("cannot write {}: {}", copy, copied.error().message()));
    co_return expected<void, std::string>{};
}

io::task<state_load> state_store::load() {
    state_load out;
    const std::string main_path = fmt::format("{}/{}", dir_, main_name);
    file_read main = co_await read_bounded(main_path);
    if (main.k == file_read::kind::ok) {
        auto doc = decode_state(main.data);
        if (doc) {
            out.doc = std::move(*doc);
            out.from = state_load::origin::main;
            co_return out;
        }
        out.problems.push_back(fmt::format("{}: {}", main_name, doc.error()));
    } else if (main.k == file_read::kind::failed) {
        out.problems.push_back(fmt::format("{}: {}", main_name, main.error));
    }

    for (std::size_t k = 0; k < copies_; ++k) {
        const std::string name = copy_file_name(k);
        const std::string path = fmt::format("{}/{}", dir_, name);
        file_read r = co_await read_bounded(path);
        if (r.k == file_read::kind::missing) continue;  // fewer saves than copies so far
        if (r.k == file_read::kind::failed) {
            out.problems.push_back(fmt::format("{}: {}", name, r.error));
            continue;
        }
        auto doc = decode_state(r.data);
        if (!doc) {
            out.problems.push_back(fmt::format("{}: {}", name, doc.error()));
            continue;
        }
        if (!out.doc || doc->vault.generation > out.doc->vault.generation) {
            out.doc = std::move(*doc);
            out.copy_name = name;
        }
    }
    if (out.doc) out.from = state_load::origin::copy;
    // A missing state.json is only worth reporting when something else was there.
    if (main.k == file_read::kind::missing && (out.doc || !out.problems.empty()))
        out.problems.insert(out.problems.begin(), fmt::format("{}: missing", main_name));
    co_return out;
}

}  // namespace la::core
