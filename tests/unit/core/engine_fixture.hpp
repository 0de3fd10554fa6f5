// Tokens minted once per test process (PyJWT / jwcrypto through mint.py) for the engine
// and allocation tests, and engines built over the minted keys.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/engine.hpp"
#include "io/clock.hpp"
#include "tests/unit/core/core_test_util.hpp"

namespace la::test {

/// The fixed "now" of every engine test (manual clock).
inline constexpr std::int64_t now = 1'700'000'000;
inline const std::string issuer = "https://licenses.example";

using claim_list = std::vector<std::pair<std::string, std::string>>;

/// The default license: a subscription valid around `now`. `changes` replace or append
/// members; an empty value drops the member.
inline std::string claims_with(const claim_list& changes = {}) {
    claim_list c = {
        {"jti", "\"lic-1\""},
        {"iss", json_string(issuer)},
        {"sub", "\"cust-1\""},
        {"product", "\"pos\""},
        {"lic_type", "\"subscription\""},
        {"iat", std::to_string(now - 1000)},
        {"exp", std::to_string(now + 3600)},
        {"features", R"(["reports","export"])"},
        {"versions", R"(["17.0","17.1"])"},
        {"meta", R"({"tier":"gold","seats":"3"})"},
    };
    for (const auto& [k, v] : changes) {
        auto it = c.begin();
        while (it != c.end() && it->first != k) ++it;
        if (v.empty()) {
            if (it != c.end()) c.erase(it);
        } else if (it != c.end()) {
            it->second = v;
        } else {
            c.emplace_back(k, v);
        }
    }
    return json_object(c);
}

/// `"claims": {...}` batch field for claims_with(changes).
inline std::string claims_field(const claim_list& changes = {}) { return "\"claims\":" + claims_with(changes); }

/// Every minted token, by name; keys in `dir`, a look-alike key set (same kids, other keys) in `other`.
struct minted {
    temp_dir dir;
    temp_dir other;
    std::map<std::string, std::string> tok;

