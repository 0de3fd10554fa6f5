#include "cli/cli_support.hpp"

#include <fmt/format.h>

#include <ctime>

namespace la::cli {
namespace {

constexpr std::string_view blanks = " \t\r\n";

std::string_view trim(std::string_view s) {
    const auto b = s.find_first_not_of(blanks);
    if (b == std::string_view::npos) return {};
    return trim_right(s.substr(b));
}

// Parses a TOML basic ("...") or literal ('...') single-line string at the front of v.
std::optional<std::string> parse_toml_string(std::string_view v) {
    if (v.empty() || (v[0] != '"' && v[0] != '\'')) return std::nullopt;
    const char quote = v[0];
    if (v.substr(0, 3) == std::string(3, quote)) return std::nullopt;  // multi-line: unsupported
    std::string out;
    for (std::size_t i = 1; i < v.size(); ++i) {
        const char ch = v[i];
        if (ch == quote) return out;
        if (ch == '\\' && quote == '"') {
            if (++i == v.size()) return std::nullopt;
            switch (v[i]) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'r':
                    out += '\r';
                    break;
                default:
                    return std::nullopt;  // \u escapes are not expected in paths
            }
            continue;
        }
        out += ch;
    }
    return std::nullopt;
}

// The line without a trailing comment; '#' inside a string does not start one.
std::string_view strip_comment(std::string_view line) {
    char quote = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char ch = line[i];
        if (quote != 0) {
            if (ch == '\\' && quote == '"') {
                ++i;
            } else if (ch == quote) {
                quote = 0;
            }
        } else if (ch == '"' || ch == '\'') {
            quote = ch;
        } else if (ch == '#') {
            return line.substr(0, i);
        }
    }
    return line;
}

// A minimal JSON reader that renders objects as indented "key  value" lines.
class status_renderer {
  public:
    explicit status_renderer(std::string_view text) : s_(text) {}

    std::optional<std::string> render() {
        skip_ws();
        if (!object(0)) return std::nullopt;
        skip_ws();
        if (pos_ != s_.size()) return std::nullopt;
        return std::move(out_);
    }

  private:
    int inline_depth_ = 0;
    void skip_ws() {
        while (pos_ < s_.size() && blanks.find(s_[pos_]) != std::string_view::npos) ++pos_;
    }
    bool eat(char c) {
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    std::optional<std::string> string() {
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != '"') return std::nullopt;
        std::string out;
        for (++pos_; pos_ < s_.size(); ++pos_) {
            const char ch = s_[pos_];
            if (ch == '"') {
                ++pos_;
                return out;
            }
            if (ch == '\\') {
                if (++pos_ >= s_.size()) return std::nullopt;
                const char e = s_[pos_];
                if (e == 'u') {  // shown verbatim: the agent's counters are ASCII
                    out += "\\u";
                } else {
                    out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
                }
                continue;
            }
            out += ch;
        }
        return std::nullopt;
    }
    // A scalar or array as display text; objects are handled by object().
    std::optional<std::string> scalar() {
        skip_ws();
        if (pos_ >= s_.size()) return std::nullopt;
        if (s_[pos_] == '"') return string();
        if (s_[pos_] == '{') return inline_object();
        if (s_[pos_] == '[') {
            ++pos_;
            std::string out;
            if (eat(']')) return out;
            do {
                auto v = scalar();
                if (!v) return std::nullopt;
                if (!out.empty()) out += ", ";
                out += *v;
            } while (eat(','));
            if (!eat(']')) return std::nullopt;
            return out;
        }
        const auto start = pos_;
        while (pos_ < s_.size() &&
               std::string_view(",}] \t\r\n").find(s_[pos_]) == std::string_view::npos) {
            ++pos_;
        }
        if (pos_ == start) return std::nullopt;
        return std::string(s_.substr(start, pos_ - start));
    }
    // An object inside an array (a secret in custody.secrets): "key=value key=value".
    std::optional<std::string> inline_object() {
        if (++inline_depth_ > 8 || !eat('{')) return std::nullopt;
        std::string out;
        if (!eat('}')) {
            do {
                auto key = string();
                if (!key || !eat(':')) return std::nullopt;
                auto value = scalar();
                if (!value) return std::nullopt;
                out += fmt::format("{}{}={}", out.empty() ? "" : " ", *key, *value);
            } while (eat(','));
            if (!eat('}')) return std::nullopt;
        }
        --inline_depth_;
        return out;
    }
    bool object(int depth) {
        if (depth > 8 || !eat('{')) return false;
        if (eat('}')) return true;
        do {
            auto key = string();
            if (!key || !eat(':')) return false;
            skip_ws();
            const std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
            if (pos_ < s_.size() && s_[pos_] == '{') {
                out_ += fmt::format("{}{}:\n", indent, *key);
                if (!object(depth + 1)) return false;
                continue;
            }
            auto value = scalar();
            if (!value) return false;
            out_ += fmt::format("{}{:<{}} {}", indent, *key, 24 - depth * 2, *value);
            if (*key == "uptime_seconds") append_duration(*value);
            out_ += '\n';
        } while (eat(','));
        return eat('}');
    }
    void append_duration(std::string_view seconds_text) {
        long long s = 0;
        for (const char ch : seconds_text) {
            if (ch < '0' || ch > '9') return;
            s = s * 10 + (ch - '0');
        }
        out_ +=
            fmt::format(" ({}d {:02}:{:02}:{:02})", s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    }

    std::string_view s_;
    std::size_t pos_ = 0;
    std::string out_;
};

}  // namespace

std::string_view trim_right(std::string_view s) {
    const auto e = s.find_last_not_of(blanks);
    return e == std::string_view::npos ? std::string_view{} : s.substr(0, e + 1);
}

std::optional<std::string> toml_lookup_string(std::string_view text, std::string_view table,
                                              std::string_view key) {
    const std::string dotted = fmt::format("{}.{}", table, key);
    std::string current;  // the table of the lines being read; "" = root
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        line = trim(strip_comment(line));
        if (line.empty()) continue;
        if (line.front() == '[') {
            // [[array]] tables never hold our keys: give them a name no lookup matches.
            current = line.starts_with("[[")
                          ? std::string("\n")
                          : std::string(trim(line.substr(1, line.find(']') - 1)));
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        const auto k = trim(line.substr(0, eq));
        const bool match = (current == table && k == key) || (current.empty() && k == dotted);
        if (match) return parse_toml_string(trim(line.substr(eq + 1)));
    }
    return std::nullopt;
}


std::string format_utc(std::int64_t unix_seconds) {
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    if (gmtime_r(&t, &tm) == nullptr) return fmt::format("@{}", unix_seconds);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf, n);
}

std::optional<std::string> format_status_json(std::string_view json) {
    return status_renderer(json).render();
}

}  // namespace la::cli
