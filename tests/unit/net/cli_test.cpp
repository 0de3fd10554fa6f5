// license-agent-cli end to end: the real binary against a scripted agent on a Unix socket.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "net/protocol.hpp"

extern char** environ;

namespace la::net {
namespace {

struct run_result {
    int exit_code = -1;
    std::string out, err;
};

std::string read_all(int fd) {
    std::string s;
    std::array<char, 4096> buf{};
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n <= 0) break;
        s.append(buf.data(), static_cast<std::size_t>(n));
    }
    return s;
}

// Runs the CLI with args and stdin text; outputs are small, so reading after exit is safe.
run_result run_cli(std::vector<std::string> args, const std::string& input = "") {
    const std::string exe = std::string(LA_BINARY_DIR) + "/cli/license-agent-cli";
    int in[2], out[2], err[2];
    EXPECT_EQ(::pipe(in), 0);
    EXPECT_EQ(::pipe(out), 0);
    EXPECT_EQ(::pipe(err), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]})
        posix_spawn_file_actions_addclose(&fa, fd);
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    run_result r;
    if (rc == 0) {
        if (!input.empty()) {
            EXPECT_EQ(::write(in[1], input.data(), input.size()),
                      static_cast<ssize_t>(input.size()));
        }
        ::close(in[1]);
        r.out = read_all(out[0]);
        r.err = read_all(err[0]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else {
        ADD_FAILURE() << "cannot spawn " << exe << ": " << std::strerror(rc);
        ::close(in[1]);
    }
    ::close(out[0]);
    ::close(err[0]);
    return r;
}

// An agent that handshakes, then answers each request with `answer(frame, out)` until EOF.
class cli_agent {
  public:
    using answer_fn = std::function<std::size_t(const frame_view&, std::span<std::byte>)>;

    explicit cli_agent(answer_fn answer) : answer_(std::move(answer)) {
        char tmpl[] = "/tmp/la-cli-test-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        path_ = dir_ + "/agent.sock";
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
        EXPECT_EQ(::listen(fd_, 4), 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~cli_agent() {
        ::shutdown(fd_, SHUT_RDWR);
        thread_.join();
        ::close(fd_);
        ::unlink(path_.c_str());
        for (const auto& f : extra_files_) ::unlink(f.c_str());
        ::rmdir(dir_.c_str());
    }
    cli_agent(const cli_agent&) = delete;
    cli_agent& operator=(const cli_agent&) = delete;

    const std::string& path() const { return path_; }
    // Writes a file next to the socket (removed with the agent) and returns its path.
    std::string write_file(const std::string& name, const std::string& text) {
        const std::string p = dir_ + "/" + name;
        std::ofstream(p) << text;
        extra_files_.push_back(p);
        return p;
    }

  private:
    void serve() {
        for (;;) {
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) return;
            std::vector<std::byte> buf;
            std::array<std::byte, max_wire_frame> out{};
            std::array<std::byte, 4096> chunk{};
            for (;;) {
                frame_view f{};
                if (peek_frame(buf, f) == frame_state::ready) {
                    const std::size_t n = f.type == static_cast<std::uint8_t>(msg_type::hello)
                                              ? encode_hello_ok(out)
                                              : answer_(f, out);
                    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(f.total_size));
                    if (::send(c, out.data(), n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) break;
                    continue;
                }
                const ssize_t n = ::recv(c, chunk.data(), chunk.size(), 0);
                if (n <= 0) break;
                buf.insert(buf.end(), chunk.begin(), chunk.begin() + n);
            }
            ::close(c);
        }
    }

    answer_fn answer_;
    std::string dir_, path_;
    std::vector<std::string> extra_files_;
    int fd_ = -1;
    std::thread thread_;
};

// Answers VALIDATE with a fixed license and status `st`.
cli_agent::answer_fn license_answer(core::status st, bool claims = true) {
    return [st, claims](const frame_view& f, std::span<std::byte> out) -> std::size_t {
        static const std::array<std::string_view, 2> features{"a", "b"};
        static const std::array<core::meta_entry, 2> meta{{{"seats", "5"}, {"note", "say \"hi\""}}};
        auto body = decode_validate(f.body);
        if (!body) return encode_error(out, core::status::malformed, "bad body");
        core::validation v{};
        v.st = st;
        v.has_claims = claims;
        v.lic.license_id = "LIC-1";
        v.lic.subject = "cust-9";
        v.lic.product = body->product.empty() ? std::string_view("pos") : body->product;
        v.lic.type = core::lic_type::subscription;
        v.lic.kind = core::token_kind::signed_jws;
        v.lic.has_exp = true;
        v.lic.expires_at = 1798761600;
        v.lic.issued_at = 1700000000;
        v.lic.features = features;
        v.lic.meta = meta;
        return encode_result(out, body->nonce, v);
    };
}

TEST(CliTest, ValidTokenPrintsOneLineAndExitsZero) {
    cli_agent agent(license_answer(core::status::valid));
    const auto r = run_cli({"--socket", agent.path(), "validate", "tok.en.x"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out,
              "valid  license=LIC-1 type=subscription expires=2027-01-01T00:00:00Z features=a,b\n");
}

TEST(CliTest, OtherStatusExitsOneAndJsonIsOneObject) {
    cli_agent agent(license_answer(core::status::expired));
    const auto r =
        run_cli({"--socket=" + agent.path(), "validate", "--json", "--product", "pos2", "-"},
                "tok.en.x \n\n");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(
        r.out,
        R"({"status":"expired","license_id":"LIC-1","lic_type":"subscription","kind":"signed",)"
        R"("product":"pos2","subject":"cust-9","issued_at":1700000000,"expires_at":1798761600,)"
        R"("features":["a","b"],"meta":{"seats":"5","note":"say \"hi\""}})"
        "\n");
}

