#include "crypto/base64url.hpp"

#include <array>
#include <cstdint>

namespace la::crypto {
namespace {

constexpr char encode_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::uint8_t invalid = 0xFF;

// Character → 6-bit value, 0xFF for anything outside the base64url alphabet (incl. '=').
constexpr std::array<std::uint8_t, 256> make_decode_table() {
    std::array<std::uint8_t, 256> t{};
    for (auto& v : t) v = invalid;
    for (std::uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(encode_alphabet[i])] = i;
    return t;
}
constexpr std::array<std::uint8_t, 256> decode_table = make_decode_table();

inline std::uint32_t lookup(char c) noexcept { return decode_table[static_cast<unsigned char>(c)]; }

}  // namespace

core::result<std::size_t> base64url_decode(std::string_view in, std::span<std::byte> out) noexcept {
    const std::size_t rem = in.size() % 4;
    if (rem == 1) return core::fail(std::errc::invalid_argument);
    const std::size_t needed = base64url_decoded_max(in.size());
    if (needed > out.size()) return core::fail(std::errc::no_buffer_space);

    const char* s = in.data();
    std::byte* d = out.data();
    const std::size_t full = in.size() / 4;
    for (std::size_t q = 0; q < full; ++q, s += 4, d += 3) {
        const std::uint32_t a = lookup(s[0]);
        const std::uint32_t b = lookup(s[1]);
        const std::uint32_t c = lookup(s[2]);
        const std::uint32_t e = lookup(s[3]);
        // Any invalid entry has bit 7 set; one test per quad keeps the loop branch-light.
        if (((a | b | c | e) & 0x80U) != 0) return core::fail(std::errc::invalid_argument);
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | e;
        d[0] = static_cast<std::byte>(v >> 16);
        d[1] = static_cast<std::byte>(v >> 8);
        d[2] = static_cast<std::byte>(v);
    }
    if (rem == 2) {
        const std::uint32_t a = lookup(s[0]);
        const std::uint32_t b = lookup(s[1]);
        // Canonical encoding only: the 4 unused low bits of the last character must be zero.
        if (((a | b) & 0x80U) != 0 || (b & 0x0FU) != 0)
            return core::fail(std::errc::invalid_argument);
        d[0] = static_cast<std::byte>((a << 2) | (b >> 4));
    } else if (rem == 3) {
        const std::uint32_t a = lookup(s[0]);
        const std::uint32_t b = lookup(s[1]);
        const std::uint32_t c = lookup(s[2]);
        if (((a | b | c) & 0x80U) != 0 || (c & 0x03U) != 0)
            return core::fail(std::errc::invalid_argument);
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6);
        d[0] = static_cast<std::byte>(v >> 16);
        d[1] = static_cast<std::byte>(v >> 8);
    }
    return needed;
}

std::size_t base64url_encode(std::span<const std::byte> in, std::span<char> out) noexcept {
    const std::size_t needed = base64url_encoded_size(in.size());
    if (needed > out.size()) return 0;
    const std::byte* s = in.data();
    char* d = out.data();
    const std::size_t full = in.size() / 3;
    for (std::size_t i = 0; i < full; ++i, s += 3, d += 4) {
        const auto v = (std::to_integer<std::uint32_t>(s[0]) << 16) |
                       (std::to_integer<std::uint32_t>(s[1]) << 8) |
                       std::to_integer<std::uint32_t>(s[2]);
        d[0] = encode_alphabet[(v >> 18) & 0x3F];
        d[1] = encode_alphabet[(v >> 12) & 0x3F];
        d[2] = encode_alphabet[(v >> 6) & 0x3F];
        d[3] = encode_alphabet[v & 0x3F];
    }
    const std::size_t rem = in.size() % 3;
    if (rem == 1) {
        const auto v = std::to_integer<std::uint32_t>(s[0]) << 16;
        d[0] = encode_alphabet[(v >> 18) & 0x3F];
        d[1] = encode_alphabet[(v >> 12) & 0x3F];
    } else if (rem == 2) {
        const auto v = (std::to_integer<std::uint32_t>(s[0]) << 16) |
                       (std::to_integer<std::uint32_t>(s[1]) << 8);
        d[0] = encode_alphabet[(v >> 18) & 0x3F];
        d[1] = encode_alphabet[(v >> 12) & 0x3F];
        d[2] = encode_alphabet[(v >> 6) & 0x3F];
    }
    return needed;
}

}  // namespace la::crypto
