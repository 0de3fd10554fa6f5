#include "io/atomic_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "io/crash_point.hpp"
#include "io/ring.hpp"

namespace la::io {
namespace {

struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        char tmpl[] = "/tmp/la-atomic-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_plain(const std::filesystem::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
}

task<core::result<void>> replace(const std::string* dir, std::string_view text) {
    const auto bytes = std::as_bytes(std::span(text));
    co_return co_await write_file_atomically(*dir, "state.json", bytes, 0600);
}

core::result<void> replace_now(const std::filesystem::path& dir, std::string_view text,
                               fault_plan plan = {}) {
    auto r = ring::create();
    EXPECT_TRUE(r.has_value());
    (*r)->set_fault_plan(plan);
    const std::string d = dir.string();
    return (*r)->run(replace(&d, text));
}

bool only_the_target_is_left(const std::filesystem::path& dir) {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().filename() != "state.json") return false;
        ++n;
    }
    return n <= 1;
}

TEST(AtomicFileTest, CreatesTheFileWithItsMode) {
    temp_dir dir;
    ASSERT_TRUE(replace_now(dir.path, "{\"v\":1}").has_value());
    EXPECT_EQ(read_all(dir.path / "state.json"), "{\"v\":1}");
    struct stat st{};
    ASSERT_EQ(::stat((dir.path / "state.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_TRUE(only_the_target_is_left(dir.path));
}

TEST(AtomicFileTest, ReplacesTheWholeContent) {
    temp_dir dir;
    write_plain(dir.path / "state.json", "a much longer old content that must not survive");
    ASSERT_TRUE(replace_now(dir.path, "new").has_value());
    EXPECT_EQ(read_all(dir.path / "state.json"), "new");
}

// Each failing step leaves the old file as it was and no temp file; the next attempt succeeds.
TEST(AtomicFileTest, AFailingStepKeepsTheOldContent) {
    const std::pair<op_kind, int> faults[] = {{op_kind::openat, EACCES},
                                              {op_kind::write, ENOSPC},
                                              {op_kind::write, EIO},
                                              {op_kind::fsync, EIO},
                                              {op_kind::close, EIO},
                                              {op_kind::rename, EIO}};
    for (auto [kind, err] : faults) {
        temp_dir dir;
        write_plain(dir.path / "state.json", "old");
        auto r = replace_now(dir.path, "new", fault_plan{kind, 1, err});
        ASSERT_FALSE(r.has_value()) << static_cast<int>(kind);
        EXPECT_EQ(r.error(), std::error_code(err, std::generic_category()));
        EXPECT_EQ(read_all(dir.path / "state.json"), "old") << static_cast<int>(kind);
        EXPECT_TRUE(only_the_target_is_left(dir.path)) << static_cast<int>(kind);
        ASSERT_TRUE(replace_now(dir.path, "new").has_value());
        EXPECT_EQ(read_all(dir.path / "state.json"), "new");
    }
}

TEST(AtomicFileTest, DirectoryFsyncFailureIsReported) {
    temp_dir dir;
    // The second fsync is the directory's: the file is already in place, the error still counts.
    auto r = replace_now(dir.path, "new", fault_plan{op_kind::fsync, 2, EIO});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), std::errc::io_error);
}

// kill -9 at every step: the file holds the old or the new content, never anything else.
TEST(AtomicFileTest, CrashAtAnyStepLeavesOldOrNewContent) {
    const std::pair<const char*, const char*> points[] = {{"atomic.opened", "old"},
                                                          {"atomic.written", "old"},
                                                          {"atomic.synced", "old"},
                                                          {"atomic.renamed", "new"},
                                                          {"atomic.dir_synced", "new"}};
    for (auto [point, expected] : points) {
        temp_dir dir;
        write_plain(dir.path / "state.json", "old");
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            arm_crash_point(point);
            auto r = replace_now(dir.path, "new");
            ::_exit(r.has_value() ? 0 : 1);  // only reached if the crash point was missed
        }
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFSIGNALED(status)) << point << " was never reached";
        EXPECT_EQ(WTERMSIG(status), SIGKILL);
        EXPECT_EQ(read_all(dir.path / "state.json"), expected) << point;
        // A leftover temp file may remain after a crash; the next write truncates it.
        ASSERT_TRUE(replace_now(dir.path, "next").has_value());
        EXPECT_EQ(read_all(dir.path / "state.json"), "next");
        EXPECT_TRUE(only_the_target_is_left(dir.path)) << point;
    }
}

}  // namespace
}  // namespace la::io
