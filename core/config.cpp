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
        if (name != "agent" && name != "ipc" && name != "licenses" && name != "secrets")
            return err(fmt::format("{}: {}: unknown {}", file, name, v.is_table() ? "table" : "key"));
        if (!v.is_table()) return err(fmt::format("{}: {}: expected a table", file, name));
    }
    const auto table = [&](std::string_view name) { return root.get_as<toml::table>(name); };

    table_reader agent(table("agent"), "agent", base);
    agent.only({"id", "state_dir"});
    agent.string("id", cfg.agent_id, true);
    agent.path("state_dir", cfg.state_dir, true);
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
    sec.only({"backend", "file"});
    sec.string("backend", cfg.secrets.backend, false);
    if (sec.error().empty()) {
        if (cfg.secrets.backend == "file") {
            sec.path("file", cfg.secrets.file, true);
        } else {
            sec.fail("backend", fmt::format("unsupported backend \"{}\" (available: \"file\")", cfg.secrets.backend));
        }
    }

    for (const table_reader* r : {&agent, &ipc, &lic, &sec}) {
        if (!r->error().empty()) return err(fmt::format("{}: {}", file, r->error()));
    }
    return cfg;
}

expected<agent_config, std::string> load_config(const std::filesystem::path& path) {
    auto text = detail::read_file(path, detail::file_access::owner_only);
    if (!text) return err(std::move(text.error()));
    return parse_config(*text, path);
}

std::unique_ptr<secret_store> make_secret_store(const secrets_config& cfg) {
    // load_config admits only "file" today; TPM and encrypted-file stores will branch here.
    return std::make_unique<file_secret_store>(cfg.file);
}

}  // namespace la::core
