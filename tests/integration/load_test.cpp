// Many connections at once, and a graceful stop in the middle of pipelined load.
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/integration_env.hpp"
#include "tests/support/raw_wire.hpp"

namespace la::test {
namespace {

constexpr std::uint8_t st_valid = 0, st_bad_signature = 3;

// Raises the soft open-file limit to at least `wanted` (the agent inherits it); false if the
// hard limit is lower.
bool raise_nofile(rlim_t wanted) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
    if (lim.rlim_cur >= wanted) return true;
    if (lim.rlim_max < wanted) return false;
    lim.rlim_cur = wanted;
    return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

using LoadTest = agent_test;

TEST_F(LoadTest, ThousandConcurrentConnectionsAreAllAnswered) {
    constexpr std::size_t n = 1000;
    ASSERT_TRUE(raise_nofile(n + 256)) << "RLIMIT_NOFILE hard limit too low";
    ASSERT_TRUE(start(make_config()));
    std::vector<raw_conn> conns;
    conns.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        conns.emplace_back(cfg_->socket);
        ASSERT_TRUE(conns.back().ok()) << "connection " << i << ": errno " << conns.back().connect_errno();
    }
    const std::string& tok = tokens()["signed_valid"];
    for (std::size_t i = 0; i < n; ++i) {
        ASSERT_TRUE(conns[i].send_all(encode_validate(make_nonce(1000, i), tok))) << "send on " << i;
    }
    std::size_t valid = 0;
    for (std::size_t i = 0; i < n; ++i) {
        wire_frame f;
        ASSERT_EQ(conns[i].read_frame(f, 60s), read_status::frame) << "connection " << i;
        ASSERT_EQ(f.type, t_result) << "connection " << i;
        auto r = decode_result(f.body);
        ASSERT_TRUE(r) << "connection " << i;
        EXPECT_EQ(r->nonce, make_nonce(1000, i));
        if (r->status == st_valid) ++valid;
    }
    EXPECT_EQ(valid, n);
    // Every connection was answered, so all of them are accepted and still open.
    const std::string during = admin_status();
    EXPECT_GE(json_number(during, "connections"), static_cast<long long>(n)) << during;
    EXPECT_EQ(json_number(during, "busy_refusals"), 0) << during;
}

// What one load thread saw.
struct load_report {
    std::uint64_t sent = 0, answered = 0;
    std::string error;  // the first problem, if any
};

// Pipelines windows of requests on one connection until the agent closes it; checks that every
// answer is a well-formed RESULT for the next request sent, in order, with the right status.
void run_load(const std::filesystem::path& socket, std::uint64_t id, const std::string& good,
              const std::string& bad, std::atomic<std::uint64_t>& total_answered, load_report& rep) {
    raw_conn c(socket);
    if (!c.ok()) {
        rep.error = "connect failed";
        return;
    }
    constexpr std::uint64_t window = 16;
    auto expected_status = [](std::uint64_t seq) { return seq % 3 == 2 ? st_bad_signature : st_valid; };
    for (;;) {
        bytes batch;
        for (std::uint64_t k = 0; k < window; ++k) {
            const std::uint64_t seq = rep.sent + k;
            const bytes f = encode_validate(make_nonce(id, seq), expected_status(seq) == st_valid ? good : bad);
            batch.insert(batch.end(), f.begin(), f.end());
        }
        // After a failed send only part of the batch reached the agent: the nonce check below
        // still pins every answer to one request of it, and the close ends the loop.
        const bool sent_ok = c.send_all(batch);
        rep.sent += window;
        while (rep.answered < rep.sent) {
            wire_frame f;
            const read_status s = c.read_frame(f, 20s);
            if (s == read_status::closed) return;
            if (s != read_status::frame) {
                rep.error = s == read_status::timeout ? "timed out waiting for an answer" : "read error";
                return;
            }
            auto r = f.type == t_result ? decode_result(f.body) : std::nullopt;
            if (!r) {
                rep.error = "answer " + std::to_string(rep.answered) + " is not a well-formed RESULT (type " +
                            std::to_string(f.type) + ")";
                return;
            }
            const std::uint64_t seq = rep.answered;
            if (r->nonce != make_nonce(id, seq)) {
                rep.error = "answer " + std::to_string(seq) + " carries another request's nonce";
                return;
            }
            if (r->status != expected_status(seq)) {
                rep.error = "answer " + std::to_string(seq) + " has status " + std::to_string(r->status);
                return;
            }
            ++rep.answered;
            total_answered.fetch_add(1);
        }
        if (!sent_ok) {
            if (!c.wait_closed(20s)) rep.error = "a send failed but the agent did not close the connection";
            return;
        }
    }
}

TEST_F(LoadTest, SigtermDuringLoadLosesNoAnsweredRequest) {
    ASSERT_TRUE(start(make_config()));
    constexpr std::uint64_t threads = 4;
    std::atomic<std::uint64_t> answered{0};
    std::vector<load_report> reports(threads);
    std::vector<std::thread> workers;
    const std::string good = tokens()["signed_valid"];
    const std::string bad = tokens()["jws_tamper_signature"];
    for (std::uint64_t t = 0; t < threads; ++t) {
        workers.emplace_back(run_load, cfg_->socket, t + 1, std::cref(good), std::cref(bad), std::ref(answered),
                             std::ref(reports[t]));
    }
    // Let the load get going (a count of answers, not a time), then stop the agent mid-stream.
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (answered.load() < 2000 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(1ms);
    agent_->signal(SIGTERM);
    const auto exit = agent_->wait_exit(20s);
    for (auto& w : workers) w.join();
    ASSERT_TRUE(exit) << "the agent did not exit within 20 s of SIGTERM";
    EXPECT_TRUE(exit->exited) << "killed by signal " << exit->signal;
    EXPECT_EQ(exit->code, 0);
    std::uint64_t total = 0;
    for (std::uint64_t t = 0; t < threads; ++t) {
        EXPECT_EQ(reports[t].error, "") << "thread " << t;
        EXPECT_LE(reports[t].answered, reports[t].sent);
        total += reports[t].answered;
    }
    EXPECT_GE(total, 2000u);
    EXPECT_NE(agent_->log().find("stopped"), std::string::npos);
}

}  // namespace
}  // namespace la::test
