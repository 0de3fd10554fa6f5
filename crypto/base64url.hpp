// Strict base64url (RFC 4648 §5, no padding) for JOSE compact serialisation.
// Hot path: no allocation, no exceptions; callers own the output buffers.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "core/result.hpp"

namespace la::crypto {

/// Upper bound of the decoded size of n base64url characters (exact for valid input).
constexpr std::size_t base64url_decoded_max(std::size_t n) noexcept {
    return (n / 4) * 3 + ((n % 4) * 3) / 4;
}

/// Exact number of characters base64url_encode writes for n input bytes (no padding).
constexpr std::size_t base64url_encoded_size(std::size_t n) noexcept {
    return (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

/// Decodes canonical unpadded base64url into out; returns the number of bytes written.
/// Errors: std::errc::invalid_argument for a character outside A-Z a-z 0-9 - _, padding,
/// length % 4 == 1 or non-zero trailing bits; std::errc::no_buffer_space when out is too small.
/// On error out may hold partial output.
core::result<std::size_t> base64url_decode(std::string_view in, std::span<std::byte> out) noexcept;

/// Encodes in as unpadded base64url; returns characters written, or 0 when out is too small.
std::size_t base64url_encode(std::span<const std::byte> in, std::span<char> out) noexcept;

}  // namespace la::crypto
