#include "io/ring.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <thread>

#include "io/fd.hpp"
#include "io/ops.hpp"
#include "io/scope.hpp"

namespace la::io {
namespace {

std::unique_ptr<ring> make_ring(ring::options o = {}) {
    auto r = ring::create(o);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return std::move(*r);
}

TEST(RingTest, CreatesWithTheBestSupportedSetupFlags) {
    auto r = make_ring();
    // Kernel 6.x here: DEFER_TASKRUN is expected, but older kernels fall back.
    EXPECT_TRUE(r->setup_flags() == (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) ||
                r->setup_flags() == IORING_SETUP_COOP_TASKRUN || r->setup_flags() == 0);
    EXPECT_GE(r->cq_capacity(), 256u * 8u);
}

// `n` connected socket pairs: reads on the first ends wait until the second ends write.
std::pair<std::vector<unique_fd>, std::vector<unique_fd>> socket_pairs(int n) {
    std::vector<unique_fd> readers, writers;
    for (int i = 0; i < n; ++i) {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) break;
        readers.emplace_back(sv[0]);
        writers.emplace_back(sv[1]);
    }
    return {std::move(readers), std::move(writers)};
}

task<void> bump(int* n) {
    ++*n;
    co_return;
}

task<void> spawn_many(task_scope& scope, int* n, int count) {
    for (int i = 0; i < count; ++i) scope.spawn(bump(n));
    co_await scope.join();
}

TEST(RingTest, ScopeJoinWaitsForEverySpawnedTask) {
    auto r = make_ring();
    task_scope scope;
    int n = 0;
    r->run(spawn_many(scope, &n, 1000));
    EXPECT_EQ(n, 1000);
    EXPECT_EQ(scope.active(), 0u);
    EXPECT_EQ(scope.spawned(), 1000u);
}

// A socketpair per op, each op waiting for data: far more ops than the CQ holds.
task<void> read_one(int fd, int* done) {
    std::array<std::byte, 1> b{};
    auto n = co_await recv(fd, b);
    EXPECT_TRUE(n.has_value());
    ++*done;
}

task<void> many_in_flight(ring& r, std::vector<unique_fd>& readers, int* done) {
    task_scope scope;
    for (auto& rd : readers) scope.spawn(read_one(rd.get(), done));
    co_await sleep_for(std::chrono::milliseconds(1));  // started before the spawned reads run
    EXPECT_LE(r.in_flight(), r.cq_capacity());
    co_await scope.join();
}

TEST(RingTest, ParksOperationsBeyondTheCompletionQueueCapacity) {
    auto r = make_ring(ring::options{8, 2});  // CQ holds 16
    auto pairs = socket_pairs(64);  // not a structured binding: clang 14 cannot capture those
    auto& readers = pairs.first;
    auto& writers = pairs.second;
    ASSERT_EQ(readers.size(), 64u);
    // The data comes from another thread: an op parked behind 64 waiting reads could not send.
    std::thread writer([&writers] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        for (auto& w : writers) EXPECT_EQ(::send(w.get(), "x", 1, MSG_NOSIGNAL), 1);
    });
    int done = 0;
    r->run(many_in_flight(*r, readers, &done));
    writer.join();
    EXPECT_EQ(done, 64);
}

task<void> read_until_cancelled(int fd, const std::stop_token* stop, int* cancelled) {
    std::array<std::byte, 1> b{};
    auto n = co_await recv(fd, b, op_options{std::nullopt, stop});
    if (!n && n.error() == std::errc::operation_canceled) ++*cancelled;
}

task<void> cancel_all(std::vector<unique_fd>& readers, int* cancelled) {
    std::stop_source source;
    const std::stop_token token = source.get_token();
    task_scope scope;
    for (auto& rd : readers) scope.spawn(read_until_cancelled(rd.get(), &token, cancelled));
    // Spawned reads start on the next turn, after this timer: by its end all 40 are started
    // (15 in flight, the rest parked).
    co_await sleep_for(std::chrono::milliseconds(5));
    source.request_stop();
    co_await scope.join();
}

// Every CQ slot is held by a read that will never complete: the cancels must still go out
// (they may exceed the budget) and parked reads complete without reaching the kernel.
TEST(RingTest, CancellingMoreReadsThanTheQueueHoldsCompletesThemAll) {
    auto r = make_ring(ring::options{8, 2});  // SQ 8, CQ 16
    auto [readers, writers] = socket_pairs(40);
    ASSERT_EQ(readers.size(), 40u);
    int cancelled = 0;
    r->run(cancel_all(readers, &cancelled));
    EXPECT_EQ(cancelled, 40);
}

TEST(RingTest, RunUntilEmptyDrivesScheduledWork) {
    auto r = make_ring();
    int n = 0;
    auto handle = bump(&n).release();
    r->schedule(handle);
    r->run_until_empty();
    EXPECT_EQ(n, 1);
    EXPECT_TRUE(handle.done());
    handle.destroy();
}

}  // namespace
}  // namespace la::io
