#include "io/crash_point.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/alloc_counter.hpp"

namespace la::io {
namespace {

// Tells the parent how far the child got: one byte per step, through a pipe.
void say(int fd, char c) {
    if (::write(fd, &c, 1) != 1) ::_exit(3);
}

struct child_outcome {
    std::string said;  ///< every byte the child wrote before it ended
    int status = 0;    ///< waitpid status
};

// Runs body(pipe_fd) in a forked child, which exits 0 if body returns.
template <class Body>
child_outcome run_child(Body body) {
    int fds[2];
    if (::pipe(fds) != 0) std::abort();
    const pid_t pid = ::fork();
    if (pid < 0) std::abort();
    if (pid == 0) {
        ::close(fds[0]);
        body(fds[1]);
        ::_exit(0);
    }
    ::close(fds[1]);
    child_outcome out;
    char buf[256];
    ssize_t n = 0;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.said.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    EXPECT_EQ(::waitpid(pid, &out.status, 0), pid);
    return out;
}

bool killed(const child_outcome& c) { return WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL; }

TEST(CrashPointTest, FiresOnTheNthPassExactly) {
    const auto c = run_child([](int fd) {
        arm_crash_point("x:3");
        crash_point("x");
        say(fd, '1');
        crash_point("x");
        say(fd, '2');
        crash_point("x");
        say(fd, '3');  // must not be reached
    });
    EXPECT_TRUE(killed(c)) << "status " << c.status;
    EXPECT_EQ(c.said, "12");
}

TEST(CrashPointTest, APlainNameFiresOnTheFirstPass) {
    const auto c = run_child([](int fd) {
        arm_crash_point("atomic.written");
        say(fd, '0');
        crash_point("atomic.written");
        say(fd, '1');
    });
    EXPECT_TRUE(killed(c));
    EXPECT_EQ(c.said, "0");
}

TEST(CrashPointTest, OtherNamesDoNotCount) {
    const auto c = run_child([](int fd) {
        arm_crash_point("x:2");
        crash_point("y");
        crash_point("xx");
        crash_point("");
        crash_point("x");
        say(fd, '1');
        crash_point("y");
        say(fd, '2');
        crash_point("x");
        say(fd, '3');
    });
    EXPECT_TRUE(killed(c));
    EXPECT_EQ(c.said, "12");
}

TEST(CrashPointTest, ArmingAgainRestartsTheCount) {
    const auto c = run_child([](int fd) {
        arm_crash_point("x:2");
        crash_point("x");
        arm_crash_point("x:2");
        crash_point("x");
        say(fd, '1');
        crash_point("x");
        say(fd, '2');
    });
    EXPECT_TRUE(killed(c));
    EXPECT_EQ(c.said, "1");
}

TEST(CrashPointTest, DisarmedAndNonNumericSuffixesNeverFireEarly) {
    const auto c = run_child([](int fd) {
        arm_crash_point("x:3");
        arm_crash_point("");  // disarms
        crash_point("x");
        crash_point("x");
        crash_point("x");
        say(fd, '1');
        arm_crash_point("x:abc");  // not a count: the whole text is the name
        crash_point("x");
        say(fd, '2');
        arm_crash_point("x:0");  // not a positive count either
        crash_point("x");
        say(fd, '3');
        crash_point("x:0");
        say(fd, '4');
    });
    EXPECT_TRUE(killed(c));
    EXPECT_EQ(c.said, "123");
}

// 4 threads pass 1000 times each; an atomic count makes the 4001st pass (after the join) the one.
TEST(CrashPointTest, PassesFromManyThreadsAreCountedExactly) {
    const auto c = run_child([](int fd) {
        arm_crash_point("x:4001");
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([] {
                for (int i = 0; i < 1000; ++i) {
                    crash_point("x");
                    crash_point("y");
                }
            });
        for (auto& t : threads) t.join();
        say(fd, 'j');
        crash_point("x");
        say(fd, 'z');
    });
    EXPECT_TRUE(killed(c));
    EXPECT_EQ(c.said, "j");
}

TEST(CrashPointTest, PassingAnArmedPointAllocatesNothing) {
    arm_crash_point("crash_point_test.never:1000");
    {
        test::alloc_scope scope;
        for (int i = 0; i < 10; ++i) {
            crash_point("crash_point_test.never");
            crash_point("something.else");
        }
        EXPECT_EQ(scope.count(), 0u);
    }
    arm_crash_point("");
}

// Run in a child re-executed with LA_CRASH_POINT set (below); skipped in a normal run.
TEST(CrashPointChild, ReachesXThreeTimes) {
    const char* fd_text = std::getenv("LA_CRASH_POINT_TEST_FD");
    if (fd_text == nullptr) GTEST_SKIP() << "only run by EnvironmentArmsTheNthPass";
    const int fd = std::atoi(fd_text);
    crash_point("x");
    say(fd, '1');
    crash_point("x");
    say(fd, '2');
    crash_point("x");
    say(fd, '3');
}

TEST(CrashPointTest, EnvironmentArmsTheNthPass) {
    const auto c = run_child([](int fd) {
        const std::string fd_text = std::to_string(fd);
        ::setenv("LA_CRASH_POINT", "x:2", 1);
        ::setenv("LA_CRASH_POINT_TEST_FD", fd_text.c_str(), 1);
        char self[] = "/proc/self/exe";
        char filter[] = "--gtest_filter=CrashPointChild.ReachesXThreeTimes";
        char* argv[] = {self, filter, nullptr};
        if (const int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, 1);  // quiet
        ::execv(self, argv);
        ::_exit(4);
    });
    EXPECT_TRUE(killed(c)) << "status " << c.status;
    EXPECT_EQ(c.said, "1");
}

}  // namespace
}  // namespace la::io
