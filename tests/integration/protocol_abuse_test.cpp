// Bytes written straight onto the agent's socket: broken framing, bad bodies, pipelining,
// idle and slow peers. The agent must answer per docs/protocol.md and keep serving others.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/integration_env.hpp"
#include "tests/support/raw_wire.hpp"

namespace la::test {
namespace {

constexpr std::uint8_t st_valid = 0, st_bad_signature = 3, st_malformed = 6, st_too_large = 7,
                       st_unsupported_version = 13;

class ProtocolAbuseTest : public agent_test {
protected:
    bool start_with_idle(int idle_ms) {
        auto cfg = make_config();
        cfg.set("ipc.idle_timeout_ms", std::to_string(idle_ms));
        return start(cfg);
    }

    raw_conn conn() {
        raw_conn c(cfg_->socket);
        EXPECT_TRUE(c.ok()) << "connect: errno " << c.connect_errno();
        return c;
    }

    // Reads one frame and expects an ERROR with `code`.
    void expect_error(raw_conn& c, std::uint8_t code) {
        wire_frame f;
        ASSERT_EQ(c.read_frame(f), read_status::frame);
        ASSERT_EQ(f.type, t_error);
        EXPECT_EQ(f.version, 1);
        auto e = decode_error(f.body);
        ASSERT_TRUE(e) << "ERROR body does not decode";
        EXPECT_EQ(e->code, code) << e->message;
        EXPECT_EQ(e->min_version, 1);
        EXPECT_EQ(e->max_version, 1);
        EXPECT_LE(e->message.size(), 200u);
    }

    // Sends one VALIDATE and expects a RESULT with `status` and the same nonce.
    void expect_served(raw_conn& c, const std::string& token, std::uint8_t status, std::uint64_t id) {
        const nonce_t n = make_nonce(0xC0FFEE, id);
        ASSERT_TRUE(c.send_all(encode_validate(n, token)));
        wire_frame f;
        ASSERT_EQ(c.read_frame(f), read_status::frame);
        ASSERT_EQ(f.type, t_result);
        auto r = decode_result(f.body);
        ASSERT_TRUE(r) << "RESULT body does not decode";
        EXPECT_EQ(r->nonce, n);
        EXPECT_EQ(r->status, status);
    }

    void expect_still_serving() {
        auto other = conn();
        expect_served(other, tokens()["signed_valid"], st_valid, 777);
        EXPECT_TRUE(agent_->running());
    }
};

TEST_F(ProtocolAbuseTest, HelloAnswersTheLimits) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    ASSERT_TRUE(c.send_all(encode_frame(1, t_hello, {1, 1})));
    wire_frame f;
    ASSERT_EQ(c.read_frame(f), read_status::frame);
    ASSERT_EQ(f.type, t_hello_ok);
    EXPECT_EQ(f.body, (bytes{1, 1, 1, 0, 0, 0x40, 0, 0, 0, 0x20, 0}));
    ASSERT_TRUE(c.send_all(encode_frame(1, t_hello, {2, 9})));
    expect_error(c, st_unsupported_version);
    ASSERT_TRUE(c.send_all(encode_frame(1, t_hello, {1})));
    expect_error(c, st_malformed);
    expect_served(c, tokens()["signed_valid"], st_valid, 1);
}

TEST_F(ProtocolAbuseTest, GarbageBytesAreRefusedAndClosed) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";  // "GET " is a length of ~1.2 GB
    ASSERT_TRUE(c.send_all(reinterpret_cast<const std::uint8_t*>(http.data()), http.size()));
    expect_error(c, st_too_large);
    EXPECT_TRUE(c.wait_closed(10s));
    expect_still_serving();
}

TEST_F(ProtocolAbuseTest, FrameOverMaxIsTooLargeThenClosed) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    ASSERT_TRUE(c.send_all(bytes{0x00, 0x00, 0x40, 0x01, 0x01, 0x02}));  // length 16385
    expect_error(c, st_too_large);
    EXPECT_TRUE(c.wait_closed(10s));
    // Exactly MAX_FRAME is still a frame: a VALIDATE whose lengths don't add up, answered in place.
    auto ok = conn();
    bytes body(16382, 0);
    ASSERT_TRUE(ok.send_all(encode_frame(1, t_validate, body)));
    expect_error(ok, st_malformed);
    expect_served(ok, tokens()["signed_valid"], st_valid, 2);
}

TEST_F(ProtocolAbuseTest, FrameBelowTwoBytesIsMalformedThenClosed) {
    ASSERT_TRUE(start_with_idle(300));
    for (const std::uint8_t len : {std::uint8_t{0}, std::uint8_t{1}}) {
        auto c = conn();
        ASSERT_TRUE(c.send_all(bytes{0, 0, 0, len, 0x01, 0x02}));
        expect_error(c, st_malformed);
        EXPECT_TRUE(c.wait_closed(10s));
    }
    expect_still_serving();
}

