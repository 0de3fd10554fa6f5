// license-agent-cli: asks the local agent to validate a token or report its counters.
// Talks to the agent through the public C client library, like any POS app would.
#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli_support.hpp"
#include "cli/custody_commands.hpp"
#include "core/json.hpp"
#include "license_client.h"

namespace {

// Exit codes are part of the CLI's contract (scripts rely on them).
constexpr int exit_valid = 0;
constexpr int exit_not_valid = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;

constexpr std::string_view main_help =
    R"(usage: license-agent-cli [--socket PATH] [--config FILE] [--timeout-ms N] COMMAND [ARGS]

Commands:
  validate               ask the agent whether a license token is valid
  status                 show the agent's counters
  tpm-status [--json]    which secrets backend is in use and why, TPM health, secret metadata
  tpm-provision          create (or find) the TPM primary key, NV index and agent key, or the
                         fallback key file; idempotent
  secrets import FILE    seal the secrets of a JWK Set of oct keys ("-" = stdin)

The last three talk to the running agent through its admin socket, or, when it is stopped,
work on the backend named by --config FILE directly.

Global options:
  --socket PATH      agent socket (overrides the config file)
  --config FILE      read ipc.socket / ipc.admin_socket from this TOML config
  --timeout-ms N     per-call timeout in milliseconds (default 5000)
  -h, --help         show this help ('COMMAND --help' for a command)

Exit codes: 0 valid / ok, 1 the agent answered another status, 2 usage error,
3 the agent cannot be reached or broke the protocol.
)";

constexpr std::string_view validate_help =
    R"(usage: license-agent-cli [GLOBAL OPTIONS] validate [--product P] [--feature F] [--instance I] [--json] TOKEN|-

Sends TOKEN (or, with '-', the token read from stdin, trailing whitespace trimmed) to the agent
and prints its verdict. Socket: --socket, else ipc.socket from --config, else
/run/license-agent/agent.sock.

Options:
  --product P     require the license to be for product P
  --feature F     require the license to grant feature F
  --instance I    require the license to be bound to instance fingerprint I
  --json          print one JSON object instead of a line of text

Exit codes: 0 valid, 1 any other status, 2 usage error, 3 agent unreachable / protocol failure.
)";

constexpr std::string_view status_help =
    R"(usage: license-agent-cli [GLOBAL OPTIONS] status [--json]

Prints the agent's counters (uptime, connections, validations by status, ...).
Socket: --socket, else ipc.admin_socket from --config, else /run/license-agent/admin.sock.

Options:
  --json          print the agent's JSON object as is

Exit codes: 0 ok, 1 the agent refused, 2 usage error, 3 agent unreachable / protocol failure.
)";

struct cli_args {
    std::optional<std::string> socket;
    std::optional<std::string> config;
    int timeout_ms = 0;
    std::string command;
    std::optional<std::string> product, feature, instance;
    std::optional<std::string> token;
    std::optional<std::string> file;  // secrets import FILE
    bool json = false;
    bool help = false;
};

// A usage error message, or nothing when the arguments parsed.
using parse_error = std::optional<std::string>;

parse_error parse_args(int argc, char** argv, cli_args& a) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view arg = args[i];
        std::optional<std::string_view> inline_value;
        if (arg.starts_with("--") && arg.find('=') != std::string_view::npos) {
            inline_value = arg.substr(arg.find('=') + 1);
            arg = arg.substr(0, arg.find('='));
        }
        // Fetches the option's value from "--opt=value" or the next argument.
        auto value = [&](std::optional<std::string>& dst) -> parse_error {
            if (inline_value) {
                dst = std::string(*inline_value);
                return std::nullopt;
            }
            if (i + 1 >= args.size()) return fmt::format("option {} needs a value", arg);
            dst = std::string(args[++i]);
            return std::nullopt;
        };
        auto command_only = [&](std::string_view cmd) -> parse_error {
            if (a.command != cmd) return fmt::format("option {} belongs to '{}'", arg, cmd);
            return std::nullopt;
        };
        parse_error err;
        if (arg == "-h" || arg == "--help") {
            a.help = true;
        } else if (arg == "--socket") {
            err = value(a.socket);
        } else if (arg == "--config") {
            err = value(a.config);
        } else if (arg == "--timeout-ms") {
            std::optional<std::string> v;
            err = value(v);
            if (!err) {
                const auto* end = v->data() + v->size();
                auto [p, ec] = std::from_chars(v->data(), end, a.timeout_ms);
                if (ec != std::errc{} || p != end || a.timeout_ms <= 0) {
                    err = fmt::format("--timeout-ms wants a positive integer, got '{}'", *v);
                }
            }
        } else if (arg == "--json") {
            if (a.command.empty()) return "--json belongs to a command";
            a.json = true;
        } else if (arg == "--product" || arg == "--feature" || arg == "--instance") {
            err = command_only("validate");
            if (!err)
                err = value(arg == "--product"   ? a.product
                            : arg == "--feature" ? a.feature
                                                 : a.instance);
        } else if (arg.size() > 1 && arg.front() == '-') {
            err = fmt::format("unknown option {}", arg);
        } else if (a.command.empty()) {
            if (arg != "validate" && arg != "status" && arg != "tpm-status" &&
                arg != "tpm-provision" && arg != "secrets")
                return fmt::format("unknown command '{}'", arg);
            a.command = std::string(arg);
        } else if (a.command == "validate" && !a.token) {
            a.token = std::string(arg);
        } else if (a.command == "secrets" && arg == "import") {
            a.command = "secrets-import";
        } else if (a.command == "secrets-import" && !a.file) {
            a.file = std::string(arg);
        } else {
            err = fmt::format("unexpected argument '{}'", arg);
        }
        if (err) return err;
    }
    return std::nullopt;
}

