#include "crypto/ed25519.hpp"

#include <cstdint>
#include <cstring>
#include <new>

#include "crypto/detail/wolf.hpp"

namespace la::crypto {
namespace {

static_assert(ED25519_PUB_KEY_SIZE == 32 && ED25519_SIG_SIZE == 64);

// wolfCrypt rejects a null message pointer even for an empty message.
const byte empty_message = 0;

ed25519_key* key_in(secure_buffer& buf) noexcept {
    return reinterpret_cast<ed25519_key*>(buf.data());
}

// RFC 8032 §5.1.3: the encoded y (top bit masked off) must be below p = 2^255 - 19.
bool y_is_canonical(std::span<const std::byte> raw) noexcept {
    if ((std::to_integer<unsigned>(raw[31]) & 0x7FU) != 0x7FU) return true;
    for (std::size_t i = 1; i < 31; ++i)
        if (raw[i] != std::byte{0xFF}) return true;
    return std::to_integer<unsigned>(raw[0]) < 0xEDU;
}

}  // namespace

core::result<ed25519_public_key> ed25519_public_key::import(
    std::span<const std::byte> raw32) noexcept {
    if (raw32.size() != ED25519_PUB_KEY_SIZE || !y_is_canonical(raw32))
        return core::fail(core::errc::key_invalid);
    detail::ensure_wolfcrypt();
    ed25519_key key;
    if (wc_ed25519_init(&key) != 0) return core::fail(core::errc::crypto_failure);
    int ret = wc_ed25519_import_public(reinterpret_cast<const byte*>(raw32.data()),
                                       ED25519_PUB_KEY_SIZE, &key);
    if (ret == 0) {
        // wolfSSL 5.5 neither checks the point on import nor in wc_ed25519_check_key for a
        // public-only key, but verify decodes it first and returns BAD_FUNC_ARG when no x
        // exists. A probe with a zero signature therefore tells on-curve from off-curve.
        const std::array<byte, ED25519_SIG_SIZE> zero_sig{};
        int ok = 0;
        ret =
            wc_ed25519_verify_msg(zero_sig.data(), ED25519_SIG_SIZE, &empty_message, 0, &ok, &key);
        ret = (ret == BAD_FUNC_ARG) ? ret : 0;
    }
    wc_ed25519_free(&key);
    if (ret != 0) return core::fail(core::errc::key_invalid);
    std::array<std::byte, 32> raw;
    std::memcpy(raw.data(), raw32.data(), raw.size());
    return ed25519_public_key(raw);
}

bool ed25519_public_key::verify(std::span<const std::byte> message,
                                std::span<const std::byte> signature64) const noexcept {
    if (signature64.size() != ED25519_SIG_SIZE || message.size() > UINT32_MAX) return false;
    ed25519_key key;
    if (wc_ed25519_init(&key) != 0) return false;
    // A plain copy of the bytes import() validated; verify decodes the point itself.
    int ret = wc_ed25519_import_public(reinterpret_cast<const byte*>(raw_.data()),
                                       ED25519_PUB_KEY_SIZE, &key);
    int ok = 0;
    if (ret == 0) {
        const byte* msg =
            message.empty() ? &empty_message : reinterpret_cast<const byte*>(message.data());
        ret = wc_ed25519_verify_msg(reinterpret_cast<const byte*>(signature64.data()),
                                    ED25519_SIG_SIZE, msg, static_cast<word32>(message.size()), &ok,
                                    &key);
    }
    wc_ed25519_free(&key);
    return ret == 0 && ok == 1;
}

core::result<ed25519_private_key> ed25519_private_key::generate() noexcept {
    detail::ensure_wolfcrypt();
    auto allocated = secure_buffer::allocate(sizeof(ed25519_key));
    if (!allocated) return core::fail(allocated.error());
    secure_buffer buf = std::move(*allocated);
    auto* key = ::new (static_cast<void*>(buf.data())) ed25519_key;
    if (const int ret = wc_ed25519_init(key); ret != 0) return core::fail(wolf_error(ret));
    // From here the key is initialised, so the destructor may call wc_ed25519_free.
    ed25519_private_key out(std::move(buf));

    WC_RNG rng;
    if (const int ret = wc_InitRng(&rng); ret != 0) return core::fail(wolf_error(ret));
    const int ret = wc_ed25519_make_key(&rng, ED25519_KEY_SIZE, key);
    wc_FreeRng(&rng);
    if (ret != 0) return core::fail(wolf_error(ret));
    return out;
}

ed25519_private_key& ed25519_private_key::operator=(ed25519_private_key&& other) noexcept {
    if (this != &other) {
        if (key_.data() != nullptr) wc_ed25519_free(key_in(key_));
        key_ = std::move(other.key_);
    }
    return *this;
}

ed25519_private_key::~ed25519_private_key() {
    // wc_ed25519_free wipes the key; secure_buffer then wipes and unmaps the page.
    if (key_.data() != nullptr) wc_ed25519_free(key_in(key_));
}

core::result<void> ed25519_private_key::sign(std::span<const std::byte> msg,
                                             std::span<std::byte, 64> sig) const noexcept {
    if (msg.size() > UINT32_MAX) return core::fail(std::errc::invalid_argument);
    word32 sig_len = ED25519_SIG_SIZE;
    const byte* in = msg.empty() ? &empty_message : reinterpret_cast<const byte*>(msg.data());
    const int ret =
        wc_ed25519_sign_msg(in, static_cast<word32>(msg.size()),
                            reinterpret_cast<byte*>(sig.data()), &sig_len, key_in(key_));
    if (ret != 0) return core::fail(wolf_error(ret));
    return {};
}

std::array<std::byte, 32> ed25519_private_key::public_bytes() const noexcept {
    std::array<std::byte, 32> out;
    std::memcpy(out.data(), key_in(key_)->p, out.size());
    return out;
}

}  // namespace la::crypto
