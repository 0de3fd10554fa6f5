#include "tests/support/agent_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>

#ifndef LA_SOURCE_DIR
#error "LA_SOURCE_DIR must name the source tree (tests/CMakeLists.txt: la_test_support)"
#endif

extern char** environ;

namespace la::test {
namespace {

using clock_type = std::chrono::steady_clock;

int ms_until(clock_type::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

exit_info decode_wait_status(int status) {
    exit_info e;
    if (WIFEXITED(status)) {
        e.exited = true;
        e.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        e.signal = WTERMSIG(status);
    }
    return e;
}

// A closed-on-exec file descriptor owned by one scope.
struct fd_guard {
    int fd = -1;
    fd_guard() = default;
    explicit fd_guard(int f) : fd(f) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

// Spawn attributes every child gets: an empty signal mask and default SIGPIPE/SIGTERM/SIGHUP
// dispositions, whatever the test process did with its own.
struct spawn_attr {
    posix_spawnattr_t attr{};
    spawn_attr() {
        ::posix_spawnattr_init(&attr);
        sigset_t none;
        sigemptyset(&none);
        sigset_t defaults;
        sigemptyset(&defaults);
        for (int s : {SIGPIPE, SIGTERM, SIGHUP, SIGINT}) sigaddset(&defaults, s);
        ::posix_spawnattr_setsigmask(&attr, &none);
        ::posix_spawnattr_setsigdefault(&attr, &defaults);
        ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }
    spawn_attr(const spawn_attr&) = delete;
    spawn_attr& operator=(const spawn_attr&) = delete;
    ~spawn_attr() { ::posix_spawnattr_destroy(&attr); }
};

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
    std::vector<char*> out;
    out.reserve(argv.size() + 1);
    for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
    out.push_back(nullptr);
    return out;
}

// The test's environment with `extra` ("NAME=value") added, replacing variables of the same
// name. The strings stay owned by `storage`; the result is null-terminated for posix_spawn.
std::vector<char*> merged_env(const std::vector<std::string>& extra, std::vector<std::string>& storage) {
    auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry(*e);
        bool replaced = false;
        for (const auto& x : extra) replaced = replaced || name_of(x) == name_of(entry);
        if (!replaced) storage.emplace_back(entry);
    }
    storage.insert(storage.end(), extra.begin(), extra.end());
    return c_argv(storage);
}

std::string python() { return "/usr/bin/python3"; }
std::string mint_script() { return std::string(LA_SOURCE_DIR) + "/tests/support/mint.py"; }

}  // namespace

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

temp_dir::temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/la-integ.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();  // nothing can run without it
    path_ = tmpl;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void write_file(const std::filesystem::path& path, const std::string& text, mode_t mode) {
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
    }
    ::chmod(path.c_str(), mode);
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string toml_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

agent_config::agent_config(const std::filesystem::path& dir, const std::filesystem::path& keys_dir)
    : socket(dir / "agent.sock"), admin_socket(dir / "admin.sock") {
    const std::string uid = std::to_string(::getuid());
    values = {
        {"agent.id", toml_string("pos-integ-001")},
        {"agent.state_dir", toml_string((dir / "state").string())},
        {"ipc.socket", toml_string(socket.string())},
        {"ipc.admin_socket", toml_string(admin_socket.string())},
        {"ipc.socket_mode", toml_string("0660")},
        {"ipc.allowed_uids", "[" + uid + "]"},
        {"ipc.admin_uids", "[" + uid + "]"},
        {"licenses.issuer", toml_string("https://licenses.example.com")},
        {"licenses.signing_keys", toml_string((keys_dir / "signing-keys.json").string())},
        {"licenses.leeway_seconds", "60"},
        {"licenses.instance", toml_string("pos-fp-001")},
        {"secrets.backend", toml_string("file")},
        {"secrets.file", toml_string((keys_dir / "secrets.json").string())},
    };
}

agent_config& agent_config::set(const std::string& key, std::string toml_value) {
    if (key == "ipc.socket") socket = toml_value.substr(1, toml_value.size() - 2);
    if (key == "ipc.admin_socket") admin_socket = toml_value.substr(1, toml_value.size() - 2);
    values[key] = std::move(toml_value);
    return *this;
}

agent_config& agent_config::remove(const std::string& key) {
    values[key] = std::nullopt;
    return *this;
}

std::string agent_config::text() const {
    std::map<std::string, std::string> tables;  // table → its "key = value" lines
    for (const auto& [key, value] : values) {
        if (!value) continue;
        const auto dot = key.find('.');
        tables[key.substr(0, dot)] += key.substr(dot + 1) + " = " + *value + "\n";
    }
    std::string out;
    for (const char* t : {"agent", "ipc", "licenses", "secrets"}) {
        auto it = tables.find(t);
        if (it == tables.end()) continue;
        out += "[" + it->first + "]\n" + it->second;
        tables.erase(it);
    }
    for (const auto& [t, lines] : tables) out += "[" + t + "]\n" + lines;
    return out;
}

void agent_config::write(const std::filesystem::path& path) const { write_file(path, text(), 0600); }

agent_process::agent_process(const std::filesystem::path& binary, const std::filesystem::path& config_path,
                             const std::filesystem::path& log_path, const std::vector<std::string>& env)
    : log_path_(log_path) {
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::posix_spawn_file_actions_adddup2(&fa, 1, 2);
    spawn_attr attr;
    const std::vector<std::string> argv{binary.string(), "--config", config_path.string()};
    auto args = c_argv(argv);
    std::vector<std::string> env_storage;
    auto envp = env.empty() ? std::vector<char*>{} : merged_env(env, env_storage);
    const int rc =
        ::posix_spawn(&pid_, args[0], &fa, &attr.attr, args.data(), env.empty() ? environ : envp.data());
    ::posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        pid_ = -1;
        exit_ = exit_info{true, 127, 0};
        return;
    }
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
}

