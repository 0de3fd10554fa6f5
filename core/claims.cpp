#include "core/claims.hpp"

namespace la::core {
namespace {

status from_json_error(json::error e) noexcept {
    return e == json::error::too_many_tokens ? status::too_large : status::malformed;
}

bool get_string(const json::document& d, std::size_t i, std::string_view& out) noexcept {
    if (d[i].kind != json::type::string) return false;
    out = d[i].text;
    return true;
}

bool get_date(const json::document& d, std::size_t i, std::int64_t& out) noexcept {
    return d[i].kind == json::type::number && json::to_numeric_date(d[i].text, out);
}

// Fills a fixed array from a JSON array of strings.
template <std::size_t N>
status get_string_array(const json::document& d, std::size_t i, std::array<std::string_view, N>& buf,
                        std::size_t& count) noexcept {
    if (d[i].kind != json::type::array) return status::malformed;
    if (d[i].size > N) return status::too_large;
    count = 0;
    for (const json::member m : d.children(i)) {
        if (d[m.value].kind != json::type::string) return status::malformed;
        buf[count++] = d[m.value].text;
    }
    return status::valid;
}

}  // namespace

status parse_claims(std::span<char> text, std::span<json::token> scratch, claims& out) noexcept {
    const json::parse_result pr = json::parse(text, scratch);
    if (pr.err != json::error::none) return from_json_error(pr.err);
    const json::document d(scratch.first(pr.count));
    if (d[0].kind != json::type::object) return status::malformed;

    out = claims{};
    bool has_jti = false, has_iss = false, has_sub = false, has_product = false, has_type = false,
         has_iat = false;
    bool exp_null = false;
    for (const json::member m : d.children(0)) {
        const std::size_t v = m.value;
        const std::string_view k = m.key;
        bool ok = true;
        if (k == "jti") {
            ok = has_jti = get_string(d, v, out.jti);
        } else if (k == "iss") {
            ok = has_iss = get_string(d, v, out.iss);
        } else if (k == "sub") {
            ok = has_sub = get_string(d, v, out.sub);
        } else if (k == "product") {
            ok = has_product = get_string(d, v, out.product);
        } else if (k == "instance") {
            ok = get_string(d, v, out.instance);
        } else if (k == "lic_type") {
            std::string_view t;
            ok = get_string(d, v, t);
            if (t == "perpetual") {
                out.type = lic_type::perpetual;
            } else if (t == "subscription") {
                out.type = lic_type::subscription;
            } else if (t == "demo") {
                out.type = lic_type::demo;
            } else {
                ok = false;
            }
            has_type = ok;
        } else if (k == "iat") {
            ok = has_iat = get_date(d, v, out.iat);
        } else if (k == "nbf") {
            ok = out.has_nbf = get_date(d, v, out.nbf);
        } else if (k == "exp") {
            if (d[v].kind == json::type::null) {
                exp_null = true;
            } else {
                ok = out.has_exp = get_date(d, v, out.exp);
            }
        } else if (k == "features") {
            const status s = get_string_array(d, v, out.feature_buf, out.feature_count);
            if (s != status::valid) return s;
        } else if (k == "versions") {
            const status s = get_string_array(d, v, out.version_buf, out.version_count);
            if (s != status::valid) return s;
        } else if (k == "meta") {
            if (d[v].kind != json::type::object) return status::malformed;
            if (d[v].size > claims::max_meta) return status::too_large;
            for (const json::member e : d.children(v)) {
                if (d[e.value].kind != json::type::string) return status::malformed;
                out.meta_buf[out.meta_count++] = meta_entry{e.key, d[e.value].text};
            }
        }
        if (!ok) return status::malformed;
    }
    if (!(has_jti && has_iss && has_sub && has_product && has_type && has_iat)) return status::malformed;
    // An empty license id, customer or product cannot identify anything.
    if (out.jti.empty() || out.sub.empty() || out.product.empty()) return status::malformed;
    // `exp` may be absent or null only on perpetual licenses.
    if (!out.has_exp && out.type != lic_type::perpetual) return status::malformed;
    if (exp_null && out.type != lic_type::perpetual) return status::malformed;
    return status::valid;
}

}  // namespace la::core