    minted();
    const std::string& operator[](const std::string& name) const {
        const auto it = tok.find(name);
        if (it == tok.end()) {
            ADD_FAILURE() << "no minted token " << name;
            static const std::string empty;
            return empty;
        }
        return it->second;
    }
};

inline std::vector<mint_request> engine_requests() {
    std::string many_features = "[";
    for (int i = 0; i < 65; ++i) many_features += (i ? ",\"f" : "\"f") + std::to_string(i) + "\"";
    many_features += "]";
    const std::string dup_payload =
        R"({"jti":"a","jti":"b","iss":")" + issuer + R"(","sub":"c","product":"pos","lic_type":"perpetual","iat":1})";
    const std::string exponent_payload = R"({"jti":"a","iss":")" + issuer +
                                         R"(","sub":"c","product":"pos","lic_type":"demo","iat":1,"exp":1.8e9})";
    std::vector<mint_request> r = {
        {"s_valid", "sign", claims_field()},
        {"s_valid_k2", "sign", claims_field() + R"(,"kid":"k2")"},
        {"s_perpetual_noexp", "sign", claims_field({{"lic_type", "\"perpetual\""}, {"exp", ""}})},
        {"s_perpetual_nullexp", "sign", claims_field({{"lic_type", "\"perpetual\""}, {"exp", "null"}})},
        {"s_sub_noexp", "sign", claims_field({{"exp", ""}})},
        {"s_sub_nullexp", "sign", claims_field({{"exp", "null"}})},
        {"s_exp_edge", "sign", claims_field({{"exp", std::to_string(now)}})},
        {"s_nbf_edge", "sign", claims_field({{"nbf", std::to_string(now)}})},
        {"s_expires_later", "sign", claims_field({{"exp", std::to_string(now + 100)}})},
        {"s_tamper_sig", "sign", claims_field() + R"(,"tamper":"signature")"},
        {"s_tamper_payload", "sign", claims_field() + R"(,"tamper":"payload")"},
        {"s_foreign", "sign", claims_field() + R"(,"foreign_key":true)"},
        {"s_unknown_kid", "sign", claims_field() + R"(,"kid":"zz")"},
        {"s_no_kid", "sign", claims_field() + R"(,"no_kid":true)"},
        {"s_none", "sign", claims_field() + R"(,"alg":"none")"},
        {"s_hs256", "sign", claims_field() + R"(,"alg":"HS256")"},
        {"s_rs256", "sign", claims_field() + R"(,"alg":"RS256")"},
        {"s_crit", "sign", claims_field() + ",\"raw_header\":" + json_string(R"({"alg":"EdDSA","kid":"k1","crit":["x-ext"],"x-ext":1})")},
        {"s_crit_bad", "sign", claims_field() + ",\"raw_header\":" + json_string(R"({"alg":"EdDSA","kid":"k1","crit":"x-ext"})")},
        {"s_no_alg", "sign", claims_field() + ",\"raw_header\":" + json_string(R"({"kid":"k1"})")},
        {"s_alg_number", "sign", claims_field() + ",\"raw_header\":" + json_string(R"({"alg":1,"kid":"k1"})")},
        {"s_hdr_dup", "sign", claims_field() + ",\"raw_header\":" + json_string(R"({"alg":"EdDSA","kid":"k1","kid":"k2"})")},
        {"s_dup_payload", "sign", "\"payload\":" + json_string(dup_payload)},
        {"s_not_json", "sign", R"("payload":"hello")"},
        {"s_trailing", "sign", "\"payload\":" + json_string(claims_with() + "x")},
        {"s_exponent", "sign", "\"payload\":" + json_string(exponent_payload)},
        {"s_bad_type", "sign", claims_field({{"iat", "\"yesterday\""}})},
        {"s_missing_sub", "sign", claims_field({{"sub", ""}})},
        {"s_too_many_features", "sign", claims_field({{"features", many_features}})},
        {"s_wrong_iss", "sign", claims_field({{"iss", "\"https://evil.example\""}})},
        {"s_instance", "sign", claims_field({{"instance", "\"term-1\""}})},
        {"s_fraction", "sign", claims_field({{"iat", std::to_string(now - 1000) + ".5"}, {"exp", std::to_string(now + 3600) + ".25"}})},
        {"e_valid", "seal", claims_field()},
        {"e_valid_v2", "seal", claims_field() + R"(,"kid":"2")"},
        {"e_tamper_tag", "seal", claims_field() + R"(,"tamper":"tag")"},
        {"e_tamper_ct", "seal", claims_field() + R"(,"tamper":"ciphertext")"},
        {"e_tamper_iv", "seal", claims_field() + R"(,"tamper":"iv")"},
        {"e_tamper_header", "seal", claims_field() + R"(,"tamper":"header")"},
        {"e_foreign", "seal", claims_field() + R"(,"foreign_key":true)"},
        {"e_unknown", "seal", claims_field() + R"(,"kid":"9")"},
        {"e_kid_text", "seal", claims_field() + R"(,"kid":"abc")"},
        {"e_no_kid", "seal", claims_field() + R"(,"no_kid":true)"},
        {"e_rsa", "seal", claims_field() + R"(,"alg":"RSA-OAEP")"},
        {"e_a128", "seal", claims_field() + R"(,"enc":"A128GCM")"},
        {"e_zip", "seal", claims_field() + R"(,"header":{"zip":"DEF"})"},
        {"e_crit", "seal", claims_field() + ",\"raw_header\":" + json_string(R"({"alg":"dir","enc":"A256GCM","kid":"1","crit":["x"]})")},
        {"e_no_enc", "seal", claims_field() + ",\"raw_header\":" + json_string(R"({"alg":"dir","kid":"1"})")},
        {"e_enc_key", "seal", claims_field() + R"(,"encrypted_key":"AAAA")"},
        {"e_dup_payload", "seal", "\"payload\":" + json_string(dup_payload)},
        {"e_expired", "seal", claims_field({{"jti", "\"lic-old\""}, {"exp", std::to_string(now - 1000)}})},
        {"e_instance", "seal", claims_field({{"instance", "\"term-1\""}})},
    };
    for (int i = 0; i < 5; ++i)
        r.push_back({"s_lru" + std::to_string(i), "sign", claims_field({{"jti", "\"lic-lru-" + std::to_string(i) + "\""}})});
    return r;
}

inline minted::minted() {
    mint_keys(dir.path(), "k1,k2", "1,2");
    mint_keys(other.path(), "k1,k2", "1,2");
    tok = mint_batch(dir.path(), engine_requests());
}

/// Minted once per process, on first use.
inline const minted& tokens() {
    static const minted m;
    return m;
}

/// Loads the signing keys of a minted key directory.
inline core::signing_key_set signing_keys(const std::filesystem::path& dir) {
    auto s = core::load_signing_keys(dir / "signing-keys.json");
    EXPECT_TRUE(s) << s.error();
    return s ? std::move(*s) : core::signing_key_set{};
}

/// Loads the secrets of a minted key directory.
inline core::secret_set secrets(const std::filesystem::path& dir) {
    auto s = core::file_secret_store(dir / "secrets.json").load();
    EXPECT_TRUE(s) << s.error();
    return s ? std::move(*s) : core::secret_set{};
}

/// An engine over the minted keys.
inline core::engine make_engine(const io::clock& clk, std::size_t cache_entries = 4096,
                                std::string instance = "", std::int64_t leeway = 60) {
    core::engine_options o;
    o.issuer = issuer;
    o.leeway_seconds = leeway;
    o.instance = std::move(instance);
    o.cache_entries = cache_entries;
    return core::engine(std::move(o), signing_keys(tokens().dir.path()), secrets(tokens().dir.path()), clk);
}

}  // namespace la::test
