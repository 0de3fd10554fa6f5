#include "crypto/rsa.hpp"

#include <array>
#include <climits>
#include <cstring>
#include <new>

#include "crypto/detail/wolf.hpp"
#include "crypto/sha256.hpp"

namespace la::crypto {
namespace {

constexpr std::size_t sha256_size = 32;
static_assert(WC_SHA256_DIGEST_SIZE == sha256_size && rsa_pss_salt_size == sha256_size);
static_assert(rsa_max_bits <= RSA_MAX_SIZE);

// wolfCrypt rejects null input pointers even for zero lengths.
const byte empty_input = 0;

const byte* in_ptr(std::span<const std::byte> s) noexcept {
    return s.empty() ? &empty_input : reinterpret_cast<const byte*>(s.data());
}

// A wolfSSL RsaKey on the stack for one public operation; freed on every path.
struct stack_key {
    RsaKey key;
    bool ready = false;

    stack_key() noexcept { ready = wc_InitRsaKey(&key, nullptr) == 0; }
    ~stack_key() {
        if (ready) wc_FreeRsaKey(&key);
    }
    stack_key(const stack_key&) = delete;
    stack_key& operator=(const stack_key&) = delete;
};

// A per-call DRBG (OAEP encryption needs randomness; nothing else here keeps one).
struct stack_rng {
    WC_RNG rng;
    int init_ret;

