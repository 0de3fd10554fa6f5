#include "crypto/secure_buffer.hpp"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace la::crypto {
namespace {

// The VmFlags line of the /proc/self/smaps entry containing addr (the kernel may merge
// neighbouring mappings with equal flags, so match by range, not by start address).
std::string vm_flags_of(const void* addr) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool in_entry = false;
    const auto want = reinterpret_cast<std::uintptr_t>(addr);
    while (std::getline(smaps, line)) {
        unsigned long lo = 0;
        unsigned long hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > 8) {
            in_entry = (lo <= want && want < hi);
        } else if (in_entry && line.rfind("VmFlags:", 0) == 0) {
            return line;
        }
    }
    return {};
}

bool has_flag(const std::string& vm_flags, const std::string& flag) {
    std::istringstream in(vm_flags);
    std::string word;
    while (in >> word)
        if (word == flag) return true;
    return false;
}

TEST(SecureBufferTest, AllocatesZeroedPageAlignedMemory) {
    auto buf = secure_buffer::allocate(100);
    ASSERT_TRUE(buf.has_value()) << buf.error().message();
    EXPECT_EQ(buf->size(), 100u);
    EXPECT_EQ(buf->bytes().size(), 100u);
    ASSERT_NE(buf->data(), nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buf->data()) % 4096, 0u);
    EXPECT_TRUE(std::all_of(buf->bytes().begin(), buf->bytes().end(),
                            [](std::byte b) { return b == std::byte{0}; }));
    std::fill(buf->bytes().begin(), buf->bytes().end(), std::byte{0x5A});
    EXPECT_EQ(buf->bytes()[99], std::byte{0x5A});
}

TEST(SecureBufferTest, PagesAreExcludedFromDumpsAndLockedWhenReported) {
    auto buf = secure_buffer::allocate(5000);
    ASSERT_TRUE(buf.has_value());
    const std::string flags = vm_flags_of(buf->data());
    ASSERT_FALSE(flags.empty()) << "mapping not found in /proc/self/smaps";
    EXPECT_TRUE(has_flag(flags, "dd")) << flags;
    if (buf->locked()) {
        EXPECT_TRUE(has_flag(flags, "lo")) << flags;
    }
}

TEST(SecureBufferTest, RejectsZeroSize) {
    auto buf = secure_buffer::allocate(0);
    ASSERT_FALSE(buf.has_value());
    EXPECT_EQ(buf.error(), std::errc::invalid_argument);
}

TEST(SecureBufferTest, MoveTransfersOwnership) {
    auto a = secure_buffer::allocate(32);
    ASSERT_TRUE(a.has_value());
    std::byte* p = a->data();
    a->bytes()[0] = std::byte{7};
    secure_buffer b = std::move(*a);
    EXPECT_EQ(a->data(), nullptr);
    EXPECT_EQ(a->size(), 0u);
    EXPECT_FALSE(a->locked());
    EXPECT_EQ(b.data(), p);
    EXPECT_EQ(b.bytes()[0], std::byte{7});

    auto c = secure_buffer::allocate(16);
    ASSERT_TRUE(c.has_value());
    *c = std::move(b);
    EXPECT_EQ(c->data(), p);
    EXPECT_EQ(c->size(), 32u);
    EXPECT_EQ(b.data(), nullptr);
    EXPECT_EQ(c->bytes()[0], std::byte{7});
}

TEST(SecureBufferTest, WorksWithoutMlockPermission) {
    // In a child (so nothing leaks into other tests): without CAP_IPC_LOCK and with
    // RLIMIT_MEMLOCK 0, mlock fails with EPERM/ENOMEM; allocation must still succeed, unlocked.
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
        std::array<__user_cap_data_struct, 2> caps{};
        if (::syscall(SYS_capget, &hdr, caps.data()) != 0) ::_exit(6);
        caps[0].effective &= ~(1U << CAP_IPC_LOCK);
        caps[0].permitted &= ~(1U << CAP_IPC_LOCK);
        if (::syscall(SYS_capset, &hdr, caps.data()) != 0) ::_exit(7);
        const rlimit zero{0, 0};
        if (::setrlimit(RLIMIT_MEMLOCK, &zero) != 0) ::_exit(2);
        auto buf = secure_buffer::allocate(4096);
        if (!buf) ::_exit(3);
        if (buf->locked()) ::_exit(4);
        if (!has_flag(vm_flags_of(buf->data()), "dd")) ::_exit(5);
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SecureZeroTest, ClearsBytes) {
    std::array<std::byte, 64> a{};
    a.fill(std::byte{0xFF});
    secure_zero(a.data() + 8, 16);
    EXPECT_EQ(a[7], std::byte{0xFF});
    EXPECT_EQ(a[8], std::byte{0});
    EXPECT_EQ(a[23], std::byte{0});
    EXPECT_EQ(a[24], std::byte{0xFF});
    secure_zero(nullptr, 0);
}

TEST(HardenProcessTest, MakesProcessNonDumpable) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (::prctl(PR_GET_DUMPABLE) != 1) ::_exit(2);
        if (!harden_process()) ::_exit(3);
        ::_exit(::prctl(PR_GET_DUMPABLE) == 0 ? 0 : 4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace la::crypto
