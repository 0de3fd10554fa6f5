#include "crypto/detail/wolf.hpp"

#include <gtest/gtest.h>

namespace la::crypto {
namespace {

TEST(WolfErrorTest, ZeroIsSuccess) { EXPECT_FALSE(wolf_error(0)); }

TEST(WolfErrorTest, CarriesCodeCategoryAndMessage) {
    const std::error_code ec = wolf_error(BAD_FUNC_ARG);
    EXPECT_TRUE(ec);
    EXPECT_EQ(ec.value(), BAD_FUNC_ARG);
    EXPECT_STREQ(ec.category().name(), "wolfssl");
    EXPECT_EQ(ec.message(), wc_GetErrorString(BAD_FUNC_ARG));
    EXPECT_NE(ec.message(), wolf_error(AES_GCM_AUTH_E).message());
}

}  // namespace
}  // namespace la::crypto
