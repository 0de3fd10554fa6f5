#include "core/config.hpp"

#include <gtest/gtest.h>

#include "core/keys.hpp"
#include "tests/unit/core/core_test_util.hpp"

namespace la::core {
namespace {

using test::temp_dir;
using test::write_file;

const std::string minimal = R"(
[agent]
id = "pos-17"
state_dir = "state"

[ipc]
socket = "/run/la/agent.sock"
admin_socket = "admin.sock"

[licenses]
issuer = "https://licenses.example"
signing_keys = "keys/signing-keys.json"

[secrets]
backend = "file"
file = "/etc/la/secrets.json"
)";

expected<agent_config, std::string> load_text(const temp_dir& dir, const std::string& text) {
    const auto path = dir / "config.toml";
    write_file(path, text, 0600);
    return load_config(path);
}

std::string error_of(const std::string& text) {
    temp_dir dir;
    auto r = load_text(dir, text);
    EXPECT_FALSE(r.has_value());
    return r ? std::string() : r.error();
}

// Replaces the first occurrence of `from` in the minimal config.
std::string with(const std::string& from, const std::string& to) {
    std::string s = minimal;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos);
    return s.replace(at, from.size(), to);
}

TEST(ConfigTest, MinimalConfigGetsDefaultsAndResolvedPaths) {
    temp_dir dir;
    auto r = load_text(dir, minimal);
    ASSERT_TRUE(r) << r.error();
    const agent_config& c = *r;
    EXPECT_EQ(c.agent_id, "pos-17");
    EXPECT_EQ(c.state_dir, dir / "state");
    EXPECT_EQ(c.ipc.socket, "/run/la/agent.sock");
    EXPECT_EQ(c.ipc.admin_socket, dir / "admin.sock");
    EXPECT_EQ(c.ipc.socket_mode, 0660u);
    EXPECT_TRUE(c.ipc.allowed_uids.empty());
    EXPECT_EQ(c.ipc.admin_uids, std::vector<uid_t>{0});
    EXPECT_EQ(c.ipc.max_connections, 1024u);
    EXPECT_EQ(c.ipc.idle_timeout_ms, 30000u);
    EXPECT_EQ(c.ipc.max_pipeline, 64u);
    EXPECT_EQ(c.licenses.issuer, "https://licenses.example");
    EXPECT_EQ(c.licenses.signing_keys, dir / "keys/signing-keys.json");
    EXPECT_EQ(c.licenses.leeway_seconds, 60);
    EXPECT_EQ(c.licenses.instance, "");
    EXPECT_EQ(c.licenses.cache_entries, 4096u);
    EXPECT_EQ(c.secrets.backend, "file");
    EXPECT_EQ(c.secrets.file, "/etc/la/secrets.json");
    EXPECT_EQ(c.source, dir / "config.toml");
    EXPECT_FALSE(c.secrets.allow_fallback);
    EXPECT_EQ(c.state_copies, 5u);
    EXPECT_EQ(c.tpm.tcti, "device:/dev/tpmrm0");
    EXPECT_EQ(c.tpm.primary_handle, 0x81010001u);
    EXPECT_EQ(c.tpm.agent_key_handle, 0x81010002u);
    EXPECT_EQ(c.tpm.nv_index, 0x01500020u);
    EXPECT_EQ(c.tpm.pcr_policy, "");
    EXPECT_EQ(c.tpm.timeout_ms, 5000u);
    EXPECT_EQ(c.fallback.file, dir / "state/secret.enc");
    EXPECT_EQ(c.fallback.kdf, "argon2id");
}

TEST(ConfigTest, TpmAndFallbackTablesAreRead) {
    const auto r = parse_config(R"([agent]
id = "a"
state_dir = "/var/lib/la"
[ipc]
socket = "/s"
admin_socket = "/a"
[licenses]
issuer = "iss"
signing_keys = "/k.json"
[secrets]
backend = "tpm"
allow_fallback = true
[tpm]
tcti = "swtpm:path=/run/swtpm.sock"
primary_handle = "0x81000010"
nv_index = "0x01800001"
pcr_policy = "sha256:0,2,7"
timeout_ms = 1500
[fallback]
key_file = "/etc/la/fallback.key"
kdf = "pbkdf2-sha256"
)", "/etc/la/config.toml");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->secrets.backend, "tpm");
    EXPECT_TRUE(r->secrets.allow_fallback);
    EXPECT_EQ(r->tpm.tcti, "swtpm:path=/run/swtpm.sock");
    EXPECT_EQ(r->tpm.primary_handle, 0x81000010u);
    EXPECT_EQ(r->tpm.agent_key_handle, 0x81000011u);  // follows the primary unless set
    EXPECT_EQ(r->tpm.nv_index, 0x01800001u);
    EXPECT_EQ(r->tpm.pcr_policy, "sha256:0,2,7");
    EXPECT_EQ(r->tpm.timeout_ms, 1500u);
    EXPECT_EQ(r->fallback.file, "/var/lib/la/secret.enc");
    EXPECT_EQ(r->fallback.key_file, "/etc/la/fallback.key");
    EXPECT_EQ(r->fallback.kdf, "pbkdf2-sha256");
}

