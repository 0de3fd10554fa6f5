// license-agent-cli against the real agent: exit codes, JSON output, stdin, status, and peers
// running as another uid (setpriv from util-linux).
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/integration_env.hpp"

namespace la::test {
namespace {

// Parses a JSON object with python's json module (independent of our code) and returns its
// top-level members as compact, key-sorted JSON text; empty if it is not a JSON object.
std::map<std::string, std::string> parse_json_object(const std::string& text) {
    const char* script =
        "import json,sys\n"
        "d=json.loads(sys.stdin.read())\n"
        "assert isinstance(d,dict)\n"
        "for k in d: print(k+'\\t'+json.dumps(d[k],sort_keys=True,separators=(',',':')))\n";
    auto r = run_command({"/usr/bin/python3", "-c", script}, text);
    std::map<std::string, std::string> out;
    if (exit_code(r) != 0) return out;
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
        const auto tab = line.find('\t');
        if (tab != std::string::npos) out[line.substr(0, tab)] = line.substr(tab + 1);
    }
    return out;
}

class CliTest : public agent_test {
protected:
    void SetUp() override { ASSERT_TRUE(start(make_config())); }

    command_result cli(std::vector<std::string> args, const std::string& input = "") {
        args.insert(args.begin(), LA_CLI_BINARY);
        return run_command(args, input, 30s);
    }
};

TEST_F(CliTest, ValidateExitsZeroOnlyForValid) {
    const std::string sock = cfg_->socket.string();
    auto ok = cli({"--socket", sock, "validate", "--product", product, "--feature", "sales", tokens()["signed_valid"]});
    EXPECT_EQ(exit_code(ok), 0) << ok.out << ok.err;
    EXPECT_NE(ok.out.find("valid"), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("LIC-SIGNED-1"), std::string::npos) << ok.out;

    for (const char* name : {"expired", "jws_tamper_signature", "jwe_unknown_kid", "alg_none"}) {
        auto r = cli({"--socket", sock, "validate", tokens()[name]});
        EXPECT_EQ(exit_code(r), 1) << name << ": " << r.out << r.err;
    }
    auto feature = cli({"--socket", sock, "validate", "--feature", "payroll", tokens()["sealed_valid"]});
    EXPECT_EQ(exit_code(feature), 1);
    EXPECT_NE(feature.out.find("feature_not_granted"), std::string::npos) << feature.out;
    auto garbage = cli({"--socket", sock, "validate", "garbage"});
    EXPECT_EQ(exit_code(garbage), 1);
    EXPECT_NE(garbage.out.find("malformed"), std::string::npos) << garbage.out;
}

TEST_F(CliTest, ValidateJsonHasTheLicenseFields) {
    auto r = cli({"--socket", cfg_->socket.string(), "validate", "--json", tokens()["signed_valid"]});
    ASSERT_EQ(exit_code(r), 0) << r.out << r.err;
    auto j = parse_json_object(r.out);
    ASSERT_FALSE(j.empty()) << "not a JSON object: " << r.out;
    EXPECT_EQ(j["status"], "\"valid\"");
    EXPECT_EQ(j["license_id"], "\"LIC-SIGNED-1\"");
    EXPECT_EQ(j["lic_type"], "\"subscription\"");
    EXPECT_EQ(j["expires_at"], std::to_string(tokens().now + 30 * 86400));
    EXPECT_EQ(j["features"], "[\"sales\",\"inventory\",\"loyalty\"]");
    EXPECT_EQ(j["meta"], "{\"seats\":\"3\",\"tier\":\"gold\"}");

    auto bad = cli({"--socket", cfg_->socket.string(), "validate", "--json", tokens()["jwe_tamper_tag"]});
    EXPECT_EQ(exit_code(bad), 1) << bad.out << bad.err;
    auto jb = parse_json_object(bad.out);
    ASSERT_FALSE(jb.empty()) << "not a JSON object: " << bad.out;
    EXPECT_EQ(jb["status"], "\"bad_signature\"");
    EXPECT_EQ(jb["license_id"], "null");
    EXPECT_EQ(jb["features"], "[]");
}

TEST_F(CliTest, DashReadsTheTokenFromStdin) {
    auto r = cli({"--socket", cfg_->socket.string(), "validate", "--json", "-"}, tokens()["sealed_valid"] + "\n");
    ASSERT_EQ(exit_code(r), 0) << r.out << r.err;
    auto j = parse_json_object(r.out);
    EXPECT_EQ(j["status"], "\"valid\"");
    EXPECT_EQ(j["license_id"], "\"LIC-SEALED-1\"");
    auto bad = cli({"--socket", cfg_->socket.string(), "validate", "-"}, tokens()["expired"]);
    EXPECT_EQ(exit_code(bad), 1) << bad.out << bad.err;
    EXPECT_NE(bad.out.find("expired"), std::string::npos);
}

TEST_F(CliTest, StatusWorksOnTheAdminSocket) {
    auto v = cli({"--socket", cfg_->socket.string(), "validate", tokens()["signed_valid"]});
    ASSERT_EQ(exit_code(v), 0) << v.out << v.err;

    auto text = cli({"--socket", cfg_->admin_socket.string(), "status"});
    EXPECT_EQ(exit_code(text), 0) << text.out << text.err;
    EXPECT_FALSE(text.out.empty());

    auto json = cli({"--socket", cfg_->admin_socket.string(), "status", "--json"});
    ASSERT_EQ(exit_code(json), 0) << json.out << json.err;
    auto j = parse_json_object(json.out);
    ASSERT_FALSE(j.empty()) << "not a JSON object: " << json.out;
    EXPECT_EQ(j["validations"], "1");
    EXPECT_EQ(j["valid"], "1");
    EXPECT_EQ(j["agent_id"], "\"pos-integ-001\"");
    EXPECT_TRUE(j.count("uptime_seconds"));
    EXPECT_TRUE(j.count("by_status"));

    // --config finds the admin socket by itself.
    auto via_config = cli({"--config", (dir_ / "config.toml").string(), "status", "--json"});
    EXPECT_EQ(exit_code(via_config), 0) << via_config.out << via_config.err;
}

TEST_F(CliTest, UnreachableAgentExitsThree) {
    auto r = cli({"--socket", (dir_ / "nobody-here.sock").string(), "validate", tokens()["signed_valid"]});
    EXPECT_EQ(exit_code(r), 3) << r.out << r.err;
}

// Peers with another uid. The directory is world-readable and the socket 0666, so the kernel
// lets every uid connect and any refusal comes from the agent's SO_PEERCRED check.
class OtherUidTest : public agent_test {
protected:
    static constexpr const char* allowed_uid = "65533";
    static constexpr const char* stranger_uid = "65534";

    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the CLI as other uids";
        if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs setpriv (util-linux)";
        ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
        auto cfg = make_config();
        cfg.set("ipc.socket_mode", toml_string("0666"));
        cfg.set("ipc.allowed_uids", std::string("[") + allowed_uid + "]");
        cfg.set("ipc.admin_uids", "[0]");
        ASSERT_TRUE(start(cfg));
    }

