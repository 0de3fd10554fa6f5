// The agent's life cycle: SIGHUP key reload, and refusing to start on a bad setup.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <thread>

#include "tests/integration/integration_env.hpp"
#include "tests/support/raw_wire.hpp"

namespace la::test {
namespace {

// Replaces `dst` with the contents of `src` atomically (write a temp file, then rename).
void replace_file(const std::filesystem::path& src, const std::filesystem::path& dst) {
    const auto tmp = dst.string() + ".new";
    write_file(tmp, read_file(src), 0600);
    std::filesystem::rename(tmp, dst);
}

class LifecycleTest : public agent_test {
protected:
    // A private copy of the shared keys, so a test may rewrite or chmod them.
    std::filesystem::path copy_keys() {
        const auto keys = dir_ / "keys";
        std::filesystem::create_directory(keys);
        for (const char* f : {"signing-keys.json", "signing-private.json", "secrets.json"})
            write_file(keys / f, read_file(tokens().keys / f), 0600);
        return keys;
    }

    // Runs a second agent process to completion (it is expected to refuse to start).
    command_result run_agent(const std::filesystem::path& config) {
        return run_command({LA_AGENT_BINARY, "--config", config.string()}, "", 30s);
    }

    int status_of(const std::string& token) {
        auto c = client();
        if (!c) return -1;
        lsa_result r{};
        const int rc = lsa_validate(c.get(), token.data(), token.size(), nullptr, nullptr, nullptr, &r);
        return rc == 0 ? r.status : rc;
    }
};

TEST_F(LifecycleTest, SighupReloadsTheKeySet) {
    const auto keys = copy_keys();
    agent_config cfg(dir_.path(), keys);
    ASSERT_TRUE(start(cfg));

    // A second, unrelated key set and tokens made with it.
    const auto new_keys = dir_ / "new-keys";
    std::string why;
    ASSERT_TRUE(mint_keys(new_keys, "k2", "2", why)) << why;
    const std::string claims = license_claims(unix_now(), "LIC-NEW");
    auto minted = mint_batch(new_keys,
                             "[{\"name\":\"signed\",\"cmd\":\"sign\",\"kid\":\"k2\",\"claims\":" + claims +
                                 "},{\"name\":\"sealed\",\"cmd\":\"seal\",\"kid\":\"2\",\"claims\":" + claims + "}]",
                             why);
    ASSERT_EQ(minted.size(), 2u) << why;

    EXPECT_EQ(status_of(tokens()["signed_valid"]), LSA_STATUS_VALID);  // now cached as valid, too
    EXPECT_EQ(status_of(tokens()["sealed_valid"]), LSA_STATUS_VALID);
    EXPECT_EQ(status_of(minted["signed"]), LSA_STATUS_UNKNOWN_KEY);
    EXPECT_EQ(status_of(minted["sealed"]), LSA_STATUS_UNKNOWN_KEY);

    replace_file(new_keys / "signing-keys.json", keys / "signing-keys.json");
    replace_file(new_keys / "secrets.json", keys / "secrets.json");
    agent_->signal(SIGHUP);

    // The reload is asynchronous: retry until the new key works (or give up).
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    int st = -1;
    while ((st = status_of(minted["signed"])) != LSA_STATUS_VALID && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    ASSERT_EQ(st, LSA_STATUS_VALID) << "the new signing key was not picked up";
    EXPECT_EQ(status_of(minted["sealed"]), LSA_STATUS_VALID);
    EXPECT_EQ(status_of(tokens()["signed_valid"]), LSA_STATUS_UNKNOWN_KEY);
    EXPECT_EQ(status_of(tokens()["sealed_valid"]), LSA_STATUS_UNKNOWN_KEY);
    EXPECT_EQ(json_number(admin_status(), "signing_keys"), 1);
}

TEST_F(LifecycleTest, FailedReloadKeepsTheKeysInService) {
    const auto keys = copy_keys();
    ASSERT_TRUE(start(agent_config(dir_.path(), keys)));
    write_file(keys / "signing-keys.json", "{\"keys\": [", 0600);
    agent_->signal(SIGHUP);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (agent_->log().find("reload failed") == std::string::npos && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    EXPECT_NE(agent_->log().find("reload failed"), std::string::npos);
    EXPECT_EQ(status_of(tokens()["signed_valid"]), LSA_STATUS_VALID);
    EXPECT_EQ(status_of(tokens()["sealed_valid"]), LSA_STATUS_VALID);
}

TEST_F(LifecycleTest, UnknownConfigKeyExitsTwoAndNamesIt) {
    auto cfg = make_config();
    cfg.set("ipc.sokcet_mode", toml_string("0660"));
    cfg.write(dir_ / "config.toml");
    auto r = run_agent(dir_ / "config.toml");
    ASSERT_FALSE(r.timed_out) << "the agent started despite the bad config";
    EXPECT_EQ(exit_code(r), 2) << r.err;
    EXPECT_NE(r.err.find("ipc.sokcet_mode"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(cfg.socket));
}

TEST_F(LifecycleTest, ConfigReadableByOthersExitsTwo) {
    auto cfg = make_config();
    write_file(dir_ / "config.toml", cfg.text(), 0644);
    auto r = run_agent(dir_ / "config.toml");
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(exit_code(r), 2) << r.err;
    EXPECT_NE(r.err.find((dir_ / "config.toml").string()), std::string::npos) << r.err;
}

TEST_F(LifecycleTest, SecretsFileReadableByOthersExitsTwoAndNamesIt) {
    const auto keys = copy_keys();
    ASSERT_EQ(::chmod((keys / "secrets.json").c_str(), 0644), 0);
    agent_config cfg(dir_.path(), keys);
    cfg.write(dir_ / "config.toml");
    auto r = run_agent(dir_ / "config.toml");
    ASSERT_FALSE(r.timed_out) << "the agent started with a world-readable secrets file";
    EXPECT_EQ(exit_code(r), 2) << r.err;
    EXPECT_NE(r.err.find((keys / "secrets.json").string()), std::string::npos) << r.err;
}

TEST_F(LifecycleTest, SecondAgentOnTheSameSocketFailsAndTheFirstKeepsServing) {
    ASSERT_TRUE(start(make_config()));
    auto r = run_agent(dir_ / "config.toml");
    ASSERT_FALSE(r.timed_out) << "the second agent kept running";
    EXPECT_NE(exit_code(r), 0) << r.err;
    EXPECT_NE(r.err.find(cfg_->socket.string()), std::string::npos) << r.err;
    EXPECT_TRUE(agent_->running());
    EXPECT_TRUE(std::filesystem::exists(cfg_->socket));
    EXPECT_TRUE(std::filesystem::exists(cfg_->admin_socket));
    EXPECT_EQ(status_of(tokens()["signed_valid"]), LSA_STATUS_VALID);
    EXPECT_FALSE(admin_status().empty());
}

TEST_F(LifecycleTest, StaleSocketFileIsReplaced) {
    // A killed agent leaves its socket files behind. Its listening sockets outlive the process
    // for a few ms (the kernel tears its io_uring down asynchronously): wait until nobody
    // accepts on them any more, then a new agent must take the paths over.
    auto cfg = make_config();
    ASSERT_TRUE(start(cfg));
    agent_->signal(SIGKILL);
    ASSERT_TRUE(agent_->wait_exit(30s));
    ASSERT_TRUE(std::filesystem::exists(cfg.socket));
    ASSERT_TRUE(std::filesystem::exists(cfg.admin_socket));
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while ((raw_conn(cfg.socket).ok() || raw_conn(cfg.admin_socket).ok()) &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    ASSERT_FALSE(raw_conn(cfg.admin_socket).ok()) << "the killed agent's socket still accepts";
    ASSERT_TRUE(start(cfg));
    EXPECT_EQ(status_of(tokens()["signed_valid"]), LSA_STATUS_VALID);
}

}  // namespace
}  // namespace la::test
