// C client tests against a tiny scripted agent: a thread on a real Unix socket that speaks the
// protocol through net/protocol's encoders, or deliberately breaks it.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "license_client.h"
#include "net/protocol.hpp"

namespace la::net {
namespace {

using bytes = std::vector<std::byte>;

bool write_all(int fd, std::span<const std::byte> b) {
    while (!b.empty()) {
        const ssize_t n = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        b = b.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

// One connection seen from the scripted agent's side.
class peer {
  public:
    explicit peer(int fd) : fd_(fd) {}

    // Reads one whole frame; nullopt at end of stream or on a framing error.
    std::optional<frame_view> read_frame() {
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(consumed_));
        consumed_ = 0;
        for (;;) {
            frame_view f{};
            const auto st = peek_frame(buf_, f);
            if (st == frame_state::ready) {
                consumed_ = f.total_size;
                return f;
            }
            if (st != frame_state::need_more) return std::nullopt;
            std::array<std::byte, 4096> chunk{};
            const ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return std::nullopt;
            buf_.insert(buf_.end(), chunk.begin(), chunk.begin() + n);
        }
    }
    bool send(std::span<const std::byte> b) { return write_all(fd_, b); }
    // Encodes one frame with `enc` and sends it.
    template <class Encoder>
    bool send_frame(Encoder enc) {
        std::array<std::byte, max_wire_frame> out{};
        const std::size_t n = enc(std::span(out));
        return n > 0 && send(std::span(out).first(n));
    }
    // Answers a HELLO with HELLO_OK (what every well-behaved agent does first).
    bool handshake() {
        auto f = read_frame();
        if (!f || f->type != static_cast<std::uint8_t>(msg_type::hello)) return false;
        return send_frame([](auto o) { return encode_hello_ok(o); });
    }
    // Blocks until the client closes the connection.
    void drain() {
        std::array<std::byte, 256> chunk{};
        while (::recv(fd_, chunk.data(), chunk.size(), 0) > 0) {
        }
    }

  private:
    int fd_;
    bytes buf_;
    std::size_t consumed_ = 0;
};

// A listening Unix socket in a fresh temp dir; one thread accepts one client and runs `script`.
class scripted_agent {
  public:
    explicit scripted_agent(std::function<void(peer&)> script) {
        char tmpl[] = "/tmp/la-net-test-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        path_ = dir_ + "/agent.sock";
        listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
        const bool ok =
            ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 &&
            ::listen(listen_fd_, 4) == 0;
        EXPECT_TRUE(ok) << std::strerror(errno);
        thread_ = std::thread([this, script = std::move(script)] {
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) return;  // the test never connected (shutdown wakes accept)
            peer p(fd);
            script(p);
            ::close(fd);
        });
    }
    ~scripted_agent() {
        ::shutdown(listen_fd_, SHUT_RDWR);
        thread_.join();
        ::close(listen_fd_);
        ::unlink(path_.c_str());
        ::rmdir(dir_.c_str());
    }
    scripted_agent(const scripted_agent&) = delete;
    scripted_agent& operator=(const scripted_agent&) = delete;

    const std::string& path() const { return path_; }

    // Connects a client with the given timeout (and uid check, -1 = none).
    int connect(lsa_client** out, int timeout_ms = 2000, long uid = -1) const {
        lsa_options o{};
        o.socket_path = path_.c_str();
        o.timeout_ms = timeout_ms;
        o.expected_agent_uid = uid;
        return lsa_connect(&o, out);
    }

  private:
    std::string dir_, path_;
    int listen_fd_ = -1;
    std::thread thread_;
};

struct client_closer {
    void operator()(lsa_client* c) const noexcept { lsa_close(c); }
};
using client_ptr = std::unique_ptr<lsa_client, client_closer>;

client_ptr must_connect(const scripted_agent& agent, int timeout_ms = 2000) {
    lsa_client* c = nullptr;
    const int rc = agent.connect(&c, timeout_ms);
    EXPECT_EQ(rc, 0) << lsa_strerror(rc);
    return client_ptr(c);
}

// A RESULT answering `req` (a VALIDATE) with a sample license.
std::size_t sample_result(std::span<std::byte> out, std::span<const std::byte, nonce_size> nonce,
                          core::status st) {
    static const std::array<std::string_view, 2> features{"reports", "loyalty"};
    static const std::array<core::meta_entry, 1> meta{{{"seats", "5"}}};
    core::validation v{};
    v.st = st;
    v.has_claims = true;
    v.lic.license_id = "LIC-1";
    v.lic.subject = "customer-42";
    v.lic.product = "pos";
    v.lic.type = core::lic_type::subscription;
    v.lic.kind = core::token_kind::sealed_jwe;
    v.lic.has_exp = true;
    v.lic.expires_at = 1798761600;
    v.lic.issued_at = 1700000000;
    v.lic.features = features;
    v.lic.meta = meta;
    return encode_result(out, nonce, v);
}

// Reads one VALIDATE and answers it with `answer(nonce, out)`.
template <class Answer>
void answer_validate(peer& p, Answer answer) {
    auto f = p.read_frame();
    if (!f) return;
    auto body = decode_validate(f->body);
    if (!body) return;
    std::array<std::byte, max_wire_frame> out{};
    const std::size_t n = answer(body->nonce, std::span(out));
    p.send(std::span(out).first(n));
}

TEST(ClientTest, ValidateFillsEveryFieldFromTheResult) {
    std::string seen_token, seen_product, seen_feature, seen_instance;
    scripted_agent agent([&](peer& p) {
        if (!p.handshake()) return;
        auto f = p.read_frame();
        if (!f) return;
        auto body = decode_validate(f->body);
        if (!body) return;
        seen_token = body->token;
        seen_product = body->product;
        seen_feature = body->feature;
        seen_instance = body->instance;
        p.send_frame([&](auto o) { return sample_result(o, body->nonce, core::status::valid); });
        p.drain();
    });
    auto c = must_connect(agent);
    ASSERT_TRUE(c);
    lsa_result r{};
    const std::string token = "header.payload.sig";
    ASSERT_EQ(lsa_validate(c.get(), token.data(), token.size(), "pos", "reports", nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_VALID);
    EXPECT_STREQ(r.status_name, "valid");
    EXPECT_EQ(r.lic_type, LSA_LIC_SUBSCRIPTION);
    EXPECT_STREQ(r.lic_type_name, "subscription");
    EXPECT_EQ(r.kind, LSA_KIND_SEALED);
    EXPECT_EQ(r.has_claims, 1);
    EXPECT_EQ(r.has_expiry, 1);
    EXPECT_EQ(r.expires_at, 1798761600);
    EXPECT_EQ(r.issued_at, 1700000000);
    EXPECT_STREQ(r.license_id, "LIC-1");
    EXPECT_STREQ(r.product, "pos");
    EXPECT_STREQ(r.subject, "customer-42");
    ASSERT_EQ(r.feature_count, 2U);
    EXPECT_STREQ(r.features[0], "reports");
    EXPECT_STREQ(r.features[1], "loyalty");
    ASSERT_EQ(r.meta_count, 1U);
    EXPECT_STREQ(r.meta[0].key, "seats");
    EXPECT_STREQ(r.meta[0].value, "5");
    EXPECT_EQ(r.error_message, nullptr);
    c.reset();  // lets the agent's drain() return before the thread is joined
    EXPECT_EQ(seen_token, token);
    EXPECT_EQ(seen_product, "pos");
    EXPECT_EQ(seen_feature, "reports");
    EXPECT_EQ(seen_instance, "");
}

TEST(ClientTest, SeveralValidationsShareOneConnection) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        for (auto st : {core::status::expired, core::status::valid}) {
            answer_validate(p,
                            [st](auto nonce, auto out) { return sample_result(out, nonce, st); });
        }
        p.drain();
    });
    auto c = must_connect(agent);
    lsa_result r{};
    ASSERT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), 0);
    EXPECT_STREQ(r.status_name, "expired");
    ASSERT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_VALID);
}