    command_result cli_as(const char* uid, std::vector<std::string> args) {
        std::vector<std::string> argv{"/usr/bin/setpriv", "--reuid", uid, "--regid", uid, "--clear-groups",
                                      LA_CLI_BINARY};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv, "", 30s);
    }
};

TEST_F(OtherUidTest, StrangerIsRefusedAsUnauthorized) {
    const long long before = json_number(admin_status(), "unauthorized");
    ASSERT_GE(before, 0);
    auto r = cli_as(stranger_uid, {"--socket", cfg_->socket.string(), "validate", tokens()["signed_valid"]});
    EXPECT_EQ(exit_code(r), 1) << "stdout: " << r.out << "\nstderr: " << r.err;
    EXPECT_NE((r.out + r.err).find("unauthorized"), std::string::npos) << "stdout: " << r.out << "\nstderr: " << r.err;
    EXPECT_EQ(json_number(admin_status(), "unauthorized"), before + 1);
}

TEST_F(OtherUidTest, AllowedUidValidates) {
    auto r = cli_as(allowed_uid, {"--socket", cfg_->socket.string(), "validate", tokens()["signed_valid"]});
    EXPECT_EQ(exit_code(r), 0) << "stdout: " << r.out << "\nstderr: " << r.err;
    EXPECT_EQ(json_number(admin_status(), "unauthorized"), 0);
}

TEST_F(OtherUidTest, RootIsAdminAndMayValidate) {
    auto c = client();
    ASSERT_TRUE(c);
    lsa_result r{};
    const std::string& tok = tokens()["signed_valid"];
    ASSERT_EQ(lsa_validate(c.get(), tok.data(), tok.size(), nullptr, nullptr, nullptr, &r), 0);
    EXPECT_EQ(r.status, LSA_STATUS_VALID);
}

TEST_F(OtherUidTest, AllowedUidMayNotUseTheAdminSocket) {
    // The admin socket is 0660 root-owned: loosen the path so the refusal is the agent's.
    ASSERT_EQ(::chmod(cfg_->admin_socket.c_str(), 0666), 0);
    const long long before = json_number(admin_status(), "unauthorized");
    auto r = cli_as(allowed_uid, {"--socket", cfg_->admin_socket.string(), "status"});
    EXPECT_EQ(exit_code(r), 1) << "stdout: " << r.out << "\nstderr: " << r.err;
    EXPECT_EQ(json_number(admin_status(), "unauthorized"), before + 1);
}

}  // namespace
}  // namespace la::test
