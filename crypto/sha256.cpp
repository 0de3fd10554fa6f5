#include "crypto/sha256.hpp"

#include <algorithm>
#include <climits>

#include "core/result.hpp"
#include "crypto/detail/wolf.hpp"

namespace la::crypto {
namespace {

// wolfCrypt takes word32 lengths: feed larger spans in chunks.
constexpr std::size_t max_chunk = std::size_t{1} << 30;

void absorb(wc_Sha256* sha, std::span<const std::byte> data) noexcept {
    while (!data.empty()) {
        const std::size_t n = std::min(data.size(), max_chunk);
        const int ret = wc_Sha256Update(sha, reinterpret_cast<const byte*>(data.data()),
                                        static_cast<word32>(n));
        LA_CHECK(ret == 0);
        data = data.subspan(n);
    }
}

}  // namespace

sha256_digest sha256(std::span<const std::byte> data) noexcept {
    wc_Sha256 sha;
    LA_CHECK(wc_InitSha256_ex(&sha, nullptr, INVALID_DEVID) == 0);
    absorb(&sha, data);
    sha256_digest out;
    LA_CHECK(wc_Sha256Final(&sha, reinterpret_cast<byte*>(out.data())) == 0);
    wc_Sha256Free(&sha);
    return out;
}

static_assert(sizeof(wc_Sha256) <= sizeof(std::byte[192]), "grow sha256_hasher::state_");
static_assert(alignof(wc_Sha256) <= 16, "raise sha256_hasher::state_ alignment");

namespace {
// The hasher's storage holds a wc_Sha256; wolfCrypt's copy takes a non-const source.
wc_Sha256* as_sha(const std::byte* storage) noexcept {
    return reinterpret_cast<wc_Sha256*>(const_cast<std::byte*>(storage));
}
}  // namespace

sha256_hasher::sha256_hasher() noexcept {
    ::new (static_cast<void*>(state_)) wc_Sha256;
    LA_CHECK(wc_InitSha256_ex(as_sha(state_), nullptr, INVALID_DEVID) == 0);
}

sha256_hasher::sha256_hasher(const sha256_hasher& other) noexcept {
    ::new (static_cast<void*>(state_)) wc_Sha256;
    LA_CHECK(wc_InitSha256_ex(as_sha(state_), nullptr, INVALID_DEVID) == 0);
    LA_CHECK(wc_Sha256Copy(as_sha(other.state_), as_sha(state_)) == 0);
}

sha256_hasher& sha256_hasher::operator=(const sha256_hasher& other) noexcept {
    if (this != &other) {
        wc_Sha256Free(as_sha(state_));
        LA_CHECK(wc_Sha256Copy(as_sha(other.state_), as_sha(state_)) == 0);
    }
    return *this;
}

sha256_hasher::~sha256_hasher() { wc_Sha256Free(as_sha(state_)); }

void sha256_hasher::update(std::span<const std::byte> data) noexcept {
    absorb(as_sha(state_), data);
}

sha256_digest sha256_hasher::finish() noexcept {
    sha256_digest out;
    // wc_Sha256Final also re-initialises the state, so the hasher is reusable.
    LA_CHECK(wc_Sha256Final(as_sha(state_), reinterpret_cast<byte*>(out.data())) == 0);
    return out;
}

}  // namespace la::crypto
