#include "io/ops.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>

#include "io/fd.hpp"
#include "io/scope.hpp"
#include "io/signals.hpp"

namespace la::io {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<ring> make_ring() {
    auto r = ring::create();
    EXPECT_TRUE(r.has_value());
    return std::move(*r);
}

std::pair<unique_fd, unique_fd> socket_pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    return {unique_fd(sv[0]), unique_fd(sv[1])};
}

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s)); }

struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        char tmpl[] = "/tmp/la-io-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

task<std::string> send_then_recv(int a, int b) {
    auto sent = co_await send(a, bytes_of("hello"));
    EXPECT_EQ(sent.value_or(0), 5u);
    std::array<std::byte, 16> buf{};
    auto got = co_await recv(b, buf);
    EXPECT_TRUE(got.has_value());
    co_return std::string(reinterpret_cast<const char*>(buf.data()), got.value_or(0));
}

TEST(OpsTest, SendAndRecvMoveBytesOverASocket) {
    auto r = make_ring();
    auto [a, b] = socket_pair();
    EXPECT_EQ(r->run(send_then_recv(a.get(), b.get())), "hello");
}

task<core::result<std::size_t>> recv_once(int fd, op_options o) {
    std::array<std::byte, 16> buf{};
    co_return co_await recv(fd, buf, std::move(o));
}

TEST(OpsTest, RecvReportsZeroWhenThePeerCloses) {
    auto r = make_ring();
    auto [a, b] = socket_pair();
    a.reset();
    auto n = r->run(recv_once(b.get(), {}));
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 0u);
}

TEST(OpsTest, LinkedTimeoutFailsASilentRecvWithTimedOut) {
    auto r = make_ring();
    auto [a, b] = socket_pair();
    const auto start = std::chrono::steady_clock::now();
    auto n = r->run(recv_once(b.get(), op_options{50ms, {}}));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error(), std::errc::timed_out);
    EXPECT_GE(elapsed, 50ms);  // kernel timeouts are only lower bounds in tests
    EXPECT_EQ(r->in_flight(), 1u) << "only the wake-up read should remain in flight";
}

TEST(OpsTest, LinkedTimeoutDoesNotFireWhenDataArrives) {
    auto r = make_ring();
    auto [a, b] = socket_pair();
    ASSERT_EQ(::send(a.get(), "x", 1, 0), 1);
    auto n = r->run(recv_once(b.get(), op_options{10s, {}}));
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 1u);
}

task<core::result<std::size_t>> recv_and_cancel(int fd) {
    std::stop_source source;
    task_scope scope;
    core::result<std::size_t> out = core::fail(std::errc::invalid_argument);
    const std::stop_token token = source.get_token();
    auto receiver = [](int f, const std::stop_token* st, core::result<std::size_t>* o) -> task<void> {
        std::array<std::byte, 8> buf{};
        *o = co_await recv(f, buf, op_options{std::nullopt, st});
    };
    scope.spawn(receiver(fd, &token, &out));
    co_await sleep_for(10ms);
    source.request_stop();
    co_await scope.join();
    co_return out;
}

TEST(OpsTest, StopTokenCancelsAPendingRecv) {
    auto r = make_ring();
    auto [a, b] = socket_pair();
    auto n = r->run(recv_and_cancel(b.get()));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error(), std::errc::operation_canceled);
}

TEST(OpsTest, AlreadyStoppedTokenCompletesWithoutSubmitting) {
    auto r = make_ring();
    auto [a, b] = socket_pair();
    std::stop_source source;
    source.request_stop();
    const std::stop_token token = source.get_token();
    auto n = r->run(recv_once(b.get(), op_options{std::nullopt, &token}));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error(), std::errc::operation_canceled);
}

task<void> accept_and_connect(const sockaddr_un* addr, int listener, bool* ok) {
    task_scope scope;
    auto client = [](const sockaddr_un* a) -> task<void> {
        unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        auto c = co_await io::connect(fd.get(), reinterpret_cast<const sockaddr*>(a), sizeof *a);
        EXPECT_TRUE(c.has_value());
        auto s = co_await send(fd.get(), bytes_of("ping"));
        EXPECT_TRUE(s.has_value());
    };
    scope.spawn(client(addr));
    auto conn = co_await accept(listener);
    EXPECT_TRUE(conn.has_value());
    if (conn) {
        unique_fd c(*conn);
        std::array<std::byte, 4> buf{};
        auto n = co_await recv(c.get(), buf);
        *ok = n.has_value() && *n == 4 && std::memcmp(buf.data(), "ping", 4) == 0;
    }
    co_await scope.join();
}

