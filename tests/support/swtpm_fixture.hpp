// A gtest fixture base with a real swtpm (started per test) and an io::ring on the test thread.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <utility>

#include "io/ring.hpp"
#include "tests/support/swtpm.hpp"

namespace la::test {

template <class Base = ::testing::Test>
class with_swtpm : public Base {
protected:
    void SetUp() override {
        ASSERT_TRUE(swtpm_.start()) << "swtpm did not start";
        auto r = io::ring::create();
        ASSERT_TRUE(r.has_value());
        ring_ = std::move(*r);
    }

    swtpm_process swtpm_;
    std::unique_ptr<io::ring> ring_;
};

}  // namespace la::test
