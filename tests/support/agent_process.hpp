// Integration-test harness: a throwaway directory, the agent's config file, the real agent
// process, child commands with captured output, and tokens minted by tests/support/mint.py.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace la::test {

using namespace std::chrono_literals;

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class temp_dir {
public:
    /// Creates the directory (mode 0700; chmod it for tests with other uids).
    temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir();

    const std::filesystem::path& path() const noexcept { return path_; }
    /// path() / name.
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

/// Writes `text` to `path` with permission bits `mode` (applied with chmod, not via umask).
void write_file(const std::filesystem::path& path, const std::string& text, mode_t mode = 0600);

/// The whole file, or "" when it cannot be read.
std::string read_file(const std::filesystem::path& path);

/// The agent's config: every value is raw TOML text keyed by "table.key" (e.g. "ipc.socket_mode"
/// → "\"0666\""). Defaults point every path into `dir`; set a value to override it, set it to
/// std::nullopt to leave the key out, or add keys the agent does not know.
struct agent_config {
    /// Defaults for an agent living in `dir` with keys written by mint.py in `keys_dir`.
    agent_config(const std::filesystem::path& dir, const std::filesystem::path& keys_dir);

    std::map<std::string, std::optional<std::string>> values;
    std::filesystem::path socket;        ///< ipc.socket
    std::filesystem::path admin_socket;  ///< ipc.admin_socket

    /// Sets "table.key" to raw TOML text (ipc.socket / ipc.admin_socket: a quoted path, which
    /// socket / admin_socket then follow).
    agent_config& set(const std::string& key, std::string toml_value);
    /// Leaves "table.key" out of the file.
    agent_config& remove(const std::string& key);
    /// The TOML document, tables in a fixed order.
    std::string text() const;
    /// Writes text() to `path` with mode 0600.
    void write(const std::filesystem::path& path) const;
};

/// Quotes a string as a TOML basic string.
std::string toml_string(const std::string& s);

/// How a child process ended.
struct exit_info {
    bool exited = false;    ///< true: normal exit with `code`; false: killed by `signal`
    int code = -1;
    int signal = 0;
};

/// A running license-agent; SIGTERM then SIGKILL on destruction if still running.
class agent_process {
public:
    /// Starts `binary --config config_path`, stdout and stderr appended to `log_path`. `env`
    /// ("NAME=value" entries, e.g. "LA_CRASH_POINT=change.staged") is added to the test's own
    /// environment, replacing variables of the same name.
    agent_process(const std::filesystem::path& binary, const std::filesystem::path& config_path,
                  const std::filesystem::path& log_path, const std::vector<std::string>& env = {});
    agent_process(const agent_process&) = delete;
    agent_process& operator=(const agent_process&) = delete;
    ~agent_process();

    pid_t pid() const noexcept { return pid_; }
    /// Connect-retries `socket` until it accepts (true), the agent exits or `timeout` passes (false).
    bool wait_ready(const std::filesystem::path& socket, std::chrono::milliseconds timeout = 20s);
    /// Sends `sig` to the agent (no-op once it has been reaped).
    void signal(int sig) const;
    /// Waits for the agent to exit; nullopt if it is still running after `timeout`.
    std::optional<exit_info> wait_exit(std::chrono::milliseconds timeout);
    /// SIGTERM, wait up to `grace`, then SIGKILL: how it ended.
    exit_info stop(std::chrono::milliseconds grace = 10s);
    /// True until the agent has been reaped (or is seen to have exited).
    bool running();
    /// The agent's log so far.
    std::string log() const { return read_file(log_path_); }

private:
    pid_t pid_ = -1;
    int pidfd_ = -1;
    std::optional<exit_info> exit_;
    std::filesystem::path log_path_;
};

/// A finished command: exit status and what it wrote.
struct command_result {
    exit_info status;
    std::string out;  ///< stdout
    std::string err;  ///< stderr
    bool timed_out = false;
};

/// Runs argv[0] (a path, no PATH search) with `input` on stdin; killed after `timeout`.
command_result run_command(const std::vector<std::string>& argv, const std::string& input = "",
                           std::chrono::milliseconds timeout = 60s);

/// The exit code of a command, or 128 + signal when killed (for readable assertions).
int exit_code(const command_result& r);

/// A key directory written by `mint.py keys` (signing-keys.json, signing-private.json, secrets.json).
/// Returns false (and the reason in `why`) if mint.py failed.
bool mint_keys(const std::filesystem::path& out, const std::string& signing_kids,
               const std::string& secret_versions, std::string& why);

/// Writes a JWK Set of fresh 32-byte secrets (kid = version; `versions` comma-separated) to
/// `out` with `mint.py secrets`; `options` are more of its options ("--valid-until", "1900000000").
/// A later `mint_batch(out's directory, ...)` seals tokens with them when `out` is
/// <dir>/secrets.json. Returns false (and the reason in `why`) if mint.py failed.
bool mint_secrets(const std::filesystem::path& out, const std::string& versions, std::string& why,
                  const std::vector<std::string>& options = {});

/// Mints many tokens in one python run: `requests_json` is the JSON array `mint.py batch` reads.
/// Returns name → token; empty (and the reason in `why`) on failure.
std::map<std::string, std::string> mint_batch(const std::filesystem::path& keys_dir,
                                              const std::string& requests_json, std::string& why);

/// The current time in Unix seconds.
std::int64_t unix_now();

}  // namespace la::test
