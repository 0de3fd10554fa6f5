#include "net/daemon.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "core/config.hpp"
#include "core/engine.hpp"
#include "core/json.hpp"
#include "core/keys.hpp"
#include "crypto/secure_buffer.hpp"
#include "io/clock.hpp"
#include "io/offload.hpp"
#include "io/ring.hpp"
#include "io/scope.hpp"
#include "io/signals.hpp"
#include "net/server.hpp"
#include "tpm/custody.hpp"

namespace la::net {
namespace {

template <class... Args>
void log(std::string_view level, fmt::format_string<Args...> f, Args&&... args) {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fmt::print(stderr, "{} license-agent {}: {}\n", stamp, level,
               fmt::format(f, std::forward<Args>(args)...));
    std::fflush(stderr);
}

constexpr std::string_view usage =
    "usage: license-agent --config FILE [--check-config]\n"
    "  --config FILE    the agent's TOML configuration (mode 0600)\n"
    "  --check-config   load and check the configuration and keys, then exit\n"
    "  --version        print the version\n"
    "Signals: SIGTERM/SIGINT stop gracefully; SIGHUP reloads signing keys and secrets.\n";

core::expected<core::signing_key_set, std::string> load_signing(const core::agent_config& cfg) {
    return core::load_signing_keys(cfg.licenses.signing_keys);
}

// An ADMIN_OK error reply.
std::string admin_error(std::string_view text) {
    return fmt::format(R"({{"ok":false,"error":{}}})", core::json::quote(text));
}

// The completion queue must hold one pending recv per connection plus sends, accepts and
// timers (see io::ring): size it from max_connections.
io::ring::options ring_options(const core::ipc_config& ipc) {
    io::ring::options o;
    o.sq_entries = 256;
    const std::size_t needed = 2 * ipc.max_connections + 256;
    o.cq_multiplier = static_cast<unsigned>(std::max<std::size_t>(8, (needed + 255) / 256));
    return o;
}

struct agent {
    const core::agent_config& cfg;
    core::engine& engine;
    server& srv;
    io::signal_set& signals;
    io::worker_thread& worker;  ///< blocking work (key files, key derivation) runs here
    tpm::custody& custody;
    std::stop_source& stop;
    core::signing_key_set signing;  ///< kept: replace_keys takes both sets
    std::size_t secrets;
    bool changing = false;  ///< a secret change is in progress (one at a time)
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

    std::string status_json() const {
        const auto& s = srv.stats();
        const auto& e = engine.stats();
        std::string by_status;
        for (std::size_t i = 0; i <= static_cast<std::size_t>(core::status::secret_invalidated); ++i) {
            if (!by_status.empty()) by_status += ',';
            by_status += fmt::format("\"{}\":{}", core::to_string(static_cast<core::status>(i)),
                                     s.by_status[i]);
        }
        const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::steady_clock::now() - started);
        return fmt::format(
            "{{\"version\":\"{}\",\"agent_id\":{},\"uptime_seconds\":{},\"pid\":{},"
            "\"connections\":{},\"accepted\":{},\"unauthorized\":{},\"busy_refusals\":{},"
            "\"protocol_errors\":{},\"idle_closed\":{},\"requests\":{},\"validations\":{},"
            "\"valid\":{},\"invalid\":{},\"cache_hits\":{},\"cache_misses\":{},"
            "\"signing_keys\":{},\"secrets\":{},\"secrets_backend\":\"{}\",\"tpm_available\":{},"
            "\"by_status\":{{{}}},\"custody\":{}}}",
            LA_VERSION, core::json::quote(cfg.agent_id), uptime.count(), ::getpid(), s.active, s.accepted,
            s.unauthorized, s.busy_refusals, s.protocol_errors, s.idle_closed, s.requests,
            e.validations, e.valid, e.invalid, e.cache_hits, e.cache_misses, signing.size(), secrets,
            custody.backend(), custody.tpm_available() ? "true" : "false", by_status,
            custody.status_json());
    }


    // Signing keys are read off the ring thread, secrets through custody; a failed reload
    // keeps the keys in service.
    io::task<void> reload() {
        const core::agent_config* config = &cfg;
        auto fresh = co_await io::offload(worker, [config] { return load_signing(*config); });
        if (!fresh) {
            log("error", "reload failed, keeping the current keys: {}", fresh.error());
            co_return;
        }
        auto opened = co_await custody.reload();
        if (!opened) {
            log("error", "reload failed, keeping the current keys: {}", opened.error());
            co_return;
        }
        signing = std::move(*fresh);
        install(std::move(*opened));
        log("info", "reloaded {} signing keys and {} secrets", signing.size(), secrets);
    }

    void install(core::secret_set s) {
        secrets = s.size();
        engine.replace_keys(signing, std::move(s));
    }

