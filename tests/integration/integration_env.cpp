#include "tests/integration/integration_env.hpp"

#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <sstream>

namespace la::test {
namespace {

// One batch request: {"name":..., "cmd":..., <fields>}. `fields` is raw JSON members text.
std::string req(const std::string& name, const std::string& cmd, const std::string& fields) {
    return "{\"name\":\"" + name + "\",\"cmd\":\"" + cmd + "\"" + (fields.empty() ? "" : "," + fields) + "}";
}

// A JSON string literal holding `text` (which is itself JSON: quotes and backslashes escaped).
std::string json_str(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::unique_ptr<token_set> mint_all() {
    auto set = std::make_unique<token_set>();
    set->keys = set->dir / "keys";
    set->now = unix_now();
    const std::int64_t now = set->now;
    if (!mint_keys(set->keys, "k1", "1", set->error)) return set;

    auto claims = [&](const std::string& jti, const std::string& extra = "", const std::string& drop = "") {
        return "\"claims\":" + license_claims(now, jti, extra, drop);
    };
    const std::string blob(7000, 'x');
    std::vector<std::string> r{
        req("signed_valid", "sign", claims("LIC-SIGNED-1")),
        req("sealed_valid", "seal", claims("LIC-SEALED-1")),
        req("perpetual", "sign",
            "\"claims\":{\"jti\":\"LIC-PERP-1\",\"iss\":\"" + std::string(issuer) +
                "\",\"sub\":\"cust-7\",\"product\":\"pos-suite\",\"lic_type\":\"perpetual\",\"iat\":" +
                std::to_string(now - 60) + ",\"features\":[\"sales\"]}"),
        req("expired", "sign",
            claims("LIC-EXPIRED", "\"exp\":" + std::to_string(now - 3600) + ",\"iat\":" + std::to_string(now - 7200),
                   "exp,iat")),
        req("sealed_expired", "seal",
            claims("LIC-SEALED-EXPIRED", "\"exp\":" + std::to_string(now - 3600) + ",\"iat\":" + std::to_string(now - 7200),
                   "exp,iat")),
        req("not_yet_valid", "sign", claims("LIC-NBF", "\"nbf\":" + std::to_string(now + 3600))),
        req("jws_tamper_signature", "sign", claims("LIC-T1") + ",\"tamper\":\"signature\""),
        req("jws_tamper_payload", "sign", claims("LIC-T2") + ",\"tamper\":\"payload\""),
        req("jwe_tamper_tag", "seal", claims("LIC-T3") + ",\"tamper\":\"tag\""),
        req("jwe_tamper_ciphertext", "seal", claims("LIC-T4") + ",\"tamper\":\"ciphertext\""),
        req("jws_unknown_kid", "sign", claims("LIC-UK1") + ",\"kid\":\"k-unknown\""),
        req("jwe_unknown_kid", "seal", claims("LIC-UK2") + ",\"kid\":\"99\""),
        req("alg_none", "sign", claims("LIC-A1") + ",\"alg\":\"none\""),
        req("alg_hs256", "sign", claims("LIC-A2") + ",\"alg\":\"HS256\""),
        req("jwe_a128gcm", "seal", claims("LIC-A3") + ",\"enc\":\"A128GCM\""),
        req("jwe_rsa_oaep", "seal", claims("LIC-A4") + ",\"alg\":\"RSA-OAEP\""),
        req("duplicate_key", "sign",
            "\"payload\":" + json_str("{\"jti\":\"a\",\"jti\":\"b\",\"iss\":\"" + std::string(issuer) +
                                      "\",\"sub\":\"c\",\"product\":\"pos-suite\",\"lic_type\":\"perpetual\",\"iat\":" +
                                      std::to_string(now - 60) + "}")),
        req("missing_jti", "sign", claims("unused", "", "jti")),
        req("wrong_issuer", "sign", claims("LIC-ISS", "\"iss\":\"https://evil.example.com\"", "iss")),
        req("bound_other_instance", "sign", claims("LIC-INST1", "\"instance\":\"other-fp\"")),
        req("bound_this_instance", "sign", claims("LIC-INST2", "\"instance\":\"" + std::string(instance) + "\"")),
        req("oversized", "sign", claims("LIC-BIG", "\"meta\":{\"blob\":\"" + blob + "\"}", "meta")),
    };
    std::string json = "[";
    for (std::size_t i = 0; i < r.size(); ++i) json += (i == 0 ? "" : ",") + r[i];
    json += "]";
    set->tokens = mint_batch(set->keys, json, set->error);
    if (set->error.empty() && set->tokens.size() != r.size())
        set->error = "mint.py batch returned " + std::to_string(set->tokens.size()) + " of " +
                     std::to_string(r.size()) + " tokens";
    return set;
}

}  // namespace

std::string license_claims(std::int64_t now, const std::string& jti, const std::string& extra,
                           const std::string& drop) {
    const std::vector<std::pair<std::string, std::string>> members{
        {"jti", "\"" + jti + "\""},
        {"iss", "\"" + std::string(issuer) + "\""},
        {"sub", "\"cust-42\""},
        {"product", "\"" + std::string(product) + "\""},
        {"lic_type", "\"subscription\""},
        {"iat", std::to_string(now - 60)},
        {"exp", std::to_string(now + 30 * 86400)},
        {"features", "[\"sales\",\"inventory\",\"loyalty\"]"},
        {"meta", "{\"seats\":\"3\",\"tier\":\"gold\"}"},
    };
    std::string out = "{";
    for (const auto& [k, v] : members) {
        if (("," + drop + ",").find("," + k + ",") != std::string::npos) continue;
        out += (out.size() > 1 ? "," : "") + ("\"" + k + "\":" + v);
    }
    if (!extra.empty()) out += (out.size() > 1 ? "," : "") + extra;
    return out + "}";
}

const std::string& token_set::operator[](const std::string& name) const {
    static const std::string none;
    auto it = tokens.find(name);
    if (it == tokens.end()) {
        ADD_FAILURE() << "no token named " << name << (error.empty() ? "" : ": " + error);
        return none;
    }
    return it->second;
}

const token_set& tokens() {
    static const std::unique_ptr<token_set> set = mint_all();
    return *set;
}

lsa_ptr lsa_open(const std::filesystem::path& socket, int& rc, long expected_uid, int timeout_ms) {
    lsa_options opts{};
    opts.socket_path = socket.c_str();
    opts.timeout_ms = timeout_ms;
    opts.expected_agent_uid = expected_uid;
    lsa_client* c = nullptr;
    rc = lsa_connect(&opts, &c);
    return lsa_ptr(rc == 0 ? c : nullptr);
}

bool agent_test::start(const agent_config& cfg) {
    if (!tokens().error.empty()) {
        ADD_FAILURE() << tokens().error;
        return false;
    }
    cfg_ = cfg;
    const auto config_path = dir_ / "config.toml";
    cfg.write(config_path);
    agent_ = std::make_unique<agent_process>(LA_AGENT_BINARY, config_path, dir_ / "agent.log");
    if (!agent_->wait_ready(cfg.socket) || !agent_->wait_ready(cfg.admin_socket)) {
        ADD_FAILURE() << "the agent did not come up";
        return false;
    }
    return true;
}

lsa_ptr agent_test::client(long expected_uid) {
    int rc = 0;
    auto c = lsa_open(cfg_->socket, rc, expected_uid);
    if (!c) ADD_FAILURE() << "lsa_connect: " << lsa_strerror(rc) << " (" << rc << ")";
    return c;
}

std::string agent_test::admin_status() {
    int rc = 0;
    auto c = lsa_open(cfg_->admin_socket, rc);
    if (!c) {
        ADD_FAILURE() << "admin lsa_connect: " << lsa_strerror(rc);
        return {};
    }
    std::string json(16385, '\0');
    const int n = lsa_status(c.get(), json.data(), json.size());
    if (n < 0) {
        ADD_FAILURE() << "lsa_status: " << lsa_strerror(n);
        return {};
    }
    json.resize(static_cast<std::size_t>(n));
    return json;
}

void agent_test::TearDown() {
    if (agent_ && agent_->running()) {
        const exit_info e = agent_->stop(15s);
        EXPECT_TRUE(e.exited && e.code == 0)
            << "agent stop: exited=" << e.exited << " code=" << e.code << " signal=" << e.signal;
    }
    if (agent_ && HasFailure()) std::cerr << "----- agent log -----\n" << agent_->log() << "---------------------\n";
}

long long json_number(const std::string& json, const std::string& key) {
    const std::string needle = "\"" + key + "\":";
    const auto pos = json.find(needle);
    if (pos == std::string::npos) return -1;
    return std::strtoll(json.c_str() + pos + needle.size(), nullptr, 10);
}

}  // namespace la::test
