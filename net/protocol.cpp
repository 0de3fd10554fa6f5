#include "net/protocol.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace la::net {
namespace {

constexpr std::size_t u16_max = std::numeric_limits<std::uint16_t>::max();

std::uint16_t load_u16(const std::byte* p) noexcept {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8U) |
                                      std::to_integer<unsigned>(p[1]));
}

std::uint32_t load_u32(const std::byte* p) noexcept {
    return (std::to_integer<std::uint32_t>(p[0]) << 24U) |
           (std::to_integer<std::uint32_t>(p[1]) << 16U) |
           (std::to_integer<std::uint32_t>(p[2]) << 8U) | std::to_integer<std::uint32_t>(p[3]);
}

std::string_view as_text(std::span<const std::byte> bytes) noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Appends big-endian fields to a frame under construction. The caller computes the frame size
// first and checks it against `out`, so the writer itself never runs past the end.
class frame_writer {
  public:
    explicit frame_writer(std::byte* p) noexcept : p_(p) {}

    void u8(std::uint8_t v) noexcept { *p_++ = std::byte{v}; }
    void u16(std::size_t v) noexcept {
        u8(static_cast<std::uint8_t>(v >> 8U));
        u8(static_cast<std::uint8_t>(v));
    }
    void u32(std::size_t v) noexcept {
        u16((v >> 16U) & 0xFFFFU);
        u16(v & 0xFFFFU);
    }
    void i64(std::int64_t v) noexcept {
        const auto u = static_cast<std::uint64_t>(v);
        u32(static_cast<std::size_t>(u >> 32U));
        u32(static_cast<std::size_t>(u & 0xFFFFFFFFU));
    }
    void bytes(std::span<const std::byte> b) noexcept {
        if (!b.empty()) std::memcpy(p_, b.data(), b.size());
        p_ += b.size();
    }
    void text(std::string_view s) noexcept { bytes(std::as_bytes(std::span(s.data(), s.size()))); }
    void str16(std::string_view s) noexcept {
        u16(s.size());
        text(s);
    }
    /// Writes the length prefix, version and type for a frame of `body` bytes.
    void header(msg_type t, std::size_t body) noexcept {
        u32(body + 2);
        u8(protocol_version);
        u8(static_cast<std::uint8_t>(t));
    }

  private:
    std::byte* p_;
};

// Total wire size of a frame with `body` bytes, or 0 when it cannot be one frame or won't fit out.
std::size_t frame_fits(std::span<std::byte> out, std::size_t body) noexcept {
    if (body > max_body) return 0;
    const std::size_t total = frame_header_size + body;
    return total <= out.size() ? total : 0;
}

// Body size of the RESULT for v, or 0 when a field cannot be encoded (> u16 or frame too big).
std::size_t result_body_size(const core::validation& v) noexcept {
    std::size_t n = result_fixed_size + 2 + 2 + 2 + 2 + 2;
    if (!v.has_claims) return n;
    const auto& l = v.lic;
    for (auto s : {l.license_id, l.product, l.subject}) {
        if (s.size() > u16_max) return 0;
        n += s.size();
    }
    if (l.features.size() > u16_max || l.meta.size() > u16_max) return 0;
    for (auto f : l.features) {
        if (f.size() > u16_max) return 0;
        n += 2 + f.size();
        if (n > max_body) return 0;
    }
    for (const auto& m : l.meta) {
        if (m.key.size() > u16_max || m.value.size() > u16_max) return 0;
        n += 4 + m.key.size() + m.value.size();
        if (n > max_body) return 0;
    }
    return n <= max_body ? n : 0;
}

}  // namespace

