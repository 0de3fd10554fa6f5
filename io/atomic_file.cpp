#include "io/atomic_file.hpp"

#include <fcntl.h>

#include <string>

#include "io/crash_point.hpp"
#include "io/ops.hpp"

namespace la::io {

task<core::result<void>> write_file_atomically(std::string_view dir, std::string_view name,
                                               std::span<const std::byte> data, mode_t mode) {
    const std::string dir_path(dir);
    const std::string target = dir_path + "/" + std::string(name);
    const std::string temp = dir_path + "/." + std::string(name) + ".tmp";

    auto fd = co_await openat(AT_FDCWD, temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (!fd) co_return core::fail(fd.error());
    crash_point("atomic.opened");
    core::result<void> outcome{};
    std::size_t done = 0;
    while (done < data.size()) {
        auto n = co_await write(*fd, data.subspan(done), static_cast<std::int64_t>(done));
        if (!n) {
            outcome = core::fail(n.error());
            break;
        }
        if (*n == 0) {
            outcome = core::fail(std::errc::no_space_on_device);
            break;
        }
        done += *n;
    }
    if (outcome) {
        crash_point("atomic.written");
        auto synced = co_await fsync(*fd);
        if (!synced) outcome = core::fail(synced.error());
    }
    auto closed = co_await close(*fd);
    if (outcome && !closed) outcome = core::fail(closed.error());
    if (outcome) {
        crash_point("atomic.synced");
        auto renamed = co_await renameat(AT_FDCWD, temp.c_str(), AT_FDCWD, target.c_str());
        if (!renamed) outcome = core::fail(renamed.error());
    }
    if (!outcome) {
        auto removed = co_await unlinkat(AT_FDCWD, temp.c_str());
        (void)removed;  // best effort: a leftover temp file is truncated by the next attempt
        co_return outcome;
    }
    crash_point("atomic.renamed");
    // The rename is durable only once the directory entry is.
    auto dfd = co_await openat(AT_FDCWD, dir_path.c_str(), O_RDONLY | O_DIRECTORY);
    if (!dfd) co_return core::fail(dfd.error());
    auto dir_synced = co_await fsync(*dfd);
    auto dir_closed = co_await close(*dfd);
    if (!dir_synced) co_return core::fail(dir_synced.error());
    if (!dir_closed) co_return core::fail(dir_closed.error());
    crash_point("atomic.dir_synced");
    co_return outcome;
}

}  // namespace la::io
