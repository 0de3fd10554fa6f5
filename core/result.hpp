// core::result<T>: the error-as-value type every fallible path returns.
// Leaf header: depends on nothing else in the project, so io/ and crypto/ may use it.
#pragma once

#include <system_error>
#include <type_traits>
#include <utility>

#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202211L
#include <expected>
#else
#include <tl/expected.hpp>
#endif

namespace la::core {

#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202211L
template <class T, class E = std::error_code>
using expected = std::expected<T, E>;
template <class E>
using unexpected = std::unexpected<E>;
#else
template <class T, class E = std::error_code>
using expected = tl::expected<T, E>;
template <class E>
using unexpected = tl::unexpected<E>;
#endif

template <class T>
using result = expected<T, std::error_code>;

/// Builds the error side of a result from any error code or errc enum.
inline unexpected<std::error_code> fail(std::error_code ec) { return unexpected<std::error_code>(ec); }
inline unexpected<std::error_code> fail(std::errc e) { return fail(std::make_error_code(e)); }
/// Error side from a positive errno value.
inline unexpected<std::error_code> fail_errno(int err) {
    return fail(std::error_code(err, std::generic_category()));
}

/// The project's own error conditions (not errno, not a library's).
enum class errc {
    config_invalid = 1,    ///< a config key is unknown, mistyped or out of range
    file_too_open,         ///< a secret/config file is readable by group or others
    key_invalid,           ///< a JWK is malformed or of the wrong type
    protocol_error,        ///< a peer broke the wire protocol
    peer_closed,           ///< the peer closed the connection
    crypto_failure,        ///< a crypto primitive reported an internal failure
    auth_failed,           ///< an authentication tag or signature did not verify
};

const std::error_category& agent_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), agent_category()};
}
inline unexpected<std::error_code> fail(errc e) { return fail(make_error_code(e)); }

}  // namespace la::core

template <>
struct std::is_error_code_enum<la::core::errc> : std::true_type {};

/// Propagates the error of an expected expression (any error type), else yields its value.
/// A GCC/Clang statement expression (__extension__ keeps -Wpedantic quiet): one line per call.
#define LA_TRY(expr)                                                               \
    __extension__({                                                                \
        auto&& la_try_r_ = (expr);                                                 \
        using la_try_e_ = std::decay_t<decltype(la_try_r_.error())>;               \
        if (!la_try_r_) return ::la::core::unexpected<la_try_e_>(std::move(la_try_r_.error())); \
        std::move(*la_try_r_);                                                     \
    })

/// An always-on invariant check: internal bugs only, never untrusted input.
#define LA_CHECK(cond)                                                       \
    do {                                                                     \
        if (!(cond)) [[unlikely]]                                            \
            ::la::core::check_failed(#cond, __FILE__, __LINE__);             \
    } while (0)

namespace la::core {
[[noreturn]] void check_failed(const char* what, const char* file, int line) noexcept;
}