TEST(CliTest, NoClaimsGivesNullsInJson) {
    cli_agent agent(license_answer(core::status::bad_signature, false));
    const auto r = run_cli({"--socket", agent.path(), "validate", "--json", "t"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(
        r.out,
        R"({"status":"bad_signature","license_id":null,"lic_type":null,"kind":null,)"
        R"("product":null,"subject":null,"issued_at":null,"expires_at":null,"features":[],"meta":{}})"
        "\n");
}

TEST(CliTest, ErrorFrameIsReportedWithItsMessage) {
    cli_agent agent([](const frame_view&, std::span<std::byte> out) {
        return encode_error(out, core::status::unauthorized, "uid 7 not allowed");
    });
    auto r = run_cli({"--socket", agent.path(), "validate", "--json", "t"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find(R"("status":"unauthorized")"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(R"("error":"uid 7 not allowed"})"), std::string::npos) << r.out;
    r = run_cli({"--socket", agent.path(), "validate", "t"});
    EXPECT_EQ(r.out, "unauthorized  error=\"uid 7 not allowed\"\n");
}

TEST(CliTest, UnreachableAgentExitsThree) {
    const auto r = run_cli(
        {"--socket", "/tmp/la-cli-test-none/agent.sock", "--timeout-ms", "300", "validate", "t"});
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find("cannot reach the agent"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
}

TEST(CliTest, UsageErrorsExitTwo) {
    EXPECT_EQ(run_cli({}).exit_code, 2);
    EXPECT_EQ(run_cli({"frobnicate"}).exit_code, 2);
    EXPECT_EQ(run_cli({"validate"}).exit_code, 2);
    EXPECT_EQ(run_cli({"validate", "--bogus", "t"}).exit_code, 2);
    EXPECT_EQ(run_cli({"status", "--product", "p"}).exit_code, 2);
    EXPECT_EQ(run_cli({"--timeout-ms", "abc", "status"}).exit_code, 2);
    EXPECT_EQ(run_cli({"validate", "-"}, " \n").exit_code, 2);
    const auto help = run_cli({"validate", "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("TOKEN|-"), std::string::npos);
}

TEST(CliTest, ConfigFileNamesTheSockets) {
    cli_agent agent([](const frame_view& f, std::span<std::byte> out) -> std::size_t {
        if (f.type == static_cast<std::uint8_t>(msg_type::status)) {
            return encode_status_ok(
                out, R"({"version":"0.1.0","uptime_seconds":90,"by_status":{"valid":2}})");
        }
        return license_answer(core::status::valid)(f, out);
    });
    const auto config =
        agent.write_file("config.toml", "[ipc]\nsocket = \"" + agent.path() +
                                            "\"\nadmin_socket = \"" + agent.path() + "\"\n");
    auto r = run_cli({"--config", config, "validate", "t"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    r = run_cli({"--config", config, "status"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("uptime_seconds           90 (0d 00:01:30)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  valid"), std::string::npos) << r.out;
    r = run_cli({"--config", config, "status", "--json"});
    EXPECT_EQ(r.out, "{\"version\":\"0.1.0\",\"uptime_seconds\":90,\"by_status\":{\"valid\":2}}\n");
    EXPECT_EQ(run_cli({"--config", "/nonexistent.toml", "status"}).exit_code, 2);
}

}  // namespace
}  // namespace la::net
