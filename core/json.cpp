#include "core/json.hpp"

#include <limits>

#include <fmt/format.h>

namespace la::core::json {
namespace {

constexpr bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr unsigned char byte_at(const char* p) noexcept { return static_cast<unsigned char>(*p); }

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Recursive descent; recursion depth is bounded by max_depth.
struct parser {
    char* buf;
    std::size_t len;
    token* out;
    std::size_t cap;
    std::size_t max_depth;
    std::size_t pos = 0;
    std::size_t n = 0;
    error err = error::none;

    bool fail(error e) noexcept {
        if (err == error::none) err = e;
        return false;
    }

    void skip_ws() noexcept {
        while (pos < len && is_ws(buf[pos])) ++pos;
    }

    bool alloc_token(std::size_t& idx) noexcept {
        if (n >= cap) return fail(error::too_many_tokens);
        idx = n++;
        return true;
    }

    // Reads 4 hex digits at pos.
    bool hex4(std::uint32_t& v) noexcept {
        if (len - pos < 4) return fail(error::syntax);
        v = 0;
        for (int i = 0; i < 4; ++i) {
            const int h = hex_value(buf[pos++]);
            if (h < 0) return fail(error::syntax);
            v = (v << 4) | static_cast<std::uint32_t>(h);
        }
        return true;
    }

