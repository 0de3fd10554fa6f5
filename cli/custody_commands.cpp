#include "cli/custody_commands.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/config.hpp"
#include "core/json.hpp"
#include "crypto/secure_buffer.hpp"
#include "io/clock.hpp"
#include "io/fd.hpp"
#include "io/offload.hpp"
#include "io/ring.hpp"
#include "net/protocol.hpp"
#include "tpm/custody.hpp"

namespace la::cli {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;
constexpr std::string_view default_admin_socket = "/run/license-agent/admin.sock";

// Reads the import file into secure memory (it holds secrets). "-" is stdin.
std::optional<crypto::secure_buffer> read_secret_input(const std::string& path, std::string& error) {
    const int fd = path == "-" ? ::dup(STDIN_FILENO) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = fmt::format("{}: {}", path, std::strerror(errno));
        return std::nullopt;
    }
    io::unique_fd owner(fd);
    constexpr std::size_t limit = net::max_body - 64;
    auto buf = crypto::secure_buffer::allocate(limit + 1);
    if (!buf) {
        error = "cannot allocate secure memory";
        return std::nullopt;
    }
    std::size_t len = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buf->data() + len, buf->size() - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error = fmt::format("{}: {}", path, std::strerror(errno));
            return std::nullopt;
        }
        if (n == 0) break;
        len += static_cast<std::size_t>(n);
        if (len > limit) {
            error = fmt::format("{}: larger than {} bytes", path, limit);
            return std::nullopt;
        }
    }
    auto exact = crypto::secure_buffer::allocate(std::max<std::size_t>(len, 1));
    if (!exact) {
        error = "cannot allocate secure memory";
        return std::nullopt;
    }
    std::memcpy(exact->data(), buf->data(), len);
    if (len == 0) {
        error = fmt::format("{}: empty", path);
        return std::nullopt;
    }
    return std::move(*exact);
}

std::string op_name(const std::string& command) { return command; }

// Sends one ADMIN frame and waits for its answer within timeout_ms. Returns the JSON body, or
// nullopt with `error` set (and `unreachable` when the agent could not be reached at all).
struct admin_call {
    std::optional<std::string> json;
    std::string error;
    bool not_running = false;  ///< no agent listens there (ENOENT / ECONNREFUSED)
    bool unreachable = false;
};

admin_call call_agent(const std::string& path, std::string_view op, std::span<const std::byte> payload,
                      int timeout_ms) {
    admin_call out;
    io::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (!fd || path.size() >= sizeof addr.sun_path) {
        out.error = fmt::format("{}: cannot open a socket", path);
        out.unreachable = true;
        return out;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        out.not_running = errno == ENOENT || errno == ECONNREFUSED;
        out.unreachable = true;
        out.error = fmt::format("{}: {}", path, std::strerror(errno));
        return out;
    }
    std::vector<std::byte> frame(net::max_wire_frame);
    const std::size_t n = net::encode_admin(frame, op, payload);
    if (n == 0) {
        out.error = "the request does not fit one frame";
        return out;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto wait = [&](short events) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd.get(), events, 0};
        return ::poll(&p, 1, static_cast<int>(left.count())) == 1;
    };
    std::size_t sent = 0;
    while (sent < n) {
        if (!wait(POLLOUT)) break;
        const ssize_t w = ::send(fd.get(), frame.data() + sent, n - sent, MSG_NOSIGNAL);
        if (w <= 0) break;
        sent += static_cast<std::size_t>(w);
    }
    crypto::secure_zero(frame.data(), frame.size());  // the payload may be a JWK Set of secrets
    if (sent < n) {
        out.error = "the agent did not take the request";
        out.unreachable = true;
        return out;
    }
    std::size_t got = 0;
    for (;;) {
        net::frame_view f{};
        const auto st = net::peek_frame(std::span(frame).first(got), f);
        if (st == net::frame_state::ready) {
            const std::string_view body(reinterpret_cast<const char*>(f.body.data()), f.body.size());
            if (f.type == static_cast<std::uint8_t>(net::msg_type::admin_ok)) {
                out.json = std::string(body);
            } else if (f.type == static_cast<std::uint8_t>(net::msg_type::error) && body.size() >= 3) {
                out.error = fmt::format("the agent refused: {}", body.substr(3));
            } else {
                out.error = "unexpected answer from the agent";
                out.unreachable = true;
            }
            return out;
        }
        if (st != net::frame_state::need_more || got == frame.size() || !wait(POLLIN)) break;
        const ssize_t r = ::recv(fd.get(), frame.data() + got, frame.size() - got, 0);
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
    }
    out.error = "no answer from the agent (closed, or timed out)";
    out.unreachable = true;
    return out;
}

