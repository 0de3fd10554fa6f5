#include "core/config.hpp"

#include <initializer_list>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "core/detail/file.hpp"
#include "core/keys.hpp"

static_assert(TOML_EXCEPTIONS == 0, "config loading must not throw: build with TOML_EXCEPTIONS=0");

namespace la::core {
namespace {

using err = unexpected<std::string>;

// Reads one table, remembering the first error; every message names the dotted key.
class table_reader {
public:
    table_reader(const toml::table* t, std::string_view name, const std::filesystem::path& base)
        : t_(t), name_(name), base_(base) {}

    // Refuses any key not in `known`.
    void only(std::initializer_list<std::string_view> known) {
        if (t_ == nullptr) return;
        for (auto&& [k, v] : *t_) {
            bool found = false;
            for (const std::string_view kk : known) found = found || kk == k.str();
            if (!found) fail(k.str(), v.is_table() ? "unknown table" : "unknown key");
        }
    }

    void string(std::string_view key, std::string& out, bool required) {
        const toml::node* n = node(key, required);
        if (n == nullptr) return;
        if (const auto* s = n->as_string()) {
            out = s->get();
        } else {
            fail(key, "expected a string");
        }
    }

    void path(std::string_view key, std::filesystem::path& out, bool required) {
        std::string s;
        const toml::node* n = node(key, required);
        if (n == nullptr) return;
        string(key, s, required);
        if (!n->is_string()) return;
        if (s.empty()) {
            fail(key, "must not be empty");
            return;
        }
        std::filesystem::path p(s);
        out = p.is_absolute() ? p.lexically_normal() : (base_ / p).lexically_normal();
    }

    template <class Int>
    void integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) {
        const toml::node* n = node(key, false);
        if (n == nullptr) return;
        const auto* i = n->as_integer();
        if (i == nullptr) {
            fail(key, "expected an integer");
            return;
        }
        const std::int64_t v = i->get();
        if (v < min || v > max) {
            fail(key, fmt::format("must be between {} and {}, got {}", min, max, v));
            return;
        }
        out = static_cast<Int>(v);
    }

    void boolean(std::string_view key, bool& out) {
        const toml::node* n = node(key, false);
        if (n == nullptr) return;
        if (const auto* b = n->as_boolean()) {
            out = b->get();
        } else {
            fail(key, "expected true or false");
        }
    }

    // A TPM handle written as a hex string ("0x81010001"), within [min, max].
    void handle(std::string_view key, std::uint32_t& out, std::uint32_t min, std::uint32_t max) {
        std::string s;
        const toml::node* n = node(key, false);
        if (n == nullptr) return;
        string(key, s, false);
        if (!n->is_string()) return;
        auto v = parse_tpm_handle(s);
        if (!v) {
            fail(key, v.error());
        } else if (*v < min || *v > max) {
            fail(key, fmt::format("must be between 0x{:08x} and 0x{:08x}, got \"{}\"", min, max, s));
        } else {
            out = *v;
        }
    }

    void uids(std::string_view key, std::vector<uid_t>& out) {
        const toml::node* n = node(key, false);
        if (n == nullptr) return;
        const auto* a = n->as_array();
        constexpr std::int64_t max_uid = std::numeric_limits<std::uint32_t>::max() - 1;  // -1 is "no uid"
        std::vector<uid_t> v;
        if (a != nullptr) {
            for (const toml::node& e : *a) {
                const auto* i = e.as_integer();
                if (i == nullptr || i->get() < 0 || i->get() > max_uid) {
                    a = nullptr;
                    break;
                }
                v.push_back(static_cast<uid_t>(i->get()));
            }
        }
        if (a == nullptr) {
            fail(key, "expected an array of integers (uids)");
            return;
        }
        out = std::move(v);
    }

    void octal_mode(std::string_view key, std::uint32_t& out) {
        std::string s;
        const toml::node* n = node(key, false);
        if (n == nullptr) return;
        string(key, s, false);
        if (!n->is_string()) return;
        std::uint32_t v = 0;
        bool ok = !s.empty() && s.size() <= 4;
        for (const char c : s) {
            ok = ok && c >= '0' && c <= '7';
            if (ok) v = v * 8 + static_cast<std::uint32_t>(c - '0');
        }
        if (!ok || v > 0777) {
            fail(key, fmt::format("expected an octal permission string like \"0660\", got \"{}\"", s));
            return;
        }
        out = v;
    }

