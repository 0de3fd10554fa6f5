#include "crypto/detail/wolf.hpp"

#include <string>

#include "core/result.hpp"

namespace la::crypto {
namespace {
class wolfssl_category_impl final : public std::error_category {
  public:
    const char* name() const noexcept override { return "wolfssl"; }
    std::string message(int ev) const override { return wc_GetErrorString(ev); }
};
}  // namespace

const std::error_category& wolfssl_category() noexcept {
    static const wolfssl_category_impl instance;
    return instance;
}

std::error_code wolf_error(int ret) noexcept {
    if (ret == 0) return {};
    return {ret, wolfssl_category()};
}

namespace detail {
void ensure_wolfcrypt() noexcept {
    // A function-local static gives a thread-safe one-time init without a global constructor.
    static const int init_ret = wolfCrypt_Init();
    LA_CHECK(init_ret == 0);
}
}  // namespace detail

}  // namespace la::crypto