// Human layout of a tpm-status / result JSON object: "key: value" per scalar member, nested
// objects indented. Falls back to the raw JSON when it does not parse.
void print_human(std::string json) {
    std::vector<core::json::token> toks(4096);
    std::string text = json;
    const auto pr = core::json::parse(std::span(text.data(), text.size()), toks);
    if (pr.err != core::json::error::none || toks[0].kind != core::json::type::object) {
        fmt::print("{}\n", json);
        return;
    }
    const core::json::document d{std::span<const core::json::token>(toks).first(pr.count)};
    auto scalar = [&](std::size_t i) -> std::string {
        switch (d[i].kind) {
            case core::json::type::string:
            case core::json::type::number: return std::string(d[i].text);
            case core::json::type::true_value: return "yes";
            case core::json::type::false_value: return "no";
            case core::json::type::null: return "-";
            default: return "";
        }
    };
    auto walk = [&](auto&& self, std::size_t obj, int depth) -> void {
        for (const core::json::member m : d.children(obj)) {
            const auto& t = d[m.value];
            const std::string pad(static_cast<std::size_t>(depth) * 2, ' ');
            if (t.kind == core::json::type::object) {
                fmt::print("{}{}:\n", pad, m.key);
                self(self, m.value, depth + 1);
            } else if (t.kind == core::json::type::array) {
                fmt::print("{}{}:{}\n", pad, m.key, t.size == 0 ? " (none)" : "");
                for (const core::json::member e : d.children(m.value)) {
                    if (d[e.value].kind == core::json::type::object) {
                        std::string line;
                        for (const core::json::member f : d.children(e.value))
                            line += fmt::format("{}{}={}", line.empty() ? "" : " ", f.key, scalar(f.value));
                        fmt::print("{}  - {}\n", pad, line);
                    } else {
                        fmt::print("{}  - {}\n", pad, scalar(e.value));
                    }
                }
            } else {
                fmt::print("{}{}: {}\n", pad, m.key, scalar(m.value));
            }
        }
    };
    walk(walk, 0, 0);
}

bool reply_ok(const std::string& json) { return json.find("\"ok\":true") != std::string::npos; }

int finish(const custody_request& r, const std::string& json) {
    if (r.json) {
        fmt::print("{}\n", json);
    } else {
        print_human(json);
    }
    return reply_ok(json) ? exit_ok : exit_failed;
}

std::string error_json(std::string_view text) {
    return fmt::format(R"({{"ok":false,"error":{}}})", core::json::quote(text));
}

// The work itself, on an opened custody.
io::task<std::string> offline_json(const custody_request& r, tpm::custody& c, crypto::secure_buffer* payload) {
    if (r.command == "tpm-status") co_return R"({"ok":true,"agent":"stopped","custody":)" + c.status_json() + "}";
    if (r.command == "tpm-provision") co_return co_await c.provision_json();
    const std::span<char> jwks(reinterpret_cast<char*>(payload->data()), payload->size());
    // Named first: GCC 12 destroys a non-trivial temporary inside co_await twice.
    const std::string_view source = r.file == "-" ? std::string_view("stdin") : std::string_view(r.file);
    auto imported = co_await c.import(jwks, source);
    if (!imported) co_return error_json(imported.error());
    co_return fmt::format(R"({{"ok":true,"agent":"stopped","secrets":{},"generation":{}}})",
                          imported->size(), c.metadata().generation);
}