TEST(OpsTest, AcceptAndConnectOverAUnixSocket) {
    auto r = make_ring();
    temp_dir dir;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, (dir.path / "s.sock").c_str(), sizeof addr.sun_path - 1);
    unique_fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener.get(), 16), 0);
    bool ok = false;
    r->run(accept_and_connect(&addr, listener.get(), &ok));
    EXPECT_TRUE(ok);
}

task<std::string> file_round_trip(const std::string& dir) {
    const std::string path = dir + "/data.txt";
    auto fd = co_await openat(AT_FDCWD, path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    EXPECT_TRUE(fd.has_value());
    if (!fd) co_return "";
    auto w = co_await write(*fd, bytes_of("persisted"), 0);
    EXPECT_EQ(w.value_or(0), 9u);
    auto s = co_await fsync(*fd);
    EXPECT_TRUE(s.has_value());
    std::array<std::byte, 32> buf{};
    auto n = co_await read(*fd, buf, 0);
    EXPECT_TRUE(n.has_value());
    auto c = co_await close(*fd);
    EXPECT_TRUE(c.has_value());
    const std::string renamed = dir + "/renamed.txt";
    auto rn = co_await renameat(AT_FDCWD, path.c_str(), AT_FDCWD, renamed.c_str());
    EXPECT_TRUE(rn.has_value());
    co_return std::string(reinterpret_cast<const char*>(buf.data()), n.value_or(0));
}

TEST(OpsTest, OpenWriteFsyncReadCloseRenameAFile) {
    auto r = make_ring();
    temp_dir dir;
    EXPECT_EQ(r->run(file_round_trip(dir.path.string())), "persisted");
    struct stat st{};
    EXPECT_EQ(::stat((dir.path / "renamed.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

task<core::result<int>> open_missing() {
    co_return co_await openat(AT_FDCWD, "/nonexistent/dir/file", O_RDONLY);
}

TEST(OpsTest, ErrorsComeBackAsErrnoValues) {
    auto r = make_ring();
    auto fd = r->run(open_missing());
    ASSERT_FALSE(fd.has_value());
    EXPECT_EQ(fd.error(), std::errc::no_such_file_or_directory);
}

task<core::result<std::size_t>> write_twice(int fd) {
    auto first = co_await write(fd, bytes_of("a"), 0);
    EXPECT_TRUE(first.has_value());
    co_return co_await write(fd, bytes_of("b"), 1);
}

TEST(OpsTest, FaultPlanFailsTheNthOperationOfAKind) {
    auto r = make_ring();
    temp_dir dir;
    unique_fd fd(::open((dir.path / "f").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
    r->set_fault_plan(fault_plan{op_kind::write, 2, ENOSPC});
    auto n = r->run(write_twice(fd.get()));
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error(), std::errc::no_space_on_device);
    EXPECT_EQ(std::filesystem::file_size(dir.path / "f"), 1u);
}

task<core::result<void>> sleep_briefly() { co_return co_await sleep_for(20ms); }

TEST(OpsTest, SleepForWaitsAtLeastItsDuration) {
    auto r = make_ring();
    const auto start = std::chrono::steady_clock::now();
    auto s = r->run(sleep_briefly());
    EXPECT_TRUE(s.has_value());
    EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

task<core::result<int>> wait_signal(signal_set& set) { co_return co_await set.next(); }

TEST(OpsTest, SignalSetDeliversASignalAsData) {
    auto r = make_ring();
    auto set = signal_set::open({SIGUSR1});
    ASSERT_TRUE(set.has_value());
    ASSERT_EQ(::raise(SIGUSR1), 0);  // blocked: stays pending for the signalfd
    auto sig = r->run(wait_signal(*set));
    ASSERT_TRUE(sig.has_value());
    EXPECT_EQ(*sig, SIGUSR1);
}

}  // namespace
}  // namespace la::io
