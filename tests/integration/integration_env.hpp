// Shared pieces of the integration tests: one key set and token set minted per process, and a
// fixture that runs the real agent in a fresh directory and shows its log when a test fails.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "license_client.h"
#include "tests/support/agent_process.hpp"

#ifndef LA_AGENT_BINARY
#error "LA_AGENT_BINARY must name the license-agent binary (tests/integration/CMakeLists.txt)"
#endif
#ifndef LA_CLI_BINARY
#error "LA_CLI_BINARY must name the license-agent-cli binary (tests/integration/CMakeLists.txt)"
#endif

namespace la::test {

inline constexpr const char* issuer = "https://licenses.example.com";
inline constexpr const char* product = "pos-suite";
inline constexpr const char* instance = "pos-fp-001";  // the agent's configured instance

/// Keys (signing kid "k1", secret version "1") and every token the tests use, minted once.
struct token_set {
    temp_dir dir;
    std::filesystem::path keys;  ///< dir/keys
    std::int64_t now = 0;        ///< the time the claims were built around
    std::map<std::string, std::string> tokens;
    std::string error;  ///< non-empty when minting failed

    /// The token called `name` (an empty string if it was not minted: the test then fails).
    const std::string& operator[](const std::string& name) const;
};

/// The process-wide token set (minted on first use by one mint.py batch run).
const token_set& tokens();

/// The claims JSON object of the standard valid license, with `extra` members (raw JSON text,
/// e.g. "\"instance\":\"x\"") appended and the members named in `drop` left out.
std::string license_claims(std::int64_t now, const std::string& jti, const std::string& extra = "",
                           const std::string& drop = "");

/// Closes an lsa_client.
struct lsa_closer {
    void operator()(lsa_client* c) const noexcept { lsa_close(c); }
};
using lsa_ptr = std::unique_ptr<lsa_client, lsa_closer>;

/// Connects the C client to `socket`; on failure returns null and the error in `rc`.
lsa_ptr lsa_open(const std::filesystem::path& socket, int& rc, long expected_uid = -1, int timeout_ms = 10000);

/// Runs the agent in a fresh directory per test.
class agent_test : public ::testing::Test {
protected:
    /// A config pointing into this test's directory and at the shared keys.
    agent_config make_config() const { return agent_config(dir_.path(), tokens().keys); }
    /// Writes `cfg`, starts the agent and waits until both sockets accept; false (after a
    /// failure is recorded) if it does not come up.
    bool start(const agent_config& cfg);
    /// Connects the C client to the main socket (records a failure when it cannot).
    lsa_ptr client(long expected_uid = -1);
    /// The agent's STATUS JSON read through the admin socket ("" on failure).
    std::string admin_status();
    /// Stops the agent (if running) and expects a clean exit 0; prints the log on failure.
    void TearDown() override;

    temp_dir dir_;
    std::optional<agent_config> cfg_;
    std::unique_ptr<agent_process> agent_;
};

/// The integer value of "key" in a flat JSON object (first occurrence), or -1.
long long json_number(const std::string& json, const std::string& key);

}  // namespace la::test