    // ADMIN commands (admin socket only; the server checked the peer's uid).
    io::task<std::string> admin(std::string_view op, std::span<const std::byte> payload) {
        if (op == "tpm-status") {
            co_await custody.probe();
            co_return R"({"ok":true,"custody":)" + custody.status_json() + "}";
        }
        if (op != "tpm-provision" && op != "secrets-import")
            co_return admin_error(fmt::format("unknown admin command \"{}\" (tpm-status, "
                                              "tpm-provision, secrets-import)", op));
        if (changing) co_return admin_error("another secret change is in progress: retry");
        changing = true;
        std::string reply;
        if (op == "tpm-provision") {
            reply = co_await custody.provision_json();
        } else {
            // Parsed in place, so into secure memory first; wiped when it goes.
            auto text = crypto::secure_buffer::allocate(std::max<std::size_t>(payload.size(), 1));
            if (!text) {
                reply = admin_error("out of secure memory");
            } else {
                std::memcpy(text->data(), payload.data(), payload.size());
                const std::span<char> jwks(reinterpret_cast<char*>(text->data()), payload.size());
                auto imported = co_await custody.import(jwks, "import");
                if (!imported) {
                    log("error", "secrets import refused: {}", imported.error());
                    reply = admin_error(imported.error());
                } else {
                    install(std::move(*imported));
                    log("info", "secrets imported: {} secrets in service (generation {})", secrets,
                        custody.manager().metadata().generation);
                    reply = fmt::format(R"({{"ok":true,"secrets":{},"generation":{}}})", secrets,
                                        custody.manager().metadata().generation);
                }
            }
        }
        changing = false;
        co_return reply;
    }

    // SIGHUP reloads key material; a failed reload keeps the keys in service.
    io::task<void> handle_signals() {
        for (;;) {
            auto sig = co_await signals.next();
            if (!sig) {
                log("error", "signal wait failed: {}; stopping", sig.error().message());
                stop.request_stop();
                co_return;
            }
            if (*sig == SIGHUP) {
                co_await reload();
                continue;
            }
            log("info", "{} received: stopping (finishing requests in flight)", ::strsignal(*sig));
            stop.request_stop();
            co_return;
        }
    }
};

// Secrets past their grace_until are zeroized within a minute (their tokens already fail by date).
io::task<void> sweep_secrets(agent& a, const std::stop_token* stop) {
    for (;;) {
        auto slept = co_await io::sleep_for(std::chrono::seconds(60), stop);
        if (!slept) co_return;  // stopping
        if (const std::size_t n = a.engine.sweep_secrets(); n > 0)
            log("info", "swept {} expired secret(s): their keys are zeroized", n);
    }
}

// The TPM's health is re-read every 30 s (each probe bounded by tpm.timeout_ms), so status and
// metrics show a TPM that stopped answering; validations never wait for it.
io::task<void> watch_tpm(agent& a, const std::stop_token* stop) {
    bool was = a.custody.tpm_available();
    for (;;) {
        auto slept = co_await io::sleep_for(std::chrono::seconds(30), stop);
        if (!slept) co_return;
        co_await a.custody.probe();
        const bool now = a.custody.tpm_available();
        if (now != was)
            log(now ? "info" : "error", "TPM {}", now ? "answers again" : "stopped answering");
        was = now;
    }
}

io::task<void> run(agent& a, listener& main_socket, listener& admin_socket) {
    const std::stop_token token = a.stop.get_token();
    io::task_scope scope;
    scope.spawn(a.srv.serve(main_socket, role::validate, &token));
    scope.spawn(a.srv.serve(admin_socket, role::admin, &token));
    scope.spawn(a.handle_signals());
    scope.spawn(sweep_secrets(a, &token));
    if (a.cfg.secrets.backend == "tpm") scope.spawn(watch_tpm(a, &token));
    co_await scope.join();
}

// Each connection holds one descriptor: raise the soft limit towards what max_connections
// needs (never above the hard limit, which only root may raise).
void raise_fd_limit(std::size_t max_connections) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    const rlim_t wanted = static_cast<rlim_t>(max_connections) + 64;
    if (lim.rlim_cur >= wanted) return;
    lim.rlim_cur = std::min(wanted, lim.rlim_max);
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur < wanted)
        log("warning", "open-file limit {} is below ipc.max_connections + 64 = {}", lim.rlim_cur,
            wanted);
}

}  // namespace