    static std::size_t put_utf8(char* w, std::uint32_t cp) noexcept {
        if (cp < 0x80) {
            w[0] = static_cast<char>(cp);
            return 1;
        }
        if (cp < 0x800) {
            w[0] = static_cast<char>(0xC0 | (cp >> 6));
            w[1] = static_cast<char>(0x80 | (cp & 0x3F));
            return 2;
        }
        if (cp < 0x10000) {
            w[0] = static_cast<char>(0xE0 | (cp >> 12));
            w[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            w[2] = static_cast<char>(0x80 | (cp & 0x3F));
            return 3;
        }
        w[0] = static_cast<char>(0xF0 | (cp >> 18));
        w[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        w[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        w[3] = static_cast<char>(0x80 | (cp & 0x3F));
        return 4;
    }

    // Length of the valid UTF-8 sequence at pos (lead byte >= 0x80), or 0 (RFC 3629 table).
    std::size_t utf8_seq() const noexcept {
        const unsigned char b0 = byte_at(buf + pos);
        std::size_t need = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            need = 1;
        } else if (b0 == 0xE0) {
            need = 2;
            lo = 0xA0;
        } else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
            need = 2;
        } else if (b0 == 0xED) {
            need = 2;
            hi = 0x9F;
        } else if (b0 == 0xF0) {
            need = 3;
            lo = 0x90;
        } else if (b0 >= 0xF1 && b0 <= 0xF3) {
            need = 3;
        } else if (b0 == 0xF4) {
            need = 3;
            hi = 0x8F;
        } else {
            return 0;
        }
        if (len - pos - 1 < need) return 0;
        const unsigned char b1 = byte_at(buf + pos + 1);
        if (b1 < lo || b1 > hi) return 0;
        for (std::size_t i = 2; i <= need; ++i) {
            const unsigned char b = byte_at(buf + pos + i);
            if (b < 0x80 || b > 0xBF) return 0;
        }
        return need + 1;
    }

    // pos is on the opening quote. Unescapes in place: the write cursor never passes the read cursor.
    bool string(std::string_view& v) noexcept {
        ++pos;
        char* const start = buf + pos;
        char* w = start;
        for (;;) {
            if (pos >= len) return fail(error::syntax);
            const char c = buf[pos];
            const unsigned char uc = static_cast<unsigned char>(c);
            if (c == '"') {
                ++pos;
                v = std::string_view(start, static_cast<std::size_t>(w - start));
                return true;
            }
            if (uc < 0x20) return fail(error::syntax);
            if (uc >= 0x80) {
                const std::size_t k = utf8_seq();
                if (k == 0) return fail(error::syntax);
                for (std::size_t i = 0; i < k; ++i) *w++ = buf[pos++];
                continue;
            }
            if (c != '\\') {
                *w++ = c;
                ++pos;
                continue;
            }
            ++pos;
            if (pos >= len) return fail(error::syntax);
            const char e = buf[pos++];
            switch (e) {
                case '"': *w++ = '"'; break;
                case '\\': *w++ = '\\'; break;
                case '/': *w++ = '/'; break;
                case 'b': *w++ = '\b'; break;
                case 'f': *w++ = '\f'; break;
                case 'n': *w++ = '\n'; break;
                case 'r': *w++ = '\r'; break;
                case 't': *w++ = '\t'; break;
                case 'u': {
                    std::uint32_t cp = 0;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(error::syntax);  // lone low surrogate
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (len - pos < 2 || buf[pos] != '\\' || buf[pos + 1] != 'u')
                            return fail(error::syntax);
                        pos += 2;
                        std::uint32_t lo = 0;
                        if (!hex4(lo)) return false;
                        if (lo < 0xDC00 || lo > 0xDFFF) return fail(error::syntax);
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    w += put_utf8(w, cp);
                    break;
                }
                default: return fail(error::syntax);
            }
        }
    }

    bool number(std::string_view& v) noexcept {
        const std::size_t start = pos;
        if (buf[pos] == '-') ++pos;
        if (pos >= len || !is_digit(buf[pos])) return fail(error::syntax);
        if (buf[pos] == '0') {
            ++pos;
        } else {
            while (pos < len && is_digit(buf[pos])) ++pos;
        }
        if (pos < len && buf[pos] == '.') {
            ++pos;
            if (pos >= len || !is_digit(buf[pos])) return fail(error::syntax);
            while (pos < len && is_digit(buf[pos])) ++pos;
        }
        if (pos < len && (buf[pos] == 'e' || buf[pos] == 'E')) {
            ++pos;
            if (pos < len && (buf[pos] == '+' || buf[pos] == '-')) ++pos;
            if (pos >= len || !is_digit(buf[pos])) return fail(error::syntax);
            while (pos < len && is_digit(buf[pos])) ++pos;
        }
        v = std::string_view(buf + start, pos - start);
        return true;
    }

    bool literal(std::string_view lit) noexcept {
        if (len - pos < lit.size() || std::string_view(buf + pos, lit.size()) != lit)
            return fail(error::syntax);
        pos += lit.size();
        return true;
    }

    // O(n^2) over the keys of one object; the token cap bounds n on untrusted input.
    bool check_duplicates(std::size_t obj) noexcept {
        const std::size_t end = n;
        for (std::size_t k = obj + 1; k < end; k = out[k + 1].next) {
            for (std::size_t j = obj + 1; j < k; j = out[j + 1].next) {
                if (out[j].text == out[k].text) return fail(error::duplicate_key);
            }
        }
        return true;
    }

    bool value(std::size_t depth) noexcept {
        skip_ws();
        if (pos >= len) return fail(error::syntax);
        std::size_t idx = 0;
        if (!alloc_token(idx)) return false;
        token& t = out[idx];
        t = token{type::null, 0, 0, {}};
        const char c = buf[pos];
        if (c == '{' || c == '[') {
            const bool obj = c == '{';
            const char close = obj ? '}' : ']';
            if (depth >= max_depth) return fail(error::too_deep);
            t.kind = obj ? type::object : type::array;
            ++pos;
            skip_ws();
            std::uint32_t count = 0;
            if (pos < len && buf[pos] == close) {
                ++pos;
            } else {
                for (;;) {
                    if (obj) {
                        skip_ws();
                        if (pos >= len || buf[pos] != '"') return fail(error::syntax);
                        std::size_t k = 0;
                        if (!alloc_token(k)) return false;
                        std::string_view key;
                        if (!string(key)) return false;
                        out[k] = token{type::string, 0, static_cast<std::uint32_t>(k + 1), key};
                        skip_ws();
                        if (pos >= len || buf[pos] != ':') return fail(error::syntax);
                        ++pos;
                    }
                    if (!value(depth + 1)) return false;
                    ++count;
                    skip_ws();
                    if (pos >= len) return fail(error::syntax);
                    if (buf[pos] == ',') {
                        ++pos;
                        continue;
                    }
                    if (buf[pos] == close) {
                        ++pos;
                        break;
                    }
                    return fail(error::syntax);
                }
            }
            out[idx].size = count;
            if (obj && !check_duplicates(idx)) return false;
        } else if (c == '"') {
            std::string_view s;
            if (!string(s)) return false;
            out[idx].kind = type::string;
            out[idx].text = s;
        } else if (c == '-' || is_digit(c)) {
            std::string_view s;
            if (!number(s)) return false;
            out[idx].kind = type::number;
            out[idx].text = s;
        } else if (c == 't') {
            if (!literal("true")) return false;
            out[idx].kind = type::true_value;
        } else if (c == 'f') {
            if (!literal("false")) return false;
            out[idx].kind = type::false_value;
        } else if (c == 'n') {
            if (!literal("null")) return false;
            out[idx].kind = type::null;
        } else {
            return fail(error::syntax);
        }
        out[idx].next = static_cast<std::uint32_t>(n);
        return true;
    }
};

}  // namespace

parse_result parse(std::span<char> text, std::span<token> out, std::size_t max_depth) noexcept {
    if (text.size() > std::numeric_limits<std::uint32_t>::max() ||
        out.size() > std::numeric_limits<std::uint32_t>::max())
        return {error::too_many_tokens, 0, 0};
    parser p{text.data(), text.size(), out.data(), out.size(), max_depth};
    if (p.value(0)) {
        p.skip_ws();
        if (p.pos != p.len) p.fail(error::syntax);
    }
    return {p.err, p.err == error::none ? p.n : 0, p.pos};
}

std::optional<std::size_t> document::find(std::size_t obj, std::string_view key) const noexcept {
    for (const member m : children(obj)) {
        if (m.key == key) return m.value;
    }
    return std::nullopt;
}

bool to_int64(std::string_view s, std::int64_t& out) noexcept {
    std::size_t i = 0;
    const bool neg = !s.empty() && s[0] == '-';
    if (neg) i = 1;
    if (i >= s.size()) return false;
    // Accumulate as a negative number so INT64_MIN parses.
    std::int64_t v = 0;
    constexpr std::int64_t min = std::numeric_limits<std::int64_t>::min();
    for (; i < s.size(); ++i) {
        if (!is_digit(s[i])) return false;
        const int d = s[i] - '0';
        if (v < (min + d) / 10) return false;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == min) return false;
        v = -v;
    }
    out = v;
    return true;
}

bool to_numeric_date(std::string_view s, std::int64_t& out) noexcept {
    const std::size_t dot = s.find('.');
    if (s.find_first_of("eE") != std::string_view::npos) return false;
    std::int64_t v = 0;
    if (!to_int64(s.substr(0, dot), v)) return false;
    if (dot != std::string_view::npos) {
        const std::string_view frac = s.substr(dot + 1);
        if (frac.empty()) return false;
        bool nonzero = false;
        for (const char c : frac) {
            if (!is_digit(c)) return false;
            nonzero = nonzero || c != '0';
        }
        if (nonzero && s[0] == '-') {
            if (v == std::numeric_limits<std::int64_t>::min()) return false;
            --v;
        }
    }
    out = v;
    return true;
}

std::string_view to_string(error e) noexcept {
    switch (e) {
        case error::none: return "ok";
        case error::syntax: return "invalid JSON";
        case error::too_deep: return "JSON nested too deeply";
        case error::too_many_tokens: return "JSON has too many values";
        case error::duplicate_key: return "duplicate key in a JSON object";
    }
    return "unknown JSON error";
}

std::string quote(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    for (const char ch : s) {
        switch (ch) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (static_cast<unsigned char>(ch) < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(ch));
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
    return out;
}

}  // namespace la::core::json
