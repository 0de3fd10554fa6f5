#include "core/keys.hpp"

#include <vector>

#include <fmt/format.h>

#include "core/detail/file.hpp"
#include "core/json.hpp"
#include "crypto/base64url.hpp"
#include "crypto/secure_buffer.hpp"

namespace la::core {
namespace {

using err = unexpected<std::string>;


// Startup-only: a token array large enough for any document of this size (each value
// consumes at least one byte).
std::vector<json::token> tokens_for(std::size_t bytes) { return std::vector<json::token>(bytes + 2); }

// Finds the "keys" array of a JWK Set; returns its token index.
expected<std::size_t, std::string> jwks_keys(const json::document& d, std::string_view source) {
    if (d[0].kind != json::type::object) return err(fmt::format("{}: expected a JWK Set object", source));
    const auto keys = d.find(0, "keys");
    if (!keys) return err(fmt::format("{}: missing \"keys\"", source));
    if (d[*keys].kind != json::type::array) return err(fmt::format("{}: \"keys\" must be an array", source));
    if (d[*keys].size == 0) return err(fmt::format("{}: \"keys\" is empty", source));
    return *keys;
}

// A member that must be a string; error text names the key index and the member.
expected<std::string_view, std::string> string_member(const json::document& d, std::size_t obj,
                                                      std::string_view name, std::string_view where) {
    const auto v = d.find(obj, name);
    if (!v) return err(fmt::format("{}: missing \"{}\"", where, name));
    if (d[*v].kind != json::type::string) return err(fmt::format("{}: \"{}\" must be a string", where, name));
    return d[*v].text;
}

// Checks an optional string member against its only acceptable value.
expected<void, std::string> optional_member_is(const json::document& d, std::size_t obj, std::string_view name,
                                               std::string_view want, std::string_view where) {
    const auto v = d.find(obj, name);
    if (!v) return {};
    if (d[*v].kind != json::type::string || d[*v].text != want)
        return err(fmt::format("{}: \"{}\" must be \"{}\"", where, name, want));
    return {};
}

std::string parse_error_text(std::string_view source, const json::parse_result& pr) {
    return fmt::format("{}: {} near byte {}", source, json::to_string(pr.err), pr.offset);
}

}  // namespace

expected<void, std::string> signing_key_set::add(std::string_view kid, const crypto::ed25519_public_key& key) {
    if (kid.empty()) return err("empty kid");
    if (kid.size() > max_kid) return err(fmt::format("kid \"{}\" longer than {} bytes", kid, max_kid));
    if (find(kid) != nullptr) return err(fmt::format("duplicate kid \"{}\"", kid));
    if (count_ == capacity) return err(fmt::format("more than {} signing keys", capacity));
    slot s{{}, kid.size(), key};
    kid.copy(s.kid.data(), kid.size());
    slots_[count_++].emplace(s);
    return {};
}

const crypto::ed25519_public_key* signing_key_set::find(std::string_view kid) const noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
        const slot& s = *slots_[i];
        if (std::string_view(s.kid.data(), s.kid_len) == kid) return &s.key;
    }
    return nullptr;
}

expected<void, std::string> secret_set::add(std::uint64_t version, crypto::aes256_gcm_key key,
                                            secret_meta meta) {
    if (this->meta(version) != nullptr) return err(fmt::format("duplicate secret version {}", version));
    if (count_ == capacity) return err(fmt::format("more than {} secrets", capacity));
    if (meta.grace_until < meta.valid_until)
        return err(fmt::format("secret version {}: grace_until is before valid_until", version));
    slots_[count_++].emplace(slot{version, std::move(key), meta});
    return {};
}

const crypto::aes256_gcm_key* secret_set::find(std::uint64_t version) const noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
        if (slots_[i]->version == version) return slots_[i]->key ? &*slots_[i]->key : nullptr;
    }
    return nullptr;
}

const secret_meta* secret_set::meta(std::uint64_t version) const noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
        if (slots_[i]->version == version) return &slots_[i]->meta;
    }
    return nullptr;
}