// Reads a whole file; nullopt when it cannot be opened.
std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// --socket, else the config's ipc.<key>, else the default. nullopt (after a message) on error.
std::optional<std::string> resolve_socket(const cli_args& a, std::string_view key,
                                          std::string_view fallback) {
    if (a.socket) return *a.socket;
    if (a.config) {
        auto text = read_file(*a.config);
        if (!text) {
            fmt::print(stderr, "license-agent-cli: cannot read config {}\n", *a.config);
            return std::nullopt;
        }
        if (auto v = la::cli::toml_lookup_string(*text, "ipc", key)) return *v;
    }
    return std::string(fallback);
}

struct client_closer {
    void operator()(lsa_client* c) const noexcept { lsa_close(c); }
};
using client_ptr = std::unique_ptr<lsa_client, client_closer>;

// Connects or prints why not. A refusal (-EACCES: the agent refused this uid, or the socket's
// permissions did) is "unauthorized", an answer about the caller: exit 1, like any invalid
// status; everything else means the agent could not be reached: exit 3.
struct connection {
    client_ptr client;
    int exit_code = 0;
};
connection connect_agent(const std::string& path, int timeout_ms, bool json) {
    lsa_options opts{};
    opts.socket_path = path.c_str();
    opts.timeout_ms = timeout_ms;
    opts.expected_agent_uid = -1;
    lsa_client* c = nullptr;
    const int rc = lsa_connect(&opts, &c);
    if (rc == -EACCES) {
        const std::string why = fmt::format("{}: {}", path, lsa_strerror(rc));
        if (json) {
            fmt::print("{{\"status\":\"unauthorized\",\"error\":{}}}\n", la::core::json::quote(why));
        } else {
            fmt::print("unauthorized  error=\"{}\"\n", why);
        }
        return {nullptr, exit_not_valid};
    }
    if (rc < 0) {
        fmt::print(stderr, "license-agent-cli: cannot reach the agent at {}: {}\n", path,
                   lsa_strerror(rc));
        return {nullptr, exit_unreachable};
    }
    return {client_ptr(c), 0};
}

std::string validate_json(const lsa_result& r) {
    const auto json_quote = [](std::string_view v) { return la::core::json::quote(v); };
    std::string out = fmt::format("{{\"status\":{}", json_quote(r.status_name));
    auto text_or_null = [&](const char* s) { return r.has_claims ? json_quote(s) : "null"; };
    out += fmt::format(",\"license_id\":{}", text_or_null(r.license_id));
    out += fmt::format(",\"lic_type\":{}", text_or_null(r.lic_type_name));
    out += fmt::format(",\"kind\":{}", text_or_null(lsa_kind_string(r.kind)));
    out += fmt::format(",\"product\":{}", text_or_null(r.product));
    out += fmt::format(",\"subject\":{}", text_or_null(r.subject));
    out += r.has_claims ? fmt::format(",\"issued_at\":{}", r.issued_at) : ",\"issued_at\":null";
    out += r.has_expiry ? fmt::format(",\"expires_at\":{}", r.expires_at) : ",\"expires_at\":null";
    out += ",\"features\":[";
    for (std::size_t i = 0; i < r.feature_count; ++i) {
        out += (i == 0 ? "" : ",") + json_quote(r.features[i]);
    }
    out += "],\"meta\":{";
    for (std::size_t i = 0; i < r.meta_count; ++i) {
        out += fmt::format("{}{}:{}", i == 0 ? "" : ",", json_quote(r.meta[i].key),
                           json_quote(r.meta[i].value));
    }
    out += '}';
    if (r.error_message != nullptr)
        out += fmt::format(",\"error\":{}", json_quote(r.error_message));
    out += '}';
    return out;
}