    void fail(std::string_view key, std::string_view msg) {
        if (error_.empty()) error_ = fmt::format("{}.{}: {}", name_, key, msg);
    }

    const std::string& error() const noexcept { return error_; }

private:
    const toml::node* node(std::string_view key, bool required) {
        const toml::node* n = t_ == nullptr ? nullptr : t_->get(key);
        if (n == nullptr && required) fail(key, "required key is missing");
        return n;
    }

    const toml::table* t_;
    std::string_view name_;
    const std::filesystem::path& base_;
    std::string error_;
};

}  // namespace

expected<agent_config, std::string> parse_config(std::string_view text, const std::filesystem::path& path) {
    const std::string file = path.string();
    toml::parse_result parsed = toml::parse(text, file);
    if (!parsed) {
        const auto& e = parsed.error();
        return err(fmt::format("{}:{}:{}: {}", file, e.source().begin.line, e.source().begin.column,
                               e.description()));
    }
    const toml::table& root = parsed.table();

    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(path, ec);
    if (ec) abs = path;
    const std::filesystem::path base = abs.parent_path();

    agent_config cfg;
    cfg.source = abs;
    for (auto&& [k, v] : root) {
        const std::string_view name = k.str();
        if (name != "agent" && name != "ipc" && name != "licenses" && name != "secrets" &&
            name != "tpm" && name != "fallback")
            return err(fmt::format("{}: {}: unknown {}", file, name, v.is_table() ? "table" : "key"));
        if (!v.is_table()) return err(fmt::format("{}: {}: expected a table", file, name));
    }
    const auto table = [&](std::string_view name) { return root.get_as<toml::table>(name); };

    table_reader agent(table("agent"), "agent", base);
    agent.only({"id", "state_dir", "state_copies"});
    agent.string("id", cfg.agent_id, true);
    agent.path("state_dir", cfg.state_dir, true);
    agent.integer("state_copies", cfg.state_copies, 1, 100);
    if (agent.error().empty() && cfg.agent_id.empty()) agent.fail("id", "must not be empty");

    table_reader ipc(table("ipc"), "ipc", base);
    ipc.only({"socket", "admin_socket", "socket_mode", "allowed_uids", "admin_uids", "max_connections",
              "idle_timeout_ms", "max_pipeline"});
    ipc.path("socket", cfg.ipc.socket, true);
    ipc.path("admin_socket", cfg.ipc.admin_socket, true);
    ipc.octal_mode("socket_mode", cfg.ipc.socket_mode);
    ipc.uids("allowed_uids", cfg.ipc.allowed_uids);
    ipc.uids("admin_uids", cfg.ipc.admin_uids);
    ipc.integer("max_connections", cfg.ipc.max_connections, 1, 1'000'000);
    ipc.integer("idle_timeout_ms", cfg.ipc.idle_timeout_ms, 1, std::numeric_limits<std::int32_t>::max());
    ipc.integer("max_pipeline", cfg.ipc.max_pipeline, 1, 4096);

    table_reader lic(table("licenses"), "licenses", base);
    lic.only({"issuer", "signing_keys", "leeway_seconds", "instance", "cache_entries"});
    lic.string("issuer", cfg.licenses.issuer, true);
    lic.path("signing_keys", cfg.licenses.signing_keys, true);
    lic.integer("leeway_seconds", cfg.licenses.leeway_seconds, 0, 86'400);
    lic.string("instance", cfg.licenses.instance, false);
    lic.integer("cache_entries", cfg.licenses.cache_entries, 0, 1 << 16);  // ~2 KiB of address space each
    if (lic.error().empty() && cfg.licenses.issuer.empty()) lic.fail("issuer", "must not be empty");

    table_reader sec(table("secrets"), "secrets", base);
    sec.only({"backend", "allow_fallback", "file"});
    sec.string("backend", cfg.secrets.backend, false);
    sec.boolean("allow_fallback", cfg.secrets.allow_fallback);
    if (sec.error().empty()) {
        const std::string& b = cfg.secrets.backend;
        if (b == "file") {
            sec.path("file", cfg.secrets.file, true);
        } else if (b == "tpm" || b == "encrypted-file") {
            if (root.get("secrets") != nullptr && table("secrets")->get("file") != nullptr)
                sec.fail("file", "only used with backend = \"file\" (see [fallback] file)");
        } else {
            sec.fail("backend", fmt::format(
                "unsupported backend \"{}\" (available: \"tpm\", \"encrypted-file\", \"file\")", b));
        }
        if (b != "tpm" && cfg.secrets.allow_fallback)
            sec.fail("allow_fallback", "only meaningful with backend = \"tpm\"");
    }

    table_reader tpm(table("tpm"), "tpm", base);
    tpm.only({"tcti", "primary_handle", "agent_key_handle", "nv_index", "pcr_policy", "timeout_ms"});
    tpm.string("tcti", cfg.tpm.tcti, false);
    tpm.handle("primary_handle", cfg.tpm.primary_handle, 0x81000000u, 0x81FFFFFFu);
    cfg.tpm.agent_key_handle = cfg.tpm.primary_handle + 1;
    tpm.handle("agent_key_handle", cfg.tpm.agent_key_handle, 0x81000000u, 0x81FFFFFFu);
    tpm.handle("nv_index", cfg.tpm.nv_index, 0x01000000u, 0x01FFFFFFu);
    tpm.string("pcr_policy", cfg.tpm.pcr_policy, false);
    tpm.integer("timeout_ms", cfg.tpm.timeout_ms, 100, 600'000);
    if (tpm.error().empty() && cfg.tpm.tcti.empty()) tpm.fail("tcti", "must not be empty");
    if (tpm.error().empty() && cfg.tpm.agent_key_handle == cfg.tpm.primary_handle)
        tpm.fail("agent_key_handle", "must differ from primary_handle");

    table_reader fb(table("fallback"), "fallback", base);
    fb.only({"file", "key_file", "kdf"});
    const bool fallback_used = cfg.secrets.backend == "encrypted-file" || cfg.secrets.allow_fallback;
    fb.path("file", cfg.fallback.file, false);
    if (cfg.fallback.file.empty() && !cfg.state_dir.empty()) cfg.fallback.file = cfg.state_dir / "secret.enc";
    fb.path("key_file", cfg.fallback.key_file, fallback_used);
    fb.string("kdf", cfg.fallback.kdf, false);
    if (fb.error().empty() && cfg.fallback.kdf != "argon2id" && cfg.fallback.kdf != "pbkdf2-sha256")
        fb.fail("kdf", fmt::format("expected \"argon2id\" or \"pbkdf2-sha256\", got \"{}\"", cfg.fallback.kdf));
    if (fb.error().empty() && fallback_used && cfg.fallback.key_file == cfg.fallback.file)
        fb.fail("key_file", "must not be the same file as fallback.file");

    for (const table_reader* r : {&agent, &ipc, &lic, &sec, &tpm, &fb}) {
        if (!r->error().empty()) return err(fmt::format("{}: {}", file, r->error()));
    }
    return cfg;
}

expected<agent_config, std::string> load_config(const std::filesystem::path& path) {
    auto text = detail::read_file(path, detail::file_access::owner_only);
    if (!text) return err(std::move(text.error()));
    return parse_config(*text, path);
}

expected<std::uint32_t, std::string> parse_tpm_handle(std::string_view text) {
    const auto bad = [&] {
        return err(fmt::format("expected a hex handle like \"0x81010001\", got \"{}\"", text));
    };
    if (text.size() < 3 || text.size() > 10 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X'))
        return bad();
    std::uint32_t v = 0;
    for (const char c : text.substr(2)) {
        unsigned d = 0;
        if (c >= '0' && c <= '9') {
            d = static_cast<unsigned>(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = static_cast<unsigned>(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = static_cast<unsigned>(c - 'A' + 10);
        } else {
            return bad();
        }
        v = v * 16 + d;
    }
    return v;
}

}  // namespace la::core