agent_process::~agent_process() {
    if (running()) stop(5s);
    if (pidfd_ >= 0) ::close(pidfd_);
}

bool agent_process::running() {
    if (exit_) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exit_ = decode_wait_status(status);
        return false;
    }
    return true;
}

void agent_process::signal(int sig) const {
    if (!exit_ && pid_ > 0) ::kill(pid_, sig);
}

std::optional<exit_info> agent_process::wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = clock_type::now() + timeout;
    while (running()) {
        const int left = ms_until(deadline);
        if (left == 0) return std::nullopt;
        if (pidfd_ >= 0) {
            pollfd p{pidfd_, POLLIN, 0};
            ::poll(&p, 1, left);  // readable once the process has exited
        } else {
            ::poll(nullptr, 0, left < 10 ? left : 10);
        }
    }
    return exit_;
}

exit_info agent_process::stop(std::chrono::milliseconds grace) {
    signal(SIGTERM);
    if (auto e = wait_exit(grace)) return *e;
    signal(SIGKILL);
    if (auto e = wait_exit(60s)) return *e;
    return exit_info{};
}

bool agent_process::wait_ready(const std::filesystem::path& socket, std::chrono::milliseconds timeout) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string& s = socket.native();
    if (s.size() >= sizeof addr.sun_path) return false;
    std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
    const auto deadline = clock_type::now() + timeout;
    for (;;) {
        fd_guard fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(fd.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return true;
        if (!running()) return false;
        const int left = ms_until(deadline);
        if (left == 0) return false;
        // Back off between attempts; wakes early if the agent dies.
        pollfd p{pidfd_, POLLIN, 0};
        ::poll(&p, pidfd_ >= 0 ? 1 : 0, left < 10 ? left : 10);
    }
}

