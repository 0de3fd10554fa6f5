// The agent's configuration file (TOML): every key, its default and its checks.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace la::core {

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

/// [secrets]: where the sealed-token secrets are kept.
struct secrets_config {
    std::string backend = "tpm";    ///< "tpm", "encrypted-file", or "file" (plain JWK Set: tests, demos)
    bool allow_fallback = false;    ///< tpm absent or failing at start: use encrypted-file instead
    std::filesystem::path file;     ///< JWK Set of oct keys (required when backend = "file")
};

/// [tpm]: how to reach the TPM and where our objects live in it.
struct tpm_config {
    std::string tcti = "device:/dev/tpmrm0";   ///< tpm2-tss TCTI string ("swtpm:path=...", "mssim:...")
    std::uint32_t primary_handle = 0x81010001; ///< persistent storage primary
    std::uint32_t agent_key_handle = 0x81010002; ///< persistent RSA-2048 agent key
    std::uint32_t nv_index = 0x01500020;       ///< NV index holding the secret metadata
    std::string pcr_policy;                    ///< "sha256:0,2,7"; empty = auth value only
    std::uint32_t timeout_ms = 5000;           ///< per TPM call
};

/// [fallback]: the encrypted-file backend.
struct fallback_config {
    std::filesystem::path file;       ///< secret.enc (default: <state_dir>/secret.enc)
    std::filesystem::path key_file;   ///< key material, mode 0600 (required when the backend may be used)
    std::string kdf = "argon2id";     ///< "argon2id" or "pbkdf2-sha256"
};

/// The whole configuration; relative paths are already resolved against the file's directory.
struct agent_config {
    std::filesystem::path source;     ///< the file this was loaded from
    std::string agent_id;             ///< [agent] id (required)
    std::filesystem::path state_dir;  ///< [agent] state_dir (required)
    std::size_t state_copies = 5;     ///< [agent] state_copies: older state.json generations kept
    ipc_config ipc;
    licenses_config licenses;
    secrets_config secrets;
    tpm_config tpm;
    fallback_config fallback;
};

/// Loads and checks a config file. Refuses a file readable/writable by group or others,
/// unknown tables or keys, wrong types and out-of-range values; the error text names the
/// file and the dotted key (e.g. "ipc.allowed_uids: expected an array of integers").
/// Never throws (toml++ runs with TOML_EXCEPTIONS=0).
expected<agent_config, std::string> load_config(const std::filesystem::path& path);

/// Parses config text as if read from `path` (no file access, no mode check; for tests and tools).
expected<agent_config, std::string> parse_config(std::string_view text, const std::filesystem::path& path);

/// Parses a TPM handle or NV index written as hex ("0x81010001"). Errors: not hex, out of 32 bits.
expected<std::uint32_t, std::string> parse_tpm_handle(std::string_view text);

}  // namespace la::core