secret_state secret_set::state_at(const secret_meta& m, std::int64_t now) noexcept {
    if (m.state == secret_state::invalidated || m.state == secret_state::expired) return m.state;
    if (now > m.grace_until) return secret_state::expired;
    if (now > m.valid_until) return secret_state::grace;
    return secret_state::active;
}

std::size_t secret_set::sweep(std::int64_t now) noexcept {
    std::size_t swept = 0;
    for (std::size_t i = 0; i < count_; ++i) {
        slot& s = *slots_[i];
        if (s.key && state_at(s.meta, now) == secret_state::expired) {
            s.key.reset();  // the key schedule lives in a secure_buffer: zeroized here
            s.meta.state = secret_state::expired;
            ++swept;
        }
    }
    return swept;
}

std::string_view to_string(secret_state s) noexcept {
    switch (s) {
        case secret_state::active: return "active";
        case secret_state::grace: return "grace";
        case secret_state::invalidated: return "invalidated";
        case secret_state::expired: return "expired";
    }
    return "unknown";
}

bool parse_version(std::string_view text, std::uint64_t& out) noexcept {
    if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
    std::uint64_t v = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

expected<signing_key_set, std::string> parse_signing_keys(std::string_view json_text, std::string_view source) {
    std::string text(json_text);
    auto toks = tokens_for(text.size());
    const json::parse_result pr = json::parse(text, toks);
    if (pr.err != json::error::none) return err(parse_error_text(source, pr));
    const json::document d{std::span<const json::token>(toks).first(pr.count)};
    const std::size_t keys = LA_TRY(jwks_keys(d, source));

    signing_key_set set;
    std::size_t index = 0;
    for (const json::member m : d.children(keys)) {
        const std::size_t k = m.value;
        std::string where = fmt::format("{}: keys[{}]", source, index++);
        if (d[k].kind != json::type::object) return err(fmt::format("{}: expected a JWK object", where));
        const std::string_view kid = LA_TRY(string_member(d, k, "kid", where));
        where += fmt::format(" (kid \"{}\")", kid);
        const std::string_view kty = LA_TRY(string_member(d, k, "kty", where));
        if (kty != "OKP") return err(fmt::format("{}: \"kty\" must be \"OKP\", got \"{}\"", where, kty));
        const std::string_view crv = LA_TRY(string_member(d, k, "crv", where));
        if (crv != "Ed25519") return err(fmt::format("{}: \"crv\" must be \"Ed25519\", got \"{}\"", where, crv));
        if (d.find(k, "d"))
            return err(fmt::format("{}: contains a private key (\"d\"); publish only public keys", where));
        if (auto r = optional_member_is(d, k, "alg", "EdDSA", where); !r) return err(std::move(r.error()));
        if (auto r = optional_member_is(d, k, "use", "sig", where); !r) return err(std::move(r.error()));
        const std::string_view x = LA_TRY(string_member(d, k, "x", where));
        std::array<std::byte, 33> raw{};
        const auto n = crypto::base64url_decode(x, raw);
        if (!n || *n != 32) return err(fmt::format("{}: \"x\" must be base64url of 32 bytes", where));
        auto key = crypto::ed25519_public_key::import(std::span(raw).first(32));
        if (!key) return err(fmt::format("{}: \"x\" is not a valid Ed25519 public key", where));
        auto added = set.add(kid, *key);
        if (!added) return err(fmt::format("{}: {}", where, added.error()));
    }
    return set;
}

expected<signing_key_set, std::string> load_signing_keys(const std::filesystem::path& path) {
    auto text = detail::read_file(path, detail::file_access::shared);
    if (!text) return err(std::move(text.error()));
    return parse_signing_keys(*text, path.string());
}

expected<void, std::string> for_each_secret(std::span<char> text, std::string_view source,
                                            const secret_visitor& visit) {
    auto toks = tokens_for(text.size());
    const json::parse_result pr = json::parse(text, toks);
    if (pr.err != json::error::none) return err(parse_error_text(source, pr));
    const json::document d{std::span<const json::token>(toks).first(pr.count)};
    const std::size_t keys = LA_TRY(jwks_keys(d, source));

    // Decoded key bytes go to locked, non-dumpable memory wiped on every return path.
    auto raw = crypto::secure_buffer::allocate(33);
    if (!raw) return err(fmt::format("{}: cannot allocate secure memory: {}", source, raw.error().message()));

    std::size_t index = 0;
    for (const json::member m : d.children(keys)) {
        const std::size_t k = m.value;
        std::string where = fmt::format("{}: keys[{}]", source, index++);
        if (d[k].kind != json::type::object) return err(fmt::format("{}: expected a JWK object", where));
        const std::string_view kid = LA_TRY(string_member(d, k, "kid", where));
        where += fmt::format(" (kid \"{}\")", kid);
        std::uint64_t version = 0;
        if (!parse_version(kid, version))
            return err(fmt::format("{}: \"kid\" must be the secret version as a decimal string", where));
        const std::string_view kty = LA_TRY(string_member(d, k, "kty", where));
        if (kty != "oct") return err(fmt::format("{}: \"kty\" must be \"oct\", got \"{}\"", where, kty));
        // The key bytes themselves never appear in an error message.
        const std::string_view kb = LA_TRY(string_member(d, k, "k", where));
        const auto n = crypto::base64url_decode(kb, raw->bytes());
        if (!n || *n != 32) {
            crypto::secure_zero(raw->data(), raw->size());
            return err(fmt::format("{}: \"k\" must be base64url of 32 bytes", where));
        }
        secret_meta meta;
        for (auto [name, field] : {std::pair{"valid_from", &meta.valid_from},
                                   std::pair{"valid_until", &meta.valid_until},
                                   std::pair{"grace_until", &meta.grace_until}}) {
            const auto v = d.find(k, name);
            if (!v) continue;
            if (d[*v].kind != json::type::number || !json::to_numeric_date(d[*v].text, *field))
                return err(fmt::format("{}: \"{}\" must be a NumericDate (Unix seconds)", where, name));
        }
        if (const auto st = d.find(k, "state")) {
            const std::string_view state = d[*st].kind == json::type::string ? d[*st].text : "";
            if (state == "active") meta.state = secret_state::active;
            else if (state == "grace") meta.state = secret_state::grace;
            else if (state == "invalidated") meta.state = secret_state::invalidated;
            else return err(fmt::format("{}: \"state\" must be \"active\", \"grace\" or \"invalidated\"", where));
        }
        if (meta.grace_until < meta.valid_until)
            return err(fmt::format("{}: grace_until is before valid_until", where));
        auto visited = visit(version, raw->bytes().first(32), meta);
        crypto::secure_zero(raw->data(), raw->size());
        if (!visited) return err(fmt::format("{}: {}", where, visited.error()));
    }
    return {};
}

expected<secret_set, std::string> parse_secrets(std::span<char> text, std::string_view source) {
    secret_set set;
    auto visited = for_each_secret(
        text, source,
        [&set](std::uint64_t version, std::span<const std::byte> key,
               const secret_meta& meta) -> expected<void, std::string> {
            auto k = crypto::aes256_gcm_key::create(key);
            if (!k) return err(fmt::format("cannot load the key: {}", k.error().message()));
            return set.add(version, std::move(*k), meta);
        });
    if (!visited) return err(std::move(visited.error()));
    return set;
}

expected<secret_set, std::string> file_secret_store::load() {
    auto buf = detail::read_secret_file(path_);
    if (!buf) return err(std::move(buf.error()));
    const std::span<std::byte> bytes = buf->bytes();
    // Parsed in place inside the secure buffer; its destructor wipes the base64 text too.
    return parse_secrets({reinterpret_cast<char*>(bytes.data()), bytes.size()}, path_.string());
}

}  // namespace la::core
