// The agent's configuration file (TOML): every key, its default and its checks.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace la::core {

class secret_store;

/// [ipc]: the Unix sockets POS apps and admins connect to.
struct ipc_config {
    std::filesystem::path socket;          ///< validation socket (required)
    std::filesystem::path admin_socket;    ///< admin socket (required)
    std::uint32_t socket_mode = 0660;      ///< permission bits of the validation socket
    std::vector<uid_t> allowed_uids;       ///< uids allowed to validate (empty: none besides admins)
    std::vector<uid_t> admin_uids{0};      ///< uids allowed on the admin socket
    std::size_t max_connections = 1024;    ///< concurrent connections, both sockets together
    std::uint32_t idle_timeout_ms = 30000; ///< a connection idle this long is closed
    std::size_t max_pipeline = 64;         ///< requests in flight per connection
};

/// [licenses]: what a valid license looks like on this terminal.
struct licenses_config {
    std::string issuer;                   ///< required `iss` (required)
    std::filesystem::path signing_keys;   ///< JWK Set of Ed25519 public keys (required)
    std::int64_t leeway_seconds = 60;     ///< clock-skew allowance for exp/nbf
    std::string instance;                 ///< this terminal's fingerprint ("" = none)
    std::size_t cache_entries = 4096;     ///< validation cache slots, 0..65536 (0 disables it)
};

/// [secrets]: where the sealed-token secrets come from.
struct secrets_config {
    std::string backend = "file";   ///< only "file" for now
    std::filesystem::path file;     ///< JWK Set of oct keys (required when backend = "file")
};

/// The whole configuration; relative paths are already resolved against the file's directory.
struct agent_config {
    std::filesystem::path source;     ///< the file this was loaded from
    std::string agent_id;             ///< [agent] id (required)
    std::filesystem::path state_dir;  ///< [agent] state_dir (required)
    ipc_config ipc;
    licenses_config licenses;
    secrets_config secrets;
};

/// Loads and checks a config file. Refuses a file readable/writable by group or others,
/// unknown tables or keys, wrong types and out-of-range values; the error text names the
/// file and the dotted key (e.g. "ipc.allowed_uids: expected an array of integers").
/// Never throws (toml++ runs with TOML_EXCEPTIONS=0).
expected<agent_config, std::string> load_config(const std::filesystem::path& path);

/// Parses config text as if read from `path` (no file access, no mode check; for tests and tools).
expected<agent_config, std::string> parse_config(std::string_view text, const std::filesystem::path& path);

/// The secret store the [secrets] table names.
std::unique_ptr<secret_store> make_secret_store(const secrets_config& cfg);

}  // namespace la::core
