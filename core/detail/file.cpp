#include "core/detail/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <span>

#include <fmt/format.h>

namespace la::core::detail {
namespace {

// Closes the descriptor on every path.
class fd_guard {
public:
    explicit fd_guard(int fd) noexcept : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const noexcept { return fd_; }

private:
    int fd_;
};

// Largest config or key file we accept: these are small documents, not streams.
constexpr std::size_t max_file_bytes = 1U << 20;

expected<std::size_t, std::string> open_checked(const std::filesystem::path& path, file_access access,
                                                 int& fd_out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return unexpected<std::string>(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
    fd_out = fd;
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return unexpected<std::string>(fmt::format("{}: cannot stat: {}", path.string(), std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) return unexpected<std::string>(fmt::format("{}: not a regular file", path.string()));
    if (access == file_access::owner_only && (st.st_mode & 077) != 0) {
        return unexpected<std::string>(fmt::format(
            "{}: refusing a file readable or writable by group or others (mode {:04o}); run chmod 600 on it",
            path.string(), st.st_mode & 07777));
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size > max_file_bytes)
        return unexpected<std::string>(fmt::format("{}: file too large ({} bytes)", path.string(), size));
    return size;
}

expected<void, std::string> read_all(int fd, std::span<char> out, const std::filesystem::path& path) {
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t r = ::read(fd, out.data() + done, out.size() - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            return unexpected<std::string>(fmt::format("{}: read failed: {}", path.string(), std::strerror(errno)));
        }
        if (r == 0) return unexpected<std::string>(fmt::format("{}: file shrank while reading", path.string()));
        done += static_cast<std::size_t>(r);
    }
    return {};
}

}  // namespace

expected<std::string, std::string> read_file(const std::filesystem::path& path, file_access access) {
    int fd = -1;
    auto size = open_checked(path, access, fd);
    const fd_guard guard(fd);
    if (!size) return unexpected<std::string>(std::move(size.error()));
    std::string text(*size, '\0');
    auto r = read_all(fd, text, path);
    if (!r) return unexpected<std::string>(std::move(r.error()));
    return text;
}

expected<crypto::secure_buffer, std::string> read_secret_file(const std::filesystem::path& path) {
    int fd = -1;
    auto size = open_checked(path, file_access::owner_only, fd);
    const fd_guard guard(fd);
    if (!size) return unexpected<std::string>(std::move(size.error()));
    if (*size == 0) return unexpected<std::string>(fmt::format("{}: file is empty", path.string()));
    auto buf = crypto::secure_buffer::allocate(*size);
    if (!buf)
        return unexpected<std::string>(
            fmt::format("{}: cannot allocate secure memory: {}", path.string(), buf.error().message()));
    const std::span<std::byte> bytes = buf->bytes();
    auto r = read_all(fd, {reinterpret_cast<char*>(bytes.data()), bytes.size()}, path);
    if (!r) return unexpected<std::string>(std::move(r.error()));
    return std::move(*buf);
}

}  // namespace la::core::detail
