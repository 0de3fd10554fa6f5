#include "crypto/aes_gcm.hpp"

#include <cstdint>
#include <new>

#include "crypto/detail/wolf.hpp"

namespace la::crypto {
namespace {

Aes* aes_in(secure_buffer& buf) noexcept { return reinterpret_cast<Aes*>(buf.data()); }

const byte* bytes_or_dummy(std::span<const std::byte> s) noexcept {
    // wolfCrypt checks some pointers for null even when the length is zero.
    static const byte dummy = 0;
    return s.empty() ? &dummy : reinterpret_cast<const byte*>(s.data());
}

}  // namespace

core::result<aes256_gcm_key> aes256_gcm_key::create(std::span<const std::byte> key32) noexcept {
    if (key32.size() != AES_256_KEY_SIZE) return core::fail(core::errc::key_invalid);
    detail::ensure_wolfcrypt();
    auto allocated = secure_buffer::allocate(sizeof(Aes));
    if (!allocated) return core::fail(allocated.error());
    secure_buffer buf = std::move(*allocated);
    auto* aes = ::new (static_cast<void*>(buf.data())) Aes;
    if (const int ret = wc_AesInit(aes, nullptr, INVALID_DEVID); ret != 0)
        return core::fail(wolf_error(ret));
    // From here the context is initialised, so the destructor may call wc_AesFree.
    aes256_gcm_key out(std::move(buf));
    if (const int ret =
            wc_AesGcmSetKey(aes, reinterpret_cast<const byte*>(key32.data()), AES_256_KEY_SIZE);
        ret != 0)
        return core::fail(wolf_error(ret));
    return out;
}

aes256_gcm_key& aes256_gcm_key::operator=(aes256_gcm_key&& other) noexcept {
    if (this != &other) {
        if (ctx_.data() != nullptr) wc_AesFree(aes_in(ctx_));
        ctx_ = std::move(other.ctx_);
    }
    return *this;
}

aes256_gcm_key::~aes256_gcm_key() {
    if (ctx_.data() != nullptr) wc_AesFree(aes_in(ctx_));
}

core::result<void> aes256_gcm_key::decrypt(std::span<const std::byte, 12> iv,
                                           std::span<const std::byte> aad,
                                           std::span<const std::byte> ciphertext,
                                           std::span<const std::byte, 16> tag,
                                           std::span<std::byte> plaintext_out) const noexcept {
    if (plaintext_out.size() < ciphertext.size()) return core::fail(std::errc::no_buffer_space);
    if (ciphertext.size() > UINT32_MAX || aad.size() > UINT32_MAX)
        return core::fail(std::errc::invalid_argument);
    auto* out = reinterpret_cast<byte*>(plaintext_out.data());
    const int ret = wc_AesGcmDecrypt(
        aes_in(ctx_), ciphertext.empty() ? nullptr : out, bytes_or_dummy(ciphertext),
        static_cast<word32>(ciphertext.size()), reinterpret_cast<const byte*>(iv.data()),
        static_cast<word32>(iv.size()), reinterpret_cast<const byte*>(tag.data()),
        static_cast<word32>(tag.size()), bytes_or_dummy(aad), static_cast<word32>(aad.size()));
    if (ret == 0) return {};
    // Never hand out unauthenticated plaintext, whatever wolfCrypt left in the buffer.
    secure_zero(plaintext_out.data(), ciphertext.size());
    if (ret == AES_GCM_AUTH_E) return core::fail(core::errc::auth_failed);
    return core::fail(wolf_error(ret));
}

core::result<void> aes256_gcm_key::encrypt(std::span<const std::byte, 12> iv,
                                           std::span<const std::byte> aad,
                                           std::span<const std::byte> plaintext,
                                           std::span<std::byte, 16> tag_out,
                                           std::span<std::byte> ciphertext_out) const noexcept {
    if (ciphertext_out.size() < plaintext.size()) return core::fail(std::errc::no_buffer_space);
    if (plaintext.size() > UINT32_MAX || aad.size() > UINT32_MAX)
        return core::fail(std::errc::invalid_argument);
    auto* out = reinterpret_cast<byte*>(ciphertext_out.data());
    const int ret = wc_AesGcmEncrypt(
        aes_in(ctx_), plaintext.empty() ? nullptr : out, bytes_or_dummy(plaintext),
        static_cast<word32>(plaintext.size()), reinterpret_cast<const byte*>(iv.data()),
        static_cast<word32>(iv.size()), reinterpret_cast<byte*>(tag_out.data()),
        static_cast<word32>(tag_out.size()), bytes_or_dummy(aad), static_cast<word32>(aad.size()));
    if (ret != 0) return core::fail(wolf_error(ret));
    return {};
}

}  // namespace la::crypto
