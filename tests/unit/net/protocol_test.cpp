// Codec tests for net/protocol: round trips, every rejection, every truncation, buffer limits.
#include "net/protocol.hpp"

#include <gtest/gtest.h>

#include "tests/support/alloc_counter.hpp"

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

namespace la::net {
namespace {

using bytes = std::vector<std::byte>;

std::array<std::byte, nonce_size> make_nonce(unsigned seed) {
    std::array<std::byte, nonce_size> n{};
    for (std::size_t i = 0; i < n.size(); ++i)
        n[i] = std::byte(static_cast<unsigned char>(seed + i * 7));
    return n;
}

bytes of(std::initializer_list<unsigned> v) {
    bytes out;
    for (unsigned b : v) out.push_back(std::byte(static_cast<unsigned char>(b)));
    return out;
}

// A big-endian reader used by the test-side RESULT/ERROR decoders.
struct reader {
    std::span<const std::byte> b;
    bool ok = true;
    std::uint64_t u(std::size_t n) {
        if (b.size() < n) {
            ok = false;
            return 0;
        }
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v = (v << 8U) | std::to_integer<std::uint64_t>(b[i]);
        b = b.subspan(n);
        return v;
    }
    std::string str() {
        const auto n = static_cast<std::size_t>(u(2));
        if (b.size() < n) {
            ok = false;
            return {};
        }
        std::string s(reinterpret_cast<const char*>(b.data()), n);
        b = b.subspan(n);
        return s;
    }
};

struct decoded_result {
    bytes nonce;
    unsigned st, type, kind, flags;
    std::int64_t expires_at, issued_at;
    std::string license_id, product, subject;
    std::vector<std::string> features;
    std::vector<std::pair<std::string, std::string>> meta;
    bool complete;
};

decoded_result decode_result(std::span<const std::byte> body) {
    decoded_result d{};
    if (body.size() < nonce_size) return d;
    d.nonce.assign(body.begin(), body.begin() + nonce_size);
    reader r{body.subspan(nonce_size)};
    d.st = static_cast<unsigned>(r.u(1));
    d.type = static_cast<unsigned>(r.u(1));
    d.kind = static_cast<unsigned>(r.u(1));
    d.flags = static_cast<unsigned>(r.u(1));
    d.expires_at = static_cast<std::int64_t>(r.u(8));
    d.issued_at = static_cast<std::int64_t>(r.u(8));
    d.license_id = r.str();
    d.product = r.str();
    d.subject = r.str();
    for (auto n = r.u(2); n > 0 && r.ok; --n) d.features.push_back(r.str());
    for (auto n = r.u(2); n > 0 && r.ok; --n) {
        auto k = r.str();
        d.meta.emplace_back(k, r.str());
    }
    d.complete = r.ok && r.b.empty();
    return d;
}

frame_view must_peek(std::span<const std::byte> buf) {
    frame_view f{};
    EXPECT_EQ(peek_frame(buf, f), frame_state::ready);
    return f;
}

// A VALIDATE body assembled by hand, so rejections can use lengths encode_validate never writes.
bytes validate_body_raw(std::size_t tl, std::size_t pl, std::size_t fl, std::size_t il,
                        std::size_t payload) {
    bytes b(nonce_size, std::byte{0x11});
    for (std::size_t v : {tl, pl, fl, il}) {
        b.push_back(std::byte(static_cast<unsigned char>(v >> 8U)));
        b.push_back(std::byte(static_cast<unsigned char>(v)));
    }
    b.resize(b.size() + payload, std::byte{'x'});
    return b;
}

core::validation sample_validation(const std::array<std::string_view, 3>& features,
                                   const std::array<core::meta_entry, 2>& meta) {
    core::validation v{};
    v.st = core::status::valid;
    v.has_claims = true;
    v.lic.license_id = "LIC-1";
    v.lic.subject = "customer-42";
    v.lic.product = "pos";
    v.lic.type = core::lic_type::subscription;
    v.lic.kind = core::token_kind::signed_jws;
    v.lic.has_exp = true;
    v.lic.expires_at = 1798761600;  // 2027-01-01T00:00:00Z
    v.lic.issued_at = -5;           // negative survives the i64 round trip
    v.lic.features = features;
    v.lic.meta = meta;
    return v;
}

TEST(ProtocolTest, ValidateRoundTripsThroughPeekAndDecode) {
    const auto nonce = make_nonce(3);
    std::array<std::byte, max_wire_frame> buf{};
    const std::string token(max_token, 't');
    const std::size_t n = encode_validate(buf, nonce, token, "pos", "reports", "fp-1");
    ASSERT_EQ(n, frame_header_size + validate_fixed_size + token.size() + 3 + 7 + 4);

    const auto f = must_peek(std::span(buf).first(n));
    EXPECT_EQ(f.version, protocol_version);
    EXPECT_EQ(f.type, static_cast<std::uint8_t>(msg_type::validate));
    EXPECT_EQ(f.total_size, n);
    auto v = decode_validate(f.body);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(std::memcmp(v->nonce.data(), nonce.data(), nonce_size), 0);
    EXPECT_EQ(v->token, token);
    EXPECT_EQ(v->product, "pos");
    EXPECT_EQ(v->feature, "reports");
    EXPECT_EQ(v->instance, "fp-1");
}

TEST(ProtocolTest, ValidateWithEmptyOptionalFieldsDecodes) {
    std::array<std::byte, 64> buf{};
    const std::size_t n = encode_validate(buf, make_nonce(0), "abc", "", "", "");
    auto v = decode_validate(must_peek(std::span(buf).first(n)).body);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->token, "abc");
    EXPECT_TRUE(v->product.empty() && v->feature.empty() && v->instance.empty());
}

TEST(ProtocolTest, EmptyAndOversizedTokensAreLeftToTheEngine) {
    std::array<std::byte, max_wire_frame> buf{};
    std::size_t n = encode_validate(buf, make_nonce(0), "", "", "", "");
    EXPECT_TRUE(decode_validate(must_peek(std::span(buf).first(n)).body).has_value());
    const std::string big(max_token + 1, 'x');
    n = encode_validate(buf, make_nonce(0), big, "", "", "");
    auto v = decode_validate(must_peek(std::span(buf).first(n)).body);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->token.size(), max_token + 1);
}