frame_state peek_frame(std::span<const std::byte> buf, frame_view& out) noexcept {
    if (buf.size() < length_prefix_size) return frame_state::need_more;
    const std::uint32_t length = load_u32(buf.data());
    if (length > max_frame) return frame_state::too_large;
    if (length < 2) return frame_state::too_small;
    const std::size_t total = length_prefix_size + length;
    if (buf.size() < total) return frame_state::need_more;
    out.version = std::to_integer<std::uint8_t>(buf[4]);
    out.type = std::to_integer<std::uint8_t>(buf[5]);
    out.body = buf.subspan(frame_header_size, total - frame_header_size);
    out.total_size = total;
    return frame_state::ready;
}

core::result<validate_body> decode_validate(std::span<const std::byte> body) noexcept {
    if (body.size() < validate_fixed_size) return core::fail(std::errc::invalid_argument);
    const std::byte* p = body.data() + nonce_size;
    const std::size_t token_len = load_u16(p);
    const std::size_t product_len = load_u16(p + 2);
    const std::size_t feature_len = load_u16(p + 4);
    const std::size_t instance_len = load_u16(p + 6);
    if (validate_fixed_size + token_len + product_len + feature_len + instance_len != body.size()) {
        return core::fail(std::errc::invalid_argument);
    }
    if (product_len > max_field || feature_len > max_field || instance_len > max_field) {
        return core::fail(std::errc::value_too_large);
    }
    auto rest = body.subspan(validate_fixed_size);
    const auto token = as_text(rest.first(token_len));
    rest = rest.subspan(token_len);
    const auto product = as_text(rest.first(product_len));
    rest = rest.subspan(product_len);
    const auto feature = as_text(rest.first(feature_len));
    const auto instance = as_text(rest.subspan(feature_len));
    return validate_body{body.first<nonce_size>(), token, product, feature, instance};
}

core::result<hello_body> decode_hello(std::span<const std::byte> body) noexcept {
    if (body.size() != 2) return core::fail(std::errc::invalid_argument);
    return hello_body{std::to_integer<std::uint8_t>(body[0]),
                      std::to_integer<std::uint8_t>(body[1])};
}

std::size_t encode_result(std::span<std::byte> out, std::span<const std::byte, nonce_size> nonce,
                          const core::validation& v) noexcept {
    std::size_t body = result_body_size(v);
    core::validation fallback{};
    fallback.st = core::status::internal_error;
    fallback.has_claims = false;
    const core::validation* src = &v;
    if (body == 0) {
        src = &fallback;
        body = result_body_size(fallback);
    }
    const std::size_t total = frame_fits(out, body);
    if (total == 0) return 0;

    frame_writer w(out.data());
    w.header(msg_type::result, body);
    w.bytes(nonce);
    w.u8(static_cast<std::uint8_t>(src->st));
    if (!src->has_claims) {
        w.u8(0);
        w.u8(0);
        w.u8(0);
        w.i64(0);
        w.i64(0);
        for (int i = 0; i < 5; ++i) w.u16(0);  // three empty strings, no features, no meta
        return total;
    }
    const auto& l = src->lic;
    w.u8(static_cast<std::uint8_t>(l.type));
    w.u8(static_cast<std::uint8_t>(l.kind));
    w.u8(static_cast<std::uint8_t>(result_flag_has_claims | (l.has_exp ? result_flag_has_exp : 0)));
    w.i64(l.has_exp ? l.expires_at : 0);
    w.i64(l.issued_at);
    w.str16(l.license_id);
    w.str16(l.product);
    w.str16(l.subject);
    w.u16(l.features.size());
    for (auto f : l.features) w.str16(f);
    w.u16(l.meta.size());
    for (const auto& m : l.meta) {
        w.str16(m.key);
        w.str16(m.value);
    }
    return total;
}

std::size_t encode_error(std::span<std::byte> out, core::status code,
                         std::string_view message) noexcept {
    message = message.substr(0, std::min(message.size(), max_error_message));
    const std::size_t body = 5 + message.size();
    const std::size_t total = frame_fits(out, body);
    if (total == 0) return 0;
    frame_writer w(out.data());
    w.header(msg_type::error, body);
    w.u8(static_cast<std::uint8_t>(code));
    w.u8(min_protocol_version);
    w.u8(max_protocol_version);
    w.str16(message);
    return total;
}

