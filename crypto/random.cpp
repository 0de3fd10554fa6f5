#include "crypto/random.hpp"

#include <sys/random.h>

#include <cerrno>

namespace la::crypto {

core::result<void> random_bytes(std::span<std::byte> out) noexcept {
    std::size_t done = 0;
    while (done < out.size()) {
        // Requests above 256 bytes may return short: loop until the span is full.
        const ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return core::fail_errno(errno);
        }
        done += static_cast<std::size_t>(n);
    }
    return {};
}

}  // namespace la::crypto