TEST(ProtocolTest, DecodeValidateRejectsLengthsThatDontAddUp) {
    for (std::size_t short_len = 0; short_len < validate_fixed_size; ++short_len) {
        bytes b(short_len, std::byte{0});
        auto r = decode_validate(b);
        ASSERT_FALSE(r.has_value()) << short_len;
        EXPECT_EQ(r.error(), std::errc::invalid_argument);
    }
    // One byte too many, one too few, and a length that overflows what's there.
    for (const auto& b : {validate_body_raw(3, 1, 1, 1, 7), validate_body_raw(3, 1, 1, 1, 5),
                          validate_body_raw(0xFFFF, 0, 0, 0, 10)}) {
        auto r = decode_validate(b);
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error(), std::errc::invalid_argument);
    }
    EXPECT_TRUE(decode_validate(validate_body_raw(3, 1, 1, 1, 6)).has_value());
}

TEST(ProtocolTest, DecodeValidateRejectsFieldsLongerThanMaxField) {
    EXPECT_TRUE(
        decode_validate(validate_body_raw(1, max_field, max_field, max_field, 1 + 3 * max_field))
            .has_value());
    for (int which = 0; which < 3; ++which) {
        std::size_t l[3] = {1, 1, 1};
        l[which] = max_field + 1;
        auto r = decode_validate(validate_body_raw(1, l[0], l[1], l[2], 1 + l[0] + l[1] + l[2]));
        ASSERT_FALSE(r.has_value()) << which;
        EXPECT_EQ(r.error(), std::errc::value_too_large);
    }
}

TEST(ProtocolTest, EncodeValidateRefusesWhatCannotBeFramed) {
    std::array<std::byte, max_wire_frame + 100> buf{};
    const std::string too_long_u16(0x10000, 'x');
    EXPECT_EQ(encode_validate(buf, make_nonce(0), too_long_u16, "", "", ""), 0U);
    const std::string fills(max_body - validate_fixed_size, 'x');
    EXPECT_EQ(encode_validate(buf, make_nonce(0), fills, "", "", ""), max_wire_frame);
    EXPECT_EQ(encode_validate(buf, make_nonce(0), fills, "p", "", ""), 0U);
}

