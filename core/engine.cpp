#include "core/engine.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "crypto/base64url.hpp"
#include "crypto/siphash.hpp"

namespace la::core {
namespace {

// Every part of a token decodes into buffers of this size, so no input can overflow them.
constexpr std::size_t max_decoded = crypto::base64url_decoded_max(max_token_bytes);

// The validation cache. Set-associative, 4 ways, LRU within a set by a global use stamp.
// Keyed by SipHash-2-4-128 of the whole token under a per-engine random key, plus the
// token's length. Why SipHash and not SHA-256: SHA-256 costs about 2.2 us per 512-byte
// token here (wolfSSL without asm), SipHash about a tenth of that; what we need is not
// collision resistance against someone who knows the function but a PRF: without the
// key nobody can aim tokens at one set (flooding) or forge a 128-bit tag collision, so a
// tag match is taken as "same token" and the token itself is not stored.
constexpr std::size_t cache_ways = 4;
// Strings of one cached claims set (2-byte length prefix each); bigger ones are not cached.
// Typical licenses need 300-600 bytes; the blob array is not touched until used, so a big
// cache costs resident memory only as it fills.
constexpr std::size_t cache_blob_bytes = 2048;

struct cache_tag {
    std::array<std::byte, 16> hash;
    std::uint64_t stamp;  // 0 = empty slot
    std::uint32_t token_len;
};

struct cache_blob {
    std::int64_t iat, nbf, exp;
    bool has_nbf, has_exp;
    lic_type type;
    std::uint8_t features, versions, meta;
    std::array<char, cache_blob_bytes> data;
};

struct jose_header {
    std::string_view alg, enc, kid;
    bool has_alg = false, has_enc = false, has_kid = false, has_zip = false, has_crit = false;
};

status from_json_error(json::error e) noexcept {
    return e == json::error::too_many_tokens ? status::too_large : status::malformed;
}

std::span<const std::byte> bytes_of(std::string_view s) noexcept {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

bool decode(std::string_view in, std::span<std::byte> out, std::size_t& n) noexcept {
    const auto r = crypto::base64url_decode(in, out);
    if (!r) return false;
    n = *r;
    return true;
}

// Reads the protected header's members we act on. Other members are ignored (RFC 7515 §4).
// `crit`: we implement no extension header, so a well-formed `crit` (a non-empty array of
// strings) means the token relies on something we do not understand and must be rejected
// (RFC 7515 §4.1.11): reported as unsupported_alg ("uses a mechanism we do not support"),
// like an unknown `alg` or `zip`. A `crit` that is not such an array is malformed.
status parse_header(std::span<char> text, std::span<json::token> toks, jose_header& h) noexcept {
    const json::parse_result pr = json::parse(text, toks);
    if (pr.err != json::error::none) return from_json_error(pr.err);
    const json::document d(toks.first(pr.count));
    if (d[0].kind != json::type::object) return status::malformed;
    for (const json::member m : d.children(0)) {
        const json::token& v = d[m.value];
        if (m.key == "alg" || m.key == "enc" || m.key == "kid") {
            if (v.kind != json::type::string) return status::malformed;
            if (m.key == "alg") {
                h.alg = v.text;
                h.has_alg = true;
            } else if (m.key == "enc") {
                h.enc = v.text;
                h.has_enc = true;
            } else {
                h.kid = v.text;
                h.has_kid = true;
            }
        } else if (m.key == "zip") {
            h.has_zip = true;
        } else if (m.key == "crit") {
            if (v.kind != json::type::array || v.size == 0) return status::malformed;
            for (const json::member e : d.children(m.value)) {
                if (d[e.value].kind != json::type::string) return status::malformed;
            }
            h.has_crit = true;
        }
    }
    return status::valid;
}

std::int64_t sat_add(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
    return r;
}

std::size_t round_up_pow2(std::size_t n) noexcept {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

// Length-prefixed string packing for cache blobs.
class blob_writer {
public:
    explicit blob_writer(std::array<char, cache_blob_bytes>& d) noexcept : d_(d) {}
    void put(std::string_view s) noexcept {
        const auto n = static_cast<std::uint16_t>(s.size());
        std::memcpy(d_.data() + pos_, &n, sizeof n);
        if (!s.empty()) std::memcpy(d_.data() + pos_ + sizeof n, s.data(), s.size());
        pos_ += sizeof n + s.size();
    }

private:
    std::array<char, cache_blob_bytes>& d_;
    std::size_t pos_ = 0;
};

class blob_reader {
public:
    explicit blob_reader(const std::array<char, cache_blob_bytes>& d) noexcept : d_(d) {}
    std::string_view get() noexcept {
        std::uint16_t n = 0;
        std::memcpy(&n, d_.data() + pos_, sizeof n);
        const std::string_view s(d_.data() + pos_ + sizeof n, n);
        pos_ += sizeof n + n;
        return s;
    }

private:
    const std::array<char, cache_blob_bytes>& d_;
    std::size_t pos_ = 0;
};

std::size_t packed_size(const claims& c) noexcept {
    std::size_t n = 0;
    const auto add = [&n](std::string_view s) { n += 2 + s.size(); };
    add(c.jti);
    add(c.iss);
    add(c.sub);
    add(c.product);
    add(c.instance);
    for (const auto f : c.features()) add(f);
    for (const auto v : c.versions()) add(v);
    for (const auto& m : c.meta()) {
        add(m.key);
        add(m.value);
    }
    return n;
}

}  // namespace

struct engine::state {
    engine_options opt;
    signing_key_set signing;
    secret_set secrets;
    const io::clock* clk;
    crypto::siphash_key hash_key = crypto::siphash_key::random();
    counters stats{};

    // Scratch, reused by every validate(): decoded header, decoded payload or plaintext,
    // decoded JWE ciphertext, JSON tokens, and the claims the last answer points into.
    std::array<char, max_decoded> header_buf{};
    std::array<char, max_decoded> payload_buf{};
    std::array<std::byte, max_decoded> ct_buf{};
    std::array<json::token, claims_json_tokens> toks{};
    claims cur{};

    std::unique_ptr<cache_tag[]> tags;
    std::unique_ptr<cache_blob[]> blobs;
    std::size_t sets = 0;  // 0 = cache disabled
    std::uint64_t tick = 0;

    state(engine_options o, signing_key_set sk, secret_set sec, const io::clock& c)
        : opt(std::move(o)), signing(std::move(sk)), secrets(std::move(sec)), clk(&c) {
        opt.leeway_seconds = std::max<std::int64_t>(opt.leeway_seconds, 0);
        if (opt.cache_entries > 0) {
            const std::size_t slots = round_up_pow2(std::max(opt.cache_entries, cache_ways));
            sets = slots / cache_ways;
            tags = std::make_unique<cache_tag[]>(slots);
            // Not value-initialised on purpose: pages stay untouched until a slot is used.
            blobs = std::make_unique_for_overwrite<cache_blob[]>(slots);
        }
    }

    void flush() noexcept {
        for (std::size_t i = 0; i < sets * cache_ways; ++i) tags[i] = cache_tag{};
        tick = 0;
    }

    std::size_t set_base(const std::array<std::byte, 16>& h) const noexcept {
        std::uint64_t lo = 0;
        std::memcpy(&lo, h.data(), sizeof lo);
        return static_cast<std::size_t>(lo & (sets - 1)) * cache_ways;
    }

    bool cache_lookup(const std::array<std::byte, 16>& h, std::size_t len) noexcept {
        const std::size_t base = set_base(h);
        for (std::size_t w = 0; w < cache_ways; ++w) {
            cache_tag& t = tags[base + w];
            if (t.stamp != 0 && t.token_len == len && t.hash == h) {
                t.stamp = ++tick;
                load(blobs[base + w]);
                return true;
            }
        }
        return false;
    }

    void cache_insert(const std::array<std::byte, 16>& h, std::size_t len) noexcept {
        if (packed_size(cur) > cache_blob_bytes) return;
        const std::size_t base = set_base(h);
        std::size_t victim = base;
        for (std::size_t w = 0; w < cache_ways; ++w) {
            if (tags[base + w].stamp < tags[victim].stamp) victim = base + w;
        }
        cache_blob& b = blobs[victim];
        b.iat = cur.iat;
        b.nbf = cur.nbf;
        b.exp = cur.exp;
        b.has_nbf = cur.has_nbf;
        b.has_exp = cur.has_exp;
        b.type = cur.type;
        b.features = static_cast<std::uint8_t>(cur.feature_count);
        b.versions = static_cast<std::uint8_t>(cur.version_count);
        b.meta = static_cast<std::uint8_t>(cur.meta_count);
        blob_writer w(b.data);
        w.put(cur.jti);
        w.put(cur.iss);
        w.put(cur.sub);
        w.put(cur.product);
        w.put(cur.instance);
        for (const auto f : cur.features()) w.put(f);
        for (const auto v : cur.versions()) w.put(v);
        for (const auto& m : cur.meta()) {
            w.put(m.key);
            w.put(m.value);
        }
        tags[victim] = cache_tag{h, ++tick, static_cast<std::uint32_t>(len)};
    }

    // Points `cur` into a cache blob.
    void load(const cache_blob& b) noexcept {
        cur.iat = b.iat;
        cur.nbf = b.nbf;
        cur.exp = b.exp;
        cur.has_nbf = b.has_nbf;
        cur.has_exp = b.has_exp;
        cur.type = b.type;
        cur.feature_count = b.features;
        cur.version_count = b.versions;
        cur.meta_count = b.meta;
        blob_reader r(b.data);
        cur.jti = r.get();
        cur.iss = r.get();
        cur.sub = r.get();
        cur.product = r.get();
        cur.instance = r.get();
        for (std::size_t i = 0; i < cur.feature_count; ++i) cur.feature_buf[i] = r.get();
        for (std::size_t i = 0; i < cur.version_count; ++i) cur.version_buf[i] = r.get();
        for (std::size_t i = 0; i < cur.meta_count; ++i) {
            cur.meta_buf[i].key = r.get();
            cur.meta_buf[i].value = r.get();
        }
    }

    status decode_header(std::string_view h64, jose_header& h) noexcept {
        std::size_t n = 0;
        if (!decode(h64, std::as_writable_bytes(std::span(header_buf)), n)) return status::malformed;
        return parse_header(std::span(header_buf).first(n), toks, h);
    }

    // Checks every claim against configuration, clock and request. Runs on cache hits too.
    status check(const validate_request& req, token_kind kind, validation& out) const noexcept {
        const claims& c = cur;
        out.has_claims = true;
        out.lic = license_view{c.jti,     c.sub,   c.product, c.type,       kind, c.has_exp,
                               c.has_exp ? c.exp : 0, c.iat, c.features(), c.meta()};
        const std::int64_t now = clk->now_unix();
        const std::int64_t leeway = opt.leeway_seconds;
        if (c.iss != opt.issuer) return status::wrong_issuer;
        if (c.has_nbf && c.nbf > sat_add(now, leeway)) return status::not_yet_valid;
        if (c.has_exp && c.exp <= sat_add(now, -leeway)) return status::expired;
        if (!req.product.empty() && req.product != c.product) return status::wrong_product;
        const std::string_view expected_instance = req.instance.empty() ? std::string_view(opt.instance) : req.instance;
        if (!c.instance.empty() && expected_instance != c.instance) return status::wrong_instance;
        if (!req.feature.empty()) {
            const auto f = c.features();
            if (std::find(f.begin(), f.end(), req.feature) == f.end()) return status::feature_not_granted;
        }
        return status::valid;
    }

    status signed_token(const validate_request& req, const std::array<std::size_t, 4>& dots,
                        validation& out) noexcept {
        const std::string_view tok = req.token;
        std::array<std::byte, 16> h{};
        if (sets != 0) {
            h = crypto::siphash128(hash_key, bytes_of(tok));
            if (cache_lookup(h, tok.size())) {
                ++stats.cache_hits;
                return check(req, token_kind::signed_jws, out);
            }
            ++stats.cache_misses;
        }
        jose_header hdr;
        if (const status st = decode_header(tok.substr(0, dots[0]), hdr); st != status::valid) return st;
        if (!hdr.has_alg) return status::malformed;
        if (hdr.alg != "EdDSA" || hdr.has_crit) return status::unsupported_alg;
        if (!hdr.has_kid) return status::malformed;
        const crypto::ed25519_public_key* key = signing.find(hdr.kid);
        if (key == nullptr) return status::unknown_key;

        std::array<std::byte, 64> sig{};
        std::size_t n = 0;
        if (!decode(tok.substr(dots[1] + 1), sig, n) || n != sig.size()) return status::malformed;
        std::size_t pn = 0;
        if (!decode(tok.substr(dots[0] + 1, dots[1] - dots[0] - 1), std::as_writable_bytes(std::span(payload_buf)), pn))
            return status::malformed;
        // The signing input is the ASCII of "header.payload" exactly as received (RFC 7515 §5.2).
        if (!key->verify(bytes_of(tok.substr(0, dots[1])), sig)) return status::bad_signature;

        if (const status st = parse_claims(std::span(payload_buf).first(pn), toks, cur); st != status::valid) return st;
        if (sets != 0) cache_insert(h, tok.size());
        return check(req, token_kind::signed_jws, out);
    }

    status sealed_token(const validate_request& req, const std::array<std::size_t, 4>& dots,
                        validation& out) noexcept {
        const std::string_view tok = req.token;
        const auto part = [&](std::size_t i) {
            const std::size_t b = dots[i - 1] + 1;
            const std::size_t e = i < 4 ? dots[i] : tok.size();
            return tok.substr(b, e - b);
        };
        const std::string_view h64 = tok.substr(0, dots[0]);
        jose_header hdr;
        if (const status st = decode_header(h64, hdr); st != status::valid) return st;
        if (!hdr.has_alg || !hdr.has_enc) return status::malformed;
        // No compression: we do not support `zip` (and decompression invites bombs).
        if (hdr.alg != "dir" || hdr.enc != "A256GCM" || hdr.has_zip || hdr.has_crit) return status::unsupported_alg;
        if (!hdr.has_kid) return status::malformed;
        std::uint64_t version = 0;
        if (!parse_version(hdr.kid, version)) return status::unknown_key;
        const secret_meta* meta = secrets.meta(version);
        if (meta == nullptr) return status::unknown_key;
        // GRACE secrets still open tokens; past grace_until (leeway allowed) they fail closed,
        // swept or not.
        const std::int64_t now = sat_add(clk->now_unix(), -opt.leeway_seconds);
        switch (secret_set::state_at(*meta, now)) {
            case secret_state::invalidated: return status::secret_invalidated;
            case secret_state::expired: return status::secret_expired;
            case secret_state::active:
            case secret_state::grace: break;
        }
        const crypto::aes256_gcm_key* key = secrets.find(version);
        if (key == nullptr) return status::secret_expired;  // swept

        // With "dir" the JWE Encrypted Key must be empty (RFC 7516 §5.1 step 6).
        if (!part(1).empty()) return status::malformed;
        std::array<std::byte, 12> iv{};
        std::array<std::byte, 16> tag{};
        std::size_t n = 0;
        if (!decode(part(2), iv, n) || n != iv.size()) return status::malformed;
        if (!decode(part(4), tag, n) || n != tag.size()) return status::malformed;
        std::size_t cn = 0;
        if (!decode(part(3), ct_buf, cn)) return status::malformed;

        // AAD = ASCII of the encoded protected header (RFC 7516 §5.1 step 14).
        const auto plain = std::as_writable_bytes(std::span(payload_buf)).first(cn);
        const auto r = key->decrypt(iv, bytes_of(h64), std::span(ct_buf).first(cn), tag, plain);
        if (!r) return r.error() == errc::auth_failed ? status::bad_signature : status::internal_error;

        if (const status st = parse_claims(std::span(payload_buf).first(cn), toks, cur); st != status::valid) return st;
        return check(req, token_kind::sealed_jwe, out);
    }

    status run(const validate_request& req, validation& out) noexcept {
        const std::string_view tok = req.token;
        if (tok.size() > max_token_bytes) return status::too_large;
        std::array<std::size_t, 4> dots{};
        std::size_t n = 0;
        // find() is memchr: a byte loop here was a third of the cached path's CPU.
        for (std::size_t i = tok.find('.'); i != std::string_view::npos; i = tok.find('.', i + 1)) {
            if (n == dots.size()) return status::malformed;
            dots[n++] = i;
        }
        if (n == 2) return signed_token(req, dots, out);
        if (n == 4) return sealed_token(req, dots, out);
        return status::malformed;
    }
};

engine::engine(engine_options opts, signing_key_set signing, secret_set secrets, const io::clock& clk)
    : s_(std::make_unique<state>(std::move(opts), std::move(signing), std::move(secrets), clk)) {}

engine::engine(engine&&) noexcept = default;
engine& engine::operator=(engine&&) noexcept = default;
engine::~engine() = default;

validation engine::validate(const validate_request& req) noexcept {
    state& s = *s_;
    ++s.stats.validations;
    validation out{status::internal_error, false, {}};
    out.st = s.run(req, out);
    ++(out.st == status::valid ? s.stats.valid : s.stats.invalid);
    return out;
}

std::size_t engine::sweep_secrets() noexcept { return s_->secrets.sweep(s_->clk->now_unix()); }

void engine::replace_keys(signing_key_set signing, secret_set secrets) {
    s_->signing = std::move(signing);
    s_->secrets = std::move(secrets);
    s_->flush();
}

const engine::counters& engine::stats() const noexcept { return s_->stats; }

}  // namespace la::core
