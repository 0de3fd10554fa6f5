// Tests of the CLI's text helpers: config lookup, JSON escaping, time and status formatting.
#include "cli/cli_support.hpp"
#include "core/json.hpp"

#include <gtest/gtest.h>

namespace la::cli {
namespace {

TEST(CliSupportTest, FindsKeysUnderTheirTableOrDotted) {
    const std::string_view toml = R"(# agent config
agent_id = "a-1"
socket = "/wrong/root.sock"

[ipc]
socket = "/run/la/agent.sock"   # main socket
admin_socket = '/run/la/admin#1.sock'

[server]
socket = "/wrong/server.sock"
)";
    EXPECT_EQ(toml_lookup_string(toml, "ipc", "socket"), "/run/la/agent.sock");
    EXPECT_EQ(toml_lookup_string(toml, "ipc", "admin_socket"), "/run/la/admin#1.sock");
    EXPECT_EQ(toml_lookup_string(toml, "ipc", "missing"), std::nullopt);
    EXPECT_EQ(toml_lookup_string("ipc.socket = \"/x\\\\y\\\".sock\"\n", "ipc", "socket"),
              "/x\\y\".sock");
    EXPECT_EQ(toml_lookup_string("[ipc]\nsocket = 5\n", "ipc", "socket"), std::nullopt);
    EXPECT_EQ(toml_lookup_string("[[ipc]]\nsocket = \"/a\"\n", "ipc", "socket"), std::nullopt);
}

TEST(CliSupportTest, JsonQuoteEscapesQuotesBackslashesAndControls) {
    EXPECT_EQ(core::json::quote("plain"), "\"plain\"");
    EXPECT_EQ(core::json::quote("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    EXPECT_EQ(core::json::quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(CliSupportTest, FormatsUtcAsIso8601) {
    EXPECT_EQ(format_utc(1798761600), "2027-01-01T00:00:00Z");
    EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00Z");
}

TEST(CliSupportTest, StatusJsonBecomesIndentedLines) {
    const auto text = format_status_json(
        R"({"version":"0.1.0","uptime_seconds":3661,"by_status":{"valid":3,"expired":1},"x":[1,2]})");
    ASSERT_TRUE(text.has_value());
    EXPECT_NE(text->find("version                  0.1.0\n"), std::string::npos) << *text;
    EXPECT_NE(text->find("uptime_seconds           3661 (0d 01:01:01)\n"), std::string::npos)
        << *text;
    EXPECT_NE(text->find("by_status:\n  valid                  3\n"), std::string::npos) << *text;
    EXPECT_NE(text->find("x                        1, 2\n"), std::string::npos) << *text;
    EXPECT_FALSE(format_status_json("[1]").has_value());
    EXPECT_FALSE(format_status_json(R"({"a":1} trailing)").has_value());
    EXPECT_FALSE(format_status_json(R"({"a":)").has_value());
}

TEST(CliSupportTest, TrimRightDropsTrailingNewlines) {
    EXPECT_EQ(trim_right("tok \r\n\t"), "tok");
    EXPECT_EQ(trim_right(" \n"), "");
}

TEST(CliSupportTest, StatusWithCustodyShowsNestedObjectsAndSecretLists) {
    const auto text = format_status_json(
        R"({"secrets":2,"custody":{"backend":"tpm","tpm":{"available":false,"detail":"no answer"},)"
        R"("secrets":[{"version":1,"state":"grace"},{"version":2,"state":"active"}]}})");
    ASSERT_TRUE(text.has_value());
    EXPECT_NE(text->find("custody:\n"), std::string::npos) << *text;
    EXPECT_NE(text->find("    available"), std::string::npos) << *text;
    EXPECT_NE(text->find("version=1 state=grace, version=2 state=active"), std::string::npos) << *text;
    EXPECT_FALSE(format_status_json(R"({"s":[{"a":1})").has_value());
}

}  // namespace
}  // namespace la::cli