// The agent is stopped: do the work here, on the configured backend. The custody is handed back
// so that the caller decides, once the ring is done, whether it can be destroyed.
io::task<std::string> run_offline(const custody_request& r, const core::agent_config& cfg,
                                  io::worker_thread& worker, crypto::secure_buffer* payload,
                                  std::unique_ptr<tpm::custody>& custody) {
    io::system_clock clock;
    const tpm::custody_mode mode = r.command == "tpm-status"      ? tpm::custody_mode::inspect
                                   : r.command == "tpm-provision" ? tpm::custody_mode::provision
                                                                  : tpm::custody_mode::serve;
    auto opened = co_await tpm::custody::open(cfg, worker, clock, mode);
    if (!opened) co_return error_json(opened.error());
    custody = std::move(*opened);
    co_return co_await offline_json(r, *custody, payload);
}

}  // namespace

int run_custody(const custody_request& r) {
    std::optional<core::agent_config> cfg;
    if (r.config) {
        auto loaded = core::load_config(*r.config);
        if (!loaded) {
            fmt::print(stderr, "license-agent-cli: {}\n", loaded.error());
            return exit_usage;
        }
        cfg = std::move(*loaded);
    }
    std::optional<crypto::secure_buffer> payload;
    if (r.command == "secrets-import") {
        std::string error;
        payload = read_secret_input(r.file, error);
        if (!payload) {
            fmt::print(stderr, "license-agent-cli: {}\n", error);
            return exit_usage;
        }
    }
    const std::string socket = r.socket ? *r.socket
                               : cfg   ? cfg->ipc.admin_socket.string()
                                       : std::string(default_admin_socket);
    const int timeout = r.timeout_ms > 0 ? r.timeout_ms : r.command == "tpm-status" ? 10000 : 120000;
    const std::span<const std::byte> body =
        payload ? std::span<const std::byte>(payload->data(), payload->size()) : std::span<const std::byte>{};
    admin_call call = call_agent(socket, op_name(r.command), body, timeout);
    if (call.json) return finish(r, *call.json);
    if (!call.not_running) {
        fmt::print(stderr, "license-agent-cli: {}\n", call.error);
        return call.unreachable ? exit_unreachable : exit_failed;
    }
    // No agent: the config says where everything is, and this process does the work.
    if (!cfg) {
        fmt::print(stderr,
                   "license-agent-cli: the agent is not running ({}); give --config FILE to work on "
                   "its secrets directly\n",
                   call.error);
        return exit_usage;
    }
    if (::mkdir(cfg->state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        fmt::print(stderr, "license-agent-cli: agent.state_dir {}: {}\n", cfg->state_dir.string(),
                   std::strerror(errno));
        return exit_failed;
    }
    auto ring = io::ring::create();
    if (!ring) {
        fmt::print(stderr, "license-agent-cli: io_uring setup failed: {}\n", ring.error().message());
        return exit_failed;
    }
    io::worker_thread worker("la-cli");
    crypto::secure_buffer* p = payload ? &*payload : nullptr;
    std::unique_ptr<tpm::custody> custody;
    const std::string json = (*ring)->run(run_offline(r, *cfg, worker, p, custody));
    const int code = finish(r, json);
    if (custody && !custody->wait_tpm_idle()) {
        // Destroying the custody would join a TPM thread blocked in a call that never returns:
        // leave now (the kernel frees the locked secret pages).
        std::fflush(stdout);
        std::_Exit(code);
    }
    return code;
}

}  // namespace la::cli