TEST(ProtocolTest, PeekNeedsMoreOnEveryTruncationPrefix) {
    std::array<std::byte, 128> buf{};
    const std::size_t n = encode_validate(buf, make_nonce(1), "token", "pos", "f", "i");
    ASSERT_GT(n, 0U);
    for (std::size_t len = 0; len < n; ++len) {
        frame_view f{};
        EXPECT_EQ(peek_frame(std::span(buf).first(len), f), frame_state::need_more) << len;
    }
}

TEST(ProtocolTest, PeekReadsOnlyTheFirstOfPipelinedFrames) {
    std::array<std::byte, 256> buf{};
    std::size_t a = encode_validate(buf, make_nonce(1), "one", "", "", "");
    std::size_t b = encode_status_request(std::span(buf).subspan(a));
    const auto first = must_peek(std::span(buf).first(a + b));
    EXPECT_EQ(first.total_size, a);
    const auto second = must_peek(std::span(buf).subspan(a, b));
    EXPECT_EQ(second.type, static_cast<std::uint8_t>(msg_type::status));
    EXPECT_TRUE(second.body.empty());
}

TEST(ProtocolTest, PeekJudgesTheLengthFieldBeforeTheBodyArrives) {
    frame_view f{};
    EXPECT_EQ(peek_frame(of({0, 0, 0x40, 0x01}), f), frame_state::too_large);  // 16385
    EXPECT_EQ(peek_frame(of({0xFF, 0xFF, 0xFF, 0xFF}), f), frame_state::too_large);
    EXPECT_EQ(peek_frame(of({0, 0, 0, 0}), f), frame_state::too_small);
    EXPECT_EQ(peek_frame(of({0, 0, 0, 1, 1}), f), frame_state::too_small);
    EXPECT_EQ(peek_frame(of({0, 0, 0x40, 0x00}), f), frame_state::need_more);  // exactly max
    EXPECT_EQ(peek_frame(of({0, 0, 0, 2, 1}), f), frame_state::need_more);
}

TEST(ProtocolTest, PeekReportsAnyVersionAndTypeForTheCallerToJudge) {
    const auto buf = of({0, 0, 0, 3, 9, 0x7E, 0xAA});
    const auto f = must_peek(buf);
    EXPECT_EQ(f.version, 9);
    EXPECT_EQ(f.type, 0x7E);
    ASSERT_EQ(f.body.size(), 1U);
    EXPECT_EQ(f.body[0], std::byte{0xAA});
}

TEST(ProtocolTest, HelloRoundTripsAndRejectsBadSizes) {
    std::array<std::byte, 8> buf{};
    const std::size_t n = encode_hello(buf, 1, 3);
    ASSERT_EQ(n, 8U);
    const auto f = must_peek(std::span(buf).first(n));
    EXPECT_EQ(f.type, static_cast<std::uint8_t>(msg_type::hello));
    auto h = decode_hello(f.body);
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(h->min_version, 1);
    EXPECT_EQ(h->max_version, 3);
    EXPECT_TRUE(hello_compatible(*h));
    EXPECT_FALSE(hello_compatible({2, 5}));
    EXPECT_FALSE(hello_compatible({1, 0}));
    EXPECT_FALSE(decode_hello(of({1})).has_value());
    EXPECT_FALSE(decode_hello(of({1, 1, 1})).has_value());
}

TEST(ProtocolTest, HelloOkCarriesVersionsAndLimits) {
    std::array<std::byte, 32> buf{};
    const std::size_t n = encode_hello_ok(buf);
    ASSERT_EQ(n, frame_header_size + 11);
    const auto f = must_peek(std::span(buf).first(n));
    EXPECT_EQ(f.type, 0x81);
    reader r{f.body};
    EXPECT_EQ(r.u(1), 1U);
    EXPECT_EQ(r.u(1), 1U);
    EXPECT_EQ(r.u(1), 1U);
    EXPECT_EQ(r.u(4), max_frame);
    EXPECT_EQ(r.u(4), max_token);
    EXPECT_TRUE(r.ok && r.b.empty());
}