TEST_F(ProtocolAbuseTest, UnknownTypeIsMalformedAndTheConnectionStays) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    for (const int type : {0x00, 0x05, 0x42, 0x82, 0xFF}) {
        ASSERT_TRUE(c.send_all(encode_frame(1, static_cast<std::uint8_t>(type), {1, 2, 3})));
        expect_error(c, st_malformed);
    }
    expect_served(c, tokens()["signed_valid"], st_valid, 3);
}

TEST_F(ProtocolAbuseTest, WrongVersionIsUnsupportedAndTheConnectionStays) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    ASSERT_TRUE(c.send_all(encode_validate(make_nonce(1, 1), tokens()["signed_valid"], {}, {}, {}, 2)));
    expect_error(c, st_unsupported_version);
    ASSERT_TRUE(c.send_all(encode_frame(0, t_status, {})));
    expect_error(c, st_unsupported_version);
    expect_served(c, tokens()["signed_valid"], st_valid, 4);
}

TEST_F(ProtocolAbuseTest, ValidateBodyThatDoesNotAddUpIsMalformed) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    // token_len says 100, but only 50 token bytes follow.
    bytes body(16, 0xAB);
    for (const int len : {100, 0, 0, 0}) {
        body.push_back(static_cast<std::uint8_t>(len >> 8));
        body.push_back(static_cast<std::uint8_t>(len));
    }
    body.insert(body.end(), 50, 'x');
    ASSERT_TRUE(c.send_all(encode_frame(1, t_validate, body)));
    expect_error(c, st_malformed);
    // Shorter than the fixed part.
    ASSERT_TRUE(c.send_all(encode_frame(1, t_validate, bytes(20, 0))));
    expect_error(c, st_malformed);
    // Trailing bytes after the four strings.
    bytes trailing = encode_validate(make_nonce(5, 5), "abc");
    trailing.push_back('!');
    trailing[3] = static_cast<std::uint8_t>(trailing[3] + 1);
    ASSERT_TRUE(c.send_all(trailing));
    expect_error(c, st_malformed);
    expect_served(c, tokens()["signed_valid"], st_valid, 5);
}

TEST_F(ProtocolAbuseTest, BadValidateFieldsGetResultsThatEchoTheNonce) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    expect_served(c, "", st_malformed, 6);
    expect_served(c, std::string(8193, 'a'), st_too_large, 7);
    const nonce_t n = make_nonce(8, 8);
    ASSERT_TRUE(c.send_all(encode_validate(n, tokens()["signed_valid"], std::string(256, 'p'))));
    wire_frame f;
    ASSERT_EQ(c.read_frame(f), read_status::frame);
    ASSERT_EQ(f.type, t_result);
    auto r = decode_result(f.body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->nonce, n);
    EXPECT_EQ(r->status, st_malformed);
    EXPECT_EQ(r->flags, 0);
    expect_served(c, tokens()["signed_valid"], st_valid, 9);
}

TEST_F(ProtocolAbuseTest, TruncatedFrameThenCloseDoesNotHurtTheAgent) {
    ASSERT_TRUE(start_with_idle(300));
    for (int i = 0; i < 20; ++i) {
        auto c = conn();
        bytes frame = encode_validate(make_nonce(9, static_cast<std::uint64_t>(i)), tokens()["sealed_valid"]);
        frame.resize(frame.size() / static_cast<std::size_t>(2 + i % 5));
        ASSERT_TRUE(c.send_all(frame));
        c.close();
    }
    // Close with a whole frame still unanswered, too.
    {
        auto c = conn();
        ASSERT_TRUE(c.send_all(encode_validate(make_nonce(9, 99), tokens()["signed_valid"])));
    }
    expect_still_serving();
}

TEST_F(ProtocolAbuseTest, FiftyPipelinedRequestsAreAnsweredInOrder) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    const std::vector<std::pair<std::string, std::uint8_t>> kinds{
        {tokens()["signed_valid"], st_valid},
        {tokens()["jws_tamper_signature"], st_bad_signature},
        {tokens()["sealed_valid"], st_valid},
        {"garbage", st_malformed},
        {tokens()["jwe_tamper_tag"], st_bad_signature},
    };
    bytes all;
    for (std::uint64_t i = 0; i < 50; ++i) {
        const auto& [tok, st] = kinds[i % kinds.size()];
        const bytes f = encode_validate(make_nonce(50, i), tok);
        all.insert(all.end(), f.begin(), f.end());
    }
    ASSERT_TRUE(c.send_all(all));  // one write (the kernel may split it; the agent must not care)
    for (std::uint64_t i = 0; i < 50; ++i) {
        wire_frame f;
        ASSERT_EQ(c.read_frame(f), read_status::frame) << "answer " << i;
        ASSERT_EQ(f.type, t_result) << "answer " << i;
        auto r = decode_result(f.body);
        ASSERT_TRUE(r) << "answer " << i;
        EXPECT_EQ(r->nonce, make_nonce(50, i)) << "answer " << i;
        EXPECT_EQ(r->status, kinds[i % kinds.size()].second) << "answer " << i;
    }
}

TEST_F(ProtocolAbuseTest, HalfSentFrameIsClosedAfterTheIdleTimeout) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    const bytes frame = encode_validate(make_nonce(10, 10), tokens()["signed_valid"]);
    ASSERT_TRUE(c.send_all(frame.data(), 10));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(c.wait_closed(20s)) << "the agent kept an idle half frame open";
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
    EXPECT_GE(json_number(admin_status(), "idle_closed"), 1);
    expect_still_serving();
}

