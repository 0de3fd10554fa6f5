// Small helpers shared by the crypto tests: hex, byte views, running python fixtures.
#pragma once

#include <array>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace la::test {

/// Decodes lowercase/uppercase hex; an odd length or bad digit yields an empty vector.
inline std::vector<std::byte> hex(std::string_view s) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::vector<std::byte> out;
    if (s.size() % 2 != 0) return out;
    for (std::size_t i = 0; i < s.size(); i += 2) {
        const int hi = nibble(s[i]);
        const int lo = nibble(s[i + 1]);
        if (hi < 0 || lo < 0) return {};
        out.push_back(static_cast<std::byte>(hi * 16 + lo));
    }
    return out;
}

/// Lowercase hex of bytes.
inline std::string to_hex(std::span<const std::byte> b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::byte x : b) {
        out.push_back(digits[std::to_integer<unsigned>(x) >> 4]);
        out.push_back(digits[std::to_integer<unsigned>(x) & 0xF]);
    }
    return out;
}

/// The bytes of a string.
inline std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

/// Output of a shell command and its exit status (-1 when it could not run).
struct command_result {
    std::string out;
    int status = -1;
};

/// Runs cmd through /bin/sh and captures stdout.
inline command_result run_command(const std::string& cmd) {
    command_result r;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) return r;
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) r.out.append(buf.data(), n);
    r.status = ::pclose(f);
    return r;
}

/// Splits s on sep (keeps empty fields).
inline std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t pos = s.find(sep, start);
        if (pos == std::string_view::npos) {
            out.emplace_back(s.substr(start));
            return out;
        }
        out.emplace_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

/// Writes `bytes` to `path` (created or truncated).
inline void write_bytes(const std::string& path, std::span<const std::byte> bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

/// The whole file as bytes (empty when unreadable).
inline std::vector<std::byte> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(raw.size());
    if (!raw.empty()) std::memcpy(out.data(), raw.data(), raw.size());
    return out;
}

}  // namespace la::test