TEST(ClientTest, NonceEchoMismatchIsAProtocolError) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        answer_validate(p, [](auto nonce, auto out) {
            std::array<std::byte, nonce_size> wrong{};
            std::copy(nonce.begin(), nonce.end(), wrong.begin());
            wrong[7] ^= std::byte{1};
            return sample_result(out, wrong, core::status::valid);
        });
        p.drain();
    });
    auto c = must_connect(agent);
    lsa_result r{};
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -EPROTO);
    EXPECT_NE(r.status, LSA_STATUS_VALID);  // fails closed even if the caller ignores rc
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -ENOTCONN);
}

TEST(ClientTest, ErrorFrameBecomesAStatusWithItsMessage) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        answer_validate(p, [](auto, auto out) {
            return encode_error(out, core::status::unauthorized, "uid 1234 is not allowed");
        });
        p.drain();
    });
    auto c = must_connect(agent);
    lsa_result r{};
    ASSERT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_UNAUTHORIZED);
    EXPECT_STREQ(r.status_name, "unauthorized");
    ASSERT_NE(r.error_message, nullptr);
    EXPECT_STREQ(r.error_message, "uid 1234 is not allowed");
    EXPECT_EQ(r.has_claims, 0);
    EXPECT_STREQ(lsa_last_error(c.get()), "uid 1234 is not allowed");
}

