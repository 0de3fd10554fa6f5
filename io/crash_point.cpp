#include "io/crash_point.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace la::io {
namespace {

// Fixed storage: no allocation. Written only by arm_crash_point (before threads start); the
// release store of `armed` publishes name/target to every thread that then sees it set.
char armed_name[64] = {};
std::size_t armed_len = 0;
std::uint64_t target = 1;
std::atomic<bool> armed{false};
std::atomic<std::uint64_t> passes{0};

// "name:N" -> N when the suffix is a positive decimal, else 0 (the whole spec is the name).
std::uint64_t parse_count(std::string_view digits) noexcept {
    if (digits.empty() || digits.size() > 19) return 0;
    std::uint64_t n = 0;
    for (const char c : digits) {
        if (c < '0' || c > '9') return 0;
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
}

void arm(std::string_view spec) noexcept {
    armed.store(false, std::memory_order_relaxed);
    std::uint64_t n = 1;
    if (const auto colon = spec.rfind(':'); colon != std::string_view::npos) {
        if (const std::uint64_t c = parse_count(spec.substr(colon + 1)); c != 0) {
            n = c;
            spec = spec.substr(0, colon);
        }
    }
    const std::size_t len = spec.size() < sizeof armed_name - 1 ? spec.size() : sizeof armed_name - 1;
    std::memcpy(armed_name, spec.data(), len);
    armed_name[len] = '\0';
    armed_len = len;
    target = n;
    passes.store(0, std::memory_order_relaxed);
    armed.store(len != 0, std::memory_order_release);
}

// The environment is read once, by whichever thread gets here first (a thread-safe static,
// which takes no allocation); arm_crash_point() goes through it too so it always wins.
void read_env_once() noexcept {
    static const bool done = [] {
        if (const char* v = std::getenv("LA_CRASH_POINT"); v != nullptr) arm(v);
        return true;
    }();
    (void)done;
}

}  // namespace

void arm_crash_point(std::string_view spec) noexcept {
    read_env_once();
    arm(spec);
}

void crash_point(std::string_view name) noexcept {
    read_env_once();
    if (!armed.load(std::memory_order_acquire)) return;
    if (name != std::string_view(armed_name, armed_len)) return;
    if (passes.fetch_add(1, std::memory_order_relaxed) + 1 != target) return;
    ::kill(::getpid(), SIGKILL);
    ::_exit(137);  // not reached
}

}  // namespace la::io