int run_agent(int argc, char** argv) {
    std::optional<std::string> config_path;
    bool check_only = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (arg == "--check-config") {
            check_only = true;
        } else if (arg == "--version") {
            fmt::print("license-agent {}\n", LA_VERSION);
            return 0;
        } else if (arg == "--help" || arg == "-h") {
            fmt::print("{}", usage);
            return 0;
        } else {
            fmt::print(stderr, "license-agent: unknown argument '{}'\n{}", arg, usage);
            return 2;
        }
    }
    if (!config_path) {
        fmt::print(stderr, "license-agent: --config FILE is required\n{}", usage);
        return 2;
    }

    // Before anything secret is in memory: no core dumps, no ptrace by peers of our uid.
    if (auto hardened = crypto::harden_process(); !hardened)
        log("warning", "could not make the process non-dumpable: {}", hardened.error().message());

    auto cfg = core::load_config(*config_path);
    if (!cfg) {
        log("error", "{}", cfg.error());
        return 2;
    }
    auto signing = load_signing(*cfg);
    if (!signing) {
        log("error", "{}", signing.error());
        return 2;
    }
    if (!check_only && ::mkdir(cfg->state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        log("error", "agent.state_dir {}: {}", cfg->state_dir.string(), std::strerror(errno));
        return 1;
    }
    if (!check_only) raise_fd_limit(cfg->ipc.max_connections);

    // Signals are blocked before any thread starts (the TPM's, the worker's), so they all
    // inherit the mask.
    auto signals = io::signal_set::open({SIGTERM, SIGINT, SIGHUP});
    if (!signals) {
        log("error", "signalfd: {}", signals.error().message());
        return 1;
    }
    ::signal(SIGPIPE, SIG_IGN);

    auto ring = io::ring::create(ring_options(cfg->ipc));
    if (!ring) {
        log("error", "io_uring setup failed: {}", ring.error().message());
        return 1;
    }

    io::system_clock clock;
    io::worker_thread worker("la-keys");
    const auto mode = check_only ? tpm::custody_mode::inspect : tpm::custody_mode::serve;
    auto opened = (*ring)->run(tpm::custody::open(*cfg, worker, clock, mode));
    if (!opened) {
        log("error", "secrets: {}", opened.error());
        return 2;
    }
    tpm::custody& custody = **opened;
    for (const std::string& note : custody.manager().report().notes)
        log(custody.manager().report().outcome == core::state_outcome::tampering ? "error" : "warning",
            "state: {}", note);
    if (custody.reason() != "configured")
        log("warning", "secrets backend {} ({})", custody.backend(), custody.reason());
    if (check_only) {
        fmt::print("configuration OK: {} signing keys, secrets backend {} ({}), {} secrets at generation {}\n",
                   signing->size(), custody.backend(), custody.reason(),
                   custody.metadata().secrets.size(), custody.metadata().generation);
        return 0;
    }

    const std::size_t signing_count = signing->size();
    core::secret_set secrets = custody.take_secrets();
    const std::size_t secret_count = secrets.size();
    core::engine engine(
        core::engine_options{cfg->licenses.issuer, cfg->licenses.leeway_seconds,
                             cfg->licenses.instance, cfg->licenses.cache_entries},
        *signing, std::move(secrets), clock);

    auto main_socket = listener::bind(cfg->ipc.socket, cfg->ipc.socket_mode);
    if (!main_socket) {
        log("error", "ipc.socket {}", main_socket.error());
        return 1;
    }
    auto admin_socket = listener::bind(cfg->ipc.admin_socket, cfg->ipc.socket_mode & 0770u);
    if (!admin_socket) {
        log("error", "ipc.admin_socket {}", admin_socket.error());
        return 1;
    }

    std::stop_source stop;
    agent* self = nullptr;  // set below: the server and the agent refer to each other
    server srv(server_options{cfg->ipc.allowed_uids, cfg->ipc.admin_uids, cfg->ipc.max_connections,
                              std::chrono::milliseconds(cfg->ipc.idle_timeout_ms),
                              cfg->ipc.max_pipeline},
               engine, [&self] { return self->status_json(); },
               [&self](std::string_view op, std::span<const std::byte> payload) {
                   return self->admin(op, payload);
               });
    agent a{*cfg, engine, srv, *signals, worker, custody, stop, std::move(*signing), secret_count};
    self = &a;

    log("info", "ready: agent {} on {} (admin {}), {} signing keys, {} secrets ({} backend)",
        cfg->agent_id, cfg->ipc.socket.string(), cfg->ipc.admin_socket.string(), signing_count,
        secret_count, custody.backend());
    (*ring)->run(run(a, *main_socket, *admin_socket));
    log("info", "stopped: {} requests answered", srv.stats().requests);
    if (!custody.wait_tpm_idle()) {
        // The TPM thread is blocked in a command that will not return: joining it would hang
        // the stop. Exit now; the kernel releases the locked secret pages with the process.
        log("warning", "a TPM call is still hung: exiting without waiting for it");
        std::_Exit(0);
    }
    return 0;
}

}  // namespace la::net
