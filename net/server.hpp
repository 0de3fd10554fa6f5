// The agent's Unix-socket server: listeners, peer checks, and the connection loop that turns
// VALIDATE frames into RESULT frames (the hot path: no allocation per request).
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "core/engine.hpp"
#include "core/result.hpp"
#include "io/fd.hpp"
#include "io/scope.hpp"
#include "io/task.hpp"
#include "net/protocol.hpp"

namespace la::net {

/// What a socket is for: POS apps validate; admins also read status (and later manage).
enum class role : std::uint8_t { validate, admin };

/// A bound, listening Unix socket; removes its path on destruction.
class listener {
public:
    /// Binds `path` with permission bits `mode`. A stale socket file (nobody listening) is
    /// replaced; a live one is an error (another agent runs), as is any non-socket file.
    static core::expected<listener, std::string> bind(const std::filesystem::path& path,
                                                      std::uint32_t mode, int backlog = 1024);
    listener(listener&&) noexcept = default;
    listener& operator=(listener&&) noexcept = default;
    ~listener();

    int fd() const noexcept { return fd_.get(); }
    const std::filesystem::path& path() const noexcept { return path_; }
    /// Stops accepting: closes the socket and removes its path (idempotent).
    void close() noexcept;

private:
    listener() = default;
    io::unique_fd fd_;
    std::filesystem::path path_;
};

/// Server settings, from [ipc] of the config.
struct server_options {
    std::vector<uid_t> allowed_uids;  ///< may validate (admins may too)
    std::vector<uid_t> admin_uids;    ///< may use the admin socket
    std::size_t max_connections = 1024;
    std::chrono::milliseconds idle_timeout{30000};
    std::size_t max_pipeline = 64;  ///< answers queued per connection before a flush
};

/// Counters for `status` and metrics. Thread: the ring thread only.
struct server_stats {
    std::uint64_t accepted = 0;
    std::uint64_t active = 0;
    std::uint64_t unauthorized = 0;
    std::uint64_t busy_refusals = 0;
    std::uint64_t protocol_errors = 0;
    std::uint64_t idle_closed = 0;
    std::uint64_t requests = 0;
    std::array<std::uint64_t, 64> by_status{};  // the protocol reserves codes 0..63  ///< RESULT answers per core::status code
};

/// Serves connections on one ring thread with one engine.
/// Thread: every member runs on the ring thread; stop via the stop_source passed to serve().
class server {
public:
    /// Builds the STATUS answer (a JSON object) on demand; runs on the ring thread.
    using status_provider = std::function<std::string()>;
    /// Runs one ADMIN command (op, payload) and returns the ADMIN_OK JSON; runs on the ring
    /// thread and may suspend (TPM work). The payload may hold secrets: it lives in secure memory.
    using admin_handler = std::function<io::task<std::string>(std::string_view op,
                                                              std::span<const std::byte> payload)>;

    server(server_options opts, core::engine& engine, status_provider status,
           admin_handler admin = {});

    /// Accepts on `l` until `stop` is requested, then waits for every connection to finish
    /// its complete requests and close. Connections of an `admin` listener need an admin uid.
    io::task<void> serve(listener& l, role r, const std::stop_token* stop);

    const server_stats& stats() const noexcept { return stats_; }
    core::engine& engine() noexcept { return engine_; }

private:
    struct watched;     // one connection's deadline and cancel handles (server.cpp)
    struct watch_list;  // the connections of one listener, for the sweeper (server.cpp)

    io::task<void> connection(io::unique_fd fd, role r, watch_list* watch);
    /// Enforces every connection's deadline and the graceful stop with one timer per listener,
    /// instead of a kernel timeout armed and disarmed on every recv and send.
    io::task<void> sweep(watch_list* watch);
    /// Encodes the answer to one frame (or to a framing error) into dst; adds its size to out_len.
    void answer(frame_state state, const frame_view& frame, role r, std::span<std::byte> dst,
                std::size_t& out_len) noexcept;
    bool uid_allowed(uid_t uid, role r) const noexcept;

    server_options opts_;
    core::engine& engine_;
    status_provider status_;
    admin_handler admin_;
    server_stats stats_;
};

}  // namespace la::net
