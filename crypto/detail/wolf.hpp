// The one header that includes wolfSSL: crypto's own .cpp files use it, consumers never do.
#pragma once

// clang-format off
#include <wolfssl/options.h>  // must precede every other wolfSSL header
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/siphash.h>
#include <wolfssl/wolfcrypt/wc_port.h>
// clang-format on

#include <system_error>

namespace la::crypto {

/// Error category for wolfCrypt return codes (negative ints); messages from wc_GetErrorString.
const std::error_category& wolfssl_category() noexcept;

/// Wraps a wolfCrypt return code: 0 maps to success, anything else to wolfssl_category().
std::error_code wolf_error(int ret) noexcept;

namespace detail {
/// Runs wolfCrypt_Init once per process; cheap after the first call. Thread: safe.
void ensure_wolfcrypt() noexcept;
}  // namespace detail

}  // namespace la::crypto
