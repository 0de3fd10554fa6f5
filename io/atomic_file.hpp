// Durable, atomic replacement of a small file through the executor.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string_view>

#include "core/result.hpp"
#include "io/task.hpp"

namespace la::io {

/// Replaces `dir`/`name` with `data`: writes `dir`/.`name`.tmp, fsyncs it, renames it over the
/// target and fsyncs the directory, so after a crash at any instant the file holds either the
/// old or the new content, never a mix. The temp file is removed when a step fails.
/// Crash points (io/crash_point.hpp): atomic.opened, atomic.written, atomic.synced,
/// atomic.renamed, atomic.dir_synced. Errors: the failing step's errno (EIO, ENOSPC, ...).
/// Arguments are views (trivially destructible, see io/ops.hpp): they must outlive the await.
task<core::result<void>> write_file_atomically(std::string_view dir, std::string_view name,
                                               std::span<const std::byte> data, mode_t mode = 0600);

}  // namespace la::io