std::size_t encode_hello_ok(std::span<std::byte> out) noexcept {
    constexpr std::size_t body = 3 + 4 + 4;
    const std::size_t total = frame_fits(out, body);
    if (total == 0) return 0;
    frame_writer w(out.data());
    w.header(msg_type::hello_ok, body);
    w.u8(protocol_version);
    w.u8(min_protocol_version);
    w.u8(max_protocol_version);
    w.u32(max_frame);
    w.u32(max_token);
    return total;
}

std::size_t encode_status_ok(std::span<std::byte> out, std::string_view json) noexcept {
    const std::size_t total = frame_fits(out, json.size());
    if (total == 0) return 0;
    frame_writer w(out.data());
    w.header(msg_type::status_ok, json.size());
    w.text(json);
    return total;
}

std::size_t encode_admin_ok(std::span<std::byte> out, std::string_view json) noexcept {
    const std::size_t total = frame_fits(out, json.size());
    if (total == 0) return 0;
    frame_writer w(out.data());
    w.header(msg_type::admin_ok, json.size());
    w.text(json);
    return total;
}

core::result<admin_body> decode_admin(std::span<const std::byte> body) noexcept {
    constexpr std::size_t max_op = 64;
    std::size_t n = 0;
    while (n < body.size() && n <= max_op) {
        const char c = static_cast<char>(body[n]);
        if (c == '\n') break;
        if (!((c >= 'a' && c <= 'z') || c == '-')) return core::fail(std::errc::invalid_argument);
        ++n;
    }
    if (n == 0 || n > max_op || n == body.size()) return core::fail(std::errc::invalid_argument);
    return admin_body{std::string_view(reinterpret_cast<const char*>(body.data()), n),
                      body.subspan(n + 1)};
}

std::size_t encode_admin(std::span<std::byte> out, std::string_view op,
                         std::span<const std::byte> payload) noexcept {
    const std::size_t body = op.size() + 1 + payload.size();
    if (body > max_body) return 0;
    const std::size_t total = frame_fits(out, body);
    if (total == 0) return 0;
    frame_writer w(out.data());
    w.header(msg_type::admin, body);
    w.text(op);
    w.text("\n");
    w.bytes(payload);
    return total;
}

std::size_t encode_validate(std::span<std::byte> out, std::span<const std::byte, nonce_size> nonce,
                            std::string_view token, std::string_view product,
                            std::string_view feature, std::string_view instance) noexcept {
    for (auto s : {token, product, feature, instance}) {
        if (s.size() > u16_max) return 0;
    }
    const std::size_t body =
        validate_fixed_size + token.size() + product.size() + feature.size() + instance.size();
    const std::size_t total = frame_fits(out, body);
    if (total == 0) return 0;
    frame_writer w(out.data());
    w.header(msg_type::validate, body);
    w.bytes(nonce);
    w.u16(token.size());
    w.u16(product.size());
    w.u16(feature.size());
    w.u16(instance.size());
    w.text(token);
    w.text(product);
    w.text(feature);
    w.text(instance);
    return total;
}

std::size_t encode_status_request(std::span<std::byte> out) noexcept {
    const std::size_t total = frame_fits(out, 0);
    if (total == 0) return 0;
    frame_writer w(out.data());
    w.header(msg_type::status, 0);
    return total;
}

std::size_t encode_hello(std::span<std::byte> out, std::uint8_t min_v,
                         std::uint8_t max_v) noexcept {
    const std::size_t total = frame_fits(out, 2);
    if (total == 0) return 0;
    frame_writer w(out.data());
    w.header(msg_type::hello, 2);
    w.u8(min_v);
    w.u8(max_v);
    return total;
}

}  // namespace la::net
