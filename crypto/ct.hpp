// Constant-time comparison for secrets, tags and MACs.
#pragma once

#include <cstddef>
#include <span>

namespace la::crypto {

/// True when a and b hold the same bytes; time depends only on the length, and
/// different lengths return false at once (lengths are not secret).
bool ct_equal(std::span<const std::byte> a, std::span<const std::byte> b) noexcept;

}  // namespace la::crypto