TEST(ProtocolTest, ResultRoundTripsEveryField) {
    const std::array<std::string_view, 3> features{"a", "b", "reports"};
    const std::array<core::meta_entry, 2> meta{{{"seats", "5"}, {"region", "eu"}}};
    const auto v = sample_validation(features, meta);
    const auto nonce = make_nonce(9);
    std::array<std::byte, 512> buf{};
    const std::size_t n = encode_result(buf, nonce, v);
    ASSERT_GT(n, 0U);
    const auto f = must_peek(std::span(buf).first(n));
    EXPECT_EQ(f.type, static_cast<std::uint8_t>(msg_type::result));
    const auto d = decode_result(f.body);
    ASSERT_TRUE(d.complete);
    EXPECT_EQ(d.nonce, bytes(nonce.begin(), nonce.end()));
    EXPECT_EQ(d.st, 0U);
    EXPECT_EQ(d.type, 2U);
    EXPECT_EQ(d.kind, 1U);
    EXPECT_EQ(d.flags, unsigned{result_flag_has_claims | result_flag_has_exp});
    EXPECT_EQ(d.expires_at, 1798761600);
    EXPECT_EQ(d.issued_at, -5);
    EXPECT_EQ(d.license_id, "LIC-1");
    EXPECT_EQ(d.product, "pos");
    EXPECT_EQ(d.subject, "customer-42");
    EXPECT_EQ(d.features, (std::vector<std::string>{"a", "b", "reports"}));
    ASSERT_EQ(d.meta.size(), 2U);
    EXPECT_EQ(d.meta[1], (std::pair<std::string, std::string>{"region", "eu"}));
}

TEST(ProtocolTest, ResultWithoutClaimsSendsNoLicenseFields) {
    core::validation v{};
    v.st = core::status::bad_signature;
    v.has_claims = false;
    v.lic.license_id = "must-not-leak";
    v.lic.has_exp = true;
    v.lic.expires_at = 77;
    std::array<std::byte, 128> buf{};
    const std::size_t n = encode_result(buf, make_nonce(0), v);
    ASSERT_EQ(n, frame_header_size + result_fixed_size + 10);
    const auto d = decode_result(must_peek(std::span(buf).first(n)).body);
    ASSERT_TRUE(d.complete);
    EXPECT_EQ(d.st, 3U);
    EXPECT_EQ(d.flags, 0U);
    EXPECT_EQ(d.expires_at, 0);
    EXPECT_TRUE(d.license_id.empty());
}

TEST(ProtocolTest, ResultWithoutExpirySendsZeroAndClearsTheFlag) {
    const std::array<std::string_view, 3> features{"a", "b", "c"};
    const std::array<core::meta_entry, 2> meta{{{"k", "v"}, {"k2", "v2"}}};
    auto v = sample_validation(features, meta);
    v.lic.type = core::lic_type::perpetual;
    v.lic.has_exp = false;
    std::array<std::byte, 512> buf{};
    const std::size_t n = encode_result(buf, make_nonce(0), v);
    const auto d = decode_result(must_peek(std::span(buf).first(n)).body);
    EXPECT_EQ(d.flags, unsigned{result_flag_has_claims});
    EXPECT_EQ(d.expires_at, 0);
}

TEST(ProtocolTest, ResultTooBigForOneFrameBecomesInternalError) {
    const std::string huge(max_frame, 'm');
    const std::array<std::string_view, 3> features{"a", "b", "c"};
    const std::array<core::meta_entry, 2> meta{{{"k", huge}, {"k2", "v"}}};
    const auto v = sample_validation(features, meta);
    std::array<std::byte, max_wire_frame> buf{};
    const std::size_t n = encode_result(buf, make_nonce(2), v);
    ASSERT_GT(n, 0U);
    const auto d = decode_result(must_peek(std::span(buf).first(n)).body);
    ASSERT_TRUE(d.complete);
    EXPECT_EQ(d.st, static_cast<unsigned>(core::status::internal_error));
    EXPECT_EQ(d.flags, 0U);
}

TEST(ProtocolTest, ErrorCarriesCodeVersionsAndACutMessage) {
    std::array<std::byte, 512> buf{};
    const std::string long_msg(300, 'e');
    const std::size_t n = encode_error(buf, core::status::unauthorized, long_msg);
    ASSERT_EQ(n, frame_header_size + 5 + max_error_message);
    const auto f = must_peek(std::span(buf).first(n));
    EXPECT_EQ(f.type, 0xFF);
    reader r{f.body};
    EXPECT_EQ(r.u(1), 12U);
    EXPECT_EQ(r.u(1), min_protocol_version);
    EXPECT_EQ(r.u(1), max_protocol_version);
    EXPECT_EQ(r.str(), std::string(max_error_message, 'e'));
    EXPECT_TRUE(r.ok && r.b.empty());
}