    stack_rng() noexcept : rng{}, init_ret(wc_InitRng(&rng)) {}
    ~stack_rng() {
        if (init_ret == 0) wc_FreeRng(&rng);
    }
    stack_rng(const stack_rng&) = delete;
    stack_rng& operator=(const stack_rng&) = delete;
};

// The security floor and sanity of any key we accept: modulus size, odd exponent above 1.
bool acceptable(const RsaKey& key) noexcept {
    const int bits = mp_count_bits(&key.n);
    if (bits < static_cast<int>(rsa_min_bits) || bits > static_cast<int>(rsa_max_bits)) return false;
    return !mp_iszero(&key.e) && !mp_iseven(&key.e) && !mp_isone(&key.e);
}

core::result<std::vector<std::uint8_t>> encode_spki(RsaKey& key) {
    const int size = wc_RsaPublicKeyDerSize(&key, 1);
    if (size <= 0) return core::fail(wolf_error(size == 0 ? BAD_FUNC_ARG : size));
    std::vector<std::uint8_t> der(static_cast<std::size_t>(size));
    const int len = wc_RsaKeyToPublicDer(&key, der.data(), static_cast<word32>(der.size()));
    if (len <= 0) return core::fail(wolf_error(len == 0 ? BAD_FUNC_ARG : len));
    der.resize(static_cast<std::size_t>(len));
    return der;
}

// Everything a private key object owns: the key and the DRBG its blinding draws from. Lives in
// a secure_buffer, so the private integers sit in locked pages that are wiped on release.
struct rsa_state {
    RsaKey key;
    WC_RNG rng;
    bool rng_ready;
    bool key_ready;
};

rsa_state* state_in(secure_buffer& buf) noexcept {
    LA_CHECK(buf.data() != nullptr);  // use of a moved-from key is a bug
    return reinterpret_cast<rsa_state*>(buf.data());
}

void destroy_state(secure_buffer& buf) noexcept {
    if (buf.data() == nullptr) return;
    auto* st = reinterpret_cast<rsa_state*>(buf.data());
    // wc_FreeRsaKey force-zeroes the private integers; the pages are wiped again on unmap.
    if (st->key_ready) wc_FreeRsaKey(&st->key);
    if (st->rng_ready) wc_FreeRng(&st->rng);
    st->key_ready = st->rng_ready = false;
}

// Allocates and initialises the state (key empty, DRBG seeded, blinding wired up).
core::result<secure_buffer> new_state() {
    detail::ensure_wolfcrypt();
    auto buf = secure_buffer::allocate(sizeof(rsa_state));
    if (!buf) return core::fail(buf.error());
    auto* st = ::new (static_cast<void*>(buf->data())) rsa_state{};
    if (const int ret = wc_InitRng(&st->rng); ret != 0) return core::fail(wolf_error(ret));
    st->rng_ready = true;
    if (const int ret = wc_InitRsaKey(&st->key, nullptr); ret != 0) {
        destroy_state(*buf);
        return core::fail(wolf_error(ret));
    }
    st->key_ready = true;
    if (const int ret = wc_RsaSetRNG(&st->key, &st->rng); ret != 0) {
        destroy_state(*buf);
        return core::fail(wolf_error(ret));
    }
    return buf;
}

}  // namespace

// ---- rsa_public_key ----------------------------------------------------------------------

core::result<rsa_public_key> rsa_public_key::from_der(std::span<const std::byte> spki_der) {
    if (spki_der.empty() || spki_der.size() > UINT32_MAX) return core::fail(core::errc::key_invalid);
    detail::ensure_wolfcrypt();
    stack_key k;
    if (!k.ready) return core::fail(core::errc::crypto_failure);
    word32 idx = 0;
    const int ret = wc_RsaPublicKeyDecode(in_ptr(spki_der), &idx, &k.key,
                                          static_cast<word32>(spki_der.size()));
    if (ret != 0 || idx != spki_der.size() || !acceptable(k.key))
        return core::fail(core::errc::key_invalid);
    // wolfSSL also takes a bare PKCS#1 RSAPublicKey and some non-DER encodings: re-encoding and
    // comparing admits exactly the canonical SubjectPublicKeyInfo.
    auto der = encode_spki(k.key);
    if (!der) return core::fail(der.error());
    if (der->size() != spki_der.size() ||
        std::memcmp(der->data(), spki_der.data(), der->size()) != 0)
        return core::fail(core::errc::key_invalid);
    const auto size = static_cast<std::size_t>(wc_RsaEncryptSize(&k.key));
    return rsa_public_key(std::move(*der), size);
}

core::result<rsa_public_key> rsa_public_key::from_components(std::span<const std::byte> modulus,
                                                             std::uint32_t exponent) {
    if (modulus.empty() || modulus.size() > rsa_max_bits / 8 + 1)
        return core::fail(core::errc::key_invalid);
    if (exponent == 0) exponent = 65537;  // TPM2: 0 stands for the default exponent
    const std::array<byte, 4> e{static_cast<byte>(exponent >> 24), static_cast<byte>(exponent >> 16),
                                static_cast<byte>(exponent >> 8), static_cast<byte>(exponent)};
    detail::ensure_wolfcrypt();
    stack_key k;
    if (!k.ready) return core::fail(core::errc::crypto_failure);
    const int ret = wc_RsaPublicKeyDecodeRaw(in_ptr(modulus), static_cast<word32>(modulus.size()),
                                             e.data(), static_cast<word32>(e.size()), &k.key);
    if (ret != 0 || !acceptable(k.key)) return core::fail(core::errc::key_invalid);
    auto der = encode_spki(k.key);
    if (!der) return core::fail(der.error());
    const auto size = static_cast<std::size_t>(wc_RsaEncryptSize(&k.key));
    return rsa_public_key(std::move(*der), size);
}

core::result<std::vector<std::uint8_t>> rsa_public_key::encrypt_oaep_sha256(
    std::span<const std::byte> plaintext) const {
    // RFC 8017 §7.1.1: mLen <= k - 2 hLen - 2.
    if (plaintext.empty() || plaintext.size() + 2 * sha256_size + 2 > size_)
        return core::fail(std::errc::invalid_argument);
    stack_key k;
    if (!k.ready) return core::fail(core::errc::crypto_failure);
    word32 idx = 0;
    int ret = wc_RsaPublicKeyDecode(der_.data(), &idx, &k.key, static_cast<word32>(der_.size()));
    if (ret != 0) return core::fail(wolf_error(ret));
    stack_rng rng;
    if (rng.init_ret != 0) return core::fail(wolf_error(rng.init_ret));
    std::vector<std::uint8_t> out(size_);
    ret = wc_RsaPublicEncrypt_ex(in_ptr(plaintext), static_cast<word32>(plaintext.size()),
                                 out.data(), static_cast<word32>(out.size()), &k.key, &rng.rng,
                                 WC_RSA_OAEP_PAD, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, nullptr, 0);
    if (ret < 0) return core::fail(wolf_error(ret));
    if (static_cast<std::size_t>(ret) != size_) return core::fail(core::errc::crypto_failure);
    return out;
}

core::result<void> rsa_public_key::verify_pss_sha256(std::span<const std::byte> message,
                                                     std::span<const std::byte> signature) const {
    if (signature.size() != size_) return core::fail(core::errc::auth_failed);
    stack_key k;
    if (!k.ready) return core::fail(core::errc::crypto_failure);
    word32 idx = 0;
    int ret = wc_RsaPublicKeyDecode(der_.data(), &idx, &k.key, static_cast<word32>(der_.size()));
    if (ret != 0) return core::fail(wolf_error(ret));
    const sha256_digest digest = sha256(message);
    // wolfCrypt's verify takes a writable input.
    std::vector<byte> sig(signature.size());
    std::memcpy(sig.data(), signature.data(), sig.size());
    std::vector<byte> em(size_);
    constexpr int salt = static_cast<int>(rsa_pss_salt_size);
    ret = wc_RsaPSS_Verify_ex(sig.data(), static_cast<word32>(sig.size()), em.data(),
                              static_cast<word32>(em.size()), WC_HASH_TYPE_SHA256, WC_MGF1SHA256,
                              salt, &k.key);
    if (ret < 0) return core::fail(core::errc::auth_failed);
    ret = wc_RsaPSS_CheckPadding_ex(reinterpret_cast<const byte*>(digest.data()), sha256_size,
                                    em.data(), static_cast<word32>(ret), WC_HASH_TYPE_SHA256, salt,
                                    mp_count_bits(&k.key.n));
    if (ret != 0) return core::fail(core::errc::auth_failed);
    return {};
}

// ---- rsa_private_key ---------------------------------------------------------------------

core::result<rsa_private_key> rsa_private_key::generate(unsigned bits) {
    if (bits < rsa_min_bits || bits > rsa_max_bits || bits % 8 != 0)
        return core::fail(std::errc::invalid_argument);
    auto state = new_state();
    if (!state) return core::fail(state.error());
    rsa_private_key out(std::move(*state));  // from here the destructor cleans up
    rsa_state* st = state_in(out.state_);
    const int ret = wc_MakeRsaKey(&st->key, static_cast<int>(bits), WC_RSA_EXPONENT, &st->rng);
    if (ret != 0) return core::fail(wolf_error(ret));
    return out;
}

core::result<rsa_private_key> rsa_private_key::from_der(
    std::span<const std::byte> pkcs1_or_pkcs8_der) {
    if (pkcs1_or_pkcs8_der.empty() || pkcs1_or_pkcs8_der.size() > UINT32_MAX)
        return core::fail(core::errc::key_invalid);
    auto state = new_state();
    if (!state) return core::fail(state.error());
    rsa_private_key out(std::move(*state));
    rsa_state* st = state_in(out.state_);
    // wc_RsaPrivateKeyDecode reads PKCS#1 and unwraps an unencrypted PKCS#8 itself.
    word32 idx = 0;
    const int ret = wc_RsaPrivateKeyDecode(in_ptr(pkcs1_or_pkcs8_der), &idx, &st->key,
                                           static_cast<word32>(pkcs1_or_pkcs8_der.size()));
    if (ret != 0 || idx != pkcs1_or_pkcs8_der.size() || !acceptable(st->key))
        return core::fail(core::errc::key_invalid);
    // A pairwise test: this wolfSSL build exports no wc_CheckRsaKey, and a key whose private
    // half does not match its modulus would otherwise only fail later, at first use.
    static constexpr char probe[] = "la rsa pairwise consistency";
    const auto msg = std::as_bytes(std::span<const char>(probe, sizeof probe - 1));
    auto sig = out.sign_pss_sha256(msg);
    if (!sig) return core::fail(core::errc::key_invalid);
    auto pub = out.public_key();
    if (!pub) return core::fail(pub.error());
    if (!pub->verify_pss_sha256(msg, std::as_bytes(std::span(*sig))))
        return core::fail(core::errc::key_invalid);
    return out;
}

rsa_private_key& rsa_private_key::operator=(rsa_private_key&& other) noexcept {
    if (this != &other) {
        destroy_state(state_);
        state_ = std::move(other.state_);
    }
    return *this;
}

rsa_private_key::~rsa_private_key() { destroy_state(state_); }

std::size_t rsa_private_key::size() const noexcept {
    const int n = wc_RsaEncryptSize(&state_in(state_)->key);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

core::result<secure_buffer> rsa_private_key::to_der() const {
    RsaKey* key = &state_in(state_)->key;
    const int size = wc_RsaKeyToDer(key, nullptr, 0);  // a null output asks for the length
    if (size <= 0) return core::fail(wolf_error(size == 0 ? BAD_FUNC_ARG : size));
    auto buf = secure_buffer::allocate(static_cast<std::size_t>(size));
    if (!buf) return core::fail(buf.error());
    const int len = wc_RsaKeyToDer(key, reinterpret_cast<byte*>(buf->data()),
                                   static_cast<word32>(size));
    if (len != size) return core::fail(wolf_error(len < 0 ? len : BUFFER_E));
    return buf;
}

core::result<std::vector<std::uint8_t>> rsa_private_key::public_der() const {
    return encode_spki(state_in(state_)->key);
}

core::result<rsa_public_key> rsa_private_key::public_key() const {
    auto der = public_der();
    if (!der) return core::fail(der.error());
    return rsa_public_key(std::move(*der), size());
}

core::result<secure_buffer> rsa_private_key::decrypt_oaep_sha256(
    std::span<const std::byte> ciphertext) const {
    rsa_state* st = state_in(state_);
    const std::size_t k = size();
    if (ciphertext.size() != k) return core::fail(std::errc::invalid_argument);
    // Decrypt in place inside secure memory: the encoded message and the plaintext never
    // touch an ordinary heap buffer.
    auto work = secure_buffer::allocate(k);
    if (!work) return core::fail(work.error());
    std::memcpy(work->data(), ciphertext.data(), k);
    byte* plain = nullptr;
    const int ret = wc_RsaPrivateDecryptInline_ex(reinterpret_cast<byte*>(work->data()),
                                                  static_cast<word32>(k), &plain, &st->key,
                                                  WC_RSA_OAEP_PAD, WC_HASH_TYPE_SHA256,
                                                  WC_MGF1SHA256, nullptr, 0);
    if (ret == MEMORY_E) return core::fail(wolf_error(ret));
    // Every padding, range or integrity failure looks the same to the caller.
    if (ret <= 0 || plain == nullptr) return core::fail(core::errc::auth_failed);
    auto out = secure_buffer::allocate(static_cast<std::size_t>(ret));
    if (!out) return core::fail(out.error());
    std::memcpy(out->data(), plain, static_cast<std::size_t>(ret));
    return out;
}

core::result<std::vector<std::uint8_t>> rsa_private_key::sign_pss_sha256(
    std::span<const std::byte> message) const {
    rsa_state* st = state_in(state_);
    const sha256_digest digest = sha256(message);
    std::vector<std::uint8_t> sig(size());
    const int ret = wc_RsaPSS_Sign_ex(reinterpret_cast<const byte*>(digest.data()), sha256_size,
                                      sig.data(), static_cast<word32>(sig.size()),
                                      WC_HASH_TYPE_SHA256, WC_MGF1SHA256,
                                      static_cast<int>(rsa_pss_salt_size), &st->key, &st->rng);
    if (ret < 0) return core::fail(wolf_error(ret));
    if (static_cast<std::size_t>(ret) != sig.size()) return core::fail(core::errc::crypto_failure);
    return sig;
}

}  // namespace la::crypto