command_result run_command(const std::vector<std::string>& argv, const std::string& input,
                           std::chrono::milliseconds timeout) {
    command_result res;
    std::array<int, 2> in{-1, -1}, out{-1, -1}, err{-1, -1};
    if (::pipe2(in.data(), O_CLOEXEC) != 0 || ::pipe2(out.data(), O_CLOEXEC) != 0 ||
        ::pipe2(err.data(), O_CLOEXEC) != 0) {
        res.err = std::string("pipe2: ") + std::strerror(errno);
        return res;
    }
    fd_guard in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, in_r.fd, 0);
    ::posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
    ::posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
    spawn_attr attr;
    auto args = c_argv(argv);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, args[0], &fa, &attr.attr, args.data(), environ);
    ::posix_spawn_file_actions_destroy(&fa);
    in_r.reset();
    out_w.reset();
    err_w.reset();
    if (rc != 0) {
        res.err = argv[0] + ": posix_spawn: " + std::strerror(rc);
        return res;
    }
    ::fcntl(in_w.fd, F_SETFL, O_NONBLOCK);
    std::size_t written = 0;
    if (input.empty()) in_w.reset();
    const auto deadline = clock_type::now() + timeout;
    while (out_r.fd >= 0 || err_r.fd >= 0) {
        std::array<pollfd, 3> p{};
        nfds_t n = 0;
        auto add = [&](fd_guard& g, short ev) {
            if (g.fd >= 0) p[n++] = pollfd{g.fd, ev, 0};
        };
        add(out_r, POLLIN);
        add(err_r, POLLIN);
        add(in_w, POLLOUT);
        const int left = ms_until(deadline);
        if (left == 0) {
            res.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        if (::poll(p.data(), n, left) < 0 && errno != EINTR) break;
        for (nfds_t i = 0; i < n; ++i) {
            if (p[i].revents == 0) continue;
            if (p[i].fd == in_w.fd) {
                const ssize_t w = ::write(in_w.fd, input.data() + written, input.size() - written);
                if (w > 0) written += static_cast<std::size_t>(w);
                if (w < 0 && errno != EAGAIN && errno != EINTR) written = input.size();
                if (written == input.size()) in_w.reset();
                continue;
            }
            char buf[4096];
            const ssize_t r = ::read(p[i].fd, buf, sizeof buf);
            std::string& dst = p[i].fd == out_r.fd ? res.out : res.err;
            if (r > 0) {
                dst.append(buf, static_cast<std::size_t>(r));
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                (p[i].fd == out_r.fd ? out_r : err_r).reset();
            }
        }
    }
    in_w.reset();
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    res.status = decode_wait_status(status);
    return res;
}

int exit_code(const command_result& r) {
    return r.status.exited ? r.status.code : 128 + r.status.signal;
}

bool mint_keys(const std::filesystem::path& out, const std::string& signing_kids,
               const std::string& secret_versions, std::string& why) {
    auto r = run_command({python(), mint_script(), "keys", "--out", out.string(), "--signing-kids",
                          signing_kids, "--secret-versions", secret_versions});
    if (exit_code(r) == 0) return true;
    why = "mint.py keys failed (" + std::to_string(exit_code(r)) + "): " + r.err;
    return false;
}

bool mint_secrets(const std::filesystem::path& out, const std::string& versions, std::string& why,
                  const std::vector<std::string>& options) {
    std::vector<std::string> argv{python(), mint_script(), "secrets", "--out", out.string(), "--versions", versions};
    argv.insert(argv.end(), options.begin(), options.end());
    auto r = run_command(argv);
    if (exit_code(r) == 0) return true;
    why = "mint.py secrets failed (" + std::to_string(exit_code(r)) + "): " + r.err;
    return false;
}

std::map<std::string, std::string> mint_batch(const std::filesystem::path& keys_dir,
                                              const std::string& requests_json, std::string& why) {
    std::map<std::string, std::string> tokens;
    auto r = run_command({python(), mint_script(), "batch", "--keys", keys_dir.string()}, requests_json,
                         120s);
    if (exit_code(r) != 0) {
        why = "mint.py batch failed (" + std::to_string(exit_code(r)) + "): " + r.err;
        return tokens;
    }
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
        const auto space = line.find(' ');
        if (space == std::string::npos) continue;
        tokens[line.substr(0, space)] = line.substr(space + 1);
    }
    return tokens;
}

}  // namespace la::test
