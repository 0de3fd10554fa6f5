// Shared helpers for core_test: temp dirs, files with modes, and token minting via mint.py.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace la::test {

/// A fresh directory under $TMPDIR, removed with its contents on destruction.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "la-core-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
        path_ = tmpl;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const noexcept { return path_; }
    std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

/// Writes text to path with the given permission bits.
inline void write_file(const std::filesystem::path& path, std::string_view text, mode_t mode = 0600) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    ::chmod(path.c_str(), mode);
}

/// Runs a shell command and returns its stdout; fails the test on a non-zero exit.
inline std::string run_capture(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
        ADD_FAILURE() << "popen failed: " << cmd;
        return out;
    }
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = ::pclose(p);
    EXPECT_EQ(rc, 0) << "command failed: " << cmd;
    return out;
}

/// The minting tool, run with the system Python that has PyJWT and jwcrypto.
inline std::string mint_command() {
    return std::string("/usr/bin/python3 ") + LA_SOURCE_DIR + "/tests/support/mint.py";
}

/// Writes a key directory with `mint.py keys`.
inline void mint_keys(const std::filesystem::path& dir, std::string_view kids = "k1,k2",
                      std::string_view versions = "1,2") {
    run_capture(mint_command() + " keys --out '" + dir.string() + "' --signing-kids " + std::string(kids) +
                " --secret-versions " + std::string(versions) + " > /dev/null");
}

/// One `mint.py batch` request: `fields` are extra JSON members, e.g. "\"alg\":\"none\"".
struct mint_request {
    std::string name, cmd, fields;
};

/// Mints every request in one Python run; returns name -> token.
inline std::map<std::string, std::string> mint_batch(const std::filesystem::path& keys,
                                                     const std::vector<mint_request>& reqs) {
    std::string json = "[";
    for (const auto& r : reqs) {
        if (json.size() > 1) json += ",\n";
        json += "{\"name\":\"" + r.name + "\",\"cmd\":\"" + r.cmd + "\"";
        if (!r.fields.empty()) json += "," + r.fields;
        json += "}";
    }
    json += "]";
    const auto req_file = keys / "requests.json";
    write_file(req_file, json);
    const std::string out =
        run_capture(mint_command() + " batch --keys '" + keys.string() + "' < '" + req_file.string() + "'");
    std::map<std::string, std::string> tokens;
    std::size_t pos = 0;
    while (pos < out.size()) {
        const std::size_t eol = out.find('\n', pos);
        const std::string line = out.substr(pos, eol - pos);
        pos = eol == std::string::npos ? out.size() : eol + 1;
        const std::size_t sp = line.find(' ');
        if (sp != std::string::npos) tokens[line.substr(0, sp)] = line.substr(sp + 1);
    }
    EXPECT_EQ(tokens.size(), reqs.size()) << out;
    return tokens;
}

/// Builds a claims JSON object from ordered (key, raw JSON value) pairs.
inline std::string json_object(const std::vector<std::pair<std::string, std::string>>& members) {
    std::string s = "{";
    for (const auto& [k, v] : members) {
        if (s.size() > 1) s += ",";
        s += "\"" + k + "\":" + v;
    }
    return s + "}";
}

}  // namespace la::test

namespace la::test {

/// A JSON string literal for s (quotes and backslashes escaped; test inputs are ASCII).
inline std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace la::test