TEST(ClientTest, SilentAgentTimesOut) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        p.drain();  // reads the VALIDATE, never answers
    });
    auto c = must_connect(agent, 200);
    lsa_result r{};
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -ETIMEDOUT);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -ENOTCONN);
}

TEST(ClientTest, SilentAgentTimesOutTheHandshake) {
    scripted_agent agent([](peer& p) { p.drain(); });
    lsa_client* c = nullptr;
    EXPECT_EQ(agent.connect(&c, 150), -ETIMEDOUT);
    EXPECT_EQ(c, nullptr);
}

TEST(ClientTest, TruncatedResultIsAProtocolError) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        answer_validate(p, [](auto nonce, auto out) {
            return sample_result(out, nonce, core::status::valid) / 2;  // then the agent closes
        });
    });
    auto c = must_connect(agent);
    lsa_result r{};
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -EPROTO);
}

TEST(ClientTest, TruncatedLengthPrefixIsAProtocolError) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        answer_validate(p, [](auto, auto out) {
            out[0] = std::byte{0};
            out[1] = std::byte{0};
            return std::size_t{2};
        });
    });
    auto c = must_connect(agent);
    lsa_result r{};
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -EPROTO);
}

TEST(ClientTest, AgentClosingWithoutAnswerIsAReset) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        p.read_frame();
    });
    auto c = must_connect(agent);
    lsa_result r{};
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -ECONNRESET);
}

TEST(ClientTest, ResultWithTrailingBytesIsAProtocolError) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        answer_validate(p, [](auto nonce, auto out) {
            const std::size_t n = sample_result(out, nonce, core::status::valid);
            out[3] = std::byte{static_cast<unsigned char>(std::to_integer<unsigned>(out[3]) + 1)};
            out[n] = std::byte{0};
            return n + 1;
        });
        p.drain();
    });
    auto c = must_connect(agent);
    lsa_result r{};
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -EPROTO);
}

TEST(ClientTest, TooManyFeaturesIsReportedNotTruncated) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        answer_validate(p, [](auto nonce, auto out) {
            std::array<std::string_view, LSA_MAX_FEATURES + 1> features{};
            features.fill("f");
            core::validation v{};
            v.st = core::status::valid;
            v.has_claims = true;
            v.lic.features = features;
            return encode_result(out, nonce, v);
        });
        answer_validate(
            p, [](auto nonce, auto out) { return sample_result(out, nonce, core::status::valid); });
        p.drain();
    });
    auto c = must_connect(agent);
    lsa_result r{};
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), -EMSGSIZE);
    EXPECT_NE(r.status, LSA_STATUS_VALID);
    // The frame was consumed whole, so the connection still works.
    EXPECT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.feature_count, 2U);
}

TEST(ClientTest, UnknownStatusCodesAreNamedUnknown) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        answer_validate(p, [](auto nonce, auto out) {
            return sample_result(out, nonce, static_cast<core::status>(40));
        });
        p.drain();
    });
    auto c = must_connect(agent);
    lsa_result r{};
    ASSERT_EQ(lsa_validate(c.get(), "t", 1, nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.status, 40);
    EXPECT_STREQ(r.status_name, "unknown");
}

TEST(ClientTest, ExpectedAgentUidIsChecked) {
    {
        scripted_agent agent([](peer& p) { p.drain(); });
        lsa_client* c = nullptr;
        EXPECT_EQ(agent.connect(&c, 2000, static_cast<long>(::getuid()) + 1), -EPERM);
        EXPECT_EQ(c, nullptr);
    }
    scripted_agent agent([](peer& p) {
        if (p.handshake()) p.drain();
    });
    lsa_client* c = nullptr;
    EXPECT_EQ(agent.connect(&c, 2000, static_cast<long>(::getuid())), 0);
    lsa_close(c);
}

TEST(ClientTest, AgentRefusingRightAfterAcceptGivesAccessDenied) {
    scripted_agent agent([](peer& p) {
        p.send_frame([](auto o) { return encode_error(o, core::status::unauthorized, "denied"); });
    });
    lsa_client* c = nullptr;
    EXPECT_EQ(agent.connect(&c), -EACCES);
}

TEST(ClientTest, HelloRefusedForVersionIsProtoNoSupport) {
    scripted_agent agent([](peer& p) {
        p.read_frame();
        p.send_frame(
            [](auto o) { return encode_error(o, core::status::unsupported_version, "v1 only"); });
        p.drain();
    });
    lsa_client* c = nullptr;
    EXPECT_EQ(agent.connect(&c), -EPROTONOSUPPORT);
}

