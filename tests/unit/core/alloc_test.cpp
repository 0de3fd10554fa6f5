// The hot path's promise: validate() makes zero heap allocations once warmed up.
#include <cstdlib>
#include <memory>

#include <gtest/gtest.h>

#include "core/engine.hpp"
#include "tests/support/alloc_counter.hpp"
#include "tests/unit/core/engine_fixture.hpp"

namespace la::core {
namespace {

using test::tokens;

constexpr int iterations = 10'000;

// Keeps the optimiser from dropping the allocation the counter must see.
void* volatile sink = nullptr;

TEST(AllocCounterTest, CountsNewAndMalloc) {
    test::alloc_scope scope;
    auto p = std::make_unique<int>(1);
    sink = p.get();
    EXPECT_GE(scope.count(), 1u);
    const std::size_t after_new = scope.count();
    void* m = std::malloc(16);
    sink = m;
    std::free(m);
    EXPECT_EQ(scope.count(), after_new + 1);
}

// Validates `token` `iterations` times after warm-up; returns allocations seen.
std::size_t allocations_for(engine& e, const std::string& token, status expected) {
    const validate_request req{token, "pos", "reports", {}};
    for (int i = 0; i < 3; ++i) EXPECT_EQ(e.validate(req).st, expected);
    test::alloc_scope scope;
    int wrong = 0;
    for (int i = 0; i < iterations; ++i) wrong += e.validate(req).st != expected;
    const std::size_t n = scope.count();
    EXPECT_EQ(wrong, 0);
    return n;
}

class ZeroAllocationTest : public ::testing::Test {
protected:
    io::manual_clock clock_{test::now};
};

TEST_F(ZeroAllocationTest, SignedColdPathDoesNotAllocate) {
    engine e = test::make_engine(clock_, 0);  // cache off: every call decodes and verifies
    EXPECT_EQ(allocations_for(e, tokens()["s_valid"], status::valid), 0u);
    EXPECT_EQ(e.stats().cache_hits, 0u);
}

TEST_F(ZeroAllocationTest, SignedCachedPathDoesNotAllocate) {
    engine e = test::make_engine(clock_);
    EXPECT_EQ(allocations_for(e, tokens()["s_valid"], status::valid), 0u);
    EXPECT_EQ(e.stats().cache_hits, static_cast<std::uint64_t>(iterations + 2));
}

TEST_F(ZeroAllocationTest, SealedPathDoesNotAllocate) {
    engine e = test::make_engine(clock_);
    EXPECT_EQ(allocations_for(e, tokens()["e_valid"], status::valid), 0u);
}

TEST_F(ZeroAllocationTest, RejectionsDoNotAllocate) {
    engine e = test::make_engine(clock_, 0);
    const std::pair<const char*, status> cases[] = {
        {"s_tamper_sig", status::bad_signature}, {"e_tamper_tag", status::bad_signature},
        {"s_unknown_kid", status::unknown_key},  {"e_unknown", status::unknown_key},
        {"s_hs256", status::unsupported_alg},    {"e_rsa", status::unsupported_alg},
        {"s_dup_payload", status::malformed},    {"s_too_many_features", status::too_large},
        {"s_wrong_iss", status::wrong_issuer},   {"e_expired", status::expired},
    };
    for (const auto& [name, st] : cases) {
        const validate_request req{tokens()[name], {}, {}, {}};
        EXPECT_EQ(e.validate(req).st, st) << name;
        test::alloc_scope scope;
        for (int i = 0; i < 1000; ++i) (void)e.validate(req);
        EXPECT_EQ(scope.count(), 0u) << name;
    }
}

}  // namespace
}  // namespace la::core
