#include "crypto/kdf.hpp"

#include <argon2.h>

#include <climits>
#include <string>

#include "crypto/detail/wolf.hpp"
#include "crypto/secure_buffer.hpp"

// After crypto/detail/wolf.hpp, which includes <wolfssl/options.h> first.
#include <wolfssl/wolfcrypt/pwdbased.h>

namespace la::crypto {
namespace {

class argon2_category_impl final : public std::error_category {
  public:
    const char* name() const noexcept override { return "argon2"; }
    std::string message(int ev) const override { return argon2_error_message(ev); }
};

}  // namespace

const std::error_category& argon2_category() noexcept {
    static const argon2_category_impl instance;
    return instance;
}

core::result<void> pbkdf2_sha256(std::span<const std::byte> password, std::span<const std::byte> salt,
                                 std::uint32_t iterations, std::span<std::byte> out) noexcept {
    constexpr std::size_t max_len = INT_MAX;
    if (iterations == 0 || iterations > INT_MAX || out.empty() || out.size() > max_len ||
        password.size() > max_len || salt.size() > max_len) {
        return core::fail(std::errc::invalid_argument);
    }
    detail::ensure_wolfcrypt();
    const int ret = wc_PBKDF2(reinterpret_cast<byte*>(out.data()), reinterpret_cast<const byte*>(password.data()),
                              static_cast<int>(password.size()), reinterpret_cast<const byte*>(salt.data()),
                              static_cast<int>(salt.size()), static_cast<int>(iterations),
                              static_cast<int>(out.size()), WC_SHA256);
    if (ret != 0) {
        secure_zero(out.data(), out.size());
        return core::fail(wolf_error(ret));
    }
    return {};
}

core::result<void> argon2id(std::span<const std::byte> password, std::span<const std::byte> salt,
                            std::uint32_t t_cost, std::uint32_t m_cost_kib, std::uint32_t parallelism,
                            std::span<std::byte> out) noexcept {
    const int ret = argon2id_hash_raw(t_cost, m_cost_kib, parallelism, password.data(), password.size(),
                                      salt.data(), salt.size(), out.data(), out.size());
    if (ret != ARGON2_OK) {
        secure_zero(out.data(), out.size());
        return core::fail(std::error_code(ret, argon2_category()));
    }
    return {};
}

}  // namespace la::crypto
