// Secret lifecycle: ACTIVE → GRACE (past valid_until) → EXPIRED (past grace_until, swept), and
// INVALIDATED; sealed tokens follow their secret's state.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/engine.hpp"
#include "core/keys.hpp"
#include "tests/unit/core/engine_fixture.hpp"

namespace la::core {
namespace {

using test::now;

// The minted secrets.json with `extra` JSON members added to the JWK of kid "1".
std::string secrets_with(const std::string& extra) {
    std::ifstream in(test::tokens().dir.path() / "secrets.json");
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    const std::string kid = "\"kid\": \"1\"";
    const auto at = text.find(kid);
    EXPECT_NE(at, std::string::npos);
    if (at != std::string::npos) text.insert(at + kid.size(), "," + extra);
    return text;
}

secret_set parse(std::string text) {
    auto set = parse_secrets(std::span(text.data(), text.size()), "secrets.json");
    EXPECT_TRUE(set) << set.error();
    return set ? std::move(*set) : secret_set{};
}

engine engine_with(const io::clock& clk, const std::string& extra) {
    engine_options o;
    o.issuer = test::issuer;
    o.leeway_seconds = 60;
    return engine(std::move(o), test::signing_keys(test::tokens().dir.path()), parse(secrets_with(extra)),
                  clk);
}

std::string dates(std::int64_t valid_until, std::int64_t grace_until) {
    return "\"valid_until\":" + std::to_string(valid_until) + ",\"grace_until\":" +
           std::to_string(grace_until);
}

TEST(SecretLifecycleTest, GraceSecretStillOpensSealedTokens) {
    io::manual_clock clock(now);
    engine e = engine_with(clock, dates(now - 10, now + 1000));
    EXPECT_EQ(secret_set::state_at(*parse(secrets_with(dates(now - 10, now + 1000))).meta(1), now),
              secret_state::grace);
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::valid);
}

TEST(SecretLifecycleTest, SecretPastGraceFailsClosedBeforeAndAfterTheSweep) {
    io::manual_clock clock(now);
    engine e = engine_with(clock, dates(now - 1000, now - 100));
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::secret_expired);
    EXPECT_EQ(e.validate({test::tokens()["e_valid_v2"], {}, {}, {}}).st, status::valid)
        << "other versions are not affected";
    EXPECT_EQ(e.sweep_secrets(), 1u);
    EXPECT_EQ(e.sweep_secrets(), 0u);
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::secret_expired);
}

TEST(SecretLifecycleTest, GraceEndHonoursTheLeeway) {
    io::manual_clock clock(now);
    engine e = engine_with(clock, dates(now - 1000, now - 30));  // 30 s past, leeway 60 s
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::valid);
    EXPECT_EQ(e.sweep_secrets(), 1u) << "the sweep zeroizes by the real date";
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::secret_expired);
}

TEST(SecretLifecycleTest, SweepFollowsTheClock) {
    io::manual_clock clock(now);
    engine e = engine_with(clock, dates(now + 100, now + 200));
    EXPECT_EQ(e.sweep_secrets(), 0u);
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::valid);
    clock.advance(150);  // GRACE
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::valid);
    EXPECT_EQ(e.sweep_secrets(), 0u);
    clock.advance(1000);  // past grace_until + leeway
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::secret_expired);
    EXPECT_EQ(e.sweep_secrets(), 1u);
}

TEST(SecretLifecycleTest, InvalidatedSecretRefusesItsTokens) {
    io::manual_clock clock(now);
    engine e = engine_with(clock, "\"state\":\"invalidated\"");
    EXPECT_EQ(e.validate({test::tokens()["e_valid"], {}, {}, {}}).st, status::secret_invalidated);
    EXPECT_EQ(to_string(status::secret_invalidated), "secret_invalidated");
    EXPECT_EQ(to_string(status::secret_expired), "secret_expired");
}

TEST(SecretLifecycleTest, BadLifecycleMembersAreRefusedWithTheirName) {
    for (const auto& [extra, word] : std::vector<std::pair<std::string, std::string>>{
             {"\"state\":\"frozen\"", "state"},
             {"\"grace_until\":\"soon\"", "grace_until"},
             {dates(now + 100, now), "grace_until is before valid_until"}}) {
        std::string text = secrets_with(extra);
        auto set = parse_secrets(std::span(text.data(), text.size()), "secrets.json");
        ASSERT_FALSE(set) << extra;
        EXPECT_NE(set.error().find(word), std::string::npos) << set.error();
    }
}

}  // namespace
}  // namespace la::core