TEST(ConfigTest, BadTpmAndFallbackValuesAreRefusedNamingTheKey) {
    const std::string tpm_base = "[secrets]\nbackend = \"tpm\"";
    struct bad_case {
        std::string replacement;
        std::string expected;
    };
    const bad_case cases[] = {
        {tpm_base + "\n[tpm]\nprimary_handle = \"0x01500020\"", "tpm.primary_handle: must be between 0x81000000"},
        {tpm_base + "\n[tpm]\nprimary_handle = \"81010001\"", "tpm.primary_handle: expected a hex handle"},
        {tpm_base + "\n[tpm]\nnv_index = \"0x81010001\"", "tpm.nv_index: must be between 0x01000000"},
        {tpm_base + "\n[tpm]\nnv_index = \"0xZZ\"", "tpm.nv_index: expected a hex handle"},
        {tpm_base + "\n[tpm]\ntimeout_ms = 5", "tpm.timeout_ms: must be between 100"},
        {tpm_base + "\n[tpm]\ntcti = \"\"", "tpm.tcti: must not be empty"},
        {tpm_base + "\n[tpm]\nagent_key_handle = \"0x81010001\"", "tpm.agent_key_handle: must differ"},
        {tpm_base + "\nallow_fallback = true", "fallback.key_file: required key is missing"},
        {tpm_base + "\nallow_fallback = 1", "secrets.allow_fallback: expected true or false"},
        {"[secrets]\nbackend = \"encrypted-file\"\n[fallback]\nkey_file = \"k\"\nkdf = \"md5\"",
         "fallback.kdf: expected \"argon2id\" or \"pbkdf2-sha256\""},
        {"[secrets]\nbackend = \"encrypted-file\"\nfile = \"x\"\n[fallback]\nkey_file = \"k\"",
         "secrets.file: only used with backend = \"file\""},
        {"[secrets]\nbackend = \"encrypted-file\"\nallow_fallback = true\n[fallback]\nkey_file = \"k\"",
         "secrets.allow_fallback: only meaningful with backend = \"tpm\""},
        {tpm_base + "\n[tpm]\nsealed = true", "tpm.sealed: unknown key"},
    };
    for (const bad_case& c : cases) {
        const auto e = error_of(with("[secrets]\nbackend = \"file\"\nfile = \"/etc/la/secrets.json\"", c.replacement));
        EXPECT_NE(e.find(c.expected), std::string::npos) << c.replacement << " -> " << e;
    }
}

TEST(ConfigTest, ReadsEveryKey) {
    temp_dir dir;
    auto r = load_text(dir, R"(
[agent]
id = "a"
state_dir = "/var/lib/la"
[ipc]
socket = "/s"
admin_socket = "/a"
socket_mode = "0600"
allowed_uids = [1000, 1001]
admin_uids = [0, 50]
max_connections = 10
idle_timeout_ms = 500
max_pipeline = 8
[licenses]
issuer = "iss"
signing_keys = "/k.json"
leeway_seconds = 0
instance = "term-9"
cache_entries = 0
[secrets]
backend = "file"
file = "sec/s.json"
)");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->ipc.socket_mode, 0600u);
    EXPECT_EQ(r->ipc.allowed_uids, (std::vector<uid_t>{1000, 1001}));
    EXPECT_EQ(r->ipc.admin_uids, (std::vector<uid_t>{0, 50}));
    EXPECT_EQ(r->ipc.max_connections, 10u);
    EXPECT_EQ(r->ipc.idle_timeout_ms, 500u);
    EXPECT_EQ(r->ipc.max_pipeline, 8u);
    EXPECT_EQ(r->licenses.leeway_seconds, 0);
    EXPECT_EQ(r->licenses.instance, "term-9");
    EXPECT_EQ(r->licenses.cache_entries, 0u);
    EXPECT_EQ(r->secrets.file, dir / "sec/s.json");
}

