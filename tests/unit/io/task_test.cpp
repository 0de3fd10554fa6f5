#include "io/task.hpp"

#include <gtest/gtest.h>

#include "io/ring.hpp"

namespace la::io {
namespace {

// Counts live instances so tests can prove that no frame (and nothing it owns) leaks.
struct counted {
    static inline int alive = 0;
    counted() { ++alive; }
    counted(const counted&) { ++alive; }
    ~counted() { --alive; }
};

std::unique_ptr<ring> make_ring() {
    auto r = ring::create();
    EXPECT_TRUE(r.has_value());
    return std::move(*r);
}

task<int> answer(bool* started) {
    *started = true;
    co_return 42;
}

TEST(TaskTest, DoesNotStartUntilAwaited) {
    auto r = make_ring();
    bool started = false;
    auto t = answer(&started);
    EXPECT_FALSE(started);
    EXPECT_EQ(r->run(std::move(t)), 42);
    EXPECT_TRUE(started);
}

task<int> immediate(int i) { co_return i; }

task<long> sum_million() {
    long total = 0;
    for (int i = 0; i < 1'000'000; ++i) total += co_await immediate(1);
    co_return total;
}

TEST(TaskTest, MillionImmediateAwaitsDoNotOverflowTheStack) {
    auto r = make_ring();
    EXPECT_EQ(r->run(sum_million()), 1'000'000);
}

task<void> holds_counted(counted c) {
    (void)c;
    co_return;
}

TEST(TaskTest, DestroyingAnUnstartedTaskFreesItsFrame) {
    {
        auto t = holds_counted(counted{});
        EXPECT_EQ(counted::alive, 1);
    }
    EXPECT_EQ(counted::alive, 0);
}

TEST(TaskTest, CompletedTaskFreesItsFrame) {
    auto r = make_ring();
    r->run(holds_counted(counted{}));
    EXPECT_EQ(counted::alive, 0);
}

task<std::unique_ptr<int>> move_only_value() { co_return std::make_unique<int>(7); }

task<int> nested() {
    auto p = co_await move_only_value();
    co_return *p + 1;
}

TEST(TaskTest, ReturnsMoveOnlyValuesThroughNestedAwaits) {
    auto r = make_ring();
    EXPECT_EQ(r->run(nested()), 8);
}

TEST(TaskTest, MovedTaskTransfersOwnership) {
    auto r = make_ring();
    bool started = false;
    auto a = answer(&started);
    task<int> b = std::move(a);
    EXPECT_FALSE(a.valid());
    EXPECT_TRUE(b.valid());
    EXPECT_EQ(r->run(std::move(b)), 42);
}

}  // namespace
}  // namespace la::io