std::string validate_line(const lsa_result& r) {
    std::string out = r.status_name;
    if (r.has_claims) {
        out += fmt::format("  license={} type={} expires={}", r.license_id, r.lic_type_name,
                           r.has_expiry ? la::cli::format_utc(r.expires_at) : "never");
        if (r.feature_count > 0) {
            out += " features=";
            for (std::size_t i = 0; i < r.feature_count; ++i) {
                out += fmt::format("{}{}", i == 0 ? "" : ",", r.features[i]);
            }
        }
    }
    if (r.error_message != nullptr) out += fmt::format("  error=\"{}\"", r.error_message);
    return out;
}

int run_validate(const cli_args& a) {
    if (!a.token) {
        fmt::print(stderr, "license-agent-cli: validate needs a TOKEN (or '-' for stdin)\n{}",
                   validate_help);
        return exit_usage;
    }
    std::string token = *a.token;
    if (token == "-") {
        std::ostringstream in;
        in << std::cin.rdbuf();
        token = std::string(la::cli::trim_right(in.str()));
    }
    if (token.empty()) {
        fmt::print(stderr, "license-agent-cli: the token is empty\n");
        return exit_usage;
    }
    auto path = resolve_socket(a, "socket", LSA_DEFAULT_SOCKET);
    if (!path) return exit_usage;
    auto [client, refused] = connect_agent(*path, a.timeout_ms, a.json);
    if (!client) return refused;

    auto opt = [](const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; };
    lsa_result r{};
    const int rc = lsa_validate(client.get(), token.data(), token.size(), opt(a.product),
                                opt(a.feature), opt(a.instance), &r);
    if (rc < 0) {
        fmt::print(stderr, "license-agent-cli: validation failed: {}\n", lsa_strerror(rc));
        return exit_unreachable;
    }
    fmt::print("{}\n", a.json ? validate_json(r) : validate_line(r));
    return r.status == LSA_STATUS_VALID ? exit_valid : exit_not_valid;
}

int run_status(const cli_args& a) {
    auto path = resolve_socket(a, "admin_socket", LSA_DEFAULT_ADMIN_SOCKET);
    if (!path) return exit_usage;
    auto [client, refused] = connect_agent(*path, a.timeout_ms, a.json);
    if (!client) return refused;
    std::string json(16385, '\0');
    const int rc = lsa_status(client.get(), json.data(), json.size());
    if (rc < 0) {
        const char* refusal = lsa_last_error(client.get());
        if (refusal != nullptr) {
            fmt::print(stderr, "license-agent-cli: the agent refused: {}\n", refusal);
            return exit_not_valid;
        }
        fmt::print(stderr, "license-agent-cli: status failed: {}\n", lsa_strerror(rc));
        return exit_unreachable;
    }
    json.resize(static_cast<std::size_t>(rc));
    if (a.json) {
        fmt::print("{}\n", json);
        return exit_valid;
    }
    if (auto text = la::cli::format_status_json(json)) {
        fmt::print("{}", *text);
    } else {
        fmt::print("{}\n", json);  // not an object we can lay out: show it raw rather than nothing
    }
    return exit_valid;
}

}  // namespace

int main(int argc, char** argv) {
    cli_args a;
    if (auto err = parse_args(argc, argv, a)) {
        fmt::print(stderr, "license-agent-cli: {}\n(try --help)\n", *err);
        return exit_usage;
    }
    if (a.command.empty()) {
        fmt::print(a.help ? stdout : stderr, "{}", main_help);
        return a.help ? exit_valid : exit_usage;
    }
    if (a.help) {
        fmt::print("{}", a.command == "validate" ? validate_help
                         : a.command == "status" ? status_help
                                                 : main_help);
        return exit_valid;
    }
    if (a.command == "secrets") {
        fmt::print(stderr, "license-agent-cli: secrets needs a subcommand: import FILE\n");
        return exit_usage;
    }
    if (a.command == "secrets-import" && !a.file) {
        fmt::print(stderr, "license-agent-cli: secrets import needs a FILE (or '-' for stdin)\n");
        return exit_usage;
    }
    if (a.command == "tpm-status" || a.command == "tpm-provision" || a.command == "secrets-import") {
        la::cli::custody_request r;
        r.command = a.command;
        r.config = a.config;
        r.socket = a.socket;
        r.file = a.file.value_or("");
        r.json = a.json;
        r.timeout_ms = a.timeout_ms;
        return la::cli::run_custody(r);
    }
    return a.command == "validate" ? run_validate(a) : run_status(a);
}
