// Kernel CSPRNG access (getrandom(2)).
#pragma once

#include <cstddef>
#include <span>

#include "core/result.hpp"

namespace la::crypto {

/// Fills out with bytes from getrandom(2), blocking only until the pool is initialised.
/// Errors: the errno of getrandom (EINTR is retried). Thread: safe.
core::result<void> random_bytes(std::span<std::byte> out) noexcept;

}  // namespace la::crypto
