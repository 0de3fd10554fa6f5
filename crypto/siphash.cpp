#include "crypto/siphash.hpp"

#include <algorithm>
#include <cstdint>

#include "core/result.hpp"
#include "crypto/detail/wolf.hpp"
#include "crypto/random.hpp"

namespace la::crypto {

siphash_key siphash_key::random() noexcept {
    siphash_key k;
    const auto r = random_bytes(k.bytes);
    LA_CHECK(r.has_value());
    return k;
}

std::array<std::byte, 16> siphash128(const siphash_key& key,
                                     std::span<const std::byte> data) noexcept {
    std::array<std::byte, 16> out;
    const auto* k = reinterpret_cast<const unsigned char*>(key.bytes.data());
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    // wolfCrypt rejects a null input pointer even for zero length.
    static const unsigned char empty = 0;
    const auto* in = data.empty() ? &empty : reinterpret_cast<const unsigned char*>(data.data());
    if (data.size() <= UINT32_MAX) {
        LA_CHECK(wc_SipHash(k, in, static_cast<word32>(data.size()), o, 16) == 0);
        return out;
    }
    SipHash state;
    LA_CHECK(wc_InitSipHash(&state, k, 16) == 0);
    constexpr std::size_t chunk = std::size_t{1} << 30;
    while (!data.empty()) {
        const std::size_t n = std::min(data.size(), chunk);
        LA_CHECK(wc_SipHashUpdate(&state, reinterpret_cast<const unsigned char*>(data.data()),
                                  static_cast<word32>(n)) == 0);
        data = data.subspan(n);
    }
    LA_CHECK(wc_SipHashFinal(&state, o, 16) == 0);
    return out;
}

}  // namespace la::crypto