TEST_F(ProtocolAbuseTest, BusyConnectionOutlivesTheIdleTimeout) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    const auto t0 = std::chrono::steady_clock::now();
    std::uint64_t i = 0;
    while (std::chrono::steady_clock::now() - t0 < 1200ms) {
        expect_served(c, tokens()["signed_valid"], st_valid, 100 + i++);
        if (HasFailure()) return;
        std::this_thread::sleep_for(50ms);  // pacing: one complete frame every ~50 ms
    }
    EXPECT_GE(i, 4u);
}

TEST_F(ProtocolAbuseTest, SlowClientDoesNotDelayOthers) {
    ASSERT_TRUE(start_with_idle(20000));
    const bytes frame = encode_validate(make_nonce(11, 11), tokens()["signed_valid"]);
    auto slow = conn();
    std::atomic<bool> others_done{false};
    std::atomic<std::size_t> sent_when_done{0};
    std::atomic<std::size_t> sent{0};
    std::atomic<bool> slow_ok{true};
    std::thread dribbler([&] {
        // One byte every 50 ms until the other client is done, then the rest at once.
        while (!others_done.load() && sent.load() < frame.size() - 1) {
            if (!slow.send_all(&frame[sent.load()], 1)) {
                slow_ok = false;
                return;
            }
            sent.fetch_add(1);
            std::this_thread::sleep_for(50ms);  // pacing the slow client, not synchronisation
        }
        const std::size_t s = sent.load();
        if (!slow.send_all(&frame[s], frame.size() - s)) slow_ok = false;
    });
    // Wait until the slow client is mid-frame (a few bytes in), without timing assumptions.
    while (sent.load() < 3 && slow_ok.load()) std::this_thread::sleep_for(5ms);
    {
        auto fast = client();
        ASSERT_TRUE(fast);
        for (int i = 0; i < 20; ++i) {
            lsa_result r{};
            const std::string& tok = tokens()[i % 2 == 0 ? "signed_valid" : "sealed_valid"];
            ASSERT_EQ(lsa_validate(fast.get(), tok.data(), tok.size(), nullptr, nullptr, nullptr, &r), 0);
            EXPECT_EQ(r.status, LSA_STATUS_VALID);
        }
    }
    sent_when_done = sent.load();
    others_done = true;
    dribbler.join();
    ASSERT_TRUE(slow_ok.load());
    EXPECT_LT(sent_when_done.load(), frame.size()) << "the fast client finished only after the slow frame";
    wire_frame f;
    ASSERT_EQ(slow.read_frame(f), read_status::frame);
    ASSERT_EQ(f.type, t_result);
    auto r = decode_result(f.body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->nonce, make_nonce(11, 11));
    EXPECT_EQ(r->status, st_valid);
}

// docs/protocol.md: "the agent closes a connection that hasn't sent a complete frame in that
// time": a peer trickling bytes of one frame must not hold its connection forever.
TEST_F(ProtocolAbuseTest, TricklingPeerIsClosedAfterTheIdleTimeout) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    const bytes frame = encode_validate(make_nonce(12, 12), tokens()["signed_valid"]);
    bool closed = false;
    for (std::size_t i = 0; i + 1 < frame.size() && i < 60 && !closed; ++i) {  // at most ~3 s
        if (!c.send_all(&frame[i], 1)) {
            closed = true;
            break;
        }
        closed = c.wait_closed(50ms);
    }
    EXPECT_TRUE(closed) << "a peer sending one byte every 50 ms kept a half frame open for 3 s "
                           "(idle_timeout_ms = 300)";
}

}  // namespace
}  // namespace la::test

namespace la::test {
namespace {

constexpr std::uint8_t st_unauthorized = 12;

TEST_F(ProtocolAbuseTest, StatusOnTheValidationSocketIsUnauthorized) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    ASSERT_TRUE(c.send_all(encode_frame(1, t_status, {})));
    expect_error(c, st_unauthorized);
    expect_served(c, tokens()["signed_valid"], st_valid, 5);  // the connection stays usable
}

// A peer that pipelines without ever reading fills the agent's send buffer; the batch cannot be
// sent within idle_timeout, so the agent closes the connection and keeps serving others.
TEST_F(ProtocolAbuseTest, PeerThatNeverReadsIsClosedAfterTheIdleTimeout) {
    ASSERT_TRUE(start_with_idle(300));
    auto c = conn();
    bytes burst;
    for (std::uint64_t i = 0; i < 2000; ++i) {
        const bytes f = encode_validate(make_nonce(77, i), tokens()["signed_valid"]);
        burst.insert(burst.end(), f.begin(), f.end());
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (int round = 0; round < 50 && c.send_all(burst); ++round) {
    }
    // send_all fails once the agent has closed; either way the close must come soon.
    EXPECT_TRUE(c.wait_closed(20s)) << "the agent kept a connection that never reads";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
    expect_still_serving();
}

}  // namespace
}  // namespace la::test
