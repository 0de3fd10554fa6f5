// A small strict JSON (RFC 8259) scanner for untrusted token headers, claims and key files.
// It parses a mutable buffer in place into a caller-provided token array: strings are
// unescaped in place so every view points into that buffer. It never allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace la::core::json {

/// Kind of a parsed value.
enum class type : std::uint8_t { object, array, string, number, true_value, false_value, null };

/// One parsed value. Objects are followed by (key string, value subtree) pairs, arrays by
/// their element subtrees; `next` is the index one past the value's whole subtree.
struct token {
    type kind;
    std::uint32_t size;   ///< object: member count; array: element count; else 0
    std::uint32_t next;   ///< index of the token after this subtree
    std::string_view text;  ///< string: unescaped UTF-8; number: the raw lexeme; else empty
};

/// Why a document was refused.
enum class error : std::uint8_t {
    none = 0,
    syntax,           ///< not JSON (includes bad escapes, raw control chars, invalid UTF-8, trailing garbage)
    too_deep,         ///< nesting deeper than the limit
    too_many_tokens,  ///< more values than the token array holds
    duplicate_key,    ///< an object names the same member twice
};

/// Outcome of parse(): tokens[0] is the root when err == none.
struct parse_result {
    error err;
    std::size_t count;   ///< tokens used
    std::size_t offset;  ///< byte offset where parsing stopped (for error messages)
};

/// Default nesting limit: claims need 2 levels; 32 leaves room for unknown claims.
inline constexpr std::size_t default_max_depth = 32;

/// Parses `text` (modified in place) into `out`. Thread: reentrant, no allocation.
parse_result parse(std::span<char> text, std::span<token> out,
                   std::size_t max_depth = default_max_depth) noexcept;

/// A member of an object: its key and the index of its value token.
struct member {
    std::string_view key;
    std::size_t value;
};

/// Read-only walking helpers over a successfully parsed token array.
class document {
public:
    /// Wraps the first `count` tokens produced by parse().
    explicit document(std::span<const token> tokens) noexcept : t_(tokens) {}

    /// Token at index i (0 = root).
    const token& operator[](std::size_t i) const noexcept { return t_[i]; }

    /// Index of the value of `key` in object `obj`, or nullopt.
    std::optional<std::size_t> find(std::size_t obj, std::string_view key) const noexcept;

    /// Iterates over object members / array elements without copying.
    class child_iterator {
    public:
        child_iterator(const document* d, std::size_t idx, bool is_object) noexcept
            : d_(d), idx_(idx), obj_(is_object) {}
        /// Object: member; array: member with an empty key and the element index.
        member operator*() const noexcept {
            if (obj_) return {(*d_)[idx_].text, idx_ + 1};
            return {{}, idx_};
        }
        child_iterator& operator++() noexcept {
            idx_ = (*d_)[obj_ ? idx_ + 1 : idx_].next;
            return *this;
        }
        bool operator==(const child_iterator& o) const noexcept { return idx_ == o.idx_; }

    private:
        const document* d_;
        std::size_t idx_;
        bool obj_;
    };

    /// Range over the children of an object or array token.
    struct children_range {
        child_iterator b, e;
        child_iterator begin() const noexcept { return b; }
        child_iterator end() const noexcept { return e; }
    };

    /// Children of token `idx` (must be an object or an array).
    children_range children(std::size_t idx) const noexcept {
        const bool obj = t_[idx].kind == type::object;
        return {child_iterator(this, idx + 1, obj), child_iterator(this, t_[idx].next, obj)};
    }

private:
    std::span<const token> t_;
};

/// Parses an integer lexeme (no fraction, no exponent) into int64; false if out of range or not integral.
bool to_int64(std::string_view lexeme, std::int64_t& out) noexcept;

/// Parses a NumericDate (RFC 7519 §2): an integer, or a decimal fraction rounded down
/// (an earlier `exp` only shortens a license). Exponent forms are refused: no issuer we
/// know writes them and they invite huge-number edge cases.
bool to_numeric_date(std::string_view lexeme, std::int64_t& out) noexcept;

/// Human name of a parse error.
std::string_view to_string(error e) noexcept;

/// `s` as a JSON string literal, quotes included (for the JSON the agent and CLI write; UTF-8
/// passes through, control characters are escaped).
std::string quote(std::string_view s);

}  // namespace la::core::json
