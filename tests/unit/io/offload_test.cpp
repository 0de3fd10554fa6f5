#include "io/offload.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "io/scope.hpp"

namespace la::io {
namespace {

struct observed {
    std::thread::id ran_on;
    std::thread::id resumed_on;
    int value = 0;
};

task<observed> offload_once(worker_thread& w) {
    observed o;
    o.value = co_await offload(w, [&o] {
        o.ran_on = std::this_thread::get_id();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a slow, blocking call
        return 41 + 1;
    });
    o.resumed_on = std::this_thread::get_id();
    co_return o;
}

TEST(OffloadTest, RunsOnTheWorkerAndResumesOnTheRingThread) {
    auto r = ring::create();
    ASSERT_TRUE(r.has_value());
    worker_thread w("la-test-worker");
    auto o = (*r)->run(offload_once(w));
    EXPECT_EQ(o.value, 42);
    EXPECT_EQ(o.ran_on, w.id());
    EXPECT_EQ(o.resumed_on, std::this_thread::get_id());
}

task<void> offload_counted(worker_thread& w, int* total) {
    *total += co_await offload(w, [] { return 1; });
}

task<void> offload_burst(worker_thread& w, int* total, int n) {
    task_scope scope;
    for (int i = 0; i < n; ++i) scope.spawn(offload_counted(w, total));
    co_await scope.join();
}

TEST(OffloadTest, ManyConcurrentOffloadsAllResume) {
    auto r = ring::create();
    ASSERT_TRUE(r.has_value());
    worker_thread w;
    int total = 0;
    (*r)->run(offload_burst(w, &total, 2000));
    EXPECT_EQ(total, 2000);
}

}  // namespace
}  // namespace la::io
