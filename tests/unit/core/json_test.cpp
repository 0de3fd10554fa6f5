#include "core/json.hpp"

#include <array>
#include <string>

#include <gtest/gtest.h>

namespace la::core::json {
namespace {

struct parsed {
    std::string buf;
    std::array<token, 256> toks{};
    parse_result r{};
};

// Parses a copy of text; the copy keeps the views alive.
parsed parse_text(std::string text, std::size_t max_depth = default_max_depth) {
    parsed p;
    p.buf = std::move(text);
    p.r = parse(std::span<char>(p.buf.data(), p.buf.size()), p.toks, max_depth);
    return p;
}

error err_of(std::string text) { return parse_text(std::move(text)).r.err; }

TEST(JsonTest, ParsesNestedDocumentIntoViews) {
    auto p = parse_text(R"( {"a": [1, -2.5e3, true, false, null], "b": {"c": "d"}, "e": ""} )");
    ASSERT_EQ(p.r.err, error::none);
    const document d(std::span(p.toks).first(p.r.count));
    ASSERT_EQ(d[0].kind, type::object);
    EXPECT_EQ(d[0].size, 3u);
    const auto a = d.find(0, "a");
    ASSERT_TRUE(a);
    EXPECT_EQ(d[*a].kind, type::array);
    EXPECT_EQ(d[*a].size, 5u);
    std::vector<type> kinds;
    for (const member m : d.children(*a)) kinds.push_back(d[m.value].kind);
    EXPECT_EQ(kinds, (std::vector<type>{type::number, type::number, type::true_value, type::false_value, type::null}));
    EXPECT_EQ(d[*a + 2].text, "-2.5e3");
    const auto b = d.find(0, "b");
    ASSERT_TRUE(b);
    const auto c = d.find(*b, "c");
    ASSERT_TRUE(c);
    EXPECT_EQ(d[*c].text, "d");
    EXPECT_EQ(d[*d.find(0, "e")].text, "");
    EXPECT_FALSE(d.find(0, "zz"));
    EXPECT_FALSE(d.find(0, "c"));  // nested keys are not top-level members
}

TEST(JsonTest, RejectsDuplicateKeysAtAnyDepth) {
    EXPECT_EQ(err_of(R"({"a":1,"a":2})"), error::duplicate_key);
    EXPECT_EQ(err_of(R"({"x":{"k":1,"j":2,"k":3}})"), error::duplicate_key);
    EXPECT_EQ(err_of(R"([{"k":1},{"k":1,"k":1}])"), error::duplicate_key);
    // Keys compare after unescaping: "\u0061" is "a".
    EXPECT_EQ(err_of(R"({"a":1,"\u0061":2})"), error::duplicate_key);
    EXPECT_EQ(err_of(R"({"a":{"a":1},"b":[{"a":1}]})"), error::none);
}

TEST(JsonTest, UnescapesAllEscapesInPlace) {
    auto p = parse_text(R"(["\"\\\/\b\f\n\r\t", "caf\u00e9 \u20ac \ud83d\ude00", "raw é €"])");
    ASSERT_EQ(p.r.err, error::none);
    EXPECT_EQ(p.toks[1].text, "\"\\/\b\f\n\r\t");
    EXPECT_EQ(p.toks[2].text, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    EXPECT_EQ(p.toks[3].text, "raw \xc3\xa9 \xe2\x82\xac");
    // Views point into the caller's buffer.
    EXPECT_GE(p.toks[1].text.data(), p.buf.data());
    EXPECT_LT(p.toks[1].text.data(), p.buf.data() + p.buf.size());
}

TEST(JsonTest, RejectsBadStrings) {
    EXPECT_EQ(err_of(R"(["\x"])"), error::syntax);          // unknown escape
    EXPECT_EQ(err_of(R"(["\u12"])"), error::syntax);        // short \u
    EXPECT_EQ(err_of(R"(["\ud83d"])"), error::syntax);      // lone high surrogate
    EXPECT_EQ(err_of(R"(["\ud83d\u0041"])"), error::syntax);  // high surrogate + non-low
    EXPECT_EQ(err_of(R"(["\ude00"])"), error::syntax);      // lone low surrogate
    EXPECT_EQ(err_of("[\"a\tb\"]"), error::syntax);         // raw control character
    EXPECT_EQ(err_of(std::string("[\"a\0b\"]", 7)), error::syntax);
    EXPECT_EQ(err_of("[\"\xc0\x80\"]"), error::syntax);     // overlong NUL
    EXPECT_EQ(err_of("[\"\xed\xa0\x80\"]"), error::syntax); // UTF-8 encoded surrogate
    EXPECT_EQ(err_of("[\"\xe2\x82\"]"), error::syntax);     // truncated sequence
    EXPECT_EQ(err_of("[\"\xff\"]"), error::syntax);
    EXPECT_EQ(err_of("[\"\xf4\x90\x80\x80\"]"), error::syntax);  // above U+10FFFF
    EXPECT_EQ(err_of(R"(["abc)"), error::syntax);           // unterminated
}

TEST(JsonTest, RejectsTrailingGarbageButAllowsWhitespace) {
    EXPECT_EQ(err_of("{} x"), error::syntax);
    EXPECT_EQ(err_of("{}}"), error::syntax);
    EXPECT_EQ(err_of(R"({"a":1}{"b":2})"), error::syntax);
    EXPECT_EQ(err_of("{} \n\t\r "), error::none);
    EXPECT_EQ(err_of(""), error::syntax);
    EXPECT_EQ(err_of("   "), error::syntax);
}

TEST(JsonTest, RejectsStructuralErrors) {
    EXPECT_EQ(err_of(R"({"a":1,})"), error::syntax);
    EXPECT_EQ(err_of("[1,]"), error::syntax);
    EXPECT_EQ(err_of(R"({"a" 1})"), error::syntax);
    EXPECT_EQ(err_of(R"({a:1})"), error::syntax);
    EXPECT_EQ(err_of("[tru]"), error::syntax);
    EXPECT_EQ(err_of("[nul]"), error::syntax);
    EXPECT_EQ(err_of("[01]"), error::syntax);
    EXPECT_EQ(err_of("[-]"), error::syntax);
    EXPECT_EQ(err_of("[1.]"), error::syntax);
    EXPECT_EQ(err_of("[.5]"), error::syntax);
    EXPECT_EQ(err_of("[1e]"), error::syntax);
    EXPECT_EQ(err_of("[+1]"), error::syntax);
    EXPECT_EQ(err_of("['a']"), error::syntax);
}

TEST(JsonTest, EnforcesDepthLimit) {
    const auto nested = [](int n) { return std::string(static_cast<std::size_t>(n), '[') + std::string(static_cast<std::size_t>(n), ']'); };
    EXPECT_EQ(parse_text(nested(32), 32).r.err, error::none);
    EXPECT_EQ(parse_text(nested(33), 32).r.err, error::too_deep);
    EXPECT_EQ(parse_text(R"({"a":{"b":1}})", 1).r.err, error::too_deep);
    EXPECT_EQ(parse_text(nested(10000)).r.err, error::too_deep);  // no stack overflow
}

TEST(JsonTest, ReportsTooManyTokens) {
    std::string text = "[";
    for (int i = 0; i < 300; ++i) text += i == 0 ? "1" : ",1";
    text += "]";
    EXPECT_EQ(err_of(text), error::too_many_tokens);
    std::array<token, 3> few{};
    std::string ok = "[1,2]";
    EXPECT_EQ(parse(std::span<char>(ok.data(), ok.size()), few).err, error::none);
    std::string over = "[1,2,3]";
    EXPECT_EQ(parse(std::span<char>(over.data(), over.size()), few).err, error::too_many_tokens);
}

TEST(JsonTest, ConvertsIntegers) {
    std::int64_t v = 0;
    EXPECT_TRUE(to_int64("0", v));
    EXPECT_EQ(v, 0);
    EXPECT_TRUE(to_int64("-42", v));
    EXPECT_EQ(v, -42);
    EXPECT_TRUE(to_int64("9223372036854775807", v));
    EXPECT_EQ(v, INT64_MAX);
    EXPECT_TRUE(to_int64("-9223372036854775808", v));
    EXPECT_EQ(v, INT64_MIN);
    EXPECT_FALSE(to_int64("9223372036854775808", v));
    EXPECT_FALSE(to_int64("-9223372036854775809", v));
    EXPECT_FALSE(to_int64("1.0", v));
    EXPECT_FALSE(to_int64("", v));
    EXPECT_FALSE(to_int64("-", v));
}

TEST(JsonTest, ConvertsNumericDatesRoundingDown) {
    std::int64_t v = 0;
    EXPECT_TRUE(to_numeric_date("1700000000", v));
    EXPECT_EQ(v, 1700000000);
    EXPECT_TRUE(to_numeric_date("1700000000.75", v));
    EXPECT_EQ(v, 1700000000);
    EXPECT_TRUE(to_numeric_date("-1.5", v));
    EXPECT_EQ(v, -2);
    EXPECT_TRUE(to_numeric_date("-1.0", v));
    EXPECT_EQ(v, -1);
    EXPECT_FALSE(to_numeric_date("1.7e9", v));
    EXPECT_FALSE(to_numeric_date("17E8", v));
    EXPECT_FALSE(to_numeric_date("99999999999999999999", v));
}

}  // namespace
}  // namespace la::core::json
