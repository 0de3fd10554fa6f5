// Text helpers of license-agent-cli: config lookup, JSON output, time and status formatting.
// Kept apart from main.cpp so the unit tests can exercise them without running the binary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace la::cli {

/// The string value of `table.key` in TOML text (under a `[table]` header or as a dotted key),
/// or nullopt when absent or not a single-line string. A lookup, not a TOML validator.
std::optional<std::string> toml_lookup_string(std::string_view text, std::string_view table,
                                              std::string_view key);


/// An instant as ISO-8601 UTC, e.g. "2027-01-01T00:00:00Z".
std::string format_utc(std::int64_t unix_seconds);

/// The agent's STATUS JSON as aligned "key  value" lines (nested objects indented), or nullopt
/// when the text is not a JSON object.
std::optional<std::string> format_status_json(std::string_view json);

/// s without trailing whitespace (spaces, tabs, CR, LF).
std::string_view trim_right(std::string_view s);

}  // namespace la::cli