TEST(ClientTest, MissingSocketIsNoEntry) {
    lsa_options o{};
    o.socket_path = "/tmp/la-net-test-does-not-exist/agent.sock";
    lsa_client* c = nullptr;
    EXPECT_EQ(lsa_connect(&o, &c), -ENOENT);
    o.socket_path =
        "/tmp/"
        "this-path-is-far-too-long-for-a-unix-socket-address-"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    EXPECT_EQ(lsa_connect(&o, &c), -ENAMETOOLONG);
    EXPECT_EQ(lsa_connect(&o, nullptr), -EINVAL);
}

TEST(ClientTest, RequestsThatCannotBeFramedAreRefusedLocally) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        answer_validate(p, [](auto nonce, auto out) {
            return sample_result(out, nonce, core::status::too_large);
        });
        p.drain();
    });
    auto c = must_connect(agent);
    lsa_result r{};
    const std::string huge(max_frame, 'x');
    EXPECT_EQ(lsa_validate(c.get(), huge.data(), huge.size(), nullptr, nullptr, nullptr, &r),
              -EMSGSIZE);
    EXPECT_EQ(lsa_validate(c.get(), nullptr, 3, nullptr, nullptr, nullptr, &r), -EINVAL);
    // Over MAX_TOKEN but framable: the agent decides (too_large).
    const std::string big(LSA_MAX_TOKEN + 1, 'x');
    ASSERT_EQ(lsa_validate(c.get(), big.data(), big.size(), nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_TOO_LARGE);
}

TEST(ClientTest, StatusReturnsTheAgentsJson) {
    const std::string json = R"({"version":"0.1.0","uptime_seconds":12})";
    scripted_agent agent([&](peer& p) {
        if (!p.handshake()) return;
        for (int i = 0; i < 2; ++i) {
            auto f = p.read_frame();
            if (!f || f->type != static_cast<std::uint8_t>(msg_type::status)) return;
            p.send_frame([&](auto o) { return encode_status_ok(o, json); });
        }
        p.drain();
    });
    auto c = must_connect(agent);
    std::array<char, 256> out{};
    ASSERT_EQ(lsa_status(c.get(), out.data(), out.size()), static_cast<int>(json.size()));
    EXPECT_EQ(std::string(out.data()), json);
    EXPECT_EQ(lsa_status(c.get(), out.data(), json.size()), -ERANGE);  // no room for the NUL
}

TEST(ClientTest, StatusRefusedByTheAgentIsAccessDenied) {
    scripted_agent agent([](peer& p) {
        if (!p.handshake()) return;
        p.read_frame();
        p.send_frame(
            [](auto o) { return encode_error(o, core::status::unauthorized, "admins only"); });
        p.drain();
    });
    auto c = must_connect(agent);
    std::array<char, 64> out{};
    EXPECT_EQ(lsa_status(c.get(), out.data(), out.size()), -EACCES);
    EXPECT_STREQ(lsa_last_error(c.get()), "admins only");
}

TEST(ClientTest, StatusStringsMatchTheProtocol) {
    const char* expected[] = {"valid",          "expired",
                              "not_yet_valid",  "bad_signature",
                              "unknown_key",    "unsupported_alg",
                              "malformed",      "too_large",
                              "wrong_issuer",   "wrong_product",
                              "wrong_instance", "feature_not_granted",
                              "unauthorized",   "unsupported_version",
                              "internal_error", "secret_expired",
                              "secret_invalidated"};
    for (int i = 0; i < 17; ++i) EXPECT_STREQ(lsa_status_string(i), expected[i]) << i;
    EXPECT_STREQ(lsa_status_string(-1), "unknown");
    EXPECT_STREQ(lsa_status_string(17), "unknown");
    EXPECT_EQ(LSA_STATUS_INTERNAL_ERROR, static_cast<int>(core::status::internal_error));
    EXPECT_EQ(LSA_STATUS_SECRET_EXPIRED, static_cast<int>(core::status::secret_expired));
    EXPECT_EQ(LSA_STATUS_SECRET_INVALIDATED, static_cast<int>(core::status::secret_invalidated));
    EXPECT_STREQ(lsa_lic_type_string(LSA_LIC_DEMO), "demo");
    EXPECT_STREQ(lsa_kind_string(LSA_KIND_SIGNED), "signed");
    EXPECT_STRNE(lsa_strerror(-ETIMEDOUT), lsa_strerror(-EPROTO));
}

}  // namespace
}  // namespace la::net
