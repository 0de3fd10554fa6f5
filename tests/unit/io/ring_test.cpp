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
    co_await sleep_for(std::chrono::milliseconds(1));  // parked behind the reads, FIFO
    EXPECT_LE(r.in_flight(), r.cq_capacity());
    co_await scope.join();
}

TEST(RingTest, ParksOperationsBeyondTheCompletionQueueCapacity) {
    auto r = make_ring(ring::options{8, 2});  // CQ holds 16
    std::vector<unique_fd> readers, writers;
    for (int i = 0; i < 64; ++i) {
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        readers.emplace_back(sv[0]);
        writers.emplace_back(sv[1]);
    }
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