TEST(ConfigTest, UnknownKeyOrTableIsNamed) {
    EXPECT_NE(error_of(with("[ipc]", "[ipc]\nbogus = 1")).find("ipc.bogus: unknown key"), std::string::npos);
    EXPECT_NE(error_of(minimal + "\n[nope]\nx = 1\n").find("nope: unknown table"), std::string::npos);
    EXPECT_NE(error_of("top = 1\n" + minimal).find("top: unknown key"), std::string::npos);
    EXPECT_NE(error_of(with("[licenses]", "[licenses]\n[licenses.sub]\n")).find("licenses.sub: unknown table"),
              std::string::npos);
}

TEST(ConfigTest, WrongTypeNamesTheDottedKey) {
    auto e = error_of(with("[ipc]", "[ipc]\nallowed_uids = \"1000\""));
    EXPECT_NE(e.find("ipc.allowed_uids: expected an array of integers"), std::string::npos) << e;
    e = error_of(with("[ipc]", "[ipc]\nallowed_uids = [1000, \"x\"]"));
    EXPECT_NE(e.find("ipc.allowed_uids: expected an array of integers"), std::string::npos) << e;
    e = error_of(with("[ipc]", "[ipc]\nadmin_uids = [-1]"));
    EXPECT_NE(e.find("ipc.admin_uids"), std::string::npos) << e;
    e = error_of(with("id = \"pos-17\"", "id = 17"));
    EXPECT_NE(e.find("agent.id: expected a string"), std::string::npos) << e;
    e = error_of(with("[licenses]", "[licenses]\nleeway_seconds = \"60\""));
    EXPECT_NE(e.find("licenses.leeway_seconds: expected an integer"), std::string::npos) << e;
    e = error_of(with("[licenses]", "[licenses]\nleeway_seconds = -1"));
    EXPECT_NE(e.find("licenses.leeway_seconds: must be between 0 and"), std::string::npos) << e;
    e = error_of(with("[ipc]", "[ipc]\nsocket_mode = \"0999\""));
    EXPECT_NE(e.find("ipc.socket_mode"), std::string::npos) << e;
    e = error_of(with("[ipc]", "[ipc]\nsocket_mode = 660"));
    EXPECT_NE(e.find("ipc.socket_mode: expected a string"), std::string::npos) << e;
    e = error_of(with("[ipc]", "[ipc]\nmax_pipeline = 0"));
    EXPECT_NE(e.find("ipc.max_pipeline"), std::string::npos) << e;
    e = error_of("agent = 5\n");
    EXPECT_NE(e.find("agent: expected a table"), std::string::npos) << e;
}

TEST(ConfigTest, MissingRequiredKeyIsNamed) {
    EXPECT_NE(error_of(with("id = \"pos-17\"", "")).find("agent.id: required key is missing"), std::string::npos);
    EXPECT_NE(error_of(with("issuer = \"https://licenses.example\"", "")).find("licenses.issuer: required"),
              std::string::npos);
    EXPECT_NE(error_of(with("file = \"/etc/la/secrets.json\"", "")).find("secrets.file: required"), std::string::npos);
    EXPECT_NE(error_of(with("admin_socket = \"admin.sock\"", "")).find("ipc.admin_socket: required"),
              std::string::npos);
}

TEST(ConfigTest, UnknownSecretsBackendIsRefusedListingTheKnownOnes) {
    const auto e = error_of(with("backend = \"file\"", "backend = \"hsm\""));
    EXPECT_NE(e.find("secrets.backend: unsupported backend \"hsm\" (available: \"tpm\", \"encrypted-file\", \"file\")"),
              std::string::npos) << e;
}

TEST(ConfigTest, FileReadableByOthersIsRefusedNamingIt) {
    temp_dir dir;
    const auto path = dir / "config.toml";
    for (const mode_t mode : {mode_t{0644}, mode_t{0640}, mode_t{0602}, mode_t{0660}}) {
        write_file(path, minimal, mode);
        auto r = load_config(path);
        ASSERT_FALSE(r) << std::oct << mode;
        EXPECT_NE(r.error().find(path.string()), std::string::npos) << r.error();
        EXPECT_NE(r.error().find("group or others"), std::string::npos) << r.error();
    }
    write_file(path, minimal, 0400);
    EXPECT_TRUE(load_config(path));
}

TEST(ConfigTest, SyntaxErrorNamesFileAndLine) {
    temp_dir dir;
    auto r = load_text(dir, "[agent]\nid = \n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find((dir / "config.toml").string() + ":2:"), std::string::npos) << r.error();
    auto missing = load_config(dir / "absent.toml");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().find("absent.toml: cannot open"), std::string::npos) << missing.error();
}

}  // namespace
}  // namespace la::core