TEST(ProtocolTest, StatusOkCarriesTheJsonAsBody) {
    std::array<std::byte, 64> buf{};
    const std::string_view json = R"({"uptime_seconds":1})";
    const std::size_t n = encode_status_ok(buf, json);
    const auto f = must_peek(std::span(buf).first(n));
    EXPECT_EQ(f.type, 0x83);
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(f.body.data()), f.body.size()), json);
    std::array<std::byte, max_wire_frame + 8> big{};
    EXPECT_EQ(encode_status_ok(big, std::string(max_body, 'x')), max_wire_frame);
    EXPECT_EQ(encode_status_ok(big, std::string(max_body + 1, 'x')), 0U);
}

TEST(ProtocolTest, EveryEncoderReturnsZeroWhenOutIsOneByteTooSmall) {
    const std::array<std::string_view, 3> features{"a", "b", "c"};
    const std::array<core::meta_entry, 2> meta{{{"k", "v"}, {"k2", "v2"}}};
    const auto v = sample_validation(features, meta);
    const auto nonce = make_nonce(5);
    using encoder = std::function<std::size_t(std::span<std::byte>)>;
    const std::vector<std::pair<const char*, encoder>> encoders = {
        {"result", [&](std::span<std::byte> o) { return encode_result(o, nonce, v); }},
        {"error",
         [](std::span<std::byte> o) { return encode_error(o, core::status::malformed, "bad"); }},
        {"hello_ok", [](std::span<std::byte> o) { return encode_hello_ok(o); }},
        {"status_ok", [](std::span<std::byte> o) { return encode_status_ok(o, "{}"); }},
        {"validate",
         [&](std::span<std::byte> o) { return encode_validate(o, nonce, "tok", "p", "f", "i"); }},
        {"status", [](std::span<std::byte> o) { return encode_status_request(o); }},
        {"hello", [](std::span<std::byte> o) { return encode_hello(o, 1, 1); }},
    };
    for (const auto& [name, fn] : encoders) {
        std::array<std::byte, 512> buf{};
        const std::size_t need = fn(buf);
        ASSERT_GT(need, 0U) << name;
        for (std::size_t size = 0; size < need; ++size) {
            std::array<std::byte, 512> small{};
            small.fill(std::byte{0xEE});
            EXPECT_EQ(fn(std::span(small).first(size)), 0U) << name << " " << size;
            for (std::size_t i = 0; i < small.size(); ++i) {
                ASSERT_EQ(small[i], std::byte{0xEE})
                    << name << " wrote byte " << i << " of " << size;
            }
        }
        std::array<std::byte, 512> exact{};
        EXPECT_EQ(fn(std::span(exact).first(need)), need) << name;
        EXPECT_EQ(std::memcmp(exact.data(), buf.data(), need), 0) << name;
    }
}

TEST(ProtocolTest, CodecMakesNoHeapAllocations) {
    const std::array<std::string_view, 3> features{"a", "b", "c"};
    const std::array<core::meta_entry, 2> meta{{{"k", "v"}, {"k2", "v2"}}};
    const auto v = sample_validation(features, meta);
    std::array<std::byte, max_wire_frame> in{};
    std::array<std::byte, max_wire_frame> out{};
    const auto nonce = make_nonce(4);
    const std::size_t n = encode_validate(in, nonce, "token.token.token", "pos", "f", "i");
    std::size_t total = 0;
    const test::alloc_scope allocations;
    for (int i = 0; i < 10000; ++i) {
        frame_view f{};
        if (peek_frame(std::span(in).first(n), f) != frame_state::ready) break;
        auto body = decode_validate(f.body);
        if (!body) break;
        total += encode_result(out, body->nonce, v);
        total += encode_error(out, core::status::malformed, "x");
    }
    EXPECT_EQ(allocations.count(), 0U);
    EXPECT_GT(total, 10000U);
}

}  // namespace
}  // namespace la::net
