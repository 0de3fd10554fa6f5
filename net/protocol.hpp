// Wire protocol v1 between the agent and its clients (spec: docs/protocol.md).
// Pure codec: no I/O, no heap allocation, no exceptions, so the connection coroutine can call it
// on the validation hot path. Decoded views point into the caller's buffer and live as long as it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/engine.hpp"
#include "core/result.hpp"

namespace la::net {

/// The version this build speaks (and the only one defined so far).
inline constexpr std::uint8_t protocol_version = 1;
/// The range of versions this build accepts; sent in HELLO_OK and every ERROR frame.
inline constexpr std::uint8_t min_protocol_version = 1;
inline constexpr std::uint8_t max_protocol_version = 1;
/// Largest value of the u32 length field (it counts version + type + body).
inline constexpr std::size_t max_frame = 16384;
/// Largest token the engine accepts; longer ones get RESULT too_large.
inline constexpr std::size_t max_token = 8192;
/// u32 length + u8 version + u8 type.
inline constexpr std::size_t frame_header_size = 6;
/// Largest product / feature / instance field in a VALIDATE request.
inline constexpr std::size_t max_field = 255;
/// Bytes of the length prefix itself.
inline constexpr std::size_t length_prefix_size = 4;
/// Largest whole frame on the wire (prefix included): size a receive or send buffer with it.
inline constexpr std::size_t max_wire_frame = max_frame + length_prefix_size;
/// Largest frame body.
inline constexpr std::size_t max_body = max_frame - 2;
/// Size of the request nonce echoed in RESULT.
inline constexpr std::size_t nonce_size = 16;
/// Longest ERROR message; longer messages are cut.
inline constexpr std::size_t max_error_message = 200;
/// Fixed part of a VALIDATE body: nonce + four u16 lengths.
inline constexpr std::size_t validate_fixed_size = nonce_size + 8;
/// Fixed part of a RESULT body before the first string: nonce, 4 × u8, 2 × i64.
inline constexpr std::size_t result_fixed_size = nonce_size + 4 + 16;
/// RESULT flags byte: the license fields are meaningful.
inline constexpr std::uint8_t result_flag_has_claims = 0x01;
/// RESULT flags byte: expires_at is meaningful.
inline constexpr std::uint8_t result_flag_has_exp = 0x02;

/// Frame types; requests have the high bit clear, responses set.
enum class msg_type : std::uint8_t {
    hello = 0x01,
    validate = 0x02,
    status = 0x03,
    admin = 0x04,
    hello_ok = 0x81,
    result = 0x82,
    status_ok = 0x83,
    admin_ok = 0x84,
    error = 0xFF,
};

/// One frame found at the front of a buffer; body views that buffer.
struct frame_view {
    std::uint8_t version;
    std::uint8_t type;
    std::span<const std::byte> body;
    std::size_t total_size;  ///< bytes consumed, length prefix included
};

/// What peek_frame found at the front of the buffer.
enum class frame_state {
    need_more,  ///< not a whole frame yet (keep reading)
    ready,      ///< `out` describes one whole frame
    too_large,  ///< length field > max_frame: answer ERROR too_large, then close
    too_small,  ///< length field < 2: answer ERROR malformed, then close
};

/// Looks at the front of buf: need_more until a whole frame is there; too_large / too_small for a
/// bad length field (judged as soon as the 4 length bytes are in, before the body arrives).
/// Does not judge version or type: the caller answers those with ERROR frames.
frame_state peek_frame(std::span<const std::byte> buf, frame_view& out) noexcept;

/// A decoded VALIDATE body; every view points into the frame body.
struct validate_body {
    std::span<const std::byte, nonce_size> nonce;
    std::string_view token, product, feature, instance;
};

/// Decodes a VALIDATE body. Token size and emptiness are not judged here: the engine answers
/// RESULT too_large / malformed for those.
/// Errors: std::errc::invalid_argument when the body is shorter than its fixed part or the
/// lengths don't add up to the body size (answer ERROR malformed);
/// std::errc::value_too_large when product, feature or instance exceeds max_field (answer
/// RESULT malformed echoing the nonce, which is then the first nonce_size bytes of the body).
core::result<validate_body> decode_validate(std::span<const std::byte> body) noexcept;

/// A decoded HELLO body: the client's accepted version range.
struct hello_body {
    std::uint8_t min_version, max_version;
};

/// Decodes a HELLO body. Errors: std::errc::invalid_argument unless the body is exactly 2 bytes.
core::result<hello_body> decode_hello(std::span<const std::byte> body) noexcept;

/// True when a client's [min, max] range contains a version this build speaks.
constexpr bool hello_compatible(hello_body h) noexcept {
    return h.min_version <= max_protocol_version && h.max_version >= min_protocol_version &&
           h.min_version <= h.max_version;
}

// Encoders write one whole frame (header included) and return its size, or 0 when `out` is too
// small (the caller flushes and retries with an empty buffer of max_wire_frame bytes).

/// RESULT for one validation. License fields are sent only when v.has_claims. A result that cannot
/// fit one frame (impossible for tokens within max_token) is sent as internal_error without claims.
std::size_t encode_result(std::span<std::byte> out, std::span<const std::byte, nonce_size> nonce,
                          const core::validation& v) noexcept;

/// ERROR frame carrying our version range; message is cut to max_error_message bytes.
std::size_t encode_error(std::span<std::byte> out, core::status code,
                         std::string_view message) noexcept;

/// HELLO_OK: chosen version, our version range, max_frame and max_token.
std::size_t encode_hello_ok(std::span<std::byte> out) noexcept;

/// STATUS_OK with a JSON object as body. Also 0 when json exceeds max_body.
std::size_t encode_status_ok(std::span<std::byte> out, std::string_view json) noexcept;

/// VALIDATE request (client side: load generator, tests). Fields are sent as given, even when the
/// server will refuse them; 0 also when a length exceeds 65535 or the frame exceeds max_frame.
std::size_t encode_validate(std::span<std::byte> out, std::span<const std::byte, nonce_size> nonce,
                            std::string_view token, std::string_view product,
                            std::string_view feature, std::string_view instance) noexcept;

/// ADMIN_OK with a JSON object as body ({"ok":true,...} or {"ok":false,"error":"..."}).
/// 0 when json exceeds max_body.
std::size_t encode_admin_ok(std::span<std::byte> out, std::string_view json) noexcept;

/// An ADMIN request: the command name, then '\n', then its payload (e.g. a JWK Set to import).
struct admin_body {
    std::string_view op;
    std::span<const std::byte> payload;
};

/// Decodes an ADMIN body. Errors: std::errc::invalid_argument without a '\n' after a 1..64
/// byte command name of [a-z-].
core::result<admin_body> decode_admin(std::span<const std::byte> body) noexcept;

/// ADMIN request (client side): `op`, '\n', `payload`. 0 when it does not fit one frame.
std::size_t encode_admin(std::span<std::byte> out, std::string_view op,
                         std::span<const std::byte> payload) noexcept;

/// STATUS request (empty body).
std::size_t encode_status_request(std::span<std::byte> out) noexcept;

/// HELLO request offering versions [min_v, max_v].
std::size_t encode_hello(std::span<std::byte> out, std::uint8_t min_v, std::uint8_t max_v) noexcept;

}  // namespace la::net
